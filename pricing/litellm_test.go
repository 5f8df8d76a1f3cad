package pricing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readSample(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "litellm_sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestImportLiteLLM(t *testing.T) {
	base := Default()
	imp, err := ImportLiteLLM(readSample(t), base)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Override{}
	for _, o := range imp.Overrides {
		got[o.Provider+"/"+o.Model] = o
	}
	// Only the models the book prices, under our names; Vertex's
	// "gemini-2.5-pro", Azure's and the unknown gpt-99 are not imported.
	want := []string{"anthropic/claude-sonnet-4-5", "cohere/command-r7b-12-2024", "gemini/gemini-2.5-pro", "mistral/mistral-large-latest",
		"openai/gpt-4.1", "openai/gpt-4.1-nano", "openai/gpt-4o-mini", "openai/gpt-5", "openai/o4-mini",
		"openai/text-embedding-3-small", "perplexity/sonar-deep-research", "together/openai/gpt-oss-120b"}
	if len(got) != len(want) {
		t.Errorf("imported %d overrides, want %d: %v", len(got), len(want), keys(got))
	}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("no override for %s", k)
		}
	}
	// Per-token → per-1M is a change of scale, exact (decimal_test has the
	// values where float64 is not).
	o4 := got["openai/o4-mini"].Standard
	if o4.Input != "1.1" || o4.CacheRead != "0.275" || o4.Output != "4.4" {
		t.Errorf("o4-mini %+v", o4)
	}
	if s := got["cohere/command-r7b-12-2024"].Standard; s.Input != "0.0375" || s.Output != "0.15" {
		t.Errorf("command-r7b %+v", s)
	}
	son := got["anthropic/claude-sonnet-4-5"]
	if son.Standard.CacheWrite5m != "3.75" || son.Standard.CacheWrite1h != "6" || son.Standard.Output != "15" {
		t.Errorf("sonnet standard %+v (the canonical key must win over the dated one)", son.Standard)
	}
	if l := son.LongContext; l == nil || l.Above != 200000 || l.Standard.CacheWrite1h != "12" || l.Standard.Output != "22.5" {
		t.Errorf("sonnet long context %+v", l)
	}
	if b := son.Batch; b == nil || b.Input != "1.5" || b.Output != "7.5" {
		t.Errorf("sonnet batch %+v", b)
	}
	g5 := got["openai/gpt-5"]
	if g5.Flex == nil || g5.Flex.CacheRead != "0.0625" || g5.Priority == nil || g5.Priority.Output != "20" || g5.Batch.Input != "0.625" {
		t.Errorf("gpt-5 tiers %+v %+v %+v", g5.Flex, g5.Priority, g5.Batch)
	}
	if dr := got["perplexity/sonar-deep-research"].Standard; dr.Reasoning != "3" {
		t.Errorf("deep research %+v", dr)
	}
	if s := got["openai/gpt-4.1"].Standard; s.Input != "2" || s.Output != "" {
		t.Errorf("gpt-4.1 keeps its good fields only: %+v", s)
	}
	for _, note := range []string{
		`gpt-4.1: output_cost_per_token = 8: `, `gpt-4.1-mini: input_cost_per_token = 1e-20: more precise`,
		`gpt-4.1-nano: input_cost_per_token = -1e-07: negative`, `gpt-4o-mini: input_cost_per_token is not a number`,
		`claude-sonnet-4-5-20250929: anthropic/claude-sonnet-4-5 is already imported`,
	} {
		if !containsPrefix(imp.Skipped, note) {
			t.Errorf("no note %q in %q", note, imp.Skipped)
		}
	}
	// The overrides apply, and where LiteLLM agrees with the book the costs
	// do too.
	eff, err := Apply(base, imp.Overrides)
	if err != nil {
		t.Fatal(err)
	}
	before, after := MustCompile(base), MustCompile(eff)
	u := FromAnthropic(usageFile(t, "anthropic_cache_split.json"))
	if a, b := before.Cost("anthropic", "claude-sonnet-4-5", u), after.Cost("anthropic", "claude-sonnet-4-5", u); a.NanoUSD != b.NanoUSD {
		t.Errorf("sonnet: %s before the import, %s after", a.USD(), b.USD())
	}
	if c := after.Cost("mistral", "mistral-large-latest", Usage{Input: 1000000}); c.USD() != "2" {
		t.Errorf("imported mistral-large-latest input: %s", c.USD())
	}
}

func TestImportLiteLLMRefusesNonObject(t *testing.T) {
	for _, data := range []string{``, `[]`, `"x"`, `{"a":`, `nul`} {
		if _, err := ImportLiteLLM([]byte(data), Default()); err == nil {
			t.Errorf("%q was accepted", data)
		}
	}
	imp, err := ImportLiteLLM([]byte(`{"a":1,"b":[],"c":{"litellm_provider":7}}`), Default())
	if err != nil || len(imp.Overrides) != 0 {
		t.Errorf("%+v %v", imp, err)
	}
}

func TestLiteLLMKey(t *testing.T) {
	for name, want := range map[string]struct {
		c     Class
		tier  Tier
		above int64
		ok    bool
	}{
		"input_cost_per_token":                                        {Input, Standard, 0, true},
		"cache_creation_input_token_cost_above_1hr":                   {CacheWrite1h, Standard, 0, true},
		"cache_creation_input_token_cost_above_1hr_above_200k_tokens": {CacheWrite1h, Standard, 200000, true},
		"output_cost_per_token_above_272k_tokens_priority":            {Output, PriorityTier, 272000, true},
		"input_cost_per_token_batches":                                {Input, Batch, 0, true},
		"input_cost_per_token_above_128k_tokens":                      {Input, Standard, 128000, true},
		"input_cost_per_token_scale":                                  {ok: false},
		"input_cost_per_audio_token":                                  {ok: false},
		"input_cost_per_token_above_k_tokens":                         {ok: false},
		"input_cost_per_token_above_99999999999k_tokens":              {ok: false},
	} {
		c, tier, above, ok := litellmKey(name)
		if ok != want.ok || ok && (c != want.c || tier != want.tier || above != want.above) {
			t.Errorf("%s: %v %v %v %v, want %+v", name, c, tier, above, ok, want)
		}
	}
}

// FuzzImportLiteLLM: any input either is refused or yields overrides that
// apply to the default table; it never panics.
func FuzzImportLiteLLM(f *testing.F) {
	f.Add(readSample(f))
	f.Add([]byte(`{"gpt-4o":{"litellm_provider":"openai","input_cost_per_token":2.5e-06,"output_cost_per_token_above_200k_tokens_flex":1e-5}}`))
	f.Add([]byte(`{"gpt-4o":{"litellm_provider":"openai","input_cost_per_token":1E+2}}`))
	base := Default()
	f.Fuzz(func(t *testing.T, data []byte) {
		imp, err := ImportLiteLLM(data, base)
		if err != nil {
			return
		}
		if _, err := Apply(base, imp.Overrides); err != nil {
			t.Fatalf("imported overrides do not apply: %v", err)
		}
	})
}

func keys(m map[string]Override) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
