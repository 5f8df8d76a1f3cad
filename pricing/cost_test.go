package pricing

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func defaultBook(t testing.TB) *Book {
	t.Helper()
	b, err := Compile(Default())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func usageFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "usage", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestGoldenCosts prices real usage blocks, one or more per provider, as
// each provider returns them (testdata/usage), and checks the total against
// the arithmetic written out by hand beside it (prices in USD per 1M
// tokens, so each sum is in µUSD) and the split of tokens by class.
func TestGoldenCosts(t *testing.T) {
	b := defaultBook(t)
	cases := []struct {
		file, provider, model string
		tier                  string // OpenAI's answer-level service_tier, when set
		want                  string // total in USD
		tokens                Usage
		long, partial         bool
	}{
		// 86 uncached × 1.10 + 1920 cached × 0.275 + 300 output (192 of them reasoning) × 4.40
		// = 94.6 + 528 + 1320 = 1942.6 µUSD
		{file: "openai_chat_cached_reasoning.json", provider: "openai", model: "o4-mini", want: "0.0019426",
			tokens: Usage{Input: 86, CacheRead: 1920, Output: 300, Reasoning: 192, PromptTokens: 2006}},
		// Responses shape: 1760 × 1.25 + 10240 × 0.125 + 1500 × 10 = 2200 + 1280 + 15000
		{file: "openai_responses_cached_reasoning.json", provider: "openai", model: "gpt-5-2025-08-07", want: "0.01848",
			tokens: Usage{Input: 1760, CacheRead: 10240, Output: 1500, Reasoning: 1024, PromptTokens: 12000}},
		// the same at priority: 1760 × 2.50 + 10240 × 0.25 + 1500 × 20 = 4400 + 2560 + 30000
		{file: "openai_responses_cached_reasoning.json", provider: "openai", model: "gpt-5", tier: "priority", want: "0.03696",
			tokens: Usage{Input: 1760, CacheRead: 10240, Output: 1500, Reasoning: 1024, PromptTokens: 12000}},
		// 50 × 3 + 100000 × 0.30 + 48 × 3.75 (5 m write) + 200 × 6 (1 h write) + 503 × 15
		// = 150 + 30000 + 180 + 1200 + 7545
		{file: "anthropic_cache_split.json", provider: "anthropic", model: "claude-sonnet-4-5-20250929", want: "0.039075",
			tokens: Usage{Input: 50, CacheRead: 100000, CacheWrite5m: 48, CacheWrite1h: 200, Output: 503}},
		// no split given: the write is a 5 m write, counted once:
		// 100 × 3 + 10000 × 3.75 + 500 × 15 = 300 + 37500 + 7500
		{file: "anthropic_cache_write_nosplit.json", provider: "anthropic", model: "claude-sonnet-4-5", want: "0.0453",
			tokens: Usage{Input: 100, CacheWrite5m: 10000, Output: 500}},
		// prompt 150000 + 60000 > 200K: every token at the long-context prices
		// 150000 × 6 + 60000 × 0.60 + 2000 × 22.50 = 900000 + 36000 + 45000
		{file: "anthropic_long_context.json", provider: "anthropic", model: "claude-sonnet-4-5", want: "0.981", long: true,
			tokens: Usage{Input: 150000, CacheRead: 60000, Output: 2000}},
		// usage.service_tier "batch": 2000 × 1.50 + 8000 × 0.15 + 1000 × 7.50 = 3000 + 1200 + 7500
		{file: "anthropic_batch.json", provider: "anthropic", model: "claude-sonnet-4-5", want: "0.0117",
			tokens: Usage{Input: 2000, CacheRead: 8000, Output: 1000, Tier: Batch}},
		// promptTokenCount includes the 1024 cached; thoughts are output:
		// 176 × 0.30 + 1024 × 0.03 + (300 + 800) × 2.50 = 52.8 + 30.72 + 2750
		{file: "gemini_flash_cached_thoughts.json", provider: "gemini", model: "models/gemini-2.5-flash", want: "0.00283352",
			tokens: Usage{Input: 176, CacheRead: 1024, Output: 1100, Reasoning: 800, PromptTokens: 1200}},
		// prompt 250000 > 200K: 50000 × 2.50 + 200000 × 0.25 + (1200 + 2600) × 15 = 125000 + 50000 + 57000
		{file: "gemini_pro_long_context.json", provider: "gemini", model: "gemini-2.5-pro", want: "0.232", long: true,
			tokens: Usage{Input: 50000, CacheRead: 200000, Output: 3800, Reasoning: 2600, PromptTokens: 250000}},
		// billed_units, not tokens: 5 × 2.50 + 418 × 10 = 12.5 + 4180
		{file: "cohere_billed_units.json", provider: "cohere", model: "command-a-03-2025", want: "0.0041925",
			tokens: Usage{Input: 5, Output: 418, PromptTokens: 5}},
		// reasoning apart from completion: 19 × 2 + 6642 × 8 + 73200 × 3 = 38 + 53136 + 219600;
		// citations and searches are fees the book leaves out: partial
		{file: "perplexity_deep_research.json", provider: "perplexity", model: "sonar-deep-research", want: "0.272774", partial: true,
			tokens: Usage{Input: 19, Output: 6642, Reasoning: 73200, ReasoningApart: true, PromptTokens: 19}},
		// 10 × 0.10 + 20 × 0.30
		{file: "mistral.json", provider: "mistral", model: "mistral-small-latest", want: "0.000007",
			tokens: Usage{Input: 10, Output: 20, PromptTokens: 10}},
		// 1900 × 0.88
		{file: "together.json", provider: "together", model: "meta-llama/Llama-3.3-70B-Instruct-Turbo", want: "0.001672",
			tokens: Usage{Input: 1500, Output: 400, PromptTokens: 1500}},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.model, func(t *testing.T) {
			u := FromProvider(tc.provider, usageFile(t, tc.file))
			if tc.tier != "" {
				u.Tier = ParseTier(tc.tier)
			}
			if tc.tier == "" && u != tc.tokens {
				t.Errorf("tokens = %+v, want %+v", u, tc.tokens)
			}
			c := b.Cost(tc.provider, tc.model, u)
			if c.Unpriced || c.USD() != tc.want {
				t.Fatalf("cost = %q (unpriced %v, %s), want %s; %+v", c.USD(), c.Unpriced, c.Reason, tc.want, c)
			}
			if c.LongContext != tc.long || c.Partial != tc.partial {
				t.Errorf("long context %v, partial %v; want %v, %v", c.LongContext, c.Partial, tc.long, tc.partial)
			}
		})
	}
}

