package store

import (
	"bytes"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// appendJSON appends r as encoding/json would marshal it, byte for byte
// (TestLogRecordJSONMatchesEncodingJSON and FuzzLogRecordJSON hold it to
// that), without reflection: the log writer encodes every request's record,
// and json.Marshal was most of its cost. A field added to LogRecord or
// Attempt must be added here; the tests fail until it is.
func (r *LogRecord) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, r.ID)
	b = appendOptString(b, `,"instance":`, r.Instance)
	b = append(b, `,"time":`...)
	b = appendJSONTime(b, r.Time)
	b = append(b, `,"account":`...)
	b = appendJSONString(b, r.AccountID)
	b = append(b, `,"key_id":`...)
	b = appendJSONString(b, r.KeyID)
	b = append(b, `,"endpoint":`...)
	b = appendJSONString(b, r.Endpoint)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, r.Model)
	b = appendOptString(b, `,"provider":`, r.Provider)
	b = appendOptString(b, `,"upstream_model":`, r.UpstreamModel)
	b = appendOptString(b, `,"credential_source":`, r.CredentialSource)
	if r.CredentialVersion != 0 {
		b = append(b, `,"credential_version":`...)
		b = strconv.AppendUint(b, r.CredentialVersion, 10)
	}
	b = appendOptString(b, `,"credential_fingerprint":`, r.CredentialFingerprint)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = appendOptString(b, `,"error_code":`, r.ErrorCode)
	b = append(b, `,"stream":`...)
	b = strconv.AppendBool(b, r.Stream)
	b = append(b, `,"latency_ms":`...)
	b = appendJSONFloat(b, r.LatencyMS)
	if r.TTFBMS != 0 {
		b = append(b, `,"ttfb_ms":`...)
		b = appendJSONFloat(b, r.TTFBMS)
	}
	b = appendOptInt(b, `,"prompt_tokens":`, r.PromptTokens)
	b = appendOptInt(b, `,"completion_tokens":`, r.CompletionTokens)
	b = appendOptInt(b, `,"total_tokens":`, r.TotalTokens)
	b = appendOptInt(b, `,"cached_tokens":`, r.CachedTokens)
	b = appendOptInt(b, `,"reasoning_tokens":`, r.ReasoningTokens)
	if len(r.UsageRaw) > 0 {
		b = append(b, `,"usage_raw":`...)
		b = appendCompactJSON(b, r.UsageRaw)
	}
	if !r.Cost.IsZero() {
		b = appendCost(append(b, `,"cost":`...), &r.Cost)
	}
	if !r.ShadowCost.IsZero() {
		b = r.ShadowCost.AppendJSON(append(b, `,"shadow_cost":`...))
	}
	b = appendOptString(b, `,"route":`, r.Route)
	b = appendOptString(b, `,"profile":`, r.Profile)
	b = appendOptString(b, `,"source":`, r.Source)
	b = appendOptString(b, `,"api":`, r.API)
	b = appendOptString(b, `,"limit":`, r.Limit)
	b = appendOptString(b, `,"limit_shadow_refused":`, r.LimitShadow)
	if len(r.Omitted) > 0 {
		b = append(b, `,"omitted":[`...)
		for i, o := range r.Omitted {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, o)
		}
		b = append(b, ']')
	}
	if len(r.Attempts) > 0 {
		b = append(b, `,"attempts":[`...)
		for i := range r.Attempts {
			if i > 0 {
				b = append(b, ',')
			}
			a := &r.Attempts[i]
			b = append(b, `{"provider":`...)
			b = appendJSONString(b, a.Provider)
			b = append(b, `,"model":`...)
			b = appendJSONString(b, a.Model)
			b = appendOptString(b, `,"credential_source":`, a.CredentialSource)
			if a.Status != 0 {
				b = append(b, `,"status":`...)
				b = strconv.AppendInt(b, int64(a.Status), 10)
			}
			b = appendOptString(b, `,"error_class":`, a.ErrorClass)
			b = appendOptString(b, `,"skipped":`, a.Skipped)
			b = append(b, `,"duration_ms":`...)
			b = appendJSONFloat(b, a.DurationMS)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendCost appends c as pricing.Cost's MarshalJSON writes it (the test
// holds the two together), without its map and reflection.
func appendCost(b []byte, c *pricing.Cost) []byte {
	b = append(b, '{')
	if c.Unpriced {
		b = append(b, `"unpriced":true,"unpriced_reason":`...)
		b = appendJSONString(b, c.Reason.String())
	} else {
		b = append(b, `"total_usd":"`...)
		b = c.NanoUSD.AppendUSD(b)
		b = append(b, `","total_nano_usd":`...)
		b = strconv.AppendInt(b, int64(c.NanoUSD), 10)
		if c.ListNanoUSD != c.NanoUSD {
			b = append(b, `,"list_nano_usd":`...)
			b = strconv.AppendInt(b, int64(c.ListNanoUSD), 10)
		}
	}
	b = appendOptString(b, `,"price_version":`, c.Version)
	b = appendOptString(b, `,"paid_by":`, c.PaidBy)
	b = appendOptString(b, `,"provider":`, c.Provider)
	b = appendOptString(b, `,"priced_model":`, c.Model)
	b = append(b, `,"service_tier":`...)
	b = appendJSONString(b, c.Tier.String())
	if c.LongContext {
		b = append(b, `,"long_context":true`...)
	}
	t := &c.Tokens
	b = append(b, `,"tokens":{"input":`...)
	b = strconv.AppendInt(b, t.Input, 10)
	b = appendOptInt(b, `,"cache_read":`, t.CacheRead)
	b = appendOptInt(b, `,"cache_write_5m":`, t.CacheWrite5m)
	b = appendOptInt(b, `,"cache_write_1h":`, t.CacheWrite1h)
	b = append(b, `,"output":`...)
	b = strconv.AppendInt(b, t.Output, 10)
	b = appendOptInt(b, `,"reasoning":`, t.Reasoning)
	if t.ReasoningApart {
		b = append(b, `,"reasoning_apart":true`...)
	}
	b = appendOptInt(b, `,"prompt_tokens":`, t.PromptTokens)
	if t.LongContext {
		b = append(b, `,"long_context":true`...)
	}
	b = append(b, '}')
	// unit_prices is a map in MarshalJSON: its keys in sorted order.
	first := true
	for _, cl := range unitOrder {
		p := c.Unit[cl]
		if !p.IsSet() {
			continue
		}
		if first {
			b = append(b, `,"unit_prices":{`...)
			first = false
		} else {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, cl.String()...)
		b = append(b, `":"`...)
		b = p.AppendDecimal(b)
		b = append(b, '"')
	}
	if !first {
		b = append(b, '}')
	}
	if c.Partial {
		b = append(b, `,"partial":true`...)
	}
	if !c.ContractFrom.IsZero() {
		b = append(b, `,"contract_from":`...)
		b = appendJSONTime(b, c.ContractFrom)
		if c.DiscountPPM > 0 {
			b = append(b, `,"discount_percent":"`...)
			b = c.AppendDiscount(b)
			b = append(b, '"')
		}
	}
	return append(b, '}')
}

// unitOrder is the price classes in the order of their names.
var unitOrder = []pricing.Class{pricing.CacheRead, pricing.CacheWrite1h, pricing.CacheWrite5m, pricing.Input, pricing.Output, pricing.Reasoning}

func appendOptString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendJSONString(append(b, key...), v)
}

func appendOptInt(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), v, 10)
}

