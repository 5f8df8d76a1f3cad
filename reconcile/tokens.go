package reconcile

import "github.com/agentrouter/caddy-agentrouter/pricing"

// Tokens are token counts by price class, as both sides report them. The
// classes do not overlap: Input is the uncached input only; Output
// includes any reasoning tokens (both OpenAI and Anthropic bill reasoning
// as output and count it in their output figure).
//
// For OpenAI, Input is every prompt token not read from the cache
// (input_tokens − input_cached_tokens), cache writes included, as the
// gateway's usage reader counts it; CacheWrite5m and CacheWrite1h are
// Anthropic's two cache-write lifetimes.
type Tokens struct {
	Input        int64 `json:"input"`
	CacheRead    int64 `json:"cache_read"`
	CacheWrite5m int64 `json:"cache_write_5m"`
	CacheWrite1h int64 `json:"cache_write_1h"`
	Output       int64 `json:"output"`
}

// Total is the sum of every class.
func (t Tokens) Total() int64 {
	return t.Input + t.CacheRead + t.CacheWrite5m + t.CacheWrite1h + t.Output
}

// Add adds u to t.
func (t *Tokens) Add(u Tokens) {
	t.Input += u.Input
	t.CacheRead += u.CacheRead
	t.CacheWrite5m += u.CacheWrite5m
	t.CacheWrite1h += u.CacheWrite1h
	t.Output += u.Output
}

// Minus is t − u, class by class.
func (t Tokens) Minus(u Tokens) Tokens {
	return Tokens{t.Input - u.Input, t.CacheRead - u.CacheRead, t.CacheWrite5m - u.CacheWrite5m,
		t.CacheWrite1h - u.CacheWrite1h, t.Output - u.Output}
}

// Usage is t as the price book's usage, to price it.
func (t Tokens) Usage() pricing.Usage {
	return pricing.Usage{Input: t.Input, CacheRead: t.CacheRead, CacheWrite5m: t.CacheWrite5m,
		CacheWrite1h: t.CacheWrite1h, Output: t.Output}
}

// TokensOf reads the price book's usage (the gateway's view of one
// request, pricing.FromProvider) into Tokens.
func TokensOf(u pricing.Usage) Tokens {
	out := u.Output
	if u.ReasoningApart {
		out += u.Reasoning
	}
	return Tokens{Input: u.Input, CacheRead: u.CacheRead, CacheWrite5m: u.CacheWrite5m, CacheWrite1h: u.CacheWrite1h, Output: out}
}
