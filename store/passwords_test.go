package store

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hookArgon replaces argonKey for the test: before each evaluation, before
// is called (it may block).
func hookArgon(t *testing.T, before func()) {
	t.Helper()
	real := argonKey
	argonKey = func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
		before()
		return real(password, salt, time, memory, threads, keyLen)
	}
	t.Cleanup(func() { argonKey = real })
}

// No password is hashed inside a write transaction: while a password
// change or a setup link is being hashed, other writes (API keys, request
// log, sessions) go on.
func TestPasswordHashingOutsideWriteTransactions(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	u := setupUser(t, s, "acme", "o@acme.test", RoleOwner)
	m, _ := s.CreateUser("acme", "m@acme.test", RoleMember)
	tok, _, _ := s.IssueSetupToken("acme", m.ID, time.Hour)

	for name, op := range map[string]func() error{
		"password change": func() error { return s.SetPassword("acme", u.ID, testPassword, "a brand new password") },
		"setup link":      func() error { _, err := s.RedeemSetupToken(tok, testPassword); return err },
	} {
		t.Run(name, func(t *testing.T) {
			entered, release := make(chan struct{}, 4), make(chan struct{})
			hookArgon(t, func() {
				entered <- struct{}{}
				<-release
			})
			done := make(chan error, 1)
			go func() { done <- op() }()
			<-entered // a hash is running now
			wrote := make(chan error, 1)
			go func() { _, _, err := s.CreateAPIKey("acme", "during "+name); wrote <- err }()
			select {
			case err := <-wrote:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				close(release)
				t.Fatalf("a write waited for the %s's hash", name)
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Every answer of Authenticate costs one evaluation: an unknown email and
// an invited person without a password too.
func TestAuthenticateAlwaysHashes(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	setupUser(t, s, "acme", "o@acme.test", RoleOwner)
	s.CreateUser("acme", "invited@acme.test", RoleMember)
	var n atomic.Int64
	hookArgon(t, func() { n.Add(1) })
	for _, c := range []struct{ email, pw string }{
		{"o@acme.test", testPassword},
		{"o@acme.test", "wrong password!!"},
		{"nobody@acme.test", testPassword},
		{"invited@acme.test", testPassword},
		{"not an email", testPassword},
	} {
		n.Store(0)
		s.Authenticate(c.email, c.pw)
		if n.Load() != 1 {
			t.Errorf("Authenticate(%s): %d evaluations, want 1", c.email, n.Load())
		}
	}
}

// At most HashSlots evaluations run at once; past the queue, callers get
// ErrBusy at once instead of memory.
func TestHashLimiterBoundsAndSheds(t *testing.T) {
	l := newHashLimiter(2, 2, 200*time.Millisecond)
	hold := make(chan struct{})
	var running, peak atomic.Int64
	fn := func() {
		if r := running.Add(1); r > peak.Load() {
			peak.Store(r)
		}
		<-hold
		running.Add(-1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := 0; i < 4; i++ {
		wg.Go(func() { errs <- l.run(fn) })
	}
	for running.Load() < 2 || l.waiting.Load() < 2 { // 2 run, 2 wait
		time.Sleep(time.Millisecond)
	}
	// The fifth is refused without waiting: the two queued before it, with
	// the same patience, are still queued when it returns.
	if err := l.run(fn); !errors.Is(err, ErrBusy) || l.waiting.Load() != 2 {
		t.Fatalf("fifth caller: %v with %d waiting, want ErrBusy at once", err, l.waiting.Load())
	}
	for l.waiting.Load() > 0 { // they give up after 200 ms
		time.Sleep(time.Millisecond)
	}
	close(hold)
	wg.Wait()
	busy := 0
	for i := 0; i < 4; i++ {
		if errors.Is(<-errs, ErrBusy) {
			busy++
		}
	}
	if peak.Load() != 2 || busy != 2 {
		t.Fatalf("peak %d running, %d busy; want 2 and 2", peak.Load(), busy)
	}

	// The store's limiter: 40 concurrent sign-ins never run more than
	// HashSlots hashes at once.
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	setupUser(t, s, "acme", "o@acme.test", RoleOwner)
	running.Store(0)
	peak.Store(0)
	hookArgon(t, func() {
		if r := running.Add(1); r > peak.Load() {
			peak.Store(r)
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
	})
	for i := 0; i < 40; i++ {
		wg.Go(func() { s.Authenticate("o@acme.test", "wrong password!!") })
	}
	wg.Wait()
	if p := peak.Load(); p < 1 || p > int64(HashSlots) {
		t.Fatalf("%d hashes at once, limit %d", p, HashSlots)
	}
}
