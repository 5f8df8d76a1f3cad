package console

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/net/html"

	"github.com/agentrouter/caddy-agentrouter/store"
)

func TestSecurityHeadersEverywhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	anon := f.client()
	for _, p := range []string{"/console/signin", "/console/setup", "/console/byok", "/console/keys", "/console/members",
		"/console/playground", "/console/logs", "/console/usage", "/console/static/console.css", "/console/nope"} {
		for _, cl := range []*client{c, anon} {
			_, _, h := cl.do("GET", p, nil, nil)
			csp := h.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("%s: CSP %q", p, csp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "same-origin" {
				t.Errorf("%s: headers %v", p, h)
			}
		}
	}
}

func TestSigninSessionsAndThrottle(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)

	// Signed out: pages redirect to sign-in, posts are refused.
	anon := f.client()
	if st, body := anon.get("/console/byok"); st != 200 || !strings.Contains(body, "<h1>Sign in</h1>") {
		t.Fatalf("signed-out page: %d", st)
	}
	if st, _ := anon.post("/console/byok/openai", url.Values{"action": {"remove"}}); st != http.StatusUnauthorized {
		t.Fatalf("signed-out post: %d", st)
	}

	// Wrong password and unknown email read the same.
	c := f.client()
	_, wrongPw := c.signin("owner@acme.test", "not the password")
	_, unknown := c.signin("nobody@acme.test", testPassword)
	for _, b := range []string{wrongPw, unknown} {
		if !strings.Contains(b, "The email or password is wrong.") {
			t.Fatalf("sign-in error: %s", b)
		}
	}
	// A forged sign-in form (no matching pre-session token) is refused.
	if st, _ := c.post("/console/signin", url.Values{"email": {"owner@acme.test"}, "password": {testPassword}, "csrf": {"forged"}}); st != http.StatusForbidden {
		t.Fatalf("forged sign-in: %d", st)
	}

	// Per email: after 5 failures even the right password is refused, with
	// the same message whichever was wrong.
	for i := 0; i < 5; i++ {
		c.signin("owner@acme.test", "not the password")
	}
	if st, b := c.signin("owner@acme.test", testPassword); st != http.StatusTooManyRequests || strings.Contains(b, "password is wrong") {
		t.Fatalf("throttled sign-in: %d", st)
	}
	// Time passes: the window slides.
	defer func(old func() time.Time) { now = old }(now)
	later := time.Now().Add(store.ThrottleWindow + time.Minute)
	now = func() time.Time { return later }
	if st, _ := c.signin("owner@acme.test", testPassword); st != 200 {
		t.Fatalf("sign-in after the window: %d", st)
	}
	now = time.Now

	// Per IP: many emails from one address.
	f2 := newFixture(t, nil)
	f2.user("acme", "o@acme.test", store.RoleOwner)
	c2 := f2.client()
	for i := 0; i < store.MaxAttemptsPerIP; i++ {
		c2.signin(fmt.Sprintf("guess%d@acme.test", i), "whatever password")
	}
	if st, _ := c2.signin("o@acme.test", testPassword); st != http.StatusTooManyRequests {
		t.Fatalf("per-IP throttle: %d", st)
	}

	// Sign out kills the session server-side: replaying the cookie fails.
	s := f.signedIn("owner@acme.test")
	id := s.sessionCookie()
	if id == "" {
		t.Fatal("no session cookie")
	}
	if st, body := s.post("/console/signout", nil); st != 200 || !strings.Contains(body, "You are signed out.") {
		t.Fatalf("sign-out: %d", st)
	}
	if _, _, err := f.s.SessionUser(id, time.Hour, time.Hour); err == nil {
		t.Fatal("session alive after sign-out")
	}
	replay := f.client()
	u, _ := url.Parse(f.srv.URL + "/console/")
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: id, Path: "/console"}})
	if _, body := replay.get("/console/byok"); !strings.Contains(body, "<h1>Sign in</h1>") {
		t.Fatal("replayed cookie still works")
	}
}

func TestCookieFlags(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.client()
	c.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	_, page := c.get("/console/signin")
	m := csrfField.FindStringSubmatch(page)
	_, _, h := c.do("POST", "/console/signin", url.Values{"email": {"owner@acme.test"}, "password": {testPassword}, "csrf": {m[1]}}, nil)
	sc := strings.Join(h.Values("Set-Cookie"), "\n")
	if !strings.Contains(sc, sessionCookie+"=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") || !strings.Contains(sc, "Path=/console") {
		t.Fatalf("session cookie: %s", sc)
	}
}

