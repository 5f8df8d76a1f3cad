package ops

import (
	"regexp"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// BYOKStatus is the public view of one provider's BYOK slot for an account.
type BYOKStatus struct {
	Provider string `json:"provider"`
	// Status is "active", "invalid" (the provider rejected the key; see
	// invalid_since and invalid_reason) or "not_configured".
	Status string `json:"status"`
	// BYOKOnly is the account's policy for this provider: when true, the
	// platform key never serves it.
	BYOKOnly bool `json:"byok_only"`
	// Serves says which credential requests for this provider use now:
	// "byok", "platform" or "none".
	Serves       string     `json:"serves"`
	Masked       string     `json:"masked,omitempty"`
	Fingerprint  string     `json:"fingerprint,omitempty"`
	Version      uint64     `json:"version,omitempty"`
	BaseURL      string     `json:"base_url,omitempty"`
	APIVersion   string     `json:"api_version,omitempty"`
	Organization string     `json:"organization,omitempty"`
	Project      string     `json:"project,omitempty"`
	UpdatedAt    *time.Time `json:"updated_at"`
	LastUsedAt   *time.Time `json:"last_used_at"`
	// InvalidSince and InvalidReason describe the provider's rejection of
	// the key (status, error class; never key material). A success with the
	// key, or a rotation, clears them.
	InvalidSince  *time.Time `json:"invalid_since,omitempty"`
	InvalidReason string     `json:"invalid_reason,omitempty"`
	// Contract lists the contract terms the account's requests with this
	// key are priced under (see Contract), oldest first.
	Contract []pricing.ContractTerm `json:"contract,omitempty"`
}

// BYOKInput registers or rotates an account's key for a provider: the body
// of PUT /agent_router/accounts/{account}/byok/{provider}, and what the
// console's form sends.
type BYOKInput struct {
	APIKey       *string `json:"api_key"`
	BYOKOnly     *bool   `json:"byok_only"`
	BaseURL      string  `json:"base_url"`
	APIVersion   string  `json:"api_version"`
	Organization string  `json:"organization"`
	Project      string  `json:"project"`
}

// CheckProvider refuses a provider Agent Router does not know (NotFound:
// the provider is part of the resource's name).
func CheckProvider(name string) error {
	if providers.Get(name) == nil {
		return errorf(NotFound, "unknown provider %q (supported: %s)", clip(name), strings.Join(providers.Names, ", "))
	}
	return nil
}

// status is provider's slot for account, c its credential (nil: none).
func (o *Ops) status(account, provider string, c *store.Credential) BYOKStatus {
	s := o.Store
	st := BYOKStatus{Provider: provider, Status: "not_configured", Serves: "none"}
	st.BYOKOnly = s.Snapshot().Policy(account, provider).BYOKOnly
	if o.platformKey(provider) && !st.BYOKOnly {
		st.Serves = "platform"
	}
	if c != nil {
		t := c.UpdatedAt
		st.Status, st.Serves = "active", "byok"
		st.Masked, st.Fingerprint, st.Version = c.Masked, c.Fingerprint, c.Version
		st.BaseURL, st.APIVersion = c.Extras.BaseURL, c.Extras.APIVersion
		st.Organization, st.Project = c.Extras.Organization, c.Extras.Project
		st.UpdatedAt, st.LastUsedAt = &t, c.LastUsedAt
		if since, reason, invalid := s.CredentialHealth(account, provider); invalid {
			st.Status, st.InvalidSince, st.InvalidReason = "invalid", &since, reason
		}
		st.Contract = s.Snapshot().Contract(account, provider).Terms()
	}
	return st
}

// BYOKList is account's slot for every provider, in providers.Names order,
// a page at a time (the zero Page: every provider). An account holds at
// most one credential per provider, so its few credentials are read whole.
func (o *Ops) BYOKList(account string, p Page) (List[BYOKStatus], error) {
	names, next, err := pageSlots(p)
	if err != nil {
		return List[BYOKStatus]{}, err
	}
	creds, err := o.Store.Credentials(account)
	if err != nil {
		return List[BYOKStatus]{}, err
	}
	out := make([]BYOKStatus, 0, len(names))
	for _, name := range names {
		var c *store.Credential
		if v, ok := creds[name]; ok {
			c = &v
		}
		out = append(out, o.status(account, name, c))
	}
	return List[BYOKStatus]{Items: out, Next: next}, nil
}

// BYOK is account's slot for provider.
func (o *Ops) BYOK(account, provider string) (BYOKStatus, error) {
	if err := CheckProvider(provider); err != nil {
		return BYOKStatus{}, err
	}
	creds, err := o.Store.Credentials(account)
	if err != nil {
		return BYOKStatus{}, err
	}
	var c *store.Credential
	if v, ok := creds[provider]; ok {
		c = &v
	}
	return o.status(account, provider, c), nil
}

// SaveBYOK checks and stores an account's key for a provider, with the same
// rules wherever it comes from (the admin API, the console): the provider's
// key format, no masked key sent back, extras that fit the provider and a
// base URL the egress policy allows; then, when in.BYOKOnly is set, the
// account's policy. Bad input is an Invalid error (NotFound for an unknown
// account or provider) whose message says what to fix and holds no key
// material. It returns the slot as it is now.
func (o *Ops) SaveBYOK(account, provider string, in BYOKInput) (BYOKStatus, error) {
	if err := CheckProvider(provider); err != nil {
		return BYOKStatus{}, err
	}
	if in.APIKey == nil {
		return BYOKStatus{}, errorf(Invalid, "api_key is required: {\"api_key\": \"...\"}")
	}
	key := providers.NormalizeKey(*in.APIKey)
	if err := providers.CheckKey(provider, key); err != nil {
		return BYOKStatus{}, &Error{Kind: Invalid, Err: err}
	}
	existing, err := o.Store.Credentials(account)
	if err != nil {
		return BYOKStatus{}, err
	}
	if old, ok := existing[provider]; ok && key == old.Masked {
		return BYOKStatus{}, errorf(Invalid, "api_key equals the stored masked form; send the full key")
	}
	extras := NormalizeExtras(in.BaseURL, in.APIVersion, in.Organization, in.Project)
	if err := CheckExtras(o.egress(), provider, extras); err != nil {
		return BYOKStatus{}, err
	}
	c, err := o.Store.PutCredential(account, provider, key, providers.Mask(key), extras)
	if err != nil {
		return BYOKStatus{}, err
	}
	if in.BYOKOnly != nil {
		if err := o.Store.SetPolicy(account, provider, store.Policy{BYOKOnly: *in.BYOKOnly}); err != nil {
			return BYOKStatus{}, err
		}
	}
	return o.status(account, provider, &c), nil
}

// SetBYOKOnly changes the account's policy for a provider without touching
// its key: on keeps the provider's traffic on the account's own contract
// (or refuses it), even where a route lists a platform target.
func (o *Ops) SetBYOKOnly(account, provider string, on bool) (BYOKStatus, error) {
	if err := CheckProvider(provider); err != nil {
		return BYOKStatus{}, err
	}
	if err := o.Store.SetPolicy(account, provider, store.Policy{BYOKOnly: on}); err != nil {
		return BYOKStatus{}, err
	}
	return o.BYOK(account, provider)
}

// DeleteBYOK removes account's key for provider: the platform key, if
// there is one, serves the next request. No key is NotFound.
func (o *Ops) DeleteBYOK(account, provider string) error {
	if err := CheckProvider(provider); err != nil {
		return err
	}
	return o.Store.DeleteCredential(account, provider)
}

// NormalizeExtras trims a credential's extras as they are stored: spaces
// around each, a base URL's trailing slashes.
func NormalizeExtras(baseURL, apiVersion, organization, project string) store.Extras {
	return store.Extras{BaseURL: strings.TrimRight(strings.TrimSpace(baseURL), "/"), APIVersion: strings.TrimSpace(apiVersion),
		Organization: strings.TrimSpace(organization), Project: strings.TrimSpace(project)}
}

var azureVersion = regexp.MustCompile(`^(v1|preview|\d{4}-\d{2}-\d{2}(-preview)?)$`)

// CheckExtras checks a credential's extras for provider: which fields the
// provider takes, and a base URL the egress policy pol allows.
func CheckExtras(pol *egress.Policy, provider string, e store.Extras) error {
	if e.BaseURL != "" {
		if provider != providers.OpenAI && provider != providers.Azure {
			return errorf(Invalid, "base_url can be set only for openai and azure credentials")
		}
		if err := pol.CheckURL(e.BaseURL); err != nil {
			return &Error{Kind: Invalid, Err: err}
		}
	}
	if provider == providers.Azure && e.BaseURL == "" {
		return errorf(Invalid, "azure credentials need base_url, the resource endpoint (https://{resource}.openai.azure.com)")
	}
	if e.APIVersion != "" {
		if provider != providers.Azure {
			return errorf(Invalid, "api_version can be set only for azure credentials")
		}
		if !azureVersion.MatchString(e.APIVersion) {
			return errorf(Invalid, "api_version must look like 2024-10-21, 2025-04-01-preview or v1")
		}
	}
	if (e.Organization != "" || e.Project != "") && provider != providers.OpenAI {
		return errorf(Invalid, "organization and project can be set only for openai credentials")
	}
	return nil
}
