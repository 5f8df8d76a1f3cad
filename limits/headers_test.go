package limits

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func TestParseProviderLimits(t *testing.T) {
	now := date("2026-12-10T12:00:00Z")
	// OpenAI's headers, as its docs show them.
	p := ParseProviderLimits(hdr(
		"x-ratelimit-limit-requests", "60", "x-ratelimit-remaining-requests", "59", "x-ratelimit-reset-requests", "1s",
		"x-ratelimit-limit-tokens", "150000", "x-ratelimit-remaining-tokens", "149984", "x-ratelimit-reset-tokens", "6m0s",
	), now)
	if p.Requests != (Dim{Set: true, Limit: 60, Remaining: 59, Reset: now.Add(time.Second)}) ||
		p.Tokens != (Dim{Set: true, Limit: 150000, Remaining: 149984, Reset: now.Add(6 * time.Minute)}) || p.HasRetryAfter {
		t.Errorf("openai: %+v", p)
	}
	// Anthropic's, reset in RFC 3339, with input and output tokens apart.
	p = ParseProviderLimits(hdr(
		"anthropic-ratelimit-requests-limit", "50", "anthropic-ratelimit-requests-remaining", "0", "anthropic-ratelimit-requests-reset", "2026-12-10T12:00:30Z",
		"anthropic-ratelimit-input-tokens-limit", "40000", "anthropic-ratelimit-input-tokens-remaining", "39000", "anthropic-ratelimit-input-tokens-reset", "2026-12-10T13:00:05+01:00",
		"anthropic-ratelimit-output-tokens-remaining", "8000", "anthropic-ratelimit-output-tokens-reset", "2026-12-10T12:00:01.5Z",
		"retry-after", "30",
	), now)
	if p.Requests != (Dim{Set: true, Limit: 50, Remaining: 0, Reset: now.Add(30 * time.Second)}) ||
		p.InputTokens != (Dim{Set: true, Limit: 40000, Remaining: 39000, Reset: now.Add(5 * time.Second)}) ||
		p.OutputTokens != (Dim{Set: true, Remaining: 8000, Reset: now.Add(1500 * time.Millisecond)}) ||
		p.Tokens.Set || !p.HasRetryAfter || p.RetryAfter != 30*time.Second {
		t.Errorf("anthropic: %+v", p)
	}
	// Retry-After as an HTTP date, retry-after-ms first when both are there.
	p = ParseProviderLimits(hdr("retry-after", "Thu, 10 Dec 2026 12:01:00 GMT"), now)
	if p.RetryAfter != time.Minute {
		t.Errorf("http date: %v", p.RetryAfter)
	}
	p = ParseProviderLimits(hdr("retry-after", "30", "retry-after-ms", "1500"), now)
	if p.RetryAfter != 1500*time.Millisecond {
		t.Errorf("retry-after-ms: %v", p.RetryAfter)
	}
	// Malformed values are ignored, absurd ones bounded.
	p = ParseProviderLimits(hdr("x-ratelimit-remaining-requests", "-1", "x-ratelimit-remaining-tokens", "0", "x-ratelimit-reset-tokens", "9999h", "retry-after", "soon"), now)
	if p.Requests.Set || !p.Tokens.Set || p.Tokens.Reset != now.Add(maxBlock) || p.HasRetryAfter {
		t.Errorf("malformed: %+v", p)
	}
}

