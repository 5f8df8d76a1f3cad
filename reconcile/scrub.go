package reconcile

import (
	"regexp"
	"strings"
)

// An admin key reads an organisation's whole usage and lists its keys:
// it must never leave the request that carries it. Errors quote what a
// provider said, and providers (or a proxy in between) may echo what they
// were sent, so every message from outside passes through scrub, and the
// key itself lives in an unexported field of a type that formats as
// "[redacted]".

// adminKey holds an admin key. Printing it, with any verb, or encoding it
// as JSON shows nothing of it — even inside a struct printed with %#v,
// where fmt cannot call an unexported field's methods: the key is held by
// a closure, which fmt prints as an address.
type adminKey struct{ get func() string }

func newAdminKey(k string) adminKey { return adminKey{func() string { return k }} }

// value is the key, for the auth header only.
func (a adminKey) value() string {
	if a.get == nil {
		return ""
	}
	return a.get()
}

func (adminKey) String() string               { return "[redacted]" }
func (adminKey) GoString() string             { return "[redacted]" }
func (adminKey) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }
func (adminKey) MarshalText() ([]byte, error) { return []byte("[redacted]"), nil }

// keyLike matches what looks like a provider key: sk-… (OpenAI's sk-,
// sk-proj-, sk-admin-, Anthropic's sk-ant-…), or a long token-looking run.
var keyLike = regexp.MustCompile(`sk-[A-Za-z0-9_\-]{6,}|[A-Za-z0-9_\-]{40,}`)

// maxMessage bounds a quoted provider message.
const maxMessage = 300

// scrub removes key and anything key-like from msg and bounds its length.
func scrub(msg string, key adminKey) string {
	if k := key.value(); k != "" {
		msg = strings.ReplaceAll(msg, k, "[redacted]")
	}
	msg = keyLike.ReplaceAllString(msg, "[redacted]")
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "…"
	}
	return strings.ToValidUTF8(msg, "")
}
