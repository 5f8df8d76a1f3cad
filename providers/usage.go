package providers

import (
	"encoding/json"

	"github.com/tidwall/gjson"
)

// Usage is token usage in OpenAI's terms: PromptTokens includes cached
// input, CompletionTokens includes reasoning (thinking) tokens. Raw keeps the
// provider's own usage object for billing (cache writes and reads are priced
// differently from plain input).
type Usage struct {
	PromptTokens     int64           `json:"prompt_tokens"`
	CompletionTokens int64           `json:"completion_tokens"`
	TotalTokens      int64           `json:"total_tokens"`
	CachedTokens     int64           `json:"cached_tokens,omitempty"`
	ReasoningTokens  int64           `json:"reasoning_tokens,omitempty"`
	Raw              json.RawMessage `json:"raw,omitempty"`
}

// Reported tells whether the provider reported any usage.
func (u Usage) Reported() bool {
	return u.TotalTokens > 0 || u.PromptTokens > 0 || u.CompletionTokens > 0
}

// openAIUsage reads an OpenAI-shaped usage object.
func openAIUsage(r gjson.Result) Usage {
	if !r.IsObject() {
		return Usage{}
	}
	u := Usage{
		PromptTokens:     r.Get("prompt_tokens").Int(),
		CompletionTokens: r.Get("completion_tokens").Int(),
		TotalTokens:      r.Get("total_tokens").Int(),
		CachedTokens:     r.Get("prompt_tokens_details.cached_tokens").Int(),
		ReasoningTokens:  r.Get("completion_tokens_details.reasoning_tokens").Int(),
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
