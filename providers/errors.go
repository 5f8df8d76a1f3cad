package providers

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/tidwall/gjson"
)

// Error classes, shared by every provider, that decide what the gateway does
// with a failure (providers.md §13).
const (
	ClassAuth       = "auth"        // 401/403: the credential was refused
	ClassRateLimit  = "rate_limit"  // 429 with a retry-after
	ClassQuota      = "quota"       // out of credit or over a spend cap
	ClassOverloaded = "overloaded"  // 529, 503
	ClassServer     = "server"      // other 5xx
	ClassBadRequest = "bad_request" // other 4xx
	ClassTimeout    = "timeout"     // no answer in time
	ClassConnect    = "connect"     // could not reach the provider
)

// ClassifyResponse returns the error class of an upstream HTTP failure,
// with the provider's own rules first (Together's 403 that means "too many
// tokens", Anthropic's spend-cap 429, Gemini's 400 API_KEY_INVALID), then the
// common ones (providers.md §13).
func ClassifyResponse(provider string, status int, h http.Header, body []byte) string {
	if p := Get(provider); p != nil && p.classify != nil {
		if c := p.classify(status, h, body); c != "" {
			return c
		}
	}
	switch {
	case status == 403 && gjson.GetBytes(body, "error.code").String() == "unsupported_country_region_territory":
		// OpenAI's region refusal is not about the key (error-code guide).
		return ClassBadRequest
	case status == 401 || status == 403:
		return ClassAuth
	case status == 402:
		return ClassQuota
	case status == 408:
		return ClassTimeout // the SDKs retry 408 too
	case status == 429:
		code := gjson.GetBytes(body, "error.code").String()
		typ := gjson.GetBytes(body, "error.type").String()
		if code == "insufficient_quota" || typ == "insufficient_quota" {
			return ClassQuota
		}
		return ClassRateLimit
	case status == 529 || status == 503:
		return ClassOverloaded
	case status >= 500:
		return ClassServer
	default:
		return ClassBadRequest
	}
}

// ClassifyTransport returns the class of a failure to get any answer:
// timeout or connect.
func ClassifyTransport(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return ClassTimeout
	}
	return ClassConnect
}

// ErrorMessage extracts a human message from a provider error body:
// OpenAI's error.message, Mistral's and Cohere's top-level message, or the
// first 200 bytes of text.
func ErrorMessage(body []byte) string {
	for _, path := range []string{"error.message", "message", "error", "detail", "0.error.message"} {
		if r := gjson.GetBytes(body, path); r.Type == gjson.String && r.Str != "" {
			return r.Str
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// keyPatterns match the shapes of provider keys (gitleaks/trufflehog rules,
// loosened), so that a key an upstream echoes in an error (its own or
// another) is redacted even when it is not the one we sent. A key must not
// follow a letter (group 1 keeps what precedes it): ordinary words such as
// "task-management", "similar_models_are_…" or "FAQ.troubleshooting" are
// not keys.
var keyPatterns = regexp.MustCompile(`(^|[^A-Za-z])(?:sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|AQ\.[0-9A-Za-z_\-.]{16,}|pplx-[A-Za-z0-9]{16,}|tgp_v1_[A-Za-z0-9_\-]{16,}|ar_[A-Za-z0-9_\-]{20,})`)

// accountIDPatterns match OpenAI's organization, project and user ids
// ("org-…", "proj_…", "user-…"; 24 characters in practice), which its error
// texts name ("Rate limit reached … in organization org-…").
var accountIDPatterns = regexp.MustCompile(`(^|[^A-Za-z0-9])(?:org|proj|user)[-_][A-Za-z0-9]{16,}`)

// ScrubAccountIDs removes the ids of the provider account that served a
// request from upstream text: the given ones (the configured organization
// and project) and anything shaped like an OpenAI account id. The gateway
// applies it when the platform's key served, so that no tenant learns the
// platform's organization.
func ScrubAccountIDs(b []byte, ids ...string) []byte {
	for _, id := range ids {
		if len(id) >= 4 {
			b = bytes.ReplaceAll(b, []byte(id), []byte(Redacted))
		}
	}
	return accountIDPatterns.ReplaceAll(b, []byte("${1}"+Redacted))
}

// Redacted replaces secrets in scrubbed text.
const Redacted = "[REDACTED]"

// secretWindow is the shortest piece of a secret that Scrub redacts.
const secretWindow = 12

// Scrub removes key material from text that came from upstream before it
// reaches a client or a log: every given secret (and any run of 12 or more of
// its characters, in case the provider echoed part of it), and anything
// shaped like a known provider key.
func Scrub(b []byte, secrets ...string) []byte {
	for _, s := range secrets {
		if s != "" {
			b = redactSecret(b, s)
		}
	}
	return keyPatterns.ReplaceAll(b, []byte("${1}"+Redacted))
}

// redactSecret replaces each run of b covered by s, or by any 12-character
// window of s, with one Redacted. Providers sometimes echo a truncated key
// ("sk-proj-abc...wxyz"): marking every window before replacing makes the
// whole echoed piece go, where replacing window by window would leave its
// last (up to 11) characters behind.
func redactSecret(b []byte, s string) []byte {
	var covered []bool
	mark := func(w string) {
		for off := 0; off+len(w) <= len(b); {
			i := bytes.Index(b[off:], []byte(w))
			if i < 0 {
				return
			}
			if covered == nil {
				covered = make([]bool, len(b))
			}
			for j := off + i; j < off+i+len(w); j++ {
				covered[j] = true
			}
			off += i + 1
		}
	}
	mark(s)
	for i := 0; len(s) > secretWindow && i+secretWindow <= len(s); i++ {
		mark(s[i : i+secretWindow])
	}
	if covered == nil {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if !covered[i] {
			out = append(out, b[i])
			i++
			continue
		}
		out = append(out, Redacted...)
		for i < len(b) && covered[i] {
			i++
		}
	}
	return out
}