// appendJSONTime is time.Time's MarshalJSON (RFC 3339 with nanoseconds).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONFloat formats f as encoding/json does (ES6 number formatting).
// NaN and infinities, which encoding/json refuses, are written as 0: a log
// record is never dropped for a duration.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	abs := math.Abs(f)
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, f, fmt, -1, 64)
	if fmt == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does by default: HTML-safe
// (<, >, & escaped), invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029
// escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// maxRawBrackets bounds the brackets of a raw value appendCompactJSON
// writes: a provider's usage object nests two or three deep, and the
// validator below recurses, so a hostile upstream's deep "usage" must not
// reach it.
const maxRawBrackets = 64

// appendCompactJSON appends raw JSON as encoding/json marshals a
// json.RawMessage: compacted, with <, > and & inside strings escaped. Bytes
// that are not JSON, or more than maxRawBrackets brackets, are written as
// null rather than corrupting the record. (gjson's validator: several
// times faster than encoding/json's, which was 3 % of the gateway's CPU.)
func appendCompactJSON(b []byte, raw []byte) []byte {
	if bytes.Count(raw, []byte{'['})+bytes.Count(raw, []byte{'{'}) > maxRawBrackets || !gjson.ValidBytes(raw) {
		return append(b, "null"...)
	}
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch c {
			case '\\':
				b = append(b, c)
				if i+1 < len(raw) {
					i++
					b = append(b, raw[i])
				}
				continue
			case '"':
				inString = false
			case '<', '>', '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
				continue
			case 0xE2:
				// U+2028 and U+2029 (E2 80 A8/A9) are escaped too.
				if i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8 {
					b = append(b, '\\', 'u', '2', '0', '2', hexDigits[raw[i+2]&0xF])
					i += 2
					continue
				}
			}
			b = append(b, c)
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			inString = true
		}
		b = append(b, c)
	}
	return b
}
