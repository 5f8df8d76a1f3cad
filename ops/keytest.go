package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// TestInput is what to test: a pasted key with its extras (APIKey set;
// nothing is saved), or the account's stored key (APIKey nil, no extras).
type TestInput struct {
	APIKey       *string `json:"api_key"`
	BaseURL      string  `json:"base_url"`
	APIVersion   string  `json:"api_version"`
	Organization string  `json:"organization"`
	Project      string  `json:"project"`
}

// TestOutcome is the answer of a key test.
type TestOutcome struct {
	Provider string `json:"provider"`
	// Tested is "stored" (the account's registered key) or "pasted" (the
	// key in the request body, not saved).
	Tested string `json:"tested"`
	providers.TestResult
	// CredentialStatus is the stored key's status after the test: a
	// success clears an invalid mark, a rejection sets one. Stored tests
	// only.
	CredentialStatus string `json:"credential_status,omitempty"`
}

// TestBYOK checks a provider key with a cheap authenticated call through
// the running gateway (TestCredential): a pasted key, checked as SaveBYOK
// checks it (format, not the masked form, extras and the egress policy,
// so a test cannot probe an internal address), or the account's stored
// key, whose invalid mark a success clears and a rejection sets. The
// result's message is scrubbed of the key. No stored key is a NotFound
// error matching ErrNoStoredKey; no gateway is Unavailable.
func (o *Ops) TestBYOK(ctx context.Context, account, provider string, in TestInput) (TestOutcome, error) {
	if err := CheckProvider(provider); err != nil {
		return TestOutcome{}, err
	}
	if _, err := o.Store.Account(account); err != nil {
		return TestOutcome{}, err
	}
	if o.TestCredential == nil {
		return TestOutcome{}, errorf(Unavailable, "no agent_router handler is running to test keys with: add one to the config")
	}
	if in.APIKey == nil {
		return o.testStored(ctx, account, provider, in)
	}
	key := providers.NormalizeKey(*in.APIKey)
	if err := providers.CheckKey(provider, key); err != nil {
		return TestOutcome{}, &Error{Kind: Invalid, Err: err}
	}
	if old := o.Store.Snapshot().Credential(account, provider); old != nil && key == providers.Mask(old.Key()) {
		return TestOutcome{}, errorf(Invalid, "api_key equals the stored masked form; send the full key, or no body to test the stored key")
	}
	extras := NormalizeExtras(in.BaseURL, in.APIVersion, in.Organization, in.Project)
	if err := CheckExtras(o.egress(), provider, extras); err != nil {
		return TestOutcome{}, err
	}
	out := TestOutcome{Provider: provider, Tested: "pasted", TestResult: o.TestCredential(ctx, provider, key, extras)}
	out.Message = string(providers.Scrub([]byte(out.Message), key))
	return out, nil
}

func (o *Ops) testStored(ctx context.Context, account, provider string, in TestInput) (TestOutcome, error) {
	if in.BaseURL != "" || in.APIVersion != "" || in.Organization != "" || in.Project != "" {
		return TestOutcome{}, errorf(Invalid, "base_url, api_version, organization and project go with a pasted api_key; send no body to test the stored key")
	}
	sec := o.Store.Snapshot().Credential(account, provider)
	if sec == nil {
		return TestOutcome{}, &Error{Kind: NotFound, is: ErrNoStoredKey,
			Err: fmt.Errorf("account %q has no %s key registered: send {\"api_key\": \"...\"} to test a key before saving it", account, provider)}
	}
	out := TestOutcome{Provider: provider, Tested: "stored", TestResult: o.TestCredential(ctx, provider, sec.Key(), sec.Extras)}
	out.Message = string(providers.Scrub([]byte(out.Message), sec.Key()))
	switch out.Outcome {
	case providers.TestOK:
		o.Store.MarkValid(sec)
	case providers.TestRejected:
		o.Store.MarkInvalid(sec, time.Now(), fmt.Sprintf("%s answered %d to a key test (%s)", provider, out.Status, providers.ClassAuth))
	}
	out.CredentialStatus = "active"
	if _, _, invalid := sec.Invalid(); invalid {
		out.CredentialStatus = "invalid"
	}
	return out, nil
}