func TestParseResetDuration(t *testing.T) {
	good := map[string]time.Duration{"1s": time.Second, "6m0s": 6 * time.Minute, "20ms": 20 * time.Millisecond, "0s": 0,
		"1h2m3.5s": time.Hour + 2*time.Minute + 3500*time.Millisecond, "1.5s": 1500 * time.Millisecond, "7.66s": 7660 * time.Millisecond, "250us": 250 * time.Microsecond}
	for s, want := range good {
		if got, ok := parseResetDuration(s); !ok || (got-want).Abs() > time.Microsecond {
			t.Errorf("%q: %v %v, want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "1", "s", "-1s", "1x", "1.s2", ".s", "1s 2s", strings.Repeat("1", 70) + "s"} {
		if d, ok := parseResetDuration(s); ok {
			t.Errorf("%q accepted as %v", s, d)
		}
	}
}

// FuzzProviderHeaders: no header value crashes the parser, and what it
// returns is bounded: never a negative count, never a reset past maxBlock
// for a duration, never a negative wait.
func FuzzProviderHeaders(f *testing.F) {
	for _, s := range []string{"1s", "6m0s", "0", "2026-12-10T12:00:30Z", "2026-12-10T13:00:05.123+01:00", "Thu, 10 Dec 2026 12:01:00 GMT", "-5", "1e9", "9999999999999999999", "µs"} {
		f.Add(s, s)
	}
	now := date("2026-12-10T12:00:00Z")
	f.Fuzz(func(t *testing.T, a, b string) {
		h := http.Header{}
		for _, k := range []string{hOpenAILeftReq, hOpenAILeftTok, hOpenAILimitReq, anthropicNames[0][1], anthropicNames[2][1], anthropicNames[1][0]} {
			h[k] = []string{a}
		}
		for _, k := range []string{hOpenAIResetReq, hOpenAIResetTok, anthropicNames[0][2], anthropicNames[2][2], hRetryAfter, hRetryAfterMs} {
			h[k] = []string{b}
		}
		p := ParseProviderLimits(h, now)
		for _, d := range []Dim{p.Requests, p.Tokens, p.InputTokens, p.OutputTokens} {
			if d.Remaining < 0 || d.Limit < 0 {
				t.Fatalf("negative count from %q: %+v", a, d)
			}
		}
		if p.Requests.Reset.After(now.Add(maxBlock)) || p.RetryAfter < 0 || p.RetryAfter > maxBlock {
			t.Fatalf("unbounded from %q: %+v", b, p)
		}
		// The RFC 3339 reader agrees with time.Parse on what it accepts.
		if tm, ok := parseRFC3339(b); ok {
			ref, err := time.Parse(time.RFC3339Nano, b)
			if err != nil || !ref.Equal(tm) {
				t.Fatalf("parseRFC3339(%q) = %v, time.Parse: %v %v", b, tm, ref, err)
			}
		}
		// The duration reader agrees with time.ParseDuration where both accept.
		if d, ok := parseResetDuration(b); ok && d < maxBlock {
			if ref, err := time.ParseDuration(b); err == nil && (ref-d).Abs() > time.Millisecond {
				t.Fatalf("parseResetDuration(%q) = %v, time.ParseDuration %v", b, d, ref)
			}
		}
		tr := NewTracker(func() time.Time { return now })
		tr.Observe("c", 429, h)
		if d := tr.Check("c"); d.Outcome != RateLimited || d.RetryAfter < time.Second || d.RetryAfter > maxBlock+time.Second {
			t.Fatalf("a 429 from %q/%q: %+v", a, b, d)
		}
	})
}

// A BYOK key whose provider says nothing remains is sent nothing until
// the provider's reset; then it is used again.
func TestTrackerBlocksUntilReset(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	tr := NewTracker(clk.Now)
	if d := tr.Check("fp-1"); !d.Allowed() {
		t.Fatal("an unknown credential is blocked")
	}
	tr.Observe("fp-1", 200, hdr("x-ratelimit-limit-requests", "60", "x-ratelimit-remaining-requests", "3", "x-ratelimit-reset-requests", "2s"))
	if d := tr.Check("fp-1"); !d.Allowed() {
		t.Fatal("blocked with requests remaining")
	}
	tr.Observe("fp-1", 200, hdr("x-ratelimit-limit-requests", "60", "x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "2.5s",
		"x-ratelimit-limit-tokens", "1000", "x-ratelimit-remaining-tokens", "900", "x-ratelimit-reset-tokens", "100ms"))
	d := tr.Check("fp-1")
	if d.Outcome != RateLimited || d.Source != SourceProvider || d.Kind != KindProvider || d.RetryAfter != 3*time.Second ||
		d.Requests != (RateInfo{Set: true, Limit: 60, Remaining: 0, Reset: 2500 * time.Millisecond}) || d.Tokens.Remaining != 900 {
		t.Fatalf("blocked: %+v", d)
	}
	if tr.Check("fp-2").Outcome != Allowed {
		t.Fatal("another credential is blocked")
	}
	clk.Advance(2500 * time.Millisecond)
	if d := tr.Check("fp-1"); !d.Allowed() {
		t.Fatalf("still blocked after the reset: %+v", d)
	}
	// Anthropic: a 429 with retry-after.
	tr.Observe("fp-3", 429, hdr("retry-after", "20", "anthropic-ratelimit-tokens-remaining", "0", "anthropic-ratelimit-tokens-reset", "2026-12-10T12:00:10Z"))
	if d := tr.Check("fp-3"); d.RetryAfter != 20*time.Second || d.Source.String() != "provider" {
		t.Fatalf("anthropic 429: %+v", d)
	}
	// A 429 with no time at all blocks for a second, not forever.
	tr.Observe("fp-4", 429, http.Header{})
	if d := tr.Check("fp-4"); d.RetryAfter != time.Second {
		t.Fatalf("bare 429: %+v", d)
	}
	tr.Forget("fp-3")
	if !tr.Check("fp-3").Allowed() {
		t.Fatal("a forgotten credential is blocked")
	}
}

func TestTrackerAllocatesNothing(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	tr := NewTracker(clk.Now)
	h := hdr("x-ratelimit-limit-requests", "60", "x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "6m0s",
		"x-ratelimit-limit-tokens", "150000", "x-ratelimit-remaining-tokens", "149984", "x-ratelimit-reset-tokens", "6m0s")
	ah := hdr("anthropic-ratelimit-requests-limit", "50", "anthropic-ratelimit-requests-remaining", "0", "anthropic-ratelimit-requests-reset", "2026-12-10T12:00:30+01:00")
	tr.Observe("fp", 200, h)
	if n := testing.AllocsPerRun(200, func() {
		tr.Observe("fp", 200, h)
		tr.Observe("fp", 200, ah)
		if tr.Check("fp").Allowed() {
			t.Fatal("not blocked")
		}
	}); n != 0 {
		t.Fatalf("Observe + Check allocate %v times", n)
	}
}
