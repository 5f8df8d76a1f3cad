package providers

import (
	"strings"
)

// Model limits: how much each catalog model reads and writes, in tokens.
// They are data, like the catalog: extend the table, not the code.
//
// A translated request's output limit is clamped to its target's maximum
// output (Claude Code asks for max_tokens 32000, which gpt-4o, at 16,384,
// refuses), and a request that gives none gets the target's maximum where
// the provider requires a limit (Anthropic), rather than a flat 4,096 that
// cuts long tool arguments short. The context window is kept beside it for
// what clients must be told (Claude Code assumes 200,000 tokens for every
// model).

// ModelSpec is one model's limits.
type ModelSpec struct {
	// Context is the context window: input and output together (for
	// Gemini, the input limit).
	Context int
	// MaxOutput is the most tokens one answer may have.
	MaxOutput int
}

// modelSpecs holds the limits the providers publish, by upstream model
// name. Sources: platform.openai.com/docs/models (each model's page),
// docs.claude.com/en/docs/about-claude/models/overview,
// ai.google.dev/gemini-api/docs/models, docs.cohere.com/docs/models.
var modelSpecs = map[string]ModelSpec{
	// OpenAI.
	"gpt-4o":            {128_000, 16_384},
	"gpt-4o-2024-05-13": {128_000, 4_096}, // the first snapshot wrote at most 4,096
	"gpt-4o-mini":       {128_000, 16_384},
	"chatgpt-4o-latest": {128_000, 16_384},
	"gpt-4.1":           {1_047_576, 32_768},
	"gpt-4.1-mini":      {1_047_576, 32_768},
	"gpt-4.1-nano":      {1_047_576, 32_768},
	"gpt-5":             {400_000, 128_000},
	"gpt-5-mini":        {400_000, 128_000},
	"gpt-5-nano":        {400_000, 128_000},
	"o1":                {200_000, 100_000},
	"o3":                {200_000, 100_000},
	"o3-mini":           {200_000, 100_000},
	"o4-mini":           {200_000, 100_000},
	"gpt-4-turbo":       {128_000, 4_096},
	"gpt-3.5-turbo":     {16_385, 4_096},

	// Anthropic.
	"claude-opus-4-5":   {200_000, 64_000},
	"claude-opus-4-1":   {200_000, 32_000},
	"claude-opus-4-0":   {200_000, 32_000},
	"claude-opus-4":     {200_000, 32_000},
	"claude-sonnet-4-5": {200_000, 64_000},
	"claude-sonnet-4-0": {200_000, 64_000},
	"claude-sonnet-4":   {200_000, 64_000},
	"claude-haiku-4-5":  {200_000, 64_000},
	"claude-3-7-sonnet": {200_000, 64_000},
	"claude-3-5-haiku":  {200_000, 8_192},
	"claude-3-haiku":    {200_000, 4_096},

	// Gemini.
	"gemini-3-pro-preview":   {1_048_576, 65_536},
	"gemini-3-flash-preview": {1_048_576, 65_536},
	"gemini-2.5-pro":         {1_048_576, 65_536},
	"gemini-2.5-flash":       {1_048_576, 65_536},
	"gemini-2.5-flash-lite":  {1_048_576, 65_536},
	"gemini-2.0-flash":       {1_048_576, 8_192},
	"gemini-2.0-flash-lite":  {1_048_576, 8_192},

	// Cohere.
	"command-a-03-2025":      {256_000, 8_000},
	"command-r-plus-08-2024": {128_000, 4_000},
	"command-r-08-2024":      {128_000, 4_000},
	"command-r7b-12-2024":    {128_000, 4_000},
}

// Spec returns the limits of model (an upstream name, "models/" prefix or
// not): the exact name first, then the name without a dated snapshot
// suffix (-20250929, -2024-08-06) or -latest, so that
// claude-sonnet-4-5-20250929 and claude-3-5-haiku-latest find their
// family. ok is false for a model the table does not know.
func Spec(model string) (ModelSpec, bool) {
	model = strings.TrimPrefix(model, "models/")
	if s, ok := modelSpecs[model]; ok {
		return s, true
	}
	if base, ok := undated(model); ok {
		s, ok := modelSpecs[base]
		return s, ok
	}
	return ModelSpec{}, false
}

// undated strips a snapshot suffix: -latest, -YYYYMMDD or -YYYY-MM-DD.
func undated(model string) (string, bool) {
	if base, ok := strings.CutSuffix(model, "-latest"); ok {
		return base, true
	}
	if i := strings.LastIndexByte(model, '-'); i > 0 && len(model)-i-1 == 8 && allDigits(model[i+1:]) {
		return model[:i], true
	}
	if n := len(model); n > 11 && model[n-11] == '-' && model[n-6] == '-' && model[n-3] == '-' &&
		allDigits(model[n-10:n-6]) && allDigits(model[n-5:n-3]) && allDigits(model[n-2:]) {
		return model[:n-11], true
	}
	return "", false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// clampOutput bounds an output limit a client gave to the model's maximum
// (unknown models keep it).
func clampOutput(model string, n int) int {
	if s, ok := Spec(model); ok && n > s.MaxOutput {
		return s.MaxOutput
	}
	return n
}

// clampOutputPtr is clampOutput for an optional limit.
func clampOutputPtr(model string, n *int) *int {
	if n == nil {
		return nil
	}
	v := clampOutput(model, *n)
	return &v
}

// fallbackMaxTokens is the output limit sent to a provider that requires
// one, for a model the table does not know when the operator set no bound
// (LiteLLM's DEFAULT_ANTHROPIC_CHAT_MAX_TOKENS).
const fallbackMaxTokens = 4096

// defaultOutput is the output limit for a request that gave none, sent to
// providers that require one: the model's maximum, at most bound (the
// operator's default_max_tokens; 0 for none). A model the table does not
// know gets bound, or fallbackMaxTokens.
func defaultOutput(model string, bound int) int {
	s, ok := Spec(model)
	switch {
	case !ok && bound > 0:
		return bound
	case !ok:
		return fallbackMaxTokens
	case bound > 0 && bound < s.MaxOutput:
		return bound
	}
	return s.MaxOutput
}
