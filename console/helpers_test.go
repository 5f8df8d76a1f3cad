package console

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

const testPassword = "a long enough password"

// fixture is a console over a real bbolt store, served on loopback, with two
// accounts (acme and globex).
type fixture struct {
	t      *testing.T
	s      *store.Store
	h      *Handler
	srv    *httptest.Server
	dir    string
	openai *providertest.Server // the fake OpenAI: platform key platformKey
	gw     *gateway.Gateway
}

// platformKey is the platform's OpenAI key in the fixture.
const platformKey = "sk-platform-0123456789abcdefghijklmnop"

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	mk := storetest.MasterKey(t)
	s := storetest.OpenWith(t, filepath.Join(dir, "ar.db"), mk, store.Options{LogFlushInterval: 10 * time.Millisecond})
	for _, a := range []string{"acme", "globex"} {
		if _, err := s.CreateAccount(a, a); err != nil {
			t.Fatal(err)
		}
	}
	fake := providertest.NewOpenAI()
	t.Cleanup(fake.Close)
	pol, err := egress.New(true, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Store: s, Egress: pol,
		Providers: map[string]*gateway.ProviderConfig{
			providers.OpenAI: {APIKey: platformKey, Endpoint: providers.Endpoint{BaseURL: fake.BaseURL()}},
		},
		Profiles: map[string]routing.Config{
			"cheap": {Aliases: map[string]string{"fast": "gpt-4o-mini"}},
			"eu":    {Aliases: map[string]string{"eu-chat": "gpt-4o"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	cfg := Config{Store: s, Gateway: gw, Egress: func() *egress.Policy { return pol }, PlatformKey: gw.PlatformKeyConfigured}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{t: t, s: s, h: h, srv: srv, dir: dir, openai: fake, gw: gw}
}

// user creates a user with testPassword.
func (f *fixture) user(account, email, role string) store.User {
	f.t.Helper()
	u, err := f.s.CreateUser(account, email, role)
	if err != nil {
		f.t.Fatal(err)
	}
	tok, _, err := f.s.IssueSetupToken(account, u.ID, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.s.RedeemSetupToken(tok, testPassword); err != nil {
		f.t.Fatal(err)
	}
	return u
}

// client is a browser-like HTTP client: cookies, redirects followed.
type client struct {
	f    *fixture
	c    *http.Client
	csrf string
}

func (f *fixture) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{f: f, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

var (
	csrfAttr  = regexp.MustCompile(`data-csrf="([^"]+)"`)
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

func (c *client) do(method, path string, form url.Values, hdr map[string]string) (int, string, http.Header) {
	c.f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.f.srv.URL+path, body)
	if err != nil {
		c.f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfAttr.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) get(path string) (int, string) {
	c.f.t.Helper()
	st, b, _ := c.do("GET", path, nil, nil)
	return st, b
}

// post sends a form with the session's CSRF token.
func (c *client) post(path string, form url.Values) (int, string) {
	c.f.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", c.csrf)
	}
	st, b, _ := c.do("POST", path, form, nil)
	return st, b
}

func (c *client) signin(email, password string) (int, string) {
	c.f.t.Helper()
	_, page := c.get("/console/signin")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		c.f.t.Fatalf("no csrf field on the sign-in page")
	}
	return c.post("/console/signin", url.Values{"email": {email}, "password": {password}, "csrf": {m[1]}})
}

func (f *fixture) signedIn(email string) *client {
	f.t.Helper()
	c := f.client()
	st, body := c.signin(email, testPassword)
	if st != http.StatusOK || !strings.Contains(body, "<h1>Bring Your Own Key</h1>") {
		f.t.Fatalf("sign-in as %s: %d\n%s", email, st, body)
	}
	return c
}

func (c *client) sessionCookie() string {
	u, _ := url.Parse(c.f.srv.URL + "/console/")
	for _, ck := range c.c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	return ""
}

var (
	regexpRequest = regexp.MustCompile(`<details class="logrow" data-request="([0-9a-f]+)"`)
	regexpOlder   = regexp.MustCompile(`href="(/console/logs\?[^"]+)" id="older"`)
)
