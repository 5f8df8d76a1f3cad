package providers

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Key checks before saving are deliberately loose (providers.md §10):
// providers change key formats (Gemini went from AIza to AQ. in 2026), so
// only what is surely wrong is rejected: empty or whitespace keys, absurd
// lengths, control characters, a masked echo, and a key that carries another
// provider's known prefix.

const (
	minKeyLen = 16
	maxKeyLen = 512
)

// NormalizeKey trims whitespace and one pair of surrounding quotes.
func NormalizeKey(key string) string {
	key = strings.TrimSpace(key)
	if len(key) >= 2 && (key[0] == '"' && key[len(key)-1] == '"' || key[0] == '\'' && key[len(key)-1] == '\'') {
		key = strings.TrimSpace(key[1 : len(key)-1])
	}
	return key
}

// CheckKey reports why key cannot be a key for provider, or nil. It never
// includes the key in its message.
func CheckKey(provider, key string) error {
	p := Get(provider)
	if p == nil {
		return fmt.Errorf("unknown provider %q", provider)
	}
	switch {
	case key == "":
		return errors.New("api_key is empty")
	case strings.Contains(key, "…") || strings.Contains(key, "***") || strings.Contains(key, "..."):
		return errors.New("api_key looks like a masked key (it contains '…', '...' or '***'); send the full key")
	case len(key) < minKeyLen:
		return fmt.Errorf("api_key is too short (%d characters) to be a %s key", len(key), provider)
	case len(key) > maxKeyLen:
		return fmt.Errorf("api_key is too long (%d characters, at most %d)", len(key), maxKeyLen)
	}
	for _, r := range key {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r > unicode.MaxASCII {
			return errors.New("api_key contains whitespace, control or non-ASCII characters")
		}
	}
	// A key with another provider's prefix was pasted into the wrong place.
	// Own prefixes are checked first: "sk-ant-" is Anthropic's even though
	// OpenAI's "sk-" also matches.
	if owner := prefixOwner(key); owner != "" && owner != provider {
		return fmt.Errorf("api_key looks like a key for %s, not for %s", owner, provider)
	}
	return nil
}

// prefixOwner returns the provider whose known prefix is the longest match
// for key.
func prefixOwner(key string) string {
	best, bestLen := "", 0
	for _, name := range Names {
		for _, pre := range registry[name].KeyPrefixes {
			if len(pre) > bestLen && strings.HasPrefix(key, pre) {
				best, bestLen = name, len(pre)
			}
		}
	}
	return best
}

// Mask returns a display form that identifies a key without revealing it:
// its known family prefix (if any), an ellipsis and its last four
// characters, like "sk-proj-…9f3a".
func Mask(key string) string {
	prefix := ""
	for _, name := range Names {
		for _, pre := range registry[name].KeyPrefixes {
			if len(pre) > len(prefix) && strings.HasPrefix(key, pre) {
				prefix = pre
			}
		}
	}
	tail := ""
	if len(key) >= len(prefix)+12 {
		tail = key[len(key)-4:]
	}
	return prefix + "…" + tail
}
