package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

func budget(account, id, amount string) limits.Budget {
	return limits.Budget{ID: id, Scope: limits.Scope{Kind: limits.ScopeAccount, Account: account},
		Amount: limits.MustUSD(amount), Window: limits.WindowMonth}
}

func putBudget(t *testing.T, s *Store, account string, b limits.Budget) {
	t.Helper()
	_, err := s.UpdateLimitSet(account, func(set *limits.Set) error {
		set.Budgets = append(set.Budgets, b)
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateLimitSet(%s): %v", account, err)
	}
}

func drain(s *Store) {
	select {
	case <-s.LimitsChanged():
	default:
	}
}

// waitChanged waits for the store's limits signal.
func waitChanged(t *testing.T, s *Store) {
	t.Helper()
	select {
	case <-s.LimitsChanged():
	case <-time.After(5 * time.Second):
		t.Fatal("no limits change signalled")
	}
}

// limitSetsCase runs against a writer w and a reader r (the same store
// single-node; two fleet instances).
func limitSetsCase(t *testing.T, w, r *Store) {
	mustAccount(t, w, "acme")
	mustAccount(t, w, "beta")
	drain(r)
	v0 := r.LimitsVersion()

	putBudget(t, w, "acme", budget("acme", "monthly", "2000"))
	waitChanged(t, r)
	putBudget(t, w, "beta", budget("beta", "monthly", "10"))
	waitFor(t, func() bool { return len(r.LimitSets().Budgets) == 2 })
	if v := r.LimitsVersion(); v.Sets <= v0.Sets {
		t.Fatalf("sets generation did not move: %+v -> %+v", v0, v)
	}
	u := r.LimitSets()
	if u.Budgets[0].Account != "acme" || u.Budgets[1].Account != "beta" || u.Budgets[1].Amount != limits.MustUSD("10") {
		t.Fatalf("union = %+v", u.Budgets)
	}
	// Defaults were filled and the stored form reads back.
	got, err := r.LimitSet("acme")
	if err != nil || len(got.Budgets) != 1 || got.Budgets[0].Payer != limits.PayerPlatform || len(got.Budgets[0].Alerts) != 3 {
		t.Fatalf("LimitSet = %+v, %v", got, err)
	}

	// Bad input changes nothing: another account's object, a duplicate
	// id, a negative amount, an owner budget above the caps.
	bad := []struct {
		name string
		fn   func(*limits.Set) error
		want string
	}{
		{"foreign", func(s *limits.Set) error { s.Budgets = append(s.Budgets, budget("beta", "x", "1")); return nil }, `names account "beta"`},
		{"duplicate", func(s *limits.Set) error { s.Budgets = append(s.Budgets, budget("acme", "monthly", "1")); return nil }, "used twice"},
		{"window", func(s *limits.Set) error {
			b := budget("acme", "w", "1")
			b.Window = ""
			s.Budgets = append(s.Budgets, b)
			return nil
		}, "window"},
		{"caps", func(s *limits.Set) error {
			c := limits.MustUSD("5")
			s.Caps = append(s.Caps, limits.Caps{Account: "acme", BudgetAmount: &c, BudgetWindow: limits.WindowMonth})
			b := budget("acme", "mine", "50")
			b.Payer, b.SetBy = limits.PayerBYOK, limits.SetByOwner
			s.Budgets = append(s.Budgets, b)
			return nil
		}, "cap"},
	}
	for _, c := range bad {
		_, err := w.UpdateLimitSet("acme", c.fn)
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalidInput with %q", c.name, err, c.want)
		}
	}
	if _, err := w.UpdateLimitSet("nobody", func(*limits.Set) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}
	if got, _ := w.LimitSet("acme"); len(got.Budgets) != 1 || len(got.Caps) != 0 {
		t.Fatalf("a refused update changed the set: %+v", got)
	}

	// A new API key and a new account are signalled too (the config's
	// defaults per key and per account follow them).
	drain(r)
	before := r.LimitsVersion()
	if _, _, err := w.CreateAPIKey("acme", "ci"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return r.LimitsVersion().Keys > before.Keys })
	waitChanged(t, r)
	n := 0
	r.Snapshot().EachKey(func(*KeyEntry) { n++ })
	if n != 1 {
		t.Fatalf("EachKey saw %d keys", n)
	}

	// Deleting the account deletes its set.
	if err := w.DeleteAccount("acme"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { u := r.LimitSets(); return len(u.Budgets) == 1 && u.Budgets[0].Account == "beta" })
	mustAccount(t, w, "acme")
	if got, err := w.LimitSet("acme"); err != nil || len(got.Budgets) != 0 {
		t.Fatalf("a re-created account inherited limits: %+v, %v", got, err)
	}
	// Emptying a set removes the record.
	if _, err := w.UpdateLimitSet("beta", func(s *limits.Set) error { s.Budgets = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(r.LimitSets().Budgets) == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLimitSets(t *testing.T) {
	t.Parallel()
	s, path := newStore(t)
	limitSetsCase(t, s, s)
	// A restart reads the stored sets back.
	putBudget(t, s, "beta", budget("beta", "daily", "3"))
	s.Close()
	s2 := openStore(t, path, masterKey(1), Options{})
	if u := s2.LimitSets(); len(u.Budgets) != 1 || u.Budgets[0].ID != "daily" {
		t.Fatalf("after a restart: %+v", u)
	}
}

func TestFleetLimitSets(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 1)
	a := openFleet(t, c.Client(t), "a", masterKey(1))
	b := openFleet(t, c.Client(t), "b", masterKey(1))
	limitSetsCase(t, a, b)
}

// A stored set a newer version wrote (an unknown field) is left out of the
// union, not fatal, and said so.
func TestLimitSetThatDoesNotParseIsLeftOut(t *testing.T) {
	t.Parallel()
	s, path := newStore(t)
	mustAccount(t, s, "acme")
	mustAccount(t, s, "beta")
	putBudget(t, s, "beta", budget("beta", "monthly", "10"))
	err := s.update(func(tx kvTx) error {
		return tx.Bucket(bucketLimitSets).Put([]byte("acme"), []byte(`{"budgets":[],"quotas":[{"id":"q"}]}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	if u := s.LimitSets(); len(u.Budgets) != 1 || s.LimitSetsError() == nil {
		t.Fatalf("union %+v, error %v", u, s.LimitSetsError())
	}
	s.Close()
	s2 := openStore(t, path, masterKey(1), Options{})
	if u := s2.LimitSets(); len(u.Budgets) != 1 || s2.LimitSetsError() == nil {
		t.Fatalf("after a restart: union %+v, error %v", u, s2.LimitSetsError())
	}
}

// The limiter's single-node backend over the store's bucket keeps a
// window's spend across a restart of the store.
func TestLimitsKVKeepsSpendAcrossRestart(t *testing.T) {
	t.Parallel()
	s, path := newStore(t)
	set := limits.Set{RateLimits: []limits.RateLimit{{ID: "rpm", Scope: limits.Scope{Kind: limits.ScopeAccount, Account: "acme"}, RPM: 3}}}
	clock := time.Date(2026, 12, 7, 10, 0, 5, 0, time.UTC)
	run := func(s *Store, n int) (admitted int) {
		backend := limits.NewLocal(s.LimitsKV())
		lim, err := limits.New(limits.Config{Backend: backend, Now: func() time.Time { return clock }})
		if err != nil {
			t.Fatal(err)
		}
		defer lim.Close()
		if err := lim.Install(set); err != nil {
			t.Fatal(err)
		}
		for range n {
			var res limits.Reservation
			if d := lim.Admit(&limits.Request{Account: "acme", Provider: "openai", Model: "gpt-4o-mini"}, &res); d.Allowed() {
				admitted++
				res.Release()
			}
		}
		return admitted
	}
	if got := run(s, 2); got != 2 {
		t.Fatalf("admitted %d of 2", got)
	}
	s.Close()
	s2 := openStore(t, path, masterKey(1), Options{})
	if got := run(s2, 3); got != 1 {
		t.Fatalf("after a restart admitted %d of 3 (rpm 3, 2 used before): the spend was not kept", got)
	}
}
