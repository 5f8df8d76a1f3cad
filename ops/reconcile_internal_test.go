package ops

import (
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
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
