package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
	bolt "go.etcd.io/bbolt"
)

func withOverride(t *testing.T, model, input string) *pricing.Table {
	t.Helper()
	tb, err := pricing.Apply(pricing.Default(), []pricing.Override{{Provider: "openai", Model: model, Standard: pricing.PriceSet{Input: input}}})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// TestPriceVersionsPersist: versions are kept in the file, immutable, and
// the registry comes back as it was when the store reopens; a new version
// only when prices change; a table that fails its checks changes nothing.
func TestPriceVersionsPersist(t *testing.T) {
	s, path := newStore(t)
	if s.Prices().Current() != nil {
		t.Fatal("a new store has a current price version")
	}
	v1, changed, err := s.PublishPrices(pricing.Default())
	if err != nil || !changed || v1.Seq != 1 || s.Prices().Current() != v1 {
		t.Fatalf("first publish: %+v %v %v", v1, changed, err)
	}
	if v, changed, err := s.PublishPrices(pricing.Default()); err != nil || changed || v != v1 {
		t.Fatalf("same prices: %v %v", changed, err)
	}
	v2, changed, err := s.PublishPrices(withOverride(t, "gpt-4o", "2.25"))
	if err != nil || !changed || v2.Parent != v1.ID || len(v2.Changes) != 1 || v2.Changes[0].Field != "standard.input" {
		t.Fatalf("override: %+v %v %v", v2, changed, err)
	}
	bad := pricing.Default()
	bad.Models[0].Standard.Input = "-1"
	if _, _, err := s.PublishPrices(bad); err == nil || s.Prices().Current() != v2 {
		t.Fatalf("a bad table was published (%v)", err)
	}
	s.Close()

	s = openStore(t, path, masterKey(1), Options{})
	cur := s.Prices().Current()
	if cur == nil || cur.ID != v2.ID || len(s.Prices().Versions()) != 2 {
		t.Fatalf("reopened: current %v, %d versions", cur, len(s.Prices().Versions()))
	}
	recs, err := s.PriceVersions()
	if err != nil || len(recs) != 2 || recs[0].ID != v1.ID || recs[1].ID != v2.ID || recs[1].Table == nil {
		t.Fatalf("PriceVersions: %d records, %v", len(recs), err)
	}
	s.Close()

	// An altered version record: the registry stops at the last good one,
	// and publishing refuses to chain onto it.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketPrices.name)
		raw := append([]byte(nil), b.Get(priceKey(2))...)
		return b.Put(priceKey(2), []byte(string(raw[:len(raw)-40])+`"}]}}`))
	})
	db.Close()
	s = openStore(t, path, masterKey(1), Options{})
	if cur := s.Prices().Current(); cur == nil || cur.ID != v1.ID {
		t.Fatalf("after tampering: current %v, want %s", cur, v1.ID)
	}
	if _, _, err := s.PublishPrices(withOverride(t, "gpt-4o", "3")); err == nil {
		t.Fatal("a version was chained onto an unreadable one")
	}
}

// TestFleetPriceVersions: in fleet mode versions live in etcd, every
// instance follows them, and two instances publishing at once chain one
// after the other (a compare-and-swap on the head): both versions kept,
// the same current version everywhere.
func TestFleetPriceVersions(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "b", masterKey(1))
	v1, _, err := a.PublishPrices(pricing.Default())
	if err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 5*time.Second, "b follows a's version", func() bool { c := b.Prices().Current(); return c != nil && c.ID == v1.ID })

	var wg sync.WaitGroup
	got := make([]*pricing.Version, 2)
	errs := make([]error, 2)
	for i, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _, errs[i] = s.PublishPrices(withOverride(t, "gpt-4o", []string{"2.25", "2.75"}[i]))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got[0].Seq == got[1].Seq {
		t.Fatalf("both publishers made sequence %d", got[0].Seq)
	}
	last := got[0]
	if got[1].Seq > last.Seq {
		last = got[1]
	}
	for _, s := range []*Store{a, b} {
		testfix.WaitFor(t, 5*time.Second, "both follow the last version", func() bool { c := s.Prices().Current(); return c != nil && c.ID == last.ID })
		if n := len(s.Prices().Versions()); n != 3 {
			t.Errorf("%d versions, want 3", n)
		}
	}
	// A third instance starting later restores the same history.
	c3 := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "c", masterKey(1))
	if cur := c3.Prices().Current(); cur == nil || cur.ID != last.ID || len(c3.Prices().Versions()) != 3 {
		t.Fatalf("a new instance: current %v", cur)
	}
}

