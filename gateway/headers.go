package gateway

import (
	"net/http"
	"strconv"
	"strings"
)

// Response headers set on the gateway's answers.
const (
	// HeaderRequestID is on every answer: the request-log record's id.
	HeaderRequestID = "X-Agent-Router-Request-Id"
	// HeaderProvider and HeaderCredential name the provider and the
	// credential source (byok or platform) of the attempt that answered,
	// or of the last one tried.
	HeaderProvider   = "X-Agent-Router-Provider"
	HeaderCredential = "X-Agent-Router-Credential"
	// HeaderAttempts tells the client how many upstream attempts its
	// request took (more than one when a fallback or split moved on).
	HeaderAttempts = "X-Agent-Router-Attempts"
	// HeaderOmitted names, comma-separated, what the translation for the
	// serving provider left out of the request because the provider has
	// no equivalent ("web_search"). Absent when nothing was.
	HeaderOmitted = "X-Agent-Router-Omitted"
)

// copyResponseHeaders relays a provider's response headers: its request id
// and rate-limit state, which BYOK users need to see for their own
// contract. Values are relayed only when they look like what they are
// (short tokens, numbers, durations, dates), so nothing from the request
// can ride back in them.
//
// OpenAI's openai-processing-ms (its own time on the request, not the
// client's) is not relayed: with the gateway's own headers, X-Agent-Router-
// Cost and Caddy's Server, it made a served OpenAI answer's header map the
// 15th entry, past what one table of Go's maps holds (14), and every such
// answer grew the map and doubled the copy net/http takes of it at
// WriteHeader (1.5 kB and a rehash per request; TestServedHeadersFitOneTable).
func copyResponseHeaders(dst, src http.Header) {
	for k, v := range src {
		if len(v) != 1 {
			continue
		}
		switch {
		case k == "Retry-After":
			if validRetryAfter(v[0]) {
				dst[k] = v
			}
		case k == "X-Request-Id", k == "Request-Id",
			strings.HasPrefix(k, "X-Ratelimit-"), strings.HasPrefix(k, "Anthropic-Ratelimit-"):
			if validHeaderToken(v[0]) {
				dst[k] = v
			}
		}
	}
}

// validHeaderToken accepts short values of id, number, duration and date
// characters.
func validHeaderToken(v string) bool {
	if v == "" || len(v) > 80 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:+ TZ", c) >= 0) {
			return false
		}
	}
	return true
}

// validRetryAfter reports whether v is a Retry-After value: delay-seconds or
// an HTTP-date (RFC 9110, section 10.2.3).
func validRetryAfter(v string) bool {
	if v == "" {
		return false
	}
	if _, err := strconv.ParseUint(v, 10, 32); err == nil {
		return true
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// validRetryAfterMs reports whether v is a Retry-After-Ms value: a
// non-negative number of milliseconds.
func validRetryAfterMs(v string) bool {
	f, err := strconv.ParseFloat(v, 64)
	return err == nil && f >= 0 && f < 1e12
}

func isEventStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}
