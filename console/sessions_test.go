package console

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// signInStore is a store with one owner (testPassword) and n more sessions
// of theirs, written straight into the file (creating 300,000 through
// sign-ins would take hours of argon2id). The records are what a session
// looks like in the "sessions" bucket; they are not in the owner's index,
// like sessions of other people.
func signInStore(t testing.TB, n int) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "ar.db")
	mk := storetest.MasterKey(t)
	s, err := store.Open(path, mk, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateAccount("acme", "acme")
	u, _ := s.CreateUser("acme", "o@acme.test", store.RoleOwner)
	tok, _, _ := s.IssueSetupToken("acme", u.ID, time.Hour)
	if _, err := s.RedeemSetupToken(tok, testPassword); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	rec, _ := json.Marshal(map[string]any{"account": "acme", "user": u.ID, "person": u.PersonID, "created_at": now, "last_seen_at": now})
	for done := 0; done < n; {
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte("sessions"))
			b.FillPercent = 1
			for i := 0; i < 50000 && done < n; i, done = i+1, done+1 {
				var k [32]byte
				binary.BigEndian.PutUint64(k[:], uint64(done))
				if err := b.Put(k[:], rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	s, err = store.Open(path, mk, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// signInOnce posts the sign-in form (the pre-session cookie and field are
// reused) and checks it worked.
func signInOnce(t testing.TB, srv *httptest.Server, hc *http.Client, pre, field string) {
	t.Helper()
	form := url.Values{"email": {"o@acme.test"}, "password": {testPassword}, "csrf": {field}}
	req, _ := http.NewRequest("POST", srv.URL+"/console/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: preCookie, Value: pre})
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
}

func signInServer(t testing.TB, s *store.Store) (*httptest.Server, *http.Client, string, string) {
	t.Helper()
	h, err := New(Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := http.Get(srv.URL + "/console/signin")
	if err != nil {
		t.Fatal(err)
	}
	var pre string
	for _, c := range resp.Cookies() {
		if c.Name == preCookie {
			pre = c.Value
		}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(b)
	if m == nil || pre == "" {
		t.Fatal("no anti-forgery token")
	}
	return srv, hc, pre, string(m[1])
}

// A sign-in costs the same with 300,000 sessions in the store as with
// none: it touches the person's own sessions only, and pruning runs in the
// background, in small transactions. Measured in allocations (a sign-in
// that decoded every session would make at least one per session).
func TestSignInCostDoesNotGrowWithSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 300,000 sessions")
	}
	const many = 300000
	s, _ := signInStore(t, many)
	srv, hc, pre, field := signInServer(t, s)
	signInOnce(t, srv, hc, pre, field) // warm
	allocs := testing.AllocsPerRun(5, func() { signInOnce(t, srv, hc, pre, field) })
	t.Logf("one sign-in with %d sessions in the store: %.0f allocations", many, allocs)
	if allocs > many/10 {
		t.Fatalf("a sign-in made %.0f allocations with %d sessions stored: it scans them", allocs, many)
	}
}

// BenchmarkSignIn is a console sign-in (argon2id included) with 0 and
// 300,000 other sessions in the store:
//
//	./xcaddy.sh test -run '^$' -bench SignIn -benchtime 20x ./console/
func BenchmarkSignIn(b *testing.B) {
	for _, n := range []int{0, 300000} {
		b.Run("sessions="+strconv.Itoa(n), func(b *testing.B) {
			s, _ := signInStore(b, n)
			srv, hc, pre, field := signInServer(b, s)
			for b.Loop() {
				signInOnce(b, srv, hc, pre, field)
			}
		})
	}
}