// TestAnthropicCacheWriteChargedOnce is litellm#9812: cache creation
// tokens were charged as input and again as cache writes. A write is
// priced once, at its write multiplier: 1.25 × input for 5 minutes, 2 ×
// for an hour — and the split object is not added to its total.
func TestAnthropicCacheWriteChargedOnce(t *testing.T) {
	b := defaultBook(t)
	u := FromAnthropic([]byte(`{"input_tokens":0,"cache_creation_input_tokens":1000000,"cache_creation":{"ephemeral_5m_input_tokens":1000000,"ephemeral_1h_input_tokens":0},"output_tokens":0}`))
	if c := b.Cost("anthropic", "claude-haiku-4-5", u); c.USD() != "1.25" { // 1M × 1 × 1.25
		t.Errorf("1M 5-minute writes on Haiku 4.5 cost %s, want 1.25 (1.25 × input 1)", c.USD())
	}
	u = FromAnthropic([]byte(`{"input_tokens":0,"cache_creation_input_tokens":1000000,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":1000000},"output_tokens":0}`))
	if c := b.Cost("anthropic", "claude-haiku-4-5", u); c.USD() != "2" {
		t.Errorf("1M 1-hour writes on Haiku 4.5 cost %s, want 2 (2 × input 1)", c.USD())
	}
	// The reported bill's shape: input 100, 10000 written, 500 out.
	// Charged once: 0.0453; charged twice (as input as well): 0.0753.
	c := b.Cost("anthropic", "claude-sonnet-4-5", FromAnthropic(usageFile(t, "anthropic_cache_write_nosplit.json")))
	if c.USD() != "0.0453" {
		t.Errorf("cost = %s, want 0.0453 (a double-counted write would be 0.0753)", c.USD())
	}
}

// TestCachedReadsAtCachedPrice is litellm#11789 / bifrost#904: cached reads
// were priced as full input. Each provider's cached count is priced at the
// row's cache_read price.
func TestCachedReadsAtCachedPrice(t *testing.T) {
	b := defaultBook(t)
	for _, tc := range []struct {
		provider, model, raw, want string
	}{
		// 1M cached, nothing else
		{"openai", "gpt-4.1", `{"prompt_tokens":1000000,"completion_tokens":0,"prompt_tokens_details":{"cached_tokens":1000000}}`, "0.5"},
		{"openai", "gpt-4.1", `{"input_tokens":1000000,"output_tokens":0,"input_tokens_details":{"cached_tokens":1000000}}`, "0.5"},
		{"anthropic", "claude-haiku-4-5", `{"input_tokens":0,"cache_read_input_tokens":1000000,"output_tokens":0}`, "0.1"},
		// 100K on Sonnet 4.5 (1M would be past its long-context threshold)
		{"anthropic", "claude-sonnet-4-5", `{"input_tokens":0,"cache_read_input_tokens":100000,"output_tokens":0}`, "0.03"},
		{"gemini", "gemini-2.5-flash", `{"promptTokenCount":1000000,"cachedContentTokenCount":1000000,"candidatesTokenCount":0}`, "0.03"},
	} {
		c := b.Cost(tc.provider, tc.model, FromProvider(tc.provider, []byte(tc.raw)))
		if c.USD() != tc.want {
			t.Errorf("%s %s: 1M cached tokens cost %s, want %s", tc.provider, tc.model, c.USD(), tc.want)
		}
	}
}

