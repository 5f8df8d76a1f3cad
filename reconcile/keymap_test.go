package reconcile

import (
	"testing"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// The store's masked form (providers.Mask) against the providers' redacted
// forms, as the references show them and as the fakes make them.
func TestSameKey(t *testing.T) {
	oa := "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789wxyz"
	an := "sk-ant-api03-R2DqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqigAA"
	cases := []struct {
		masked, redacted string
		want             bool
	}{
		{providers.Mask(oa), providertest.RedactOpenAI(oa), true},    // "sk-proj-…wxyz" / "sk-pro...wxyz"
		{providers.Mask(oa), "sk-proj-...wxyz", true},                // a longer head
		{providers.Mask(oa), "sk-...xyz", true},                      // a three-character tail
		{providers.Mask(oa), "sk-proj-****wxyz", true},               // asterisks
		{providers.Mask(oa), "sk-proj-...wxyZ", false},               // another tail
		{providers.Mask(oa), "sk-svcacct-...wxyz", false},            // another family
		{providers.Mask(oa), "sk-...yz", false},                      // two characters say nothing
		{providers.Mask(an), "sk-ant-api03-R2D...igAA", true},        // Anthropic's reference
		{providers.Mask(an), providertest.RedactAnthropic(an), true}, //
		{providers.Mask(an), "sk-ant-admin01-R2D...igAA", false},     // an admin key is not it
		{"sk-proj-…", "sk-proj-...wxyz", false},                      // a short key's mask has no tail
		{"", "sk-proj-...wxyz", false},                               //
		{providers.Mask(oa), "", false},                              //
	}
	for _, c := range cases {
		if got := sameKey(c.masked, c.redacted); got != c.want {
			t.Errorf("sameKey(%q, %q) = %v, want %v", c.masked, c.redacted, got, c.want)
		}
	}
}

func TestMapKeys(t *testing.T) {
	keys := []ProviderKey{
		{ID: "key_1", Redacted: "sk-pro...aaaa", Project: "proj_a"},
		{ID: "key_2", Redacted: "sk-pro...bbbb", Project: "proj_a"},
		{ID: "key_3", Redacted: "sk-pro...bbbb", Project: "proj_b"}, // shares key_2's form
		{ID: "key_4", Redacted: "sk-pro...cccc", Project: "proj_b"},
	}
	cases := []struct {
		name   string
		creds  []Credential
		status []MatchStatus
		ids    []string
	}{
		{"unique", []Credential{{Fingerprint: "fp_1", Masked: "sk-proj-…aaaa"}}, []MatchStatus{Matched}, []string{"key_1"}},
		{"two keys show the same form", []Credential{{Fingerprint: "fp_2", Masked: "sk-proj-…bbbb"}}, []MatchStatus{Ambiguous}, []string{""}},
		{"the project narrows it", []Credential{{Fingerprint: "fp_2", Masked: "sk-proj-…bbbb", Project: "proj_b"}}, []MatchStatus{Matched}, []string{"key_3"}},
		{"none", []Credential{{Fingerprint: "fp_9", Masked: "sk-proj-…zzzz"}}, []MatchStatus{Missing}, []string{""}},
		{"two credentials, one key", []Credential{{Fingerprint: "fp_a", Masked: "sk-proj-…cccc"}, {Fingerprint: "fp_b", Masked: "sk-…cccc"}},
			[]MatchStatus{Ambiguous, Ambiguous}, []string{"", ""}},
		{"the owner's choice wins and claims its key",
			[]Credential{{Fingerprint: "fp_2", Masked: "sk-proj-…bbbb", Chosen: "key_2"}, {Fingerprint: "fp_x", Masked: "sk-proj-…bbbb"}},
			[]MatchStatus{Matched, Matched}, []string{"key_2", "key_3"}},
		{"a choice of a key that is gone", []Credential{{Fingerprint: "fp_1", Masked: "sk-proj-…aaaa", Chosen: "key_gone"}}, []MatchStatus{Missing}, []string{""}},
	}
	for _, c := range cases {
		got := MapKeys(c.creds, keys)
		for i, m := range got {
			if m.Status != c.status[i] || m.KeyID != c.ids[i] || m.Credential != c.creds[i].Fingerprint {
				t.Errorf("%s: credential %d: %+v, want %s %q", c.name, i, m, c.status[i], c.ids[i])
			}
			if m.Status != Matched && (m.Reason == "" || len(m.Candidates) == 0) {
				t.Errorf("%s: an unmatched credential without reason or candidates: %+v", c.name, m)
			}
		}
	}
}
