package console

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// testIP lets a test choose the client address per request (X-Test-IP).
func testIP(cfg *Config) {
	cfg.ClientIP = func(r *http.Request) string {
		if v := r.Header.Get("X-Test-IP"); v != "" {
			return v
		}
		return "127.0.0.1"
	}
}

// preForm returns a signed-out form's anti-forgery cookie and field.
func (f *fixture) preForm() (cookie, field string) {
	f.t.Helper()
	resp, err := http.Get(f.srv.URL + "/console/signin")
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == preCookie {
			cookie = c.Value
		}
	}
	m := csrfField.FindSubmatch(b)
	if cookie == "" || m == nil {
		f.t.Fatal("no anti-forgery token on the sign-in page")
	}
	return cookie, string(m[1])
}

// storm sends n sign-ins at once (ip and email per attempt) and counts the
// answers by status.
func (f *fixture) storm(n int, ip func(i int) string, email func(i int) string, password string) map[int]int {
	f.t.Helper()
	pre, field := f.preForm()
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	hc := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}}
	defer hc.CloseIdleConnections()
	for i := 0; i < n; i++ {
		wg.Go(func() {
			body := url.Values{"email": {email(i)}, "password": {password}, "csrf": {field}}.Encode()
			req, _ := http.NewRequest("POST", f.srv.URL+"/console/signin", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Test-IP", ip(i))
			req.AddCookie(&http.Cookie{Name: preCookie, Value: pre})
			<-start
			resp, err := hc.Do(req)
			st := 0
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				st = resp.StatusCode
				if (st == 429 || st == 503) && resp.Header.Get("Retry-After") == "" {
					f.t.Errorf("%d without Retry-After", st)
				}
			}
			mu.Lock()
			counts[st]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return counts
}

// evaluated is how many of the answers needed a password evaluated: a
// wrong password (401), a right one (303), or a right one without an
// accepted membership (403). 429 is refused before hashing, 503 shed.
func evaluated(c map[int]int) int { return c[401] + c[303] + c[403] }

// peakRSS is testfix.PeakRSS from a collected heap: it returns a function
// that reads how far the peak resident set rose, in MiB.
func peakRSS(t *testing.T) func() float64 {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	rss := testfix.PeakRSS(t)
	return func() float64 { rise, _ := rss(); return rise }
}

// 200 concurrent sign-ins cannot take the process's memory (each password
// evaluation is 19 MiB of argon2id) nor outrun the throttle: at most the
// allowed number of passwords is evaluated per address and per email.
func TestConcurrentSignInsBoundedInMemoryAndEvaluations(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/status")
	}
	f := newFixture(t, testIP)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	// The owner's usual address (a successful sign-in makes it known).
	if c := f.storm(1, func(int) string { return "203.0.113.77" }, func(int) string { return "owner@acme.test" }, testPassword); c[303] != 1 {
		t.Fatalf("the owner's first sign-in: %v", c)
	}

	// 200 unknown emails from 200 addresses: the throttle lets them all
	// through, so the hashing bound alone keeps the memory.
	rise := peakRSS(t)
	c := f.storm(200, func(i int) string { return fmt.Sprintf("198.51.100.%d", i) },
		func(i int) string { return fmt.Sprintf("nobody%d@acme.test", i) }, "some wrong password")
	mib := rise()
	t.Logf("200 concurrent sign-ins from 200 addresses: %v; peak RSS +%.1f MiB (%d hashing slots)", c, mib, store.HashSlots)
	if mib >= 100 {
		t.Errorf("200 concurrent sign-ins added %.1f MiB, want < 100", mib)
	}
	if c[401]+c[503] != 200 {
		t.Errorf("answers %v: want only 401 and 503", c)
	}

	// From one address: at most MaxAttemptsPerIP evaluated.
	c = f.storm(200, func(int) string { return "203.0.113.1" },
		func(i int) string { return fmt.Sprintf("guess%d@acme.test", i) }, "some wrong password")
	t.Logf("200 concurrent sign-ins from one address: %v", c)
	if n := evaluated(c); n > store.MaxAttemptsPerIP || c[401]+c[429]+c[503] != 200 {
		t.Errorf("%d passwords evaluated from one address, at most %d allowed: %v", n, store.MaxAttemptsPerIP, c)
	}

	// One real email, one address: at most FreeAttemptsPerPair.
	c = f.storm(100, func(int) string { return "203.0.113.2" },
		func(int) string { return "owner@acme.test" }, "some wrong password")
	t.Logf("100 concurrent sign-ins for one email: %v", c)
	if n := evaluated(c); n > store.FreeAttemptsPerPair {
		t.Errorf("%d passwords evaluated for one email, at most %d allowed: %v", n, store.FreeAttemptsPerPair, c)
	}

	// One real email from many addresses: at most MaxAttemptsPerEmail
	// (the first ones may be shed: 503 is not an evaluation).
	c = f.storm(200, func(i int) string { return fmt.Sprintf("192.0.2.%d", i) },
		func(int) string { return "owner@acme.test" }, "some wrong password")
	t.Logf("200 concurrent sign-ins for one email from 200 addresses: %v", c)
	if n := evaluated(c); n > store.MaxAttemptsPerEmail {
		t.Errorf("%d passwords evaluated for one email, at most %d allowed: %v", n, store.MaxAttemptsPerEmail, c)
	}
	// Its owner, from the address they use, still signs in (a new
	// address may be refused once the email reached its limit).
	c = f.storm(1, func(int) string { return "203.0.113.77" }, func(int) string { return "owner@acme.test" }, testPassword)
	if c[303] != 1 {
		t.Errorf("the owner after the storms: %v", c)
	}
}

// Nobody can keep a known email locked out: the failures of one address
// delay that address only.
func TestSignInFailuresOfOthersDoNotLockOut(t *testing.T) {
	f := newFixture(t, testIP)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	attacker := f.client()
	for i := 0; i < 3*store.FreeAttemptsPerPair; i++ {
		st, _, _ := attacker.do("GET", "/console/signin", nil, nil)
		_ = st
		attacker.signinFrom("198.51.100.9", "owner@acme.test", "a guess of the attacker")
	}
	if st, _ := attacker.signinFrom("198.51.100.9", "owner@acme.test", testPassword); st != http.StatusTooManyRequests {
		t.Fatalf("the attacker's address after %d failures: %d, want 429", 3*store.FreeAttemptsPerPair, st)
	}
	owner := f.client()
	if st, body := owner.signinFrom("203.0.113.5", "owner@acme.test", testPassword); st != 200 || !strings.Contains(body, "<h1>Bring Your Own Key</h1>") {
		t.Fatalf("the owner from another address: %d", st)
	}
}

// signinFrom signs in with the client address ip.
func (c *client) signinFrom(ip, email, password string) (int, string) {
	c.f.t.Helper()
	_, page := c.get("/console/signin")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		c.f.t.Fatalf("no csrf field on the sign-in page")
	}
	st, b, _ := c.do("POST", "/console/signin", url.Values{"email": {email}, "password": {password}, "csrf": {m[1]}}, map[string]string{"X-Test-IP": ip})
	return st, b
}

