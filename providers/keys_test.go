package providers

import (
	"strings"
	"testing"
)

// chars returns n deterministic characters from alphabet, starting at seed.
func keyChars(alphabet string, n, seed int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteByte(alphabet[(seed+i*7)%len(alphabet)])
	}
	return b.String()
}

const (
	keyAlnum   = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	keyURLSafe = keyAlnum + "-_"
	keyHex     = "0123456789abcdef"
)

// plausibleKeys are keys each provider must accept: the documented shapes
// (providers.md §10) and shapes a provider could plausibly switch to.
var plausibleKeys = map[string][]string{
	OpenAI: {
		"sk-" + keyChars(keyAlnum, 20, 1) + "T3BlbkFJ" + keyChars(keyAlnum, 20, 2),
		"sk-proj-" + keyChars(keyURLSafe, 74, 3) + "T3BlbkFJ" + keyChars(keyURLSafe, 74, 4),
		"sk-svcacct-" + keyChars(keyURLSafe, 74, 5) + "T3BlbkFJ" + keyChars(keyURLSafe, 74, 6),
		"sk-admin-" + keyChars(keyURLSafe, 58, 7) + "T3BlbkFJ" + keyChars(keyURLSafe, 58, 8),
		"sk-None-" + keyChars(keyAlnum, 48, 9),
		"oai_" + keyChars(keyURLSafe, 60, 10), // a future family without sk-
	},
	Anthropic: {
		"sk-ant-api03-" + keyChars(keyURLSafe, 93, 11) + "AA",
		"sk-ant-admin01-" + keyChars(keyURLSafe, 93, 12) + "AA",
		"sk-ant-api04-" + keyChars(keyURLSafe, 90, 13), // a future version
	},
	Gemini: {
		"AIza" + keyChars(keyURLSafe, 35, 14),
		"AQ.Ab8RN6" + keyChars(keyURLSafe+".", 60, 15), // new-style (2026) keys
		"AQ." + keyChars(keyURLSafe, 40, 16),
		"IQ." + keyChars(keyURLSafe, 40, 17),
		keyChars(keyURLSafe, 39, 18), // some other shape
	},
	Azure: {
		keyChars(keyHex, 32, 19),
		keyChars(keyAlnum, 84, 20), // newer resources
	},
	Mistral: {
		keyChars(keyAlnum, 32, 21),
		keyChars(keyAlnum, 16, 22), // the shortest we allow
	},
	Together: {
		"tgp_v1_" + keyChars(keyURLSafe, 43, 23),
		keyChars(keyHex, 64, 24), // older keys
	},
	Perplexity: {
		"pplx-" + keyChars(keyAlnum, 48, 25),
		"pplx-" + keyChars(keyAlnum, 64, 26),
	},
	Cohere: {
		keyChars(keyAlnum, 40, 27),
		keyChars(keyAlnum, 512, 28), // the longest we allow
	},
}

func TestCheckKeyAcceptsPlausibleKeys(t *testing.T) {
	if len(plausibleKeys) != len(Names) {
		t.Fatalf("plausibleKeys covers %d providers, want all %d", len(plausibleKeys), len(Names))
	}
	for _, p := range Names {
		for _, k := range plausibleKeys[p] {
			if err := CheckKey(p, k); err != nil {
				t.Errorf("CheckKey(%s, %s…): %v", p, k[:min(len(k), 16)], err)
			}
			// What a user pastes: with a newline, spaces or quotes.
			for _, pasted := range []string{k + "\n", "  " + k + "\t", `"` + k + `"`, "'" + k + "'\r\n"} {
				if err := CheckKey(p, NormalizeKey(pasted)); err != nil {
					t.Errorf("CheckKey(%s, NormalizeKey(pasted %s…)): %v", p, k[:min(len(k), 16)], err)
				}
			}
		}
	}
}