func TestSetupLink(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	u, _ := f.s.CreateUser("acme", "new@acme.test", store.RoleMember)
	tok, _, _ := f.s.IssueSetupToken("acme", u.ID, time.Hour)
	c := f.client()
	_, page := c.get("/console/setup")
	pre := csrfField.FindStringSubmatch(page)[1]
	st, body := c.post("/console/setup", url.Values{"csrf": {pre}, "token": {tok}, "password": {"short"}, "password2": {"short"}})
	if st != 400 || !strings.Contains(body, "at least 12 characters") {
		t.Fatalf("short password: %d %s", st, body)
	}
	st, body = c.post("/console/setup", url.Values{"csrf": {pre}, "token": {tok}, "password": {testPassword}, "password2": {testPassword + "x"}})
	if st != 400 || !strings.Contains(body, "differ") {
		t.Fatalf("mismatch: %d", st)
	}
	st, body = c.post("/console/setup", url.Values{"csrf": {pre}, "token": {tok}, "password": {testPassword}, "password2": {testPassword}})
	if st != 200 || !strings.Contains(body, "Your password is set") {
		t.Fatalf("setup: %d %s", st, body)
	}
	st, body = c.post("/console/setup", url.Values{"csrf": {pre}, "token": {tok}, "password": {testPassword}, "password2": {testPassword}})
	if st != http.StatusConflict || !strings.Contains(body, "invalid, used or expired") {
		t.Fatalf("token reused: %d", st)
	}
	f.signedIn("new@acme.test")
}

func TestCSRFAndOrigin(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	form := func() url.Values { return url.Values{"name": {"k1"}} }
	if st, _ := c.post("/console/keys", url.Values{"name": {"k1"}, "csrf": {"wrong"}}); st != http.StatusForbidden {
		t.Fatalf("wrong csrf: %d", st)
	}
	fm := form()
	fm.Set("csrf", c.csrf)
	if st, _, _ := c.do("POST", "/console/keys", fm, map[string]string{"Origin": "https://evil.example"}); st != http.StatusForbidden {
		t.Fatalf("foreign origin: %d", st)
	}
	if st, _, _ := c.do("POST", "/console/keys", fm, map[string]string{"Origin": f.srv.URL}); st != http.StatusCreated {
		t.Fatalf("same origin: %d", st)
	}
	if keys, _ := f.s.APIKeys("acme"); len(keys) != 1 {
		t.Fatalf("keys = %d, want 1", len(keys))
	}
}

// canary is a provider key that must never appear in a page, a log line or
// the store file.
const canary = "sk-proj-C4NARYconsole7Xw9PlmTq2VbN8rK3sJ5hD1fG6yU0eW4oIxT3Blbk"