// TestMissingPriceIsUnpriced is bifrost#6036: a model without a price cost
// $0 and vanished from the metrics. It is unpriced, with a reason, and its
// serialised form carries no total at all.
func TestMissingPriceIsUnpriced(t *testing.T) {
	b := defaultBook(t)
	u := Usage{Input: 1000, Output: 1000}
	for _, tc := range []struct {
		name, provider, model string
		u                     Usage
		why                   Reason
	}{
		{"unknown model", "openai", "gpt-99", u, NoModel},
		{"model at another provider", "azure", "gpt-4o", u, NoModel},
		{"tier the row lacks", "openai", "gpt-4o-mini", Usage{Input: 1, Tier: PriorityTier}, NoTier},
		{"long context without a tier price", "gemini", "gemini-2.5-pro", Usage{Input: 300000, Tier: Flex}, NoTier},
		{"output on an embeddings row", "openai", "text-embedding-3-small", Usage{Input: 10, Output: 1}, NoOutputPrice},
	} {
		c := b.Cost(tc.provider, tc.model, tc.u)
		if !c.Unpriced || c.Reason != tc.why || c.NanoUSD != 0 || c.USD() != "" {
			t.Errorf("%s: unpriced %v reason %q total %q, want unpriced for %q", tc.name, c.Unpriced, c.Reason, c.USD(), tc.why)
		}
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if s := string(data); !strings.Contains(s, `"unpriced":true`) || strings.Contains(s, "total") {
			t.Errorf("%s: serialised as %s: want unpriced and no total", tc.name, s)
		}
	}
	// An embeddings request with no output is priced.
	if c := b.Cost("openai", "text-embedding-3-small", Usage{Input: 1000000}); c.USD() != "0.02" {
		t.Errorf("embeddings: %s %v", c.USD(), c.Reason)
	}
	// Zero tokens of a known model is a priced $0, not unpriced.
	if c := b.Cost("openai", "gpt-4o", Usage{}); c.Unpriced || c.USD() != "0" {
		t.Errorf("zero usage: %+v", c)
	}
	if c := Unpriced("openai", "gpt-4o", NoUsage); !c.Unpriced || c.Reason.String() != "no_usage" {
		t.Errorf("Unpriced: %+v", c)
	}
}

// TestReasoningRules: reasoning inside the output count is billed once, as
// output; reasoning counted apart is billed at the row's reasoning price,
// or the output price when it has none.
func TestReasoningRules(t *testing.T) {
	b := defaultBook(t)
	in := b.Cost("openai", "o3", Usage{Output: 1000000, Reasoning: 900000})
	if in.USD() != "8" {
		t.Errorf("o3 1M output of which 900K reasoning: %s, want 8", in.USD())
	}
	apart := b.Cost("perplexity", "sonar-deep-research", Usage{Output: 1000000, Reasoning: 1000000, ReasoningApart: true})
	if apart.USD() != "11" { // 8 + 3
		t.Errorf("deep research: %s, want 11", apart.USD())
	}
	noPrice := b.Cost("perplexity", "sonar-pro", Usage{Output: 1000000, Reasoning: 1000000, ReasoningApart: true})
	if noPrice.USD() != "30" { // both at output 15
		t.Errorf("sonar-pro reasoning apart without a reasoning price: %s, want 30", noPrice.USD())
	}
	// A reasoning count above the output count (a garbled block) is not billed twice.
	if c := b.Cost("openai", "o3", Usage{Output: 10, Reasoning: 50}); c.USD() != "0.00008" {
		t.Errorf("reasoning > output: %s", c.USD())
	}
}

