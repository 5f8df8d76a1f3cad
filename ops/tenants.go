package ops

import (
	"fmt"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Bulk creation, for platforms that provision tenants: many accounts, each
// with its API keys and BYOK keys, in one call and one store transaction —
// all of them or none. Everything is checked first with the rules of the
// single calls (CreateAccount, CreateKey, SaveBYOK), so a call that fails
// has written nothing.

// TenantInput is one account to create in bulk, with its API keys and BYOK
// keys: an item of POST /agent_router/tenants.
type TenantInput struct {
	// ID and Name follow CreateAccount's rules.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Keys are the API keys to issue (name and routing profile as
	// CreateKey takes them).
	Keys []KeyInput `json:"keys"`
	// BYOK are the account's own provider keys, at most one per provider,
	// checked as SaveBYOK checks them.
	BYOK []TenantBYOK `json:"byok"`
}

// KeyInput is an API key to issue.
type KeyInput struct {
	Name    string `json:"name"`
	Profile string `json:"profile"`
}

// TenantBYOK is a provider key of a tenant: the provider, and what PUT
// /agent_router/accounts/{account}/byok/{provider} takes.
type TenantBYOK struct {
	Provider string `json:"provider"`
	BYOKInput
}

// CreatedTenant is a created account with its API keys (with their
// plaintext, shown this once) and its BYOK slots (never the key).
type CreatedTenant struct {
	Account store.Account `json:"account"`
	Keys    []CreatedKey  `json:"keys"`
	BYOK    []BYOKStatus  `json:"byok"`
}

// BulkLimit is how many records (accounts, API keys and BYOK keys
// together) one CreateTenants call may hold on this store: 10,000 on a
// single node; in fleet mode what one etcd transaction takes (etcd's
// --max-txn-ops / 3, see the store's max_txn_ops).
func (o *Ops) BulkLimit() int { return o.Store.BulkLimit() }

// CreateTenants creates the accounts of in with their API keys and BYOK
// keys in one transaction: all of them, or none. More records than
// BulkLimit is an Invalid error that also matches store.ErrTooLarge (as is
// a fleet transaction etcd refuses for its size); an account id that
// exists is the store's ErrExists (Conflict) and nothing is created. Bad
// input is Invalid, its message naming the tenant (tenants[i]) and never
// holding key material.
func (o *Ops) CreateTenants(in []TenantInput) ([]CreatedTenant, error) {
	if len(in) == 0 {
		return nil, errorf(Invalid, "tenants is empty: {\"tenants\": [{\"id\": \"acme\", \"keys\": [{\"name\": \"ci\"}]}]}")
	}
	records := 0
	for _, t := range in {
		records += 1 + len(t.Keys) + len(t.BYOK)
	}
	if limit := o.BulkLimit(); records > limit {
		return nil, &Error{Kind: Invalid, is: store.ErrTooLarge,
			Err: fmt.Errorf("%d records (accounts, API keys and BYOK keys) in one call; this store takes at most %d: split the call", records, limit)}
	}
	specs := make([]store.TenantSpec, len(in))
	for i, t := range in {
		sp, err := o.tenantSpec(t)
		if err != nil {
			return nil, &Error{Kind: Invalid, Err: fmt.Errorf("tenants[%d] (%s): %w", i, clip(t.ID), err)}
		}
		specs[i] = sp
	}
	made, err := o.Store.CreateTenants(specs)
	if err != nil {
		return nil, err
	}
	out := make([]CreatedTenant, len(made))
	for i, t := range made {
		ct := CreatedTenant{Account: t.Account, Keys: make([]CreatedKey, len(t.Keys)), BYOK: make([]BYOKStatus, len(t.Credentials))}
		for j, k := range t.Keys {
			ct.Keys[j] = CreatedKey{APIKey: k.APIKey, Key: k.Key}
		}
		for j := range t.Credentials {
			c := &t.Credentials[j]
			ct.BYOK[j] = o.status(c.AccountID, c.Provider, c)
		}
		out[i] = ct
	}
	return out, nil
}

// tenantSpec checks one tenant as the single calls would and returns what
// the store creates.
func (o *Ops) tenantSpec(t TenantInput) (store.TenantSpec, error) {
	if err := store.ValidateAccountID(t.ID); err != nil {
		return store.TenantSpec{}, err
	}
	if len(t.Name) > maxNameLength {
		return store.TenantSpec{}, fmt.Errorf("account name is longer than %d characters", maxNameLength)
	}
	sp := store.TenantSpec{ID: t.ID, Name: t.Name, Keys: make([]store.KeySpec, len(t.Keys)), Credentials: make([]store.CredentialSpec, len(t.BYOK))}
	for j, k := range t.Keys {
		if len(k.Name) > maxNameLength {
			return sp, fmt.Errorf("keys[%d]: key name is longer than %d characters", j, maxNameLength)
		}
		if err := o.CheckProfile(k.Profile); err != nil {
			return sp, fmt.Errorf("keys[%d]: %w", j, err)
		}
		sp.Keys[j] = store.KeySpec{Name: k.Name, Profile: k.Profile}
	}
	for j, b := range t.BYOK {
		c, err := o.credentialSpec(b)
		if err != nil {
			return sp, fmt.Errorf("byok[%d]: %w", j, err)
		}
		sp.Credentials[j] = c
	}
	return sp, nil
}

// credentialSpec checks a tenant's provider key with SaveBYOK's rules (a
// known provider, the provider's key format, extras that fit it, a base URL
// the egress policy allows).
func (o *Ops) credentialSpec(b TenantBYOK) (store.CredentialSpec, error) {
	if providers.Get(b.Provider) == nil {
		return store.CredentialSpec{}, fmt.Errorf("unknown provider %q (supported: %s)", clip(b.Provider), strings.Join(providers.Names, ", "))
	}
	if b.APIKey == nil {
		return store.CredentialSpec{}, fmt.Errorf("%s: api_key is required", b.Provider)
	}
	key := providers.NormalizeKey(*b.APIKey)
	if err := providers.CheckKey(b.Provider, key); err != nil {
		return store.CredentialSpec{}, fmt.Errorf("%s: %w", b.Provider, err)
	}
	extras := NormalizeExtras(b.BaseURL, b.APIVersion, b.Organization, b.Project)
	if err := CheckExtras(o.egress(), b.Provider, extras); err != nil {
		return store.CredentialSpec{}, fmt.Errorf("%s: %w", b.Provider, err)
	}
	return store.CredentialSpec{Provider: b.Provider, Key: key, Masked: providers.Mask(key), Extras: extras,
		BYOKOnly: b.BYOKOnly != nil && *b.BYOKOnly}, nil
}