func TestCheckKeyRejects(t *testing.T) {
	valid := keyChars(keyAlnum, 40, 30)
	cases := []struct {
		name, key, wantMsg string
	}{
		{"empty", "", "empty"},
		{"whitespace only, normalized", NormalizeKey(" \n\t  \r\n"), "empty"},
		{"quotes only, normalized", NormalizeKey(`""`), "empty"},
		{"whitespace only, raw", strings.Repeat(" ", 20), "whitespace"},
		{"too short", keyChars(keyAlnum, 15, 31), "too short"},
		{"too short after a prefix", "sk-abc", "too short"},
		{"too long", keyChars(keyAlnum, 513, 32), "too long"},
		{"inner space", valid[:20] + " " + valid[20:], "whitespace"},
		{"inner tab", valid[:20] + "\t" + valid[20:], "whitespace"},
		{"inner newline", valid[:20] + "\n" + valid[20:], "whitespace"},
		{"trailing newline, not normalized", valid + "\n", "whitespace"},
		{"NUL", valid[:20] + "\x00" + valid[20:], "control"},
		{"escape", valid[:20] + "\x1b[31m" + valid[20:], "control"},
		{"DEL", valid[:20] + "\x7f" + valid[20:], "control"},
		{"non-ASCII letter", valid[:20] + "é" + valid[20:], "non-ASCII"},
		{"zero-width space", valid[:20] + "\u200b" + valid[20:], "non-ASCII"},
		{"non-breaking space", valid[:20] + "\u00a0" + valid[20:], "non-ASCII"},
		{"invalid UTF-8", valid[:20] + "\xff" + valid[20:], "non-ASCII"},
		{"masked with ellipsis", "sk-proj-…" + valid[:8], "masked"},
		{"masked with stars", "sk-proj-***************" + valid[:4], "masked"},
		{"masked with dots", valid[:8] + "..." + valid[:8], "masked"},
		{"masked short", "…abcd", "masked"},
	}
	for _, p := range Names {
		for _, tc := range cases {
			err := CheckKey(p, tc.key)
			if err == nil {
				t.Errorf("%s: CheckKey accepted %s (%q)", p, tc.name, tc.key)
				continue
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("%s: %s: error %q should mention %q", p, tc.name, err, tc.wantMsg)
			}
			assertNoKeyIn(t, err.Error(), tc.key)
		}
	}
	if err := CheckKey("openrouter", valid); err == nil || !strings.Contains(err.Error(), "unknown provider") {
		t.Errorf("unknown provider: %v", err)
	}
}

// assertNoKeyIn fails if msg holds key or any 8-character piece of it.
func assertNoKeyIn(t *testing.T, msg, key string) {
	t.Helper()
	k := strings.TrimSpace(key)
	if len(k) < 8 {
		if k != "" && strings.Contains(msg, k) {
			t.Errorf("message %q contains the key", msg)
		}
		return
	}
	for i := 0; i+8 <= len(k); i++ {
		if w := k[i : i+8]; strings.TrimSpace(w) == w && strings.Contains(msg, w) {
			t.Errorf("message %q contains %q from the key", msg, w)
			return
		}
	}
}

// A key carrying another provider's known prefix was pasted in the wrong
// place.
func TestCheckKeyRejectsOtherProvidersKeys(t *testing.T) {
	named := []struct{ provider, key, owner string }{
		{OpenAI, plausibleKeys[Anthropic][0], Anthropic},
		{OpenAI, plausibleKeys[Perplexity][0], Perplexity},
		{Anthropic, plausibleKeys[Perplexity][0], Perplexity},
		{Anthropic, plausibleKeys[OpenAI][0], OpenAI},
		{Anthropic, plausibleKeys[OpenAI][1], OpenAI},
		{Mistral, plausibleKeys[Together][0], Together},
		{Gemini, plausibleKeys[OpenAI][0], OpenAI},
		{Azure, plausibleKeys[OpenAI][1], OpenAI},
		{Cohere, plausibleKeys[Gemini][0], Gemini},
		{Together, plausibleKeys[Gemini][1], Gemini},
		{Perplexity, plausibleKeys[Anthropic][1], Anthropic},
	}
	for _, tc := range named {
		err := CheckKey(tc.provider, tc.key)
		if err == nil {
			t.Errorf("CheckKey(%s) accepted a %s key", tc.provider, tc.owner)
			continue
		}
		if !strings.Contains(err.Error(), "looks like a key for "+tc.owner) {
			t.Errorf("CheckKey(%s, %s key): %q should name %s", tc.provider, tc.owner, err, tc.owner)
		}
		assertNoKeyIn(t, err.Error(), tc.key)
	}

	// Every prefixed sample of every provider, offered to every other one.
	for _, owner := range Names {
		for _, k := range plausibleKeys[owner] {
			if prefixOwner(k) != owner {
				continue // an unprefixed shape: nothing to recognise
			}
			for _, p := range Names {
				if err := CheckKey(p, k); (err == nil) != (p == owner) {
					t.Errorf("CheckKey(%s, %s key %s…) = %v", p, owner, k[:12], err)
				}
			}
		}
	}
}

func TestNormalizeKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sk-abc", "sk-abc"},
		{"  sk-abc  ", "sk-abc"},
		{"sk-abc\n", "sk-abc"},
		{"\r\nsk-abc\r\n", "sk-abc"},
		{"\tsk-abc\t", "sk-abc"},
		{`"sk-abc"`, "sk-abc"},
		{`'sk-abc'`, "sk-abc"},
		{` "sk-abc" ` + "\n", "sk-abc"},
		{`" sk-abc "`, "sk-abc"},
		{`"'sk-abc'"`, "'sk-abc'"}, // one pair only
		{`""sk-abc""`, `"sk-abc"`},
		{`"sk-abc'`, `"sk-abc'`}, // unbalanced: kept
		{`"sk-abc`, `"sk-abc`},
		{`sk-"abc"`, `sk-"abc"`}, // quotes inside: kept
		{`"`, `"`},
		{`""`, ""},
		{"", ""},
		{"   ", ""},
	} {
		if got := NormalizeKey(tc.in); got != tc.want {
			t.Errorf("NormalizeKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMask(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"sk-" + "abcdefghijklmnop" + "9f3a", "sk-…9f3a"},
		{"sk-proj-" + keyChars(keyURLSafe, 40, 1) + "9f3a", "sk-proj-…9f3a"},
		{"sk-svcacct-" + keyChars(keyURLSafe, 40, 1) + "wxyz", "sk-svcacct-…wxyz"},
		{"sk-ant-api03-" + keyChars(keyURLSafe, 93, 1) + "1-AA", "sk-ant-api03-…1-AA"},
		{"sk-ant-admin01-" + keyChars(keyURLSafe, 93, 1) + "QQAA", "sk-ant-admin01-…QQAA"},
		{"AIza" + keyChars(keyURLSafe, 31, 1) + "LAST", "AIza…LAST"},
		{"AQ." + keyChars(keyURLSafe, 30, 1) + "last", "AQ.…last"},
		{"pplx-" + keyChars(keyAlnum, 44, 1) + "p0p0", "pplx-…p0p0"},
		{"tgp_v1_" + keyChars(keyURLSafe, 39, 1) + "tail", "tgp_v1_…tail"},
		{keyChars(keyAlnum, 28, 1) + "mstr", "…mstr"},
		{"abcdefghijk" + "l", "…ijkl"}, // 12 characters, no known prefix
		{"abcdefghijk", "…"},           // 11: too short to show a tail
		{"sk-proj-abc", "sk-proj-…"},
		{"sk-proj-abcdefghijk", "sk-proj-…"},      // prefix + 11
		{"sk-proj-abcdefghijkl", "sk-proj-…ijkl"}, // prefix + 12
		{"", "…"},
	} {
		if got := Mask(tc.key); got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}

	// Whatever the key, a mask shows at most a known prefix and the last four.
	known := map[string]bool{"": true}
	for _, p := range registry {
		for _, pre := range p.KeyPrefixes {
			known[pre] = true
		}
	}
	for _, keys := range plausibleKeys {
		for _, k := range keys {
			m := Mask(k)
			pre, tail, ok := strings.Cut(m, "…")
			if !ok || !known[pre] || !strings.HasPrefix(k, pre) {
				t.Errorf("Mask(%s…) = %q: not a known prefix of the key", k[:12], m)
			}
			if tail != "" && tail != k[len(k)-4:] {
				t.Errorf("Mask(%s…) = %q: tail is not the last four characters", k[:12], m)
			}
			if tail == "" {
				t.Errorf("Mask(%s…) = %q: a full-length key should show its last four", k[:12], m)
			}
		}
	}
}
