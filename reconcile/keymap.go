package reconcile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Matching our BYOK credentials to the provider's key ids. The store never
// keeps a key in the clear; it keeps, per credential, a masked form (the
// key's known family prefix, an ellipsis and its last four characters:
// "sk-proj-…9f3a", providers.Mask) and a fingerprint (a hash prefix, which
// no provider shows). The providers list each key with a redacted form of
// their own: OpenAI's redacted_value ("sk-abc...def"), Anthropic's
// partial_key_hint ("sk-ant-api03-R2D...igAA"). Both sides are a head and
// a tail around an ellipsis; a key matches when the heads agree (one is a
// prefix of the other) and the tails agree (one ends the other) over at
// least three characters of tail.
//
// A credential that matches exactly one key is mapped; one that matches
// none, several, or a key another credential also matches, is left to the
// owner, with the candidates: never guessed. The owner's choice (Chosen)
// is bound to the fingerprint, so a rotated key is matched afresh.

// Credential is one of our BYOK credentials for the scope's provider, as
// the store describes it, plus what the reconciler needs to know about it.
type Credential struct {
	// Fingerprint identifies the key ("fp_…", store.Fingerprint): the
	// gateway side's rows name it, and the ledger keys its rows by it.
	Fingerprint string `json:"fingerprint"`
	// Masked is the store's display form of the key ("sk-proj-…9f3a").
	Masked string `json:"masked"`
	// Project is the OpenAI project the key is pinned to (the credential's
	// extras), which narrows the key listing; "" for none.
	Project string `json:"project,omitempty"`
	// Chosen is the provider key id the owner chose for this fingerprint
	// when the match was theirs to make; "" for none.
	Chosen string `json:"chosen_key_id,omitempty"`
	// Contract is the credential's contract terms (pricing.NewContract),
	// which price calibration compares against; nil for none.
	Contract *pricing.Contract `json:"-"`
}

// MatchStatus is the outcome of matching one credential.
type MatchStatus string

const (
	Matched   MatchStatus = "matched"
	Ambiguous MatchStatus = "ambiguous"
	Missing   MatchStatus = "missing"
)

// Match is one credential's provider key, or why the owner must choose.
type Match struct {
	Credential string      `json:"credential"`
	Status     MatchStatus `json:"status"`
	KeyID      string      `json:"provider_key_id,omitempty"`
	// Workspace is the key's Anthropic workspace ("" the default one) or
	// OpenAI project.
	Workspace string `json:"workspace,omitempty"`
	// By says how a match was made: "redacted" (the masked form against
	// the provider's redacted form) or "owner" (the owner's choice).
	By string `json:"by,omitempty"`
	// Candidates are the keys the owner may choose from (ambiguous), or
	// every key of the organisation when none matched (missing).
	Candidates []ProviderKey `json:"candidates,omitempty"`
	Reason     string        `json:"reason,omitempty"`
}

// MapKeys matches each credential to one of keys.
func MapKeys(creds []Credential, keys []ProviderKey) []Match {
	out := make([]Match, len(creds))
	claimed := map[string]string{} // key id → fingerprint of an owner's choice
	for _, c := range creds {
		if c.Chosen != "" {
			claimed[c.Chosen] = c.Fingerprint
		}
	}
	count := map[string]int{} // key id → credentials whose masked form matches it
	cands := make([][]ProviderKey, len(creds))
	for i, c := range creds {
		if c.Chosen != "" {
			continue
		}
		for _, k := range keys {
			if c.Project != "" && k.Project != "" && k.Project != c.Project {
				continue
			}
			if _, taken := claimed[k.ID]; taken || !sameKey(c.Masked, k.Redacted) {
				continue
			}
			cands[i] = append(cands[i], k)
			count[k.ID]++
		}
	}
	for i, c := range creds {
		m := Match{Credential: c.Fingerprint}
		switch {
		case c.Chosen != "":
			j := slices.IndexFunc(keys, func(k ProviderKey) bool { return k.ID == c.Chosen })
			if j < 0 {
				m.Status, m.Candidates = Missing, keys
				m.Reason = fmt.Sprintf("the key the owner chose (%s) is not in the organisation's key list", c.Chosen)
				break
			}
			m.Status, m.KeyID, m.Workspace, m.By = Matched, keys[j].ID, scopeOf(keys[j]), "owner"
		case len(cands[i]) == 0:
			m.Status, m.Candidates = Missing, keys
			m.Reason = "no key of the organisation shows " + describe(c.Masked) + ": is the admin key from the same organisation?"
		case len(cands[i]) > 1:
			m.Status, m.Candidates = Ambiguous, cands[i]
			m.Reason = fmt.Sprintf("%d keys of the organisation show %s", len(cands[i]), describe(c.Masked))
		case count[cands[i][0].ID] > 1:
			m.Status, m.Candidates = Ambiguous, cands[i]
			m.Reason = "another credential matches the same key " + cands[i][0].ID
		default:
			k := cands[i][0]
			m.Status, m.KeyID, m.Workspace, m.By = Matched, k.ID, scopeOf(k), "redacted"
		}
		out[i] = m
	}
	return out
}

func scopeOf(k ProviderKey) string {
	if k.Workspace != "" {
		return k.Workspace
	}
	return k.Project
}

func describe(masked string) string {
	if masked == "" {
		return "a key (the credential has no masked form)"
	}
	return fmt.Sprintf("%q", masked)
}

// sameKey reports whether a masked form and a provider's redacted form can
// be the same key.
func sameKey(masked, redacted string) bool {
	mh, mt, ok1 := splitRedacted(masked)
	rh, rt, ok2 := splitRedacted(redacted)
	if !ok1 || !ok2 || min(len(mt), len(rt)) < 3 {
		return false
	}
	return (strings.HasPrefix(mh, rh) || strings.HasPrefix(rh, mh)) &&
		(strings.HasSuffix(mt, rt) || strings.HasSuffix(rt, mt))
}

// splitRedacted cuts a redacted key around its ellipsis ("...", "…" or a
// run of "*"), into the shown head and tail.
func splitRedacted(s string) (head, tail string, ok bool) {
	i := strings.IndexAny(s, ".…*")
	if i < 0 {
		return "", "", false
	}
	j := i
	for j < len(s) {
		switch {
		case s[j] == '.' || s[j] == '*':
			j++
		case strings.HasPrefix(s[j:], "…"):
			j += len("…")
		default:
			return s[:i], s[j:], true
		}
	}
	return s[:i], "", true
}
