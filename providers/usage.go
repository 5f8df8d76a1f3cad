package providers

import (
	"encoding/json"
	"strings"

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
// (prompt includes cached input, completion includes reasoning). One pass
// over the object, allocating only the copy of it Raw keeps (r's text may
// be a view of a pooled buffer); a member named twice is read at its
// first copy, as gjson.Get reads it.
func openAIUsage(r gjson.Result) Usage {
	if !r.IsObject() {
		return Usage{}
	}
	// [0] is the chat completions member, [1] the Responses one: chat's
	// wins where an object has both.
	var prompt, completion, cached, reasoning [2]gjson.Result
	var total gjson.Result
	first := func(dst *gjson.Result, v gjson.Result) {
		if !dst.Exists() {
			*dst = v
		}
	}
	r.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens":
			first(&prompt[0], v)
		case "input_tokens":
			first(&prompt[1], v)
		case "completion_tokens":
			first(&completion[0], v)
		case "output_tokens":
			first(&completion[1], v)
		case "total_tokens":
			first(&total, v)
		case "prompt_tokens_details":
			first(&cached[0], v.Get("cached_tokens"))
		case "input_tokens_details":
			first(&cached[1], v.Get("cached_tokens"))
		case "completion_tokens_details":
			first(&reasoning[0], v.Get("reasoning_tokens"))
		case "output_tokens_details":
			first(&reasoning[1], v.Get("reasoning_tokens"))
		}
		return true
	})
	either := func(v *[2]gjson.Result) int64 {
		if v[0].Exists() {
			return v[0].Int()
		}
		return v[1].Int()
	}
	u := Usage{
		PromptTokens:     either(&prompt),
		CompletionTokens: either(&completion),
		TotalTokens:      total.Int(),
		CachedTokens:     either(&cached),
		ReasoningTokens:  either(&reasoning),
		Raw:              json.RawMessage(r.Raw),
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u
}

// serviceTier is a service_tier value the Usage keeps: the tiers providers
// name as constants, anything else copied (v may be a view of a pooled
// buffer).
func serviceTier(v string) string {
	switch v {
	case "":
		return ""
	case "default":
		return "default"
	case "auto":
		return "auto"
	case "flex":
		return "flex"
	case "priority":
		return "priority"
	case "scale":
		return "scale"
	case "standard":
		return "standard"
	}
	return strings.Clone(v)
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