func TestBYOKPageAndCanary(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.DebugLevel)
	f := newFixture(t, func(c *Config) { c.Logger = zap.New(core) })
	f.user("acme", "owner@acme.test", store.RoleOwner)
	f.user("acme", "member@acme.test", store.RoleMember)
	c := f.signedIn("owner@acme.test")
	var pages []string
	get := func(p string) string {
		_, b := c.get(p)
		pages = append(pages, b)
		return b
	}

	body := get("/console/byok")
	if n := strings.Count(body, `data-status="not_configured"`); n != 8 {
		t.Fatalf("%d providers not configured, want 8", n)
	}
	// A key with another provider's prefix is refused, with the hint.
	st, body := c.post("/console/byok/openai", url.Values{"action": {"save"}, "api_key": {"sk-ant-api03-" + strings.Repeat("x", 40)}})
	pages = append(pages, body)
	if st != 400 || !strings.Contains(body, "looks like a key for anthropic") || !strings.Contains(body, "OpenAI keys begin with sk-") {
		t.Fatalf("wrong prefix: %d %s", st, body)
	}
	// Save: Active with the masked key, never the key.
	st, body = c.post("/console/byok/openai", url.Values{"action": {"save"}, "api_key": {canary}})
	pages = append(pages, body)
	if st != 200 || !strings.Contains(body, `data-status="active"`) || !strings.Contains(body, "sk-proj-…Blbk") {
		t.Fatalf("save: %d %s", st, body)
	}
	// The masked form cannot be saved back.
	st, body = c.post("/console/byok/openai", url.Values{"action": {"save"}, "api_key": {"sk-proj-…Blbk"}})
	pages = append(pages, body)
	if st != 400 || !strings.Contains(body, "masked") {
		t.Fatalf("masked save: %d", st)
	}
	// Policy toggle.
	c.post("/console/byok/openai", url.Values{"action": {"policy"}, "byok_only": {"on"}})
	if !f.s.Snapshot().Policy("acme", "openai").BYOKOnly {
		t.Fatal("byok_only not set")
	}
	c.post("/console/byok/openai", url.Values{"action": {"policy"}})
	if f.s.Snapshot().Policy("acme", "openai").BYOKOnly {
		t.Fatal("byok_only not cleared")
	}

	// A member sees status, no form, and a crafted POST is refused.
	m := f.signedIn("member@acme.test")
	_, mb := m.get("/console/byok/openai")
	pages = append(pages, mb)
	if strings.Contains(mb, `id="byok-form"`) || !strings.Contains(mb, "Only owners") || !strings.Contains(mb, "sk-proj-…Blbk") {
		t.Fatalf("member view: %s", mb)
	}
	for _, action := range []string{"save", "remove", "policy", "test"} {
		if st, _ := m.post("/console/byok/openai", url.Values{"action": {action}, "api_key": {"sk-proj-" + strings.Repeat("m", 40)}}); st != http.StatusForbidden {
			t.Fatalf("member %s: %d", action, st)
		}
	}
	if f.s.Snapshot().Credential("acme", "openai").Version != 1 {
		t.Fatal("member changed the key")
	}

	// Clear the field and save: removed.
	st, body = c.post("/console/byok/openai", url.Values{"action": {"save"}, "api_key": {""}})
	pages = append(pages, body)
	if st != 200 || f.s.Snapshot().Credential("acme", "openai") != nil || !strings.Contains(body, "Removed.") {
		t.Fatalf("clear and save: %d", st)
	}
	// Remove when nothing is there.
	if st, _ := c.post("/console/byok/openai", url.Values{"action": {"remove"}}); st != 404 {
		t.Fatalf("remove nothing: %d", st)
	}
	if st, _ := c.get("/console/byok/nope"); st != 404 {
		t.Fatalf("unknown provider: %d", st)
	}

	for i, p := range pages {
		if strings.Contains(p, "C4NARYconsole") {
			t.Errorf("page %d shows the key", i)
		}
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), "C4NARYconsole") {
			t.Errorf("log line holds the key: %v", e.Message)
		}
	}
	f.s.Close()
	raw, _ := os.ReadFile(filepath.Join(f.dir, "ar.db"))
	for _, secret := range []string{"C4NARYconsole", testPassword, c.sessionCookie(), m.sessionCookie()} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("store file holds a secret in plaintext (%d chars)", len(secret))
		}
	}
}

func TestKeysAndMembers(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	st, body := c.post("/console/keys", url.Values{"name": {"ci"}, "profile": {"cheap"}})
	if st != 201 || !strings.Contains(body, `id="new-key" type="text" readonly value="ar_`) {
		t.Fatalf("create: %d %s", st, body)
	}
	if _, body := c.get("/console/keys"); strings.Contains(body, `value="ar_`) {
		t.Fatal("the key is shown twice")
	}
	if st, _ := c.post("/console/keys", url.Values{"name": {"x"}, "profile": {"nope"}}); st != 400 {
		t.Fatalf("unknown profile: %d", st)
	}
	keys, _ := f.s.APIKeys("acme")
	if keys[0].Profile != "cheap" {
		t.Fatalf("profile = %q", keys[0].Profile)
	}
	if st, _ := c.post("/console/keys/"+keys[0].ID+"/profile", url.Values{"profile": {"eu"}}); st != 200 {
		t.Fatalf("change profile: %d", st)
	}
	if keys, _ = f.s.APIKeys("acme"); keys[0].Profile != "eu" {
		t.Fatalf("profile = %q, want eu", keys[0].Profile)
	}
	if st, _ := c.post("/console/keys/"+keys[0].ID+"/revoke", nil); st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	if keys, _ := f.s.APIKeys("acme"); len(keys) != 0 {
		t.Fatal("key not revoked")
	}

	// Invite a member: a setup link whose token is in the fragment.
	st, body = c.post("/console/members", url.Values{"email": {"dev@acme.test"}, "role": {"member"}})
	if st != 201 || !strings.Contains(body, "/console/setup#") {
		t.Fatalf("invite: %d %s", st, body)
	}
	if st, body := c.post("/console/members", url.Values{"email": {"dev@acme.test"}, "role": {"member"}}); st != 409 || !strings.Contains(body, "already exists") {
		t.Fatalf("duplicate invite: %d", st)
	}
	if st, _ := c.post("/console/members", url.Values{"email": {"not an email"}, "role": {"member"}}); st != 400 {
		t.Fatalf("bad email: %d", st)
	}
	users, _ := f.s.Users("acme")
	var dev store.User
	for _, u := range users {
		if u.Email == "dev@acme.test" {
			dev = u
		}
	}
	if st, _ := c.post("/console/members/"+dev.ID+"/role", url.Values{"role": {"owner"}}); st != 200 {
		t.Fatalf("role: %d", st)
	}
	if st, _ := c.post("/console/members/"+dev.ID+"/role", url.Values{"role": {"emperor"}}); st != 400 {
		t.Fatalf("bad role: %d", st)
	}
	if st, _ := c.post("/console/members/"+dev.ID+"/remove", nil); st != 200 {
		t.Fatalf("remove: %d", st)
	}
	if _, err := f.s.User("acme", dev.ID); err == nil {
		t.Fatal("member not removed")
	}
}

