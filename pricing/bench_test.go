package pricing

import (
	"testing"
	"time"
)

// benchSetup is a request as the gateway prices one: a version taken at
// the start, a BYOK contract in force, a usage block read from the
// provider's own bytes.
func benchSetup(tb testing.TB) (*Version, *Contract, time.Time) {
	tb.Helper()
	r := NewRegistry()
	v, _, err := r.Publish(Default())
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	c, err := NewContract([]ContractTerm{
		{EffectiveFrom: start.AddDate(0, -1, 0), DiscountPercent: "10"},
		{EffectiveFrom: start.AddDate(0, 0, -1), DiscountPercent: "12.5", Rates: []ContractRate{{Model: "claude-haiku-4-5", Prices: PriceSet{Input: "0.9"}}}},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return v, c, start
}

// TestHotPathAllocatesNothing holds the benchmarks' claim in the test run:
// reading a usage block and pricing it allocate nothing.
func TestHotPathAllocatesNothing(t *testing.T) {
	v, c, start := benchSetup(t)
	blocks := map[string][]byte{
		"openai": usageFile(t, "openai_chat_cached_reasoning.json"), "anthropic": usageFile(t, "anthropic_cache_split.json"),
		"gemini": usageFile(t, "gemini_pro_long_context.json"), "cohere": usageFile(t, "cohere_billed_units.json"),
		"perplexity": usageFile(t, "perplexity_deep_research.json"),
	}
	models := map[string]string{"openai": "o4-mini", "anthropic": "claude-sonnet-4-5-20250929", "gemini": "models/gemini-2.5-pro",
		"cohere": "command-a-03-2025", "perplexity": "sonar-deep-research"}
	for p, raw := range blocks {
		var cost Cost
		n := testing.AllocsPerRun(200, func() {
			cost = v.Cost(p, models[p], FromProvider(p, raw), c, start)
		})
		if n != 0 || cost.Unpriced {
			t.Errorf("%s: %v allocations per cost (unpriced %v)", p, n, cost.Unpriced)
		}
	}
	n := testing.AllocsPerRun(200, func() { _ = v.Cost("openai", "no-such-model", Usage{Input: 1}, nil, start) })
	if n != 0 {
		t.Errorf("unpriced: %v allocations", n)
	}
}

func BenchmarkCost(b *testing.B) {
	v, c, start := benchSetup(b)
	u := FromAnthropic(usageFile(b, "anthropic_cache_split.json"))
	b.ReportAllocs()
	for b.Loop() {
		_ = v.Cost("anthropic", "claude-sonnet-4-5-20250929", u, c, start)
	}
}

func BenchmarkUsageAndCost(b *testing.B) {
	for _, tc := range []struct{ provider, model, file string }{
		{"openai", "o4-mini", "openai_chat_cached_reasoning.json"},
		{"anthropic", "claude-sonnet-4-5-20250929", "anthropic_cache_split.json"},
		{"gemini", "gemini-2.5-pro", "gemini_pro_long_context.json"},
	} {
		b.Run(tc.provider, func(b *testing.B) {
			v, _, start := benchSetup(b)
			raw := usageFile(b, tc.file)
			b.ReportAllocs()
			for b.Loop() {
				_ = v.Cost(tc.provider, tc.model, FromProvider(tc.provider, raw), nil, start)
			}
		})
	}
}
