package integration

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// proxyClient is a browser behind a TLS-terminating proxy, as the console
// sees it: the proxy (here, the test itself, from 127.0.0.1) forwards
// plain HTTP with X-Forwarded-Proto and X-Forwarded-Host, and the browser's
// Origin is the public https one.
type proxyClient struct {
	t       *testing.T
	c       *http.Client
	headers map[string]string
}

const publicOrigin = "https://console.example.com"

func newProxyClient(t *testing.T, forwarded bool) *proxyClient {
	jar, _ := cookiejar.New(nil)
	p := &proxyClient{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		headers: map[string]string{"Origin": publicOrigin}}
	if forwarded {
		p.headers["X-Forwarded-Proto"] = "https"
		p.headers["X-Forwarded-Host"] = "console.example.com"
		p.headers["X-Forwarded-For"] = "203.0.113.50"
	}
	return p
}

func (p *proxyClient) do(method, path string, form url.Values, cookies ...*http.Cookie) *http.Response {
	p.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, siteURL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range p.headers {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in and returns the answer (a 303 with the session cookie
// when it worked) and the session cookie as the server set it.
func (p *proxyClient) signIn(email string) (*http.Response, *http.Cookie) {
	p.t.Helper()
	resp := p.do("GET", "/console/signin", nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfInput.FindSubmatch(b)
	if m == nil {
		p.t.Fatal("no csrf on the sign-in page")
	}
	u, _ := url.Parse(siteURL + "/console/")
	var pre *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "ar_pre" {
			pre = c
		}
	}
	if pre == nil { // kept from an earlier page
		for _, c := range p.c.Jar.Cookies(u) {
			if c.Name == "ar_pre" {
				pre = c
			}
		}
	}
	resp = p.do("POST", "/console/signin", url.Values{"email": {email}, "password": {journeyPassword}, "csrf": {string(m[1])}}, pre)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "ar_session" {
			return resp, c
		}
	}
	return resp, nil
}

// Behind a TLS-terminating proxy the console works when the proxy is in
// trusted_proxies (scheme and host from X-Forwarded-*) or external_url is
// set; the same forwarded headers from an untrusted peer change nothing.
func TestConsoleBehindTLSTerminatingProxy(t *testing.T) {
	e := newEnv(t, envOptions{handler: "\t\tconsole", servers: "\t\ttrusted_proxies static 127.0.0.1/32"})
	e.createAccount("acme")
	var owner newUser
	e.mustAdmin("POST", "/agent_router/accounts/acme/users", map[string]string{"email": "owner@acme.test", "role": "owner"}, 201, &owner)
	setPassword(t, owner.SetupPath, journeyPassword)

	check := func(name string, forwarded, wantOK bool) {
		t.Helper()
		p := newProxyClient(t, forwarded)
		resp, session := p.signIn("owner@acme.test")
		if !wantOK {
			if resp.StatusCode != http.StatusForbidden || session != nil {
				t.Fatalf("%s: sign-in %d, session %v; want 403 and none", name, resp.StatusCode, session != nil)
			}
			return
		}
		if resp.StatusCode != http.StatusSeeOther || session == nil {
			t.Fatalf("%s: sign-in %d", name, resp.StatusCode)
		}
		if !session.Secure {
			t.Errorf("%s: the session cookie is not Secure", name)
		}
		// A state change from the public origin is accepted.
		form := url.Values{"name": {"via-proxy"}, "csrf": {csrfFor(t, p, session)}}
		resp = p.do("POST", "/console/keys", form, session)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: creating a key from %s: %d", name, publicOrigin, resp.StatusCode)
		}
		// An invitation link starts with the public origin.
		resp = p.do("POST", "/console/members", url.Values{"email": {"new@acme.test"}, "role": {"member"}, "csrf": {csrfFor(t, p, session)}}, session)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `value="`+publicOrigin+`/console/setup#`) {
			t.Fatalf("%s: the invitation link does not start with %s: %d", name, publicOrigin, resp.StatusCode)
		}
		e.mustAdmin("DELETE", "/agent_router/accounts/acme/users/"+userID(t, e, "new@acme.test"), nil, 204, nil)
	}
	check("trusted proxy", true, true)
	// The proxy left out X-Forwarded-Proto: the request is plain http, an
	// https Origin is refused.
	check("trusted proxy, no forwarded headers", false, false)

	// The same headers from a peer that is not a trusted proxy are ignored.
	e.options.servers = ""
	e.load()
	check("untrusted peer", true, false)

	// external_url: the origin is fixed by the config.
	e.options.handler = "\t\tconsole {\n\t\t\texternal_url " + publicOrigin + "\n\t\t}"
	e.load()
	check("external_url", false, true)
}

// csrfFor reads the session's anti-forgery token from a console page.
func csrfFor(t *testing.T, p *proxyClient, session *http.Cookie) string {
	t.Helper()
	resp := p.do("GET", "/console/keys", nil, session)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`data-csrf="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no csrf on the keys page: %d", resp.StatusCode)
	}
	return string(m[1])
}

func userID(t *testing.T, e *env, email string) string {
	t.Helper()
	var users []struct{ ID, Email string }
	e.mustAdmin("GET", "/agent_router/accounts/acme/users", nil, 200, &users)
	for _, u := range users {
		if u.Email == email {
			return u.ID
		}
	}
	t.Fatalf("no user %s", email)
	return ""
}
