package ops

import (
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// TestApplyContracts: an accepted term prices the gateway side's hours
// from its effective_from on, and no hour before it.
func TestApplyContracts(t *testing.T) {
	from := time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)
	c, err := pricing.NewContract([]pricing.ContractTerm{{EffectiveFrom: from, DiscountPercent: "10"}})
	if err != nil {
		t.Fatal(err)
	}
	book := defaultBook()
	tokens := reconcile.Tokens{Input: 200000, Output: 50000}
	list := int64(book.Cost("openai", "gpt-4o-mini", tokens.Usage()).NanoUSD) // $0.06
	gw := []reconcile.GatewayUsage{
		{Provider: "openai", Credential: "fp_a", Model: "gpt-4o-mini", Hour: from.Add(-time.Hour), Requests: 2, Tokens: tokens, CostNanoUSD: list},
		{Provider: "openai", Credential: "fp_a", Model: "gpt-4o-mini", Hour: from, Requests: 2, Tokens: tokens, CostNanoUSD: list},
		{Provider: "openai", Credential: "fp_b", Model: "gpt-4o-mini", Hour: from, Requests: 2, Tokens: tokens, CostNanoUSD: list},
	}
	applyContracts(book, []reconcile.Credential{{Fingerprint: "fp_a", Contract: c}, {Fingerprint: "fp_b"}}, gw)
	if list != 60_000_000 || gw[0].CostNanoUSD != list || gw[1].CostNanoUSD != list*9/10 || gw[2].CostNanoUSD != list {
		t.Fatalf("list %d; costs %d %d %d", list, gw[0].CostNanoUSD, gw[1].CostNanoUSD, gw[2].CostNanoUSD)
	}
}

// TestReconcileBookIsTheStoresCurrentVersion: without a configured book,
// the reconciliation prices with the store's current price version (the
// config's price blocks included), not the embedded default.
func TestReconcileBookIsTheStoresCurrentVersion(t *testing.T) {
	s := storetest.Open(t)
	o := &Ops{Store: s}
	tokens := reconcile.Tokens{Input: 1_000_000}
	price := func() int64 { return int64(o.priceBook().Cost("openai", "gpt-4o-mini", tokens.Usage()).NanoUSD) }
	if s.Prices().Current() != nil || price() != 150_000_000 {
		t.Fatalf("before any version: %d", price())
	}
	tab := pricing.Default().Clone()
	for i := range tab.Models {
		if tab.Models[i].Provider == "openai" && tab.Models[i].Model == "gpt-4o-mini" {
			tab.Models[i].Standard.Input, tab.Models[i].Source = "0.2", "override"
		}
	}
	if _, _, err := s.PublishPrices(tab); err != nil {
		t.Fatal(err)
	}
	if got := price(); got != 200_000_000 {
		t.Fatalf("after the config's override: %d, want 200000000", got)
	}
	o.Reconcile = &Reconciling{Book: pricing.MustCompile(pricing.Default())}
	if got := price(); got != 150_000_000 {
		t.Fatalf("with a configured book: %d", got)
	}
}