// TestRoundingOnce: the total is exact in femto-USD and rounded once, half
// up, to nano-USD; sub-nano class costs are not lost to early rounding.
func TestRoundingOnce(t *testing.T) {
	b := defaultBook(t)
	for _, tc := range []struct {
		u    Usage
		want Nano
	}{
		{Usage{Input: 1}, 38},             // 37.5 nano (0.0375 per 1M) rounds up
		{Usage{Input: 2}, 75},             // exact
		{Usage{Input: 3}, 113},            // 112.5
		{Usage{Input: 1, Output: 1}, 188}, // 37.5 + 150 = 187.5, not 38 + 150
	} {
		if c := b.Cost("cohere", "command-r7b-12-2024", tc.u); c.NanoUSD != tc.want {
			t.Errorf("%+v: %d nano-USD, want %d", tc.u, c.NanoUSD, tc.want)
		}
	}
	// 0.1 + 0.2 is 0.3 here: 3 tokens at 0.10 per 1M is 3e-7 exactly.
	if c := b.Cost("openai", "gpt-4.1-nano", Usage{Input: 3}); c.USD() != "0.0000003" {
		t.Errorf("3 × 0.10 per 1M: %s", c.USD())
	}
}

func TestOverflowIsUnpriced(t *testing.T) {
	b := defaultBook(t)
	huge := int64(maxTokens) * 1 << 22
	c := b.Cost("openai", "gpt-4o", Usage{Input: huge, CacheRead: huge, Output: huge})
	if !c.Unpriced || c.Reason != Overflow {
		t.Errorf("absurd counts: %+v", c)
	}
}

// TestContractOnlyAfterEffectiveFrom: a term applies to requests that
// start at or after effective_from, never before; the latest term in force
// wins; explicit rates replace list unit prices; list cost stays visible.
func TestContractOnlyAfterEffectiveFrom(t *testing.T) {
	b := defaultBook(t)
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	later := from.AddDate(0, 1, 0)
	c, err := NewContract([]ContractTerm{
		{EffectiveFrom: later, Rates: []ContractRate{{Model: "claude-sonnet-4-5", Prices: PriceSet{Input: "2", Output: "10"}}}},
		{EffectiveFrom: from, DiscountPercent: "20"},
	})
	if err != nil {
		t.Fatal(err)
	}
	u := Usage{Input: 100000, Output: 10000} // list: 100K × 3 + 10K × 15 = 0.3 + 0.15
	for _, tc := range []struct {
		start      time.Time
		want, list string
	}{
		{from.Add(-time.Nanosecond), "0.45", "0.45"},
		{from, "0.36", "0.45"},                    // 20 % off
		{later.Add(-time.Second), "0.36", "0.45"}, // still the first term
		{later, "0.3", "0.45"},                    // 100K × 2 + 10K × 10
		{later.AddDate(5, 0, 0), "0.3", "0.45"},
	} {
		cost := b.CostAt("anthropic", "claude-sonnet-4-5", u, c, tc.start)
		if cost.USD() != tc.want || cost.ListNanoUSD.String() != tc.list {
			t.Errorf("start %s: %s (list %s), want %s (list %s)", tc.start.Format(time.RFC3339Nano), cost.USD(), cost.ListNanoUSD, tc.want, tc.list)
		}
	}
	// The dated alias finds the contract's rates by the row's name.
	if cost := b.CostAt("anthropic", "claude-sonnet-4-5-20250929", u, c, later); cost.USD() != "0.3" {
		t.Errorf("alias under contract rates: %s", cost.USD())
	}
	// A nil contract prices at list.
	if cost := b.CostAt("anthropic", "claude-sonnet-4-5", u, nil, later); cost.USD() != "0.45" || !cost.ContractFrom.IsZero() {
		t.Errorf("nil contract: %+v", cost)
	}
	// A contract can price a model the book does not know.
	custom, _ := NewContract([]ContractTerm{{EffectiveFrom: from, Rates: []ContractRate{{Model: "ft:gpt-4o:acme", Prices: PriceSet{Input: "3.75", Output: "15"}}}}})
	if cost := b.CostAt("openai", "ft:gpt-4o:acme", Usage{Input: 1000000}, custom, from); cost.USD() != "3.75" {
		t.Errorf("contract-only model: %+v", cost)
	}
	if cost := b.CostAt("openai", "ft:gpt-4o:acme", Usage{Input: 1000000}, custom, from.Add(-1)); !cost.Unpriced {
		t.Errorf("contract-only model before the term: %+v", cost)
	}
}

