package pricing

import (
	"testing"
)

func TestFromAnthropicSplit(t *testing.T) {
	for _, tc := range []struct {
		raw    string
		w5, w1 int64
	}{
		// the split is the write: not added to cache_creation_input_tokens
		{`{"cache_creation_input_tokens":300,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200}}`, 100, 200},
		// a remainder the split does not cover is a 5 m write
		{`{"cache_creation_input_tokens":350,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200}}`, 150, 200},
		// no split: all 5 m (the default lifetime)
		{`{"cache_creation_input_tokens":350}`, 350, 0},
		// split without the total (a stream's merged usage may lack it)
		{`{"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":64}}`, 0, 64},
		// null split
		{`{"cache_creation_input_tokens":10,"cache_creation":null}`, 10, 0},
	} {
		u := FromAnthropic([]byte(tc.raw))
		if u.CacheWrite5m != tc.w5 || u.CacheWrite1h != tc.w1 {
			t.Errorf("%s: 5m %d 1h %d, want %d %d", tc.raw, u.CacheWrite5m, u.CacheWrite1h, tc.w5, tc.w1)
		}
	}
	if u := FromAnthropic([]byte(`{"input_tokens":5,"output_tokens":7,"service_tier":"priority"}`)); u.Tier != PriorityTier || u.Input != 5 || u.Output != 7 {
		t.Errorf("%+v", u)
	}
}

func TestFromGeminiTier(t *testing.T) {
	for word, want := range map[string]Tier{"ON_DEMAND": Standard, "ON_DEMAND_PRIORITY": PriorityTier, "FLEX": Flex, "BATCH": Batch, "": Standard} {
		u := FromGemini([]byte(`{"promptTokenCount":10,"trafficType":"` + word + `"}`))
		if u.Tier != want {
			t.Errorf("trafficType %q: %s, want %s", word, u.Tier, want)
		}
	}
	// toolUsePromptTokenCount is input
	u := FromGemini([]byte(`{"promptTokenCount":100,"toolUsePromptTokenCount":50,"candidatesTokenCount":1}`))
	if u.Input != 150 || u.Prompt() != 150 {
		t.Errorf("%+v", u)
	}
}

func TestFromCohereFallsBackToTokens(t *testing.T) {
	u := FromCohere([]byte(`{"tokens":{"input_tokens":71,"output_tokens":9},"cached_tokens":20}`))
	if u.Input != 51 || u.CacheRead != 20 || u.Output != 9 {
		t.Errorf("%+v", u)
	}
}

func TestFromProviderDispatch(t *testing.T) {
	chat := []byte(`{"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":4}}`)
	for _, p := range []string{"openai", "azure", "mistral", "together", "perplexity"} {
		if u := FromProvider(p, chat); u.Input != 6 || u.CacheRead != 4 || u.Output != 5 {
			t.Errorf("%s: %+v", p, u)
		}
	}
	if u := FromProvider("perplexity", []byte(`{"prompt_tokens":1,"completion_tokens":2,"reasoning_tokens":3}`)); !u.ReasoningApart || u.Reasoning != 3 {
		t.Errorf("perplexity reasoning: %+v", u)
	}
}

// TestUsageGarbage: bad blocks yield zero or bounded counts, never
// negative ones or a panic.
func TestUsageGarbage(t *testing.T) {
	for _, raw := range []string{
		``, `null`, `[]`, `"x"`, `{`, `{"prompt_tokens":-5,"completion_tokens":"9"}`,
		`{"prompt_tokens":1e300,"completion_tokens":99999999999999999999}`,
		`{"prompt_tokens":5,"prompt_tokens_details":{"cached_tokens":50}}`,
		`{"input_tokens":{"a":1},"cache_creation":{"ephemeral_5m_input_tokens":-3}}`,
	} {
		for _, p := range Providers {
			u := FromProvider(p, []byte(raw))
			checkUsageSane(t, p+" "+raw, u)
		}
	}
	if u := FromOpenAI([]byte(`{"prompt_tokens":1e300}`)); u.Input != maxTokens {
		t.Errorf("huge count: %+v", u)
	}
}

func checkUsageSane(t *testing.T, what string, u Usage) {
	t.Helper()
	for _, n := range []int64{u.Input, u.CacheRead, u.CacheWrite5m, u.CacheWrite1h, u.Output, u.Reasoning, u.PromptTokens} {
		if n < 0 || n > 2*maxTokens {
			t.Errorf("%s: out-of-range count in %+v", what, u)
		}
	}
}

func FuzzFromProvider(f *testing.F) {
	for _, name := range []string{"openai_chat_cached_reasoning.json", "anthropic_cache_split.json", "gemini_pro_long_context.json",
		"cohere_billed_units.json", "perplexity_deep_research.json"} {
		f.Add(usageFile(f, name))
	}
	b := defaultBook(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, p := range Providers {
			u := FromProvider(p, raw)
			checkUsageSane(t, p, u)
			c := b.Cost(p, "gpt-4o", u)
			if !c.Unpriced && c.NanoUSD < 0 {
				t.Fatalf("negative cost %+v", c)
			}
		}
	})
}