// TestContractTerms: terms on a BYOK credential take effect now or later,
// never earlier; bad input changes nothing; a term in force stays; the
// snapshot holds them compiled, on every fleet instance.
func TestContractTerms(t *testing.T) {
	clock := setClock(t, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	if _, err := s.AddContractTerm("acme", "openai", pricing.ContractTerm{DiscountPercent: "10"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a term without a BYOK credential: %v", err)
	}
	if _, err := s.PutCredential("acme", "openai", canaryKey, "sk-…", Extras{}); err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	term, err := s.AddContractTerm("acme", "openai", pricing.ContractTerm{DiscountPercent: "10"})
	if err != nil || !term.EffectiveFrom.Equal(now) {
		t.Fatalf("a term from now: %+v %v", term, err)
	}
	for name, bad := range map[string]pricing.ContractTerm{
		"in the past":     {EffectiveFrom: now.Add(-time.Hour), DiscountPercent: "20"},
		"negative":        {EffectiveFrom: now.Add(time.Hour), DiscountPercent: "-5"},
		"over 100":        {EffectiveFrom: now.Add(time.Hour), DiscountPercent: "150"},
		"same instant":    {EffectiveFrom: now, DiscountPercent: "20"},
		"nothing in it":   {EffectiveFrom: now.Add(time.Hour)},
		"per-token rate":  {EffectiveFrom: now.Add(time.Hour), Rates: []pricing.ContractRate{{Model: "gpt-4o", Prices: pricing.PriceSet{Input: "0.0000025"}}}},
		"a rate no model": {EffectiveFrom: now.Add(time.Hour), Rates: []pricing.ContractRate{{Prices: pricing.PriceSet{Input: "2"}}}},
	} {
		if _, err := s.AddContractTerm("acme", "openai", bad); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v, want ErrInvalidInput", name, err)
		}
	}
	if terms, _ := s.ContractTerms("acme", "openai"); len(terms) != 1 {
		t.Fatalf("bad input changed the terms: %+v", terms)
	}
	later := now.Add(24 * time.Hour)
	if _, err := s.AddContractTerm("acme", "openai", pricing.ContractTerm{EffectiveFrom: later, DiscountPercent: "25"}); err != nil {
		t.Fatal(err)
	}
	c := s.Snapshot().Contract("acme", "openai")
	if tm, ok := c.InForce(now.Add(time.Minute)); !ok || tm.DiscountPercent != "10" {
		t.Fatalf("in force now: %+v %v", tm, ok)
	}
	if tm, _ := c.InForce(later); tm.DiscountPercent != "25" {
		t.Fatalf("in force later: %+v", tm)
	}
	if err := s.DeleteContractTerm("acme", "openai", now); !errors.Is(err, ErrTermInForce) {
		t.Errorf("deleting a term in force: %v", err)
	}
	if err := s.DeleteContractTerm("acme", "openai", later); err != nil {
		t.Fatal(err)
	}
	if tm, _ := s.Snapshot().Contract("acme", "openai").InForce(later); tm.DiscountPercent != "10" {
		t.Fatalf("after deleting the later term: %+v", tm)
	}
	if err := s.DeleteAccount("acme"); err != nil {
		t.Fatal(err)
	}
	if s.Snapshot().Contract("acme", "openai") != nil {
		t.Error("the deleted account's contract is still in the snapshot")
	}
}

func TestFleetContractTerms(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "b", masterKey(1))
	mustAccount(t, a, "acme")
	if _, err := a.PutCredential("acme", "anthropic", "sk-ant-api03-"+canaryFragment+"xxxxxxxxxxxxxxxxxxxxxxxx", "sk-ant-…", Extras{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddContractTerm("acme", "anthropic", pricing.ContractTerm{DiscountPercent: "15"}); err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 5*time.Second, "b sees the contract", func() bool { return b.Snapshot().Contract("acme", "anthropic") != nil })
}