func TestContractRefusesBadTerms(t *testing.T) {
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		term ContractTerm
		want string
	}{
		{ContractTerm{EffectiveFrom: at, DiscountPercent: "-5"}, "negative"},
		{ContractTerm{EffectiveFrom: at, DiscountPercent: "150"}, "over 100"},
		{ContractTerm{EffectiveFrom: at, DiscountPercent: "ten"}, "not a decimal"},
		{ContractTerm{DiscountPercent: "5"}, "effective_from"},
		{ContractTerm{EffectiveFrom: at}, "discount_percent, rates"},
		{ContractTerm{EffectiveFrom: at, Rates: []ContractRate{{Model: "gpt-4o", Prices: PriceSet{Input: "0.0000025"}}}}, "per-token"},
		{ContractTerm{EffectiveFrom: at, Rates: []ContractRate{{Model: "gpt-4o", Prices: PriceSet{Input: "NaN"}}}}, "not a decimal"},
	} {
		_, err := NewContract([]ContractTerm{tc.term})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one saying %q", tc.term, err, tc.want)
		}
	}
	_, err := NewContract([]ContractTerm{{EffectiveFrom: at, DiscountPercent: "1"}, {EffectiveFrom: at, DiscountPercent: "2"}})
	if err == nil {
		t.Error("two terms from the same instant were accepted")
	}
}

func TestCostJSON(t *testing.T) {
	b := defaultBook(t)
	from := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	c, _ := NewContract([]ContractTerm{{EffectiveFrom: from, DiscountPercent: "12.5"}})
	cost := b.CostAt("anthropic", "claude-sonnet-4-5-20250929", FromAnthropic(usageFile(t, "anthropic_cache_split.json")), c, from)
	data, err := json.Marshal(cost)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	// 0.039075 × 0.875 = 0.034190625
	want := map[string]any{"total_usd": "0.034190625", "total_nano_usd": 34190625.0, "list_nano_usd": 39075000.0,
		"priced_model": "claude-sonnet-4-5", "service_tier": "standard", "discount_percent": "12.5",
		"contract_from": "2026-12-01T00:00:00Z"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (in %s)", k, got[k], v, data)
		}
	}
	unit := got["unit_prices"].(map[string]any)
	if unit["cache_write_1h"] != "6" || unit["cache_read"] != "0.3" || len(unit) != 5 {
		t.Errorf("unit prices %v", unit)
	}
	tokens := got["tokens"].(map[string]any)
	if tokens["cache_write_5m"] != 48.0 || tokens["cache_write_1h"] != 200.0 {
		t.Errorf("tokens %v", tokens)
	}
	// A stored record reads back to the same cost.
	for _, want := range []Cost{cost, b.Cost("openai", "gpt-99", Usage{Input: 1}),
		b.Cost("gemini", "gemini-2.5-pro", FromGemini(usageFile(t, "gemini_pro_long_context.json")))} {
		data, _ := json.Marshal(want)
		var back Cost
		if err := json.Unmarshal(data, &back); err != nil {
			t.Fatal(err)
		}
		if back != want {
			t.Errorf("round trip:\n got %+v\nwant %+v", back, want)
		}
	}
}

// TestFallbacks: a class a price set does not price is charged as
// PriceSet documents: cache reads and 5 m writes as input, 1 h writes as
// 5 m writes, reasoning as output; and the unit used is on the cost.
func TestFallbacks(t *testing.T) {
	eff, err := Apply(Default(), []Override{{Provider: "azure", Model: "dep", Standard: PriceSet{Input: "2", CacheWrite5m: "2.5", Output: "8"}}})
	if err != nil {
		t.Fatal(err)
	}
	b := MustCompile(eff)
	for _, tc := range []struct {
		provider, model string
		u               Usage
		want            string
		class           Class
		unit            string
	}{
		// Cohere prices no cache read: cached tokens are input
		{"cohere", "command-a-03-2025", Usage{CacheRead: 1000000}, "2.5", CacheRead, "2.5"},
		// gpt-4o's batch set has no cache read: the batch input price
		{"openai", "gpt-4o", Usage{CacheRead: 1000000, Tier: Batch}, "1.25", CacheRead, "1.25"},
		{"azure", "dep", Usage{CacheWrite1h: 1000000}, "2.5", CacheWrite1h, "2.5"},
		{"azure", "dep", Usage{CacheRead: 1000000}, "2", CacheRead, "2"},
		{"azure", "dep", Usage{Output: 1000000, Reasoning: 1000000, ReasoningApart: true}, "16", Reasoning, "8"},
	} {
		c := b.Cost(tc.provider, tc.model, tc.u)
		if c.USD() != tc.want || c.Unit[tc.class].String() != tc.unit {
			t.Errorf("%s/%s %+v: %s at unit %s, want %s at %s", tc.provider, tc.model, tc.u, c.USD(), c.Unit[tc.class], tc.want, tc.unit)
		}
	}
}
