package pricing

import (
	"strings"
	"testing"
)

func TestApplyOverrides(t *testing.T) {
	base := Default()
	eff, err := Apply(base, []Override{
		// any subset: only gpt-4o's input changes
		{Model: "gpt-4o", Standard: PriceSet{Input: "2.25"}, Source: "contract 2026-12"},
		// by alias, with provider
		{Provider: "anthropic", Model: "claude-sonnet-4-5-20250929", Batch: &PriceSet{Output: "7"}},
		// a tier the row did not have
		{Model: "gpt-4o-mini", Priority: &PriceSet{Input: "0.25", Output: "1"}},
		// a custom model, declared with its provider
		{Provider: "azure", Model: "my-gpt4o-deployment", Standard: PriceSet{Input: "2.75", CacheRead: "1.375", Output: "11"}},
		// long context added to a row without it
		{Model: "gpt-4.1", LongContext: &LongContext{Above: 128000, Standard: PriceSet{Input: "4", CacheRead: "1", Output: "16"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := MustCompile(eff)
	check := func(provider, model string, u Usage, want string) {
		t.Helper()
		if c := b.Cost(provider, model, u); c.USD() != want {
			t.Errorf("%s/%s %+v: %s (%s), want %s", provider, model, u, c.USD(), c.Reason, want)
		}
	}
	check("openai", "gpt-4o", Usage{Input: 1000000, CacheRead: 1000000, Output: 1000000}, "13.5")      // 2.25 + 1.25 + 10
	check("anthropic", "claude-sonnet-4-5", Usage{Input: 100000, Output: 100000, Tier: Batch}, "0.85") // 0.15 + 0.7
	check("openai", "gpt-4o-mini", Usage{Input: 1000000, Tier: PriorityTier}, "0.25")
	check("azure", "my-gpt4o-deployment", Usage{Input: 1000000, CacheRead: 1000000}, "4.125")
	check("openai", "gpt-4.1", Usage{Input: 200000}, "0.8")
	if base.Models[0].Standard.Input != "2.50" {
		t.Error("Apply changed the base table")
	}
	i, _ := eff.find("openai", "gpt-4o")
	if eff.Models[i].Source != "contract 2026-12" {
		t.Errorf("source = %q", eff.Models[i].Source)
	}
}

// TestApplyRefuses: bad overrides are refused with a clear error naming the
// model (and field), and change nothing.
func TestApplyRefuses(t *testing.T) {
	base := Default()
	before := MustCompile(base).Hash()
	for _, tc := range []struct {
		name string
		ovs  []Override
		want string
	}{
		{"unknown model", []Override{{Model: "gpt-99", Standard: PriceSet{Input: "1"}}}, `unknown model "gpt-99"`},
		{"unknown provider", []Override{{Provider: "acme", Model: "x", Standard: PriceSet{Input: "1"}}}, `unknown provider "acme"`},
		{"custom without input", []Override{{Provider: "azure", Model: "dep", Standard: PriceSet{Output: "1"}}}, "needs at least an input price"},
		{"twice", []Override{{Model: "gpt-4o", Standard: PriceSet{Input: "1"}}, {Model: "gpt-4o-2024-08-06", Standard: PriceSet{Input: "2"}}}, "overridden twice"},
		{"per-token price", []Override{{Model: "gpt-4o", Standard: PriceSet{Input: "0.0000025"}}}, "openai/gpt-4o standard.input"},
		{"million times", []Override{{Model: "claude-haiku-4-5", Standard: PriceSet{Output: "5000000"}}}, "anthropic/claude-haiku-4-5 standard.output"},
		{"negative", []Override{{Model: "sonar", Standard: PriceSet{Output: "-1"}}}, "negative"},
		{"no model", []Override{{Standard: PriceSet{Input: "1"}}}, "no model"},
		{"long context without threshold", []Override{{Model: "gpt-4o", LongContext: &LongContext{Standard: PriceSet{Input: "5"}}}}, "long_context.above"},
	} {
		_, err := Apply(base, tc.ovs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	if MustCompile(base).Hash() != before {
		t.Error("a refused override changed the base table")
	}
	// A name two providers price needs the provider named.
	two, err := Apply(base, []Override{{Provider: "azure", Model: "gpt-4o", Standard: PriceSet{Input: "2.75", Output: "11"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(two, []Override{{Model: "gpt-4o", Standard: PriceSet{Input: "2"}}}); err == nil || !strings.Contains(err.Error(), "name the provider") {
		t.Errorf("ambiguous model: %v", err)
	}
}
