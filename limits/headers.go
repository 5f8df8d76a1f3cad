package limits

import "time"

// Header is a response's header map keyed by canonical MIME names, as
// net/http gives it: an http.Header is one (no conversion, no import of
// net/http here). Reading it is a map lookup per name.
type Header = map[string][]string

// get is the first value of a canonical header name.
func get(h Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ProviderLimits is what one answer's headers say about the credential's
// own limits at the provider.
type ProviderLimits struct {
	// Requests and Tokens (OpenAI x-ratelimit-*, Anthropic
	// anthropic-ratelimit-requests-* / -tokens-*); InputTokens and
	// OutputTokens (Anthropic only).
	Requests, Tokens, InputTokens, OutputTokens Dim
	// RetryAfter is the answer's Retry-After (or retry-after-ms), when
	// present.
	RetryAfter    time.Duration
	HasRetryAfter bool
}

// Dim is one dimension of a provider's limit. Set is false when the
// answer did not carry its remaining count.
type Dim struct {
	Set       bool
	Limit     int64
	Remaining int64
	// Reset is when the provider restores it (zero when not given).
	Reset time.Time
}

// maxBlock bounds how far ahead a provider's reset is believed: a daily
// limit resets within a day; a header further out is a bug, not a reason
// to shut a key out.
const maxBlock = 25 * time.Hour

// The canonical names of the headers read (MIME canonical form, as
// net/http keys them).
const (
	hOpenAILimitReq  = "X-Ratelimit-Limit-Requests"
	hOpenAILimitTok  = "X-Ratelimit-Limit-Tokens"
	hOpenAILeftReq   = "X-Ratelimit-Remaining-Requests"
	hOpenAILeftTok   = "X-Ratelimit-Remaining-Tokens"
	hOpenAIResetReq  = "X-Ratelimit-Reset-Requests"
	hOpenAIResetTok  = "X-Ratelimit-Reset-Tokens"
	hRetryAfter      = "Retry-After"
	hRetryAfterMs    = "Retry-After-Ms"
	anthropicPrefix  = "Anthropic-Ratelimit-"
	hAnthropicReq    = anthropicPrefix + "Requests-"
	hAnthropicTok    = anthropicPrefix + "Tokens-"
	hAnthropicInTok  = anthropicPrefix + "Input-Tokens-"
	hAnthropicOutTok = anthropicPrefix + "Output-Tokens-"
)

// anthropicNames are the Anthropic headers spelled out, so that reading
// them builds no string.
var anthropicNames = [4][3]string{
	{hAnthropicReq + "Limit", hAnthropicReq + "Remaining", hAnthropicReq + "Reset"},
	{hAnthropicTok + "Limit", hAnthropicTok + "Remaining", hAnthropicTok + "Reset"},
	{hAnthropicInTok + "Limit", hAnthropicInTok + "Remaining", hAnthropicInTok + "Reset"},
	{hAnthropicOutTok + "Limit", hAnthropicOutTok + "Remaining", hAnthropicOutTok + "Reset"},
}

// ParseProviderLimits reads both header families (an answer carries one):
// OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens}, whose
// reset is a duration ("1s", "6m0s", "20ms"), and Anthropic's
// anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
// {limit,remaining,reset}, whose reset is an RFC 3339 time; and
// Retry-After (seconds or an HTTP date) or retry-after-ms. A malformed
// value is ignored, never an error. It does not allocate.
func ParseProviderLimits(h Header, now time.Time) ProviderLimits {
	var p ProviderLimits
	p.Requests = openAIDim(h, hOpenAILimitReq, hOpenAILeftReq, hOpenAIResetReq, now)
	p.Tokens = openAIDim(h, hOpenAILimitTok, hOpenAILeftTok, hOpenAIResetTok, now)
	for i, d := range [4]*Dim{&p.Requests, &p.Tokens, &p.InputTokens, &p.OutputTokens} {
		if d.Set {
			continue
		}
		names := &anthropicNames[i]
		left, ok := parseCount(get(h, names[1]))
		if !ok {
			continue
		}
		*d = Dim{Set: true, Remaining: left}
		d.Limit, _ = parseCount(get(h, names[0]))
		if t, ok := parseRFC3339(get(h, names[2])); ok {
			d.Reset = t
		}
	}
	if ms, ok := parseCount(get(h, hRetryAfterMs)); ok {
		p.RetryAfter, p.HasRetryAfter = time.Duration(min(ms, maxBlock.Milliseconds()))*time.Millisecond, true
	} else if d, ok := ParseRetryAfter(get(h, hRetryAfter), now); ok {
		p.RetryAfter, p.HasRetryAfter = d, true
	}
	return p
}

func openAIDim(h Header, limit, left, reset string, now time.Time) Dim {
	n, ok := parseCount(get(h, left))
	if !ok {
		return Dim{}
	}
	d := Dim{Set: true, Remaining: n}
	d.Limit, _ = parseCount(get(h, limit))
	if r, ok := parseResetDuration(get(h, reset)); ok {
		d.Reset = now.Add(r)
	}
	return d
}

// parseCount reads a non-negative decimal integer (at most 18 digits).
func parseCount(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseResetDuration reads OpenAI's reset durations: a sequence of
// number-unit pairs, the number with an optional fraction, the unit one of
// h, m, s, ms, us, µs, ns ("1s", "6m0s", "20ms", "1h2m3.5s"). It bounds
// the result to maxBlock and does not allocate.
func parseResetDuration(s string) (time.Duration, bool) {
	if s == "" || len(s) > 64 {
		return 0, false
	}
	var total float64
	for i := 0; i < len(s); {
		start := i
		var v float64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			v = v*10 + float64(s[i]-'0')
			i++
		}
		if i < len(s) && s[i] == '.' {
			i++
			scale := 0.1
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				v += float64(s[i]-'0') * scale
				scale /= 10
				i++
			}
		}
		if i == start || (i == start+1 && s[start] == '.') {
			return 0, false
		}
		u := i
		for i < len(s) && (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			i++
		}
		var unit float64
		switch s[u:i] {
		case "h":
			unit = float64(time.Hour)
		case "m":
			unit = float64(time.Minute)
		case "s":
			unit = float64(time.Second)
		case "ms":
			unit = float64(time.Millisecond)
		case "us", "µs", "μs":
			unit = float64(time.Microsecond)
		case "ns":
			unit = 1
		default:
			return 0, false
		}
		total += v * unit
		if total > float64(maxBlock) {
			return maxBlock, true
		}
	}
	return time.Duration(total), true
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3), as a wait from now, bounded to maxBlock.
func ParseRetryAfter(s string, now time.Time) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	if n, ok := parseCount(s); ok {
		return min(time.Duration(n)*time.Second, maxBlock), true
	}
	t, err := time.Parse("Mon, 02 Jan 2006 15:04:05 GMT", s)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), maxBlock), true
}

// parseRFC3339 reads "2006-01-02T15:04:05[.fraction](Z|±hh:mm)" without
// allocating (time.Parse allocates a zone for an offset).
func parseRFC3339(s string) (time.Time, bool) {
	if len(s) < 20 || len(s) > 40 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(a, b int) (int, bool) {
		n := 0
		for i := a; i < b; i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	dayN, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || dayN < 1 ||
		dayN > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	i, nsec := 19, 0
	if i < len(s) && s[i] == '.' {
		i++
		start, scale := i, 100_000_000
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			nsec += int(s[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == start {
			return time.Time{}, false
		}
	}
	var offset int
	switch {
	case i == len(s)-1 && s[i] == 'Z':
	case i == len(s)-6 && (s[i] == '+' || s[i] == '-') && s[i+3] == ':':
		oh, ok1 := num(i+1, i+3)
		om, ok2 := num(i+4, i+6)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if s[i] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), dayN, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