// TestRolesMemberReadOnly: a member reads every page and changes nothing.
func TestRolesMemberReadOnly(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	owner := f.user("acme", "owner@acme.test", store.RoleOwner)
	f.user("acme", "member@acme.test", store.RoleMember)
	_, k, _ := f.s.CreateAPIKey("acme", "prod")
	m := f.signedIn("member@acme.test")
	for _, p := range []string{"/console/byok", "/console/keys", "/console/members", "/console/logs", "/console/usage", "/console/playground"} {
		if st, body := m.get(p); st != 200 || strings.Contains(body, `class="danger"`) {
			t.Errorf("member GET %s: %d (or shows owner actions)", p, st)
		}
	}
	for _, p := range []string{"/console/keys", "/console/keys/" + k.ID + "/revoke", "/console/keys/" + k.ID + "/profile",
		"/console/members", "/console/members/" + owner.ID + "/role", "/console/members/" + owner.ID + "/remove", "/console/byok/openai"} {
		if st, _ := m.post(p, url.Values{"name": {"x"}, "email": {"x@acme.test"}, "role": {"member"}, "action": {"save"}}); st != http.StatusForbidden {
			t.Errorf("member POST %s: %d, want 403", p, st)
		}
	}
	if keys, _ := f.s.APIKeys("acme"); len(keys) != 1 {
		t.Fatal("member changed keys")
	}
}

// TestIsolation: a user of globex who crafts requests with acme's ids gets
// 404 on every route, and sees none of acme's data.
func TestIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	acmeOwner := f.user("acme", "owner@acme.test", store.RoleOwner)
	f.user("globex", "owner@globex.test", store.RoleOwner)
	_, acmeKey, _ := f.s.CreateAPIKey("acme", "acme-prod")
	if _, err := f.s.PutCredential("acme", "openai", canary, "sk-proj-…ACME", store.Extras{}); err != nil {
		t.Fatal(err)
	}
	logID := fmt.Sprintf("%016x%08x", time.Now().UnixNano(), 1)
	f.s.Record(&store.LogRecord{ID: logID, Time: time.Now().UTC(), AccountID: "acme", KeyID: acmeKey.ID, Model: "gpt-acme-secret",
		Provider: "openai", CredentialSource: "byok", Status: 200, TotalTokens: 77})
	f.s.FlushLog()

	g := f.signedIn("owner@globex.test")
	for _, p := range []string{"/console/logs?key=" + acmeKey.ID, "/console/playground/result/" + logID, "/console/playground?key=" + acmeKey.ID} {
		if st, _ := g.get(p); st != 404 {
			t.Errorf("GET %s: %d, want 404", p, st)
		}
	}
	for _, p := range []string{"/console/keys/" + acmeKey.ID + "/revoke", "/console/keys/" + acmeKey.ID + "/profile",
		"/console/members/" + acmeOwner.ID + "/role", "/console/members/" + acmeOwner.ID + "/remove"} {
		if st, _ := g.post(p, url.Values{"role": {"member"}}); st != 404 {
			t.Errorf("POST %s: %d, want 404", p, st)
		}
	}
	// globex's "remove openai" removes globex's (absent) key, not acme's.
	if st, _ := g.post("/console/byok/openai", url.Values{"action": {"remove"}}); st != 404 {
		t.Errorf("remove: %d", st)
	}
	for _, p := range []string{"/console/byok", "/console/byok/openai", "/console/keys", "/console/members", "/console/logs", "/console/usage", "/console/usage.csv?range=24h"} {
		_, body := g.get(p)
		for _, leak := range []string{"sk-proj-…ACME", acmeKey.ID, "acme-prod", "owner@acme.test", "gpt-acme-secret", logID} {
			if strings.Contains(body, leak) {
				t.Errorf("%s shows acme's %q", p, leak)
			}
		}
	}
	if f.s.Snapshot().Credential("acme", "openai") == nil {
		t.Fatal("acme's key is gone")
	}
	if keys, _ := f.s.APIKeys("acme"); len(keys) != 1 {
		t.Fatal("acme's key was revoked")
	}
	if u, _ := f.s.User("acme", acmeOwner.ID); u.Role != store.RoleOwner {
		t.Fatal("acme's owner was changed")
	}
	// And acme's own owner sees the record.
	a := f.signedIn("owner@acme.test")
	if _, body := a.get("/console/logs?key=" + acmeKey.ID); !strings.Contains(body, logID) {
		t.Fatal("acme cannot see its own record")
	}
}

