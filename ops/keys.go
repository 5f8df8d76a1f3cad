package ops

import (
	"slices"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// CreatedKey is a new Agent Router API key with its plaintext.
type CreatedKey struct {
	store.APIKey
	// Key is the plaintext API key. It is returned once, here, and never
	// again.
	Key string `json:"key"`
}

// CheckProfile refuses a routing profile the running config does not
// declare ("" is no profile, always fine).
func (o *Ops) CheckProfile(name string) error {
	if name == "" {
		return nil
	}
	known := o.profiles()
	if slices.Contains(known, name) {
		return nil
	}
	if len(known) == 0 {
		return errorf(Invalid, "unknown routing profile %q: the running config declares none (add 'profile <name> { ... }' to the agent_router handler)", clip(name))
	}
	return errorf(Invalid, "unknown routing profile %q (configured: %s)", clip(name), strings.Join(known, ", "))
}

// CreateKey makes an API key for account, named name (at most 200
// characters; may be empty) and bound to routing profile ("" for none).
func (o *Ops) CreateKey(account, name, profile string) (CreatedKey, error) {
	if len(name) > maxNameLength {
		return CreatedKey{}, errorf(Invalid, "key name is longer than %d characters", maxNameLength)
	}
	if err := o.CheckProfile(profile); err != nil {
		return CreatedKey{}, err
	}
	plain, k, err := o.Store.CreateAPIKeyWithProfile(account, name, profile)
	if err != nil {
		return CreatedKey{}, err
	}
	return CreatedKey{APIKey: k, Key: plain}, nil
}

// Keys lists account's API keys, oldest first, a page at a time; never a
// key's plaintext.
func (o *Ops) Keys(account string, p Page) (List[store.APIKey], error) {
	return paged(p, func() ([]store.APIKey, error) { return o.Store.APIKeys(account) },
		func(r store.PageRequest) (store.Page[store.APIKey], error) { return o.Store.APIKeysPage(account, r) })
}

// SetKeyProfile binds account's key keyID to a routing profile ("" unbinds
// it); the next request with the key uses it. Another account's key is not
// found.
func (o *Ops) SetKeyProfile(account, keyID, profile string) (store.APIKey, error) {
	if err := o.CheckProfile(profile); err != nil {
		return store.APIKey{}, err
	}
	return o.Store.SetAPIKeyProfile(account, keyID, profile)
}

// RevokeKey deletes account's key keyID: requests that start after it
// returns are refused. Another account's key is not found.
func (o *Ops) RevokeKey(account, keyID string) error { return o.Store.RevokeAPIKey(account, keyID) }
