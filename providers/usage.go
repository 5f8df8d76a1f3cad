package providers

import (
	"encoding/json"

	"github.com/tidwall/gjson"
)

// Usage is token usage in OpenAI's terms: PromptTokens includes cached
// input, CompletionTokens includes reasoning (thinking) tokens.
//
// Raw keeps the provider's own usage object, whole, whatever door or
// translation the answer went through: what billing reads (pricing's
// FromProvider), as every token class is in it (cache reads, and
// Anthropic's cache writes split by lifetime, which are priced apart from
// plain input), and so is the service tier of Anthropic (service_tier) and
// Gemini (trafficType). OpenAI and Azure report their tier beside the usage
// object: ServiceTier keeps it.
type Usage struct {
	PromptTokens     int64           `json:"prompt_tokens"`
	CompletionTokens int64           `json:"completion_tokens"`
	TotalTokens      int64           `json:"total_tokens"`
	CachedTokens     int64           `json:"cached_tokens,omitempty"`
	ReasoningTokens  int64           `json:"reasoning_tokens,omitempty"`
	Raw              json.RawMessage `json:"raw,omitempty"`
	// ServiceTier is the answer's service_tier where it stands outside the
	// usage object (OpenAI's chat completions and Responses, Azure's).
	ServiceTier string `json:"service_tier,omitempty"`
}

// Reported tells whether the provider reported any usage.
func (u Usage) Reported() bool {
	return u.TotalTokens > 0 || u.PromptTokens > 0 || u.CompletionTokens > 0
}

// openAIUsage reads an OpenAI-shaped usage object: chat completions'
// (prompt_tokens, completion_tokens and their _details), or the Responses
// API's (input_tokens, output_tokens and theirs), in chat terms either way
// (prompt includes cached input, completion includes reasoning).
func openAIUsage(r gjson.Result) Usage {
	if !r.IsObject() {
		return Usage{}
	}
	res := gjson.GetMany(r.Raw, "prompt_tokens", "input_tokens", "completion_tokens", "output_tokens", "total_tokens",
		"prompt_tokens_details.cached_tokens", "input_tokens_details.cached_tokens",
		"completion_tokens_details.reasoning_tokens", "output_tokens_details.reasoning_tokens")
	either := func(chat, responses gjson.Result) int64 {
		if chat.Exists() {
			return chat.Int()
		}
		return responses.Int()
	}
	u := Usage{
		PromptTokens:     either(res[0], res[1]),
		CompletionTokens: either(res[2], res[3]),
		TotalTokens:      res[4].Int(),
		CachedTokens:     either(res[5], res[6]),
		ReasoningTokens:  either(res[7], res[8]),
		Raw:              json.RawMessage(r.Raw),
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u
}

// openAIUsageJSON renders u as OpenAI's usage object.
func openAIUsageJSON(u Usage) map[string]any {
	m := map[string]any{
		"prompt_tokens":     u.PromptTokens,
		"completion_tokens": u.CompletionTokens,
		"total_tokens":      u.TotalTokens,
	}
	if u.CachedTokens > 0 {
		m["prompt_tokens_details"] = map[string]any{"cached_tokens": u.CachedTokens}
	}
	if u.ReasoningTokens > 0 {
		m["completion_tokens_details"] = map[string]any{"reasoning_tokens": u.ReasoningTokens}
	}
	return m
}