func TestLogsFiltersAndPaging(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	_, k1, _ := f.s.CreateAPIKey("acme", "k1")
	_, k2, _ := f.s.CreateAPIKey("acme", "k2")
	base := time.Now().Add(-time.Hour)
	for i := 0; i < 120; i++ {
		t0 := base.Add(time.Duration(i) * time.Second)
		rec := &store.LogRecord{ID: fmt.Sprintf("%016x%08x", t0.UnixNano(), i), Time: t0.UTC(), AccountID: "acme", KeyID: k1.ID,
			Model: "gpt-4o", Provider: "openai", UpstreamModel: "gpt-4o", CredentialSource: "platform", Status: 200}
		if i%3 == 0 {
			rec.KeyID, rec.CredentialSource, rec.Status = k2.ID, "byok", 429
		}
		rec.Attempts = []store.Attempt{{Provider: "openai", Model: "gpt-4o", CredentialSource: rec.CredentialSource, Status: rec.Status}}
		f.s.Record(rec)
	}
	f.s.FlushLog()
	c := f.signedIn("owner@acme.test")
	_, body := c.get("/console/logs")
	if n := strings.Count(body, `<details class="logrow"`); n != logPageSize {
		t.Fatalf("first page: %d rows", n)
	}
	if !strings.Contains(body, `id="older"`) {
		t.Fatal("no next page link")
	}
	_, body = c.get("/console/logs?key=" + k2.ID + "&source=byok&status=4xx&range=24h")
	if n := strings.Count(body, `<details class="logrow"`); n != 40 || strings.Contains(body, `data-source="platform"`) {
		t.Fatalf("filtered: %d rows", n)
	}
	if !strings.Contains(body, `<option value="`+k2.ID+`" selected>`) || !strings.Contains(body, `<option value="4xx" selected>`) {
		t.Fatal("filters not kept in the form")
	}
	for _, bad := range []string{"?status=3xx", "?source=both", "?range=forever", "?provider=nope"} {
		if st, _ := c.get("/console/logs" + bad); st != 400 {
			t.Errorf("%s: %d, want 400", bad, st)
		}
	}
	// Walk every page: newest first, no duplicates.
	seen := map[string]bool{}
	next := "/console/logs"
	for pages := 0; next != ""; pages++ {
		_, body := c.get(next)
		for _, m := range regexpRequest.FindAllStringSubmatch(body, -1) {
			if seen[m[1]] {
				t.Fatalf("record %s twice (page %s)", m[1], next)
			}
			seen[m[1]] = true
		}
		next = ""
		if m := regexpOlder.FindStringSubmatch(body); m != nil {
			next = html.UnescapeString(m[1])
		}
		if pages > 5 {
			t.Fatal("too many pages")
		}
	}
	if len(seen) != 120 {
		t.Fatalf("paged through %d records, want 120", len(seen))
	}
}