// Password changes go through the same reservation and hashing bound: 60
// parallel attempts by a signed-in member evaluate at most
// FreeAttemptsPerPair current passwords.
func TestParallelPasswordChangesBounded(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	sid := c.sessionCookie()
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	for i := 0; i < 60; i++ {
		wg.Go(func() {
			form := url.Values{"current_password": {"not the password"}, "new_password": {"a brand new password"},
				"new_password2": {"a brand new password"}, "csrf": {csrfToken(sid)}}
			req, _ := http.NewRequest("POST", f.srv.URL+"/console/password", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sid})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	// 400: the current password was evaluated (and wrong).
	if counts[400] > store.FreeAttemptsPerPair || counts[400]+counts[429]+counts[503] != 60 {
		t.Fatalf("60 parallel password changes: %v; at most %d may be evaluated", counts, store.FreeAttemptsPerPair)
	}
	t.Logf("60 parallel password changes: %v", counts)
}

// consoleOn serves a console over s (client address from X-Test-IP).
func consoleOn(t *testing.T, s *store.Store) *fixture {
	t.Helper()
	cfg := Config{Store: s}
	testIP(&cfg)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{t: t, s: s, h: h, srv: srv}
}

// The throttle is the store's: two consoles on two fleet instances share
// it, and a restart of a single-node store does not reset it.
func TestSignInThrottleSharedAndPersistent(t *testing.T) {
	t.Parallel()
	mk := storetest.MasterKey(t)
	guess := func(f *fixture) int {
		st, _ := f.client().signinFrom("198.51.100.9", "owner@acme.test", "a guess of the attacker")
		return st
	}

	// Fleet: five failures on instance a, the sixth on b.
	c := etcdtest.Start(t, 1)
	open := func(id string) *store.Store {
		return storetest.OpenFleet(t, mk, store.Options{}, store.FleetOptions{Client: c.Client(t), InstanceID: id, NoRegistration: true})
	}
	sa, sb := open("a"), open("b")
	sa.CreateAccount("acme", "acme")
	u, _ := sa.CreateUser("acme", "owner@acme.test", store.RoleOwner)
	tok, _, _ := sa.IssueSetupToken("acme", u.ID, time.Hour)
	if _, err := sa.RedeemSetupToken(tok, testPassword); err != nil {
		t.Fatal(err)
	}
	a, b := consoleOn(t, sa), consoleOn(t, sb)
	for i := 0; i < store.FreeAttemptsPerPair; i++ {
		if st := guess(a); st != http.StatusUnauthorized {
			t.Fatalf("guess %d on a: %d", i, st)
		}
	}
	if st := guess(b); st != http.StatusTooManyRequests {
		t.Fatalf("the next guess on another instance: %d, want 429", st)
	}

	// Single node: five failures, a restart, the sixth.
	path := filepath.Join(t.TempDir(), "ar.db")
	s1, err := store.Open(path, mk, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s1.CreateAccount("acme", "acme")
	u, _ = s1.CreateUser("acme", "owner@acme.test", store.RoleOwner)
	tok, _, _ = s1.IssueSetupToken("acme", u.ID, time.Hour)
	s1.RedeemSetupToken(tok, testPassword)
	f1 := consoleOn(t, s1)
	for i := 0; i < store.FreeAttemptsPerPair; i++ {
		guess(f1)
	}
	f1.srv.Close()
	s1.Close()
	s2, err := store.Open(path, mk, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	if st := guess(consoleOn(t, s2)); st != http.StatusTooManyRequests {
		t.Fatalf("the next guess after a restart: %d, want 429", st)
	}
}
