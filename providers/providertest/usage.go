package providertest

// Usage is what a fake's default answers report, by price class, whatever
// the provider: SetUsage makes every kind render it in its provider's own
// usage block, whole and streamed, so a test can price a request with
// cache reads, cache writes and reasoning on any of the eight providers.
type Usage struct {
	// Input is the uncached input, CacheRead the input read from the
	// provider's prompt cache, CacheWrite5m and CacheWrite1h the input
	// written to it for 5 minutes or 1 hour (Anthropic reports the two
	// lifetimes; the others count writes as plain input).
	Input, CacheRead, CacheWrite5m, CacheWrite1h int
	// Output counts the output, Reasoning included (as OpenAI counts it).
	Output, Reasoning int
	// ServiceTier, when set, is the tier the answer says it served on:
	// OpenAI's service_tier beside the usage, Anthropic's
	// usage.service_tier.
	ServiceTier string
}

// SetUsage makes the fake's default answers report u (nil: each kind's
// own fixed usage again). A responder set with SetResponder still decides
// its own answers.
func (s *Server) SetUsage(u *Usage) {
	s.mu.Lock()
	s.usage = u
	s.mu.Unlock()
}

// prompt is the whole input, as OpenAI's prompt_tokens counts it.
func (u Usage) prompt() int { return u.Input + u.CacheRead + u.CacheWrite5m + u.CacheWrite1h }

// OpenAI is the usage object of OpenAI's chat completions: prompt_tokens
// includes the cached tokens, completion_tokens the reasoning tokens.
func (u Usage) OpenAI() map[string]any {
	m := map[string]any{"prompt_tokens": u.prompt(), "completion_tokens": u.Output, "total_tokens": u.prompt() + u.Output,
		"prompt_tokens_details": map[string]any{"cached_tokens": u.CacheRead}}
	if u.Reasoning > 0 {
		m["completion_tokens_details"] = map[string]any{"reasoning_tokens": u.Reasoning}
	}
	return m
}

// Responses is the usage object of OpenAI's Responses API.
func (u Usage) Responses() map[string]any {
	return map[string]any{"input_tokens": u.prompt(), "input_tokens_details": map[string]any{"cached_tokens": u.CacheRead},
		"output_tokens": u.Output, "output_tokens_details": map[string]any{"reasoning_tokens": u.Reasoning},
		"total_tokens": u.prompt() + u.Output}
}

// Anthropic is the usage as the Anthropic fake reports it (input_tokens
// excludes both cache counters; the writes split by lifetime).
func (u Usage) Anthropic() AnthropicUsage {
	return AnthropicUsage{Input: u.Input, Output: u.Output, CacheRead: u.CacheRead, CacheCreation: u.CacheWrite5m + u.CacheWrite1h,
		CacheWrite5m: u.CacheWrite5m, CacheWrite1h: u.CacheWrite1h, ServiceTier: u.ServiceTier}
}

// Gemini is the usage as the Gemini fake reports it (usageMetadata:
// thoughts apart from candidates).
func (u Usage) Gemini() GeminiUsage {
	return GeminiUsage{Prompt: u.prompt(), Cached: u.CacheRead, Candidates: u.Output - u.Reasoning, Thoughts: u.Reasoning}
}

// Cohere is the usage as the Cohere fake reports it (billed units as the
// tokens).
func (u Usage) Cohere() CohereUsage {
	c := CohereTokens(u.prompt(), u.Output)
	c.CachedTokens = u.CacheRead
	return c
}