func TestUsagePageAndCSV(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	_, k, _ := f.s.CreateAPIKey("acme", "prod")
	t0 := time.Now().Add(-2 * time.Hour)
	for i, src := range []string{"byok", "byok", "platform"} {
		f.s.Record(&store.LogRecord{ID: fmt.Sprintf("%016x%08x", t0.UnixNano()+int64(i), i), Time: t0.UTC(), AccountID: "acme", KeyID: k.ID,
			Model: "=cmd()", UpstreamModel: "=cmd()", Provider: "openai", CredentialSource: src, Status: 200, TotalTokens: 10})
	}
	f.s.FlushLog()
	c := f.signedIn("owner@acme.test")
	st, body := c.get("/console/usage?range=24h")
	if st != 200 || !strings.Contains(body, `id="total-byok">2<`) || !strings.Contains(body, `id="total-platform">1<`) || !strings.Contains(body, "<td>prod</td>") {
		t.Fatalf("usage: %d %s", st, body)
	}
	if st, _ := c.get("/console/usage?range=1y"); st != 400 {
		t.Fatalf("bad range: %d", st)
	}
	st, csv, h := c.do("GET", "/console/usage.csv?range=7d", nil, nil)
	if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") || !strings.Contains(csv, ",byok,openai,'=cmd(),"+k.ID+",2,") {
		t.Fatalf("csv: %d %s", st, csv)
	}
}

// TestAccessibility: every page has one h1, and every visible form field
// has a label.
func TestAccessibility(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	f.s.CreateAPIKey("acme", "prod")
	c := f.signedIn("owner@acme.test")
	c.post("/console/members", url.Values{"email": {"x@acme.test"}, "role": {"member"}})
	anon := f.client()
	check := func(name, body string) {
		t.Helper()
		doc, err := html.Parse(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		h1 := 0
		labels := map[string]bool{}
		var fields []string
		var walk func(n *html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode {
				attr := map[string]string{}
				for _, a := range n.Attr {
					attr[a.Key] = a.Val
				}
				switch n.Data {
				case "h1":
					h1++
				case "label":
					labels[attr["for"]] = true
				case "input", "select", "textarea":
					if attr["type"] != "hidden" && attr["type"] != "submit" {
						fields = append(fields, attr["id"])
					}
				}
			}
			for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
				walk(ch)
			}
		}
		walk(doc)
		if h1 != 1 {
			t.Errorf("%s: %d h1 elements", name, h1)
		}
		for _, id := range fields {
			if id == "" || !labels[id] {
				t.Errorf("%s: field %q has no label", name, id)
			}
		}
	}
	for _, p := range []string{"/console/byok", "/console/byok/openai", "/console/byok/azure", "/console/keys", "/console/members",
		"/console/playground", "/console/logs", "/console/usage", "/console/reconciliation", "/console/nope"} {
		_, b := c.get(p)
		check(p, b)
	}
	_, b := c.post("/console/keys", url.Values{"name": {"new"}})
	check("key created", b)
	for _, p := range []string{"/console/signin", "/console/setup"} {
		_, b := anon.get(p)
		check(p, b)
	}
}

func TestBadInputNeverCrashes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	long := strings.Repeat("é", 100000)
	for _, p := range []string{"/console/logs?before=" + url.QueryEscape(long), "/console/logs?key=%00", "/console/usage?bucket=week",
		"/console/byok/" + url.PathEscape(long), "/console/playground/result/" + url.PathEscape(long)} {
		if st, _ := c.get(p); st >= 500 {
			t.Errorf("GET %s: %d", p[:min(len(p), 60)], st)
		}
	}
	for _, p := range []string{"/console/keys", "/console/members", "/console/byok/openai", "/console/byok/azure", "/console/playground"} {
		if st, _ := c.post(p, url.Values{"name": {long}, "email": {long}, "role": {long}, "action": {"save"}, "api_key": {long + "\x00"},
			"base_url": {"javascript:alert(1)"}, "model": {long}, "message": {long}}); st >= 500 {
			t.Errorf("POST %s: %d", p, st)
		}
	}
}

