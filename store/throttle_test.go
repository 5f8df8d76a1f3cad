package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

func reserve(t *testing.T, s *Store, ip, email string, at time.Time) (*SignInAttempt, bool) {
	t.Helper()
	a, err := s.ReserveAttempt(ip, email, at)
	if errors.Is(err, ErrThrottled) {
		var te *ThrottleError
		if !errors.As(err, &te) || te.RetryAfter <= 0 {
			t.Fatalf("throttle error without a wait: %v", err)
		}
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return a, true
}

// Growing delays per (address, email); another address is not slowed by
// them; a success resets the pair; the per-address limit spans emails.
func TestThrottlePairDelaysAndAddressLimit(t *testing.T) {
	s, _ := newStore(t)
	t0 := time.Now()
	for i := 0; i < FreeAttemptsPerPair; i++ {
		if _, ok := reserve(t, s, "198.51.100.7", "alice@x.io", t0); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if _, ok := reserve(t, s, "198.51.100.7", "alice@x.io", t0); ok {
		t.Fatal("a sixth attempt at once was accepted")
	}
	// The attacker's delays do not stop alice from her own address.
	a, ok := reserve(t, s, "203.0.113.9", "alice@x.io", t0)
	if !ok {
		t.Fatal("another address is locked out of the email")
	}
	s.SettleAttempt(a, AttemptSucceeded)
	// The delays grow: 30 s, then 60 s.
	at := t0.Add(pairFirstDelay)
	if _, ok := reserve(t, s, "198.51.100.7", "alice@x.io", at); !ok {
		t.Fatal("refused after the first delay")
	}
	if _, ok := reserve(t, s, "198.51.100.7", "alice@x.io", at.Add(pairFirstDelay)); ok {
		t.Fatal("the second delay did not grow")
	}
	if _, ok := reserve(t, s, "198.51.100.7", "alice@x.io", at.Add(2*pairFirstDelay)); !ok {
		t.Fatal("refused after the second delay")
	}
	// An attempt that was never evaluated is given back.
	b, _ := reserve(t, s, "192.0.2.1", "bob@x.io", t0)
	s.SettleAttempt(b, AttemptNotEvaluated)
	for i := 0; i < FreeAttemptsPerPair; i++ {
		if _, ok := reserve(t, s, "192.0.2.1", "bob@x.io", t0); !ok {
			t.Fatalf("bob's attempt %d refused after a given-back one", i)
		}
	}
	// Per address, across emails (IPv6: per /64).
	for i := 0; i < MaxAttemptsPerIP; i++ {
		if _, ok := reserve(t, s, fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprintf("guess%d@x.io", i), t0); !ok {
			t.Fatalf("guess %d refused", i)
		}
	}
	if _, ok := reserve(t, s, "2001:db8:1:2:ffff::1", "another@x.io", t0); ok {
		t.Fatal("the /64 got more than MaxAttemptsPerIP attempts")
	}
	if _, ok := reserve(t, s, "2001:db8:1:2::1", "another@x.io", t0.Add(ThrottleWindow)); !ok {
		t.Fatal("the address window did not slide")
	}
}

// From many addresses together an email gets at most MaxAttemptsPerEmail
// attempts per window, except from an address it signed in from.
func TestThrottlePerEmailAcrossAddresses(t *testing.T) {
	s, _ := newStore(t)
	t0 := time.Now()
	a, _ := reserve(t, s, "203.0.113.9", "alice@x.io", t0.Add(-time.Hour))
	s.SettleAttempt(a, AttemptSucceeded) // alice's own address is known
	n := 0
	for ip := 0; ip < 20; ip++ {
		for i := 0; i < FreeAttemptsPerPair; i++ {
			if _, ok := reserve(t, s, fmt.Sprintf("198.51.100.%d", ip), "alice@x.io", t0); ok {
				n++
			}
		}
	}
	if n != MaxAttemptsPerEmail {
		t.Fatalf("%d attempts on one email from 20 addresses, want %d", n, MaxAttemptsPerEmail)
	}
	if _, ok := reserve(t, s, "192.0.2.200", "alice@x.io", t0); ok {
		t.Fatal("a new address got past the per-email limit")
	}
	if _, ok := reserve(t, s, "203.0.113.9", "alice@x.io", t0); !ok {
		t.Fatal("alice's known address is locked out by the attack")
	}
}

// Concurrent reservations cannot outrun the count, and the throttle
// survives a restart.
func TestThrottleConcurrentAndPersistent(t *testing.T) {
	p := dbPath(t)
	s := openStore(t, p, masterKey(1), Options{})
	t0 := time.Now()
	var ok sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for i := 0; i < 100; i++ {
		ok.Go(func() {
			if _, err := s.ReserveAttempt("198.51.100.7", "alice@x.io", t0); err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		})
	}
	ok.Wait()
	if accepted != FreeAttemptsPerPair {
		t.Fatalf("%d of 100 concurrent attempts accepted, want %d", accepted, FreeAttemptsPerPair)
	}
	s.Close()
	s = openStore(t, p, masterKey(1), Options{})
	if _, ok := reserve(t, s, "198.51.100.7", "alice@x.io", t0.Add(time.Second)); ok {
		t.Fatal("a restart reset the throttle")
	}
	// The records name neither the address nor the email.
	s.Close()
	for _, v := range []string{"198.51.100.7", "alice@x.io"} {
		if rawContains(t, p, v) {
			t.Errorf("the throttle stores %q in clear", v)
		}
	}
}

// Fleet mode: two instances share one throttle through etcd.
func TestFleetThrottleShared(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 1)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "b", masterKey(1))
	t0 := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted, refused := 0, 0
	for i := 0; i < 20; i++ {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			_, err := s.ReserveAttempt("198.51.100.7", "alice@x.io", t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				accepted++
			case errors.Is(err, ErrThrottled):
				refused++
			}
		})
	}
	wg.Wait()
	if accepted > FreeAttemptsPerPair || accepted == 0 {
		t.Fatalf("%d of 20 attempts over two instances accepted, want 1..%d", accepted, FreeAttemptsPerPair)
	}
	t.Logf("two instances, 20 concurrent attempts: %d accepted, %d throttled, %d refused otherwise", accepted, refused, 20-accepted-refused)
	for accepted < FreeAttemptsPerPair {
		if _, ok := reserve(t, a, "198.51.100.7", "alice@x.io", t0); !ok {
			t.Fatal("refused before the free attempts were used")
		}
		accepted++
	}
	for _, s := range []*Store{a, b} {
		if _, ok := reserve(t, s, "198.51.100.7", "alice@x.io", t0); ok {
			t.Fatalf("instance %s gave a sixth attempt", s.InstanceID())
		}
	}
	// A third instance opened later sees the same state.
	c3 := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "c", masterKey(1))
	if _, ok := reserve(t, c3, "198.51.100.7", "alice@x.io", t0); ok {
		t.Fatal("a new instance started with fresh attempts")
	}
	var n int
	c3.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketThrottle.name).Stats().KeyN; return nil })
	if n != 0 {
		t.Fatalf("%d throttle records in the instance's own file; they belong in etcd", n)
	}
}
