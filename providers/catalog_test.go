package providers

import (
	"strings"
	"testing"
)

func TestSplitProviderPrefix(t *testing.T) {
	for _, tc := range []struct {
		in             string
		provider, rest string
		ok             bool
	}{
		{"openai/gpt-4o", OpenAI, "gpt-4o", true},
		{"anthropic/claude-sonnet-4-5", Anthropic, "claude-sonnet-4-5", true},
		{"gemini/gemini-2.5-pro", Gemini, "gemini-2.5-pro", true},
		{"azure/my-deployment", Azure, "my-deployment", true},
		{"mistral/mistral-large-latest", Mistral, "mistral-large-latest", true},
		{"together/openai/gpt-oss-120b", Together, "openai/gpt-oss-120b", true},
		{"perplexity/sonar", Perplexity, "sonar", true},
		{"cohere/command-a-03-2025", Cohere, "command-a-03-2025", true},
		{"meta-llama/Llama-3.3-70B-Instruct-Turbo", "", "", false},
		{"mistralai/Mixtral-8x7B", "", "", false},
		{"openrouter/gpt-4o", "", "", false},
		{"OpenAI/gpt-4o", "", "", false},
		{"openai/", "", "", false},
		{"/gpt-4o", "", "", false},
		{"openai", "", "", false},
		{"gpt-4o", "", "", false},
		{"", "", "", false},
	} {
		p, rest, ok := SplitProviderPrefix(tc.in)
		if p != tc.provider || rest != tc.rest || ok != tc.ok {
			t.Errorf("SplitProviderPrefix(%q) = %q, %q, %v; want %q, %q, %v", tc.in, p, rest, ok, tc.provider, tc.rest, tc.ok)
		}
	}
}

func TestCatalogProvider(t *testing.T) {
	for _, tc := range []struct {
		model, want string
	}{
		// Exact IDs before prefixes.
		{"openai/gpt-oss-120b", Together},
		{"openai/gpt-oss-20b", Together},
		// OpenAI.
		{"gpt-4o", OpenAI}, {"gpt-5-mini", OpenAI}, {"chatgpt-4o-latest", OpenAI},
		{"o1", OpenAI}, {"o1-mini", OpenAI}, {"o3", OpenAI}, {"o3-mini", OpenAI}, {"o4-mini", OpenAI},
		{"ft:gpt-4o-mini:acme::abc123", OpenAI}, {"text-embedding-3-small", OpenAI},
		{"davinci-002", OpenAI}, {"babbage-002", OpenAI},
		// Anthropic.
		{"claude-sonnet-4-5", Anthropic}, {"claude-3-5-haiku-latest", Anthropic},
		// Gemini.
		{"gemini-2.5-pro", Gemini}, {"gemma-3-27b-it", Gemini}, {"models/gemini-2.5-flash", Gemini},
		{"text-embedding-004", Gemini},
		// Mistral.
		{"mistral-large-latest", Mistral}, {"open-mistral-nemo", Mistral}, {"open-mixtral-8x22b", Mistral},
		{"codestral-latest", Mistral}, {"ministral-8b-latest", Mistral}, {"pixtral-large-latest", Mistral},
		{"magistral-medium-latest", Mistral}, {"devstral-small-latest", Mistral}, {"voxtral-mini-latest", Mistral},
		// Perplexity.
		{"sonar", Perplexity}, {"sonar-reasoning-pro", Perplexity}, {"r1-1776", Perplexity},
		// Cohere.
		{"command-a-03-2025", Cohere}, {"command-r-plus-08-2024", Cohere}, {"c4ai-aya-expanse-32b", Cohere},
		{"embed-v4.0", Cohere},
		// Together.
		{"meta-llama/Llama-3.3-70B-Instruct-Turbo", Together}, {"mistralai/Mixtral-8x7B-Instruct-v0.1", Together},
		{"Qwen/Qwen2.5-72B-Instruct-Turbo", Together}, {"deepseek-ai/DeepSeek-V3", Together},
		{"google/gemma-2-27b-it", Together}, {"NousResearch/Nous-Hermes-2", Together},
		{"togethercomputer/m2-bert-80M-8k-retrieval", Together}, {"moonshotai/Kimi-K2-Instruct", Together},
		{"zai-org/GLM-4.5-Air-FP8", Together},
		// Unknown: no guess.
		{"my-gpt4-deployment", ""}, {"prod-chat", ""}, {"llama3", ""}, {"GPT-4o", ""}, {"", ""},
		{"openai/gpt-4o", ""}, // a provider prefix is SplitProviderPrefix's job, not the catalog's
	} {
		got, ok := CatalogProvider(tc.model)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("CatalogProvider(%q) = %q, %v; want %q", tc.model, got, ok, tc.want)
		}
	}
}

// Azure deployment names are arbitrary: the catalog never guesses Azure.
func TestCatalogNeverGuessesAzure(t *testing.T) {
	for m, p := range knownModels {
		if p == Azure {
			t.Errorf("knownModels maps %q to azure", m)
		}
	}
	for _, r := range prefixRules {
		if r.provider == Azure {
			t.Errorf("prefix %q maps to azure", r.prefix)
		}
	}
	for _, m := range []string{"gpt-4o", "my-deployment", "azure-gpt-4o", "gpt-4o-2024-08-06"} {
		if p, _ := CatalogProvider(m); p == Azure {
			t.Errorf("CatalogProvider(%q) guessed azure", m)
		}
	}
}

// Rules are checked in order, so a rule whose prefix extends an earlier
// rule's prefix for another provider can never match.
func TestCatalogRulesAreReachable(t *testing.T) {
	for j, later := range prefixRules {
		for _, earlier := range prefixRules[:j] {
			if strings.HasPrefix(later.prefix, earlier.prefix) && later.provider != earlier.provider {
				t.Errorf("rule %q -> %s is shadowed by the earlier %q -> %s", later.prefix, later.provider, earlier.prefix, earlier.provider)
			}
		}
		if got, _ := CatalogProvider(later.prefix + "x"); got != later.provider && knownModels[later.prefix+"x"] == "" {
			t.Errorf("CatalogProvider(%q) = %s, want %s from its rule", later.prefix+"x", got, later.provider)
		}
	}
	for m, p := range knownModels {
		if got, ok := CatalogProvider(m); !ok || got != p || !IsKnownModel(m) {
			t.Errorf("known model %q: CatalogProvider = %s, %v; IsKnownModel = %v", m, got, ok, IsKnownModel(m))
		}
	}
	if IsKnownModel("gpt-4o") {
		t.Error("IsKnownModel is true for a prefix-only model")
	}
}

// Every example model the gateway lists maps back to its provider.
func TestExampleModelsMapToTheirProvider(t *testing.T) {
	for p, models := range ExampleModels {
		if Get(p) == nil {
			t.Errorf("ExampleModels has unknown provider %q", p)
		}
		for _, m := range models {
			if got, ok := CatalogProvider(m); !ok || got != p {
				t.Errorf("example %s model %q maps to %q", p, m, got)
			}
		}
	}
}