// TestPlaygroundAndKeyTest: the playground goes through the real gateway to
// the fake provider with the account's BYOK key, records source console,
// and shows provider, credential badge and attempts; Test answers ok or
// rejected with the provider's status.
func TestPlaygroundAndKeyTest(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	f.user("globex", "owner@globex.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	_, k, _ := f.s.CreateAPIKey("acme", "prod")
	byok := "sk-proj-PLAYGROUNDbyok0123456789abcdefgh"

	// Test what was pasted, before saving: the fake accepts only byok.
	f.openai.AcceptOnly(byok, platformKey)
	st, body := c.post("/console/byok/openai", url.Values{"action": {"test"}, "api_key": {"sk-proj-WRONGkey0123456789abcdefghij"}})
	if st != 200 || !strings.Contains(body, "rejected by the provider") || !strings.Contains(body, "HTTP 401") || strings.Contains(body, "WRONGkey") {
		t.Fatalf("test of a wrong key: %d %s", st, body)
	}
	st, body = c.post("/console/byok/openai", url.Values{"action": {"test"}, "api_key": {byok}})
	if st != 200 || !strings.Contains(body, `class="test ok"`) {
		t.Fatalf("test of a good key: %d %s", st, body)
	}
	if f.s.Snapshot().Credential("acme", "openai") != nil {
		t.Fatal("testing saved the key")
	}
	c.post("/console/byok/openai", url.Values{"action": {"save"}, "api_key": {byok}})
	// Test of the stored key (empty field) clears an invalid mark.
	sec := f.s.Snapshot().Credential("acme", "openai")
	f.s.MarkInvalid(sec, time.Now(), "401 auth")
	if _, body := c.get("/console/byok/openai"); !strings.Contains(body, `data-status="invalid"`) || !strings.Contains(body, "401 auth") {
		t.Fatal("invalid mark not shown")
	}
	st, body = c.post("/console/byok/openai", url.Values{"action": {"test"}, "api_key": {""}})
	if st != 200 || !strings.Contains(body, `class="test ok"`) || strings.Contains(body, `data-status="invalid"`) {
		t.Fatalf("test of the stored key: %d %s", st, body)
	}

	// Models the account can reach, with the key's profile.
	if _, body := c.get("/console/playground"); !strings.Contains(body, `<option value="gpt-4o"`) {
		t.Fatalf("model list: %s", body)
	}

	// Without script: the whole answer, and its details.
	st, body = c.post("/console/playground", url.Values{"model": {"gpt-4o"}, "key": {k.ID}, "message": {"tag-plain"}})
	if st != 200 || !strings.Contains(body, `data-source="byok"`) || !strings.Contains(body, `id="r-provider">openai<`) {
		t.Fatalf("playground: %d %s", st, body)
	}
	last, _ := f.openai.Last()
	if last.Credential != byok || !strings.Contains(string(last.Body), "tag-plain") {
		t.Fatalf("the fake got credential %q", last.Credential)
	}
	// Streamed, as console.js asks.
	req, _ := http.NewRequest("POST", f.srv.URL+"/console/playground/stream", strings.NewReader(url.Values{"model": {"gpt-4o"}, "message": {"tag-stream"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", c.csrf)
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Agent-Router-Request-Id")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || !strings.Contains(sb.String(), "data: ") || id == "" {
		t.Fatalf("stream: %v %s", resp.Header, sb.String())
	}
	st, frag := c.get("/console/playground/result/" + id)
	if st != 200 || !strings.Contains(frag, `data-source="byok"`) {
		t.Fatalf("result: %d %s", st, frag)
	}
	rec, err := f.s.Log(id)
	if err != nil || rec.Source != SourceConsole || rec.AccountID != "acme" {
		t.Fatalf("log record: %+v %v", rec, err)
	}
	// Another account's user cannot read the result.
	g := f.signedIn("owner@globex.test")
	if st, _ := g.get("/console/playground/result/" + id); st != 404 {
		t.Fatalf("other account's result: %d", st)
	}
	// A crafted stream request with acme's key id from globex: 404.
	if st, _ := g.post("/console/playground/stream", url.Values{"model": {"gpt-4o"}, "key": {k.ID}, "message": {"x"}}); st != 404 {
		t.Fatalf("other account's key in the playground: %d", st)
	}
	// globex has no BYOK key: the platform serves it and says so.
	st, body = g.post("/console/playground", url.Values{"model": {"gpt-4o"}, "message": {"tag-globex"}})
	if st != 200 || !strings.Contains(body, `data-source="platform"`) {
		t.Fatalf("globex playground: %d %s", st, body)
	}
	if last, _ := f.openai.Last(); last.Credential != platformKey {
		t.Fatal("globex was not served with the platform key")
	}
	// Bad input.
	if st, _ := c.post("/console/playground", url.Values{"model": {""}, "message": {"x"}}); st != 400 {
		t.Fatalf("no model: %d", st)
	}
	if st, _ := c.post("/console/playground", url.Values{"model": {"gpt-4o"}, "message": {" "}}); st != 400 {
		t.Fatalf("no message: %d", st)
	}
}

// TestKeyTestChecksLikeAdmin: a pasted base URL to an internal address is
// refused before any connection; a rejected stored key is marked invalid.
func TestKeyTestChecksLikeAdmin(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	st, body := c.post("/console/byok/azure", url.Values{"action": {"test"}, "api_key": {strings.Repeat("ab", 16)},
		"base_url": {"http://169.254.169.254/openai"}, "api_version": {"2024-10-21"}})
	if st != 400 || !strings.Contains(body, `id="byok-error"`) {
		t.Fatalf("internal base URL: %d %s", st, body)
	}
	st, body = c.post("/console/byok/azure", url.Values{"action": {"save"}, "api_key": {strings.Repeat("ab", 16)},
		"base_url": {"http://169.254.169.254/openai"}, "api_version": {"2024-10-21"}})
	if st != 400 || f.s.Snapshot().Credential("acme", "azure") != nil {
		t.Fatalf("saving an internal base URL: %d", st)
	}
	key := "sk-proj-STOREDkey0123456789abcdefghij"
	c.post("/console/byok/openai", url.Values{"action": {"save"}, "api_key": {key}})
	f.openai.AcceptOnly(platformKey) // the provider revokes the stored key
	st, body = c.post("/console/byok/openai", url.Values{"action": {"test"}})
	if st != 200 || !strings.Contains(body, "rejected by the provider") || !strings.Contains(body, `data-status="invalid"`) || strings.Contains(body, "STOREDkey") {
		t.Fatalf("rejected stored key: %d %s", st, body)
	}
}

func TestChangePasswordEndsSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	other := f.signedIn("owner@acme.test") // another browser
	newPw := "a brand new password"
	if st, body := c.post("/console/password", url.Values{"current_password": {"wrong password!!"}, "new_password": {newPw}, "new_password2": {newPw}}); st != 400 || !strings.Contains(body, "current password is wrong") {
		t.Fatalf("wrong current: %d", st)
	}
	if st, _ := c.post("/console/password", url.Values{"current_password": {testPassword}, "new_password": {"short"}, "new_password2": {"short"}}); st != 400 {
		t.Fatalf("short: %d", st)
	}
	st, body := c.post("/console/password", url.Values{"current_password": {testPassword}, "new_password": {newPw}, "new_password2": {newPw}})
	if st != 200 || !strings.Contains(body, "every session has ended") {
		t.Fatalf("change: %d %s", st, body)
	}
	if _, body := other.get("/console/byok"); !strings.Contains(body, "<h1>Sign in</h1>") {
		t.Fatal("the other session survived the password change")
	}
	if st, _ := f.client().signin("owner@acme.test", newPw); st != 200 {
		t.Fatalf("sign in with the new password: %d", st)
	}
}

// Over HTTPS the session cookie is Secure, and an http:// Origin (a
// downgraded page) is refused.
func TestHTTPSCookieAndOrigin(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	tls := httptest.NewTLSServer(f.h)
	defer tls.Close()
	jar, _ := cookiejar.New(nil)
	hc := tls.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(tls.URL + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pre := csrfField.FindSubmatch(b)[1]
	resp, err = hc.PostForm(tls.URL+"/console/signin", url.Values{"email": {"owner@acme.test"}, "password": {testPassword}, "csrf": {string(pre)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(sc, sessionCookie+"=") || !strings.Contains(sc, "; Secure") {
		t.Fatalf("sign-in over HTTPS: %d %s", resp.StatusCode, sc)
	}
	var sid string
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sid = c.Value
		}
	}
	req, _ := http.NewRequest("POST", tls.URL+"/console/keys", strings.NewReader(url.Values{"name": {"x"}, "csrf": {csrfToken(sid)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", strings.Replace(tls.URL, "https://", "http://", 1))
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("http Origin on an https console: %d", resp.StatusCode)
	}
}

// TestKeyTestWithoutStoredKey: testing the stored key when there is none
// says what to do, in the console's words (the operation's refusal is
// ops.ErrNoStoredKey).
func TestKeyTestWithoutStoredKey(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	st, body := c.post("/console/byok/openai", url.Values{"action": {"test"}, "api_key": {" "}})
	if st != http.StatusBadRequest || !strings.Contains(body, "Paste a key to test, or save one first.") || !strings.Contains(body, `id="byok-error"`) {
		t.Fatalf("test with no stored key: %d %s", st, body)
	}
}
