package providers

import (
	"bytes"
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

// Classify returns the error class of an upstream HTTP failure.
func Classify(provider string, status int, body []byte) string {
	switch {
	case status == 401 || status == 403:
		// Together answers 403 when input + max_tokens exceed the context.
		if provider == Together && status == 403 {
			return ClassBadRequest
		}
		return ClassAuth
	case status == 402:
		return ClassQuota
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
	case status == 498: // Cohere: invalid token
		return ClassAuth
	default:
		return ClassBadRequest
	}
}

// ErrorMessage extracts a human message from a provider error body:
// OpenAI's error.message, Mistral's and Cohere's top-level message, or the
// first 200 bytes of text.
func ErrorMessage(body []byte) string {
	for _, path := range []string{"error.message", "message", "error", "detail"} {
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
// another) is redacted even when it is not the one we sent.
var keyPatterns = regexp.MustCompile(`sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|AQ\.[0-9A-Za-z_\-.]{16,}|pplx-[A-Za-z0-9]{16,}|tgp_v1_[A-Za-z0-9_\-]{16,}|ar_[A-Za-z0-9_\-]{20,}`)

// Redacted replaces secrets in scrubbed text.
const Redacted = "[REDACTED]"

// Scrub removes key material from text that came from upstream before it
// reaches a client or a log: every given secret (and any run of 12 or more of
// its characters, in case the provider echoed part of it), and anything
// shaped like a known provider key.
func Scrub(b []byte, secrets ...string) []byte {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		b = bytes.ReplaceAll(b, []byte(s), []byte(Redacted))
		// Providers sometimes echo a truncated key ("sk-proj-abc...wxyz");
		// redact any 12-character window of the secret.
		if len(s) > 12 {
			for i := 0; i+12 <= len(s); i++ {
				if w := s[i : i+12]; bytes.Contains(b, []byte(w)) {
					b = bytes.ReplaceAll(b, []byte(w), []byte(Redacted))
				}
			}
		}
	}
	return keyPatterns.ReplaceAll(b, []byte(Redacted))
}
