package providers

import (
	"fmt"
	"strings"
)

// The built-in catalog maps model names to providers (reference:
// providers.md §11). It is data: extend the tables, not the code.

// knownModels are exact IDs, checked before prefixes. They matter where a
// name's first segment looks like a provider but is not one (Together hosts
// "openai/gpt-oss-120b").
var knownModels = map[string]string{
	"openai/gpt-oss-120b": Together,
	"openai/gpt-oss-20b":  Together,
}

// prefixRules map a model-name prefix to its provider, in order.
var prefixRules = []struct{ prefix, provider string }{
	// Gemini's text-embedding-004 comes before OpenAI's text-embedding-,
	// which would otherwise claim it.
	{"text-embedding-004", Gemini},
	{"gpt-", OpenAI}, {"chatgpt-", OpenAI}, {"o1", OpenAI}, {"o3", OpenAI}, {"o4", OpenAI},
	{"ft:gpt-", OpenAI}, {"text-embedding-", OpenAI}, {"davinci-", OpenAI}, {"babbage-", OpenAI},
	{"claude-", Anthropic},
	{"gemini-", Gemini}, {"gemma-", Gemini}, {"models/gemini-", Gemini},
	{"mistral-", Mistral}, {"open-mistral-", Mistral}, {"open-mixtral-", Mistral}, {"codestral", Mistral},
	{"ministral-", Mistral}, {"pixtral-", Mistral}, {"magistral-", Mistral}, {"devstral-", Mistral}, {"voxtral-", Mistral},
	{"sonar", Perplexity}, {"r1-1776", Perplexity},
	{"command", Cohere}, {"c4ai-aya-", Cohere}, {"embed-", Cohere},
	// Together hosts open models under Hugging Face-style organisations.
	{"meta-llama/", Together}, {"mistralai/", Together}, {"Qwen/", Together}, {"deepseek-ai/", Together},
	{"google/gemma", Together}, {"NousResearch/", Together}, {"togethercomputer/", Together},
	{"moonshotai/", Together}, {"zai-org/", Together},
}

// ExampleModels are listed by GET /v1/models for providers the account can
// reach, alongside the models declared in the config.
var ExampleModels = map[string][]string{
	OpenAI:     {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "o3", "o4-mini", "text-embedding-3-small", "text-embedding-3-large"},
	Anthropic:  {"claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"},
	Gemini:     {"gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite"},
	Mistral:    {"mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "codestral-latest", "mistral-embed"},
	Together:   {"meta-llama/Llama-3.3-70B-Instruct-Turbo", "deepseek-ai/DeepSeek-V3", "Qwen/Qwen2.5-72B-Instruct-Turbo", "openai/gpt-oss-120b"},
	Perplexity: {"sonar", "sonar-pro", "sonar-reasoning", "sonar-reasoning-pro", "sonar-deep-research"},
	Cohere:     {"command-a-03-2025", "command-r-plus-08-2024", "command-r7b-12-2024"},
}

// SplitProviderPrefix splits "provider/model" when provider is one of ours.
func SplitProviderPrefix(model string) (provider, rest string, ok bool) {
	i := strings.IndexByte(model, '/')
	if i <= 0 || i == len(model)-1 {
		return "", "", false
	}
	if _, known := registry[model[:i]]; !known {
		return "", "", false
	}
	return model[:i], model[i+1:], true
}

// CatalogProvider returns the provider the built-in catalog assigns to
// model: exact IDs first, then prefixes. Azure is never guessed (its
// deployment names are arbitrary); it is reached through config or an
// explicit "azure/" prefix.
func CatalogProvider(model string) (string, bool) {
	if p, ok := knownModels[model]; ok {
		return p, true
	}
	for _, r := range prefixRules {
		if strings.HasPrefix(model, r.prefix) {
			return r.provider, true
		}
	}
	return "", false
}

// IsKnownModel reports whether model is an exact catalog ID.
func IsKnownModel(model string) bool {
	_, ok := knownModels[model]
	return ok
}

// CheckModel reports why no provider would serve model, or nil: declared
// says whether the config declares the name. Routing uses it to check
// aliases and route targets when the config loads.
func CheckModel(model string, declared func(string) bool) error {
	if declared(model) || IsKnownModel(model) {
		return nil
	}
	if _, _, ok := SplitProviderPrefix(model); ok {
		return nil
	}
	if _, ok := CatalogProvider(model); ok {
		return nil
	}
	if i := strings.IndexByte(model, '/'); i > 0 && !strings.Contains(model[:i], ".") {
		return fmt.Errorf("unknown provider %q in model %q (supported: %s)", model[:i], model, strings.Join(Names, ", "))
	}
	return fmt.Errorf("no provider serves model %q: use a catalog name, a declared model or 'provider/model'", model)
}

// CatalogModels lists every model the catalog names, by provider: the exact
// IDs and the examples. The price book's test holds each to a price.
func CatalogModels() map[string][]string {
	out := map[string][]string{}
	for p, ms := range ExampleModels {
		out[p] = append(out[p], ms...)
	}
	for m, p := range knownModels {
		out[p] = append(out[p], m)
	}
	return out
}
