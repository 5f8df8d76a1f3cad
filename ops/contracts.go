package ops

import (
	"errors"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Contract is a BYOK credential's contract terms: what the account
// negotiated with its provider, each from its effective_from on, and the
// term in force now (none: list prices).
type Contract struct {
	Provider string                 `json:"provider"`
	Terms    []pricing.ContractTerm `json:"terms"`
	InForce  *pricing.ContractTerm  `json:"in_force"`
}

// Contract returns the contract terms of the account's BYOK credential for
// provider.
func (o *Ops) Contract(account, provider string) (Contract, error) {
	if err := CheckProvider(provider); err != nil {
		return Contract{}, err
	}
	terms, err := o.Store.ContractTerms(account, provider)
	if err != nil {
		return Contract{}, err
	}
	return contractOf(provider, terms), nil
}

func contractOf(provider string, terms []pricing.ContractTerm) Contract {
	c := Contract{Provider: provider, Terms: terms}
	if c.Terms == nil {
		c.Terms = []pricing.ContractTerm{}
	}
	now := time.Now()
	for i := range terms {
		if !terms[i].EffectiveFrom.After(now) {
			c.InForce = &terms[i]
		}
	}
	return c
}

// AddContractTerm adds a term to the contract of the account's BYOK
// credential for provider: from its effective_from on (now when unset;
// never earlier), a discount off the list price, explicit rates per model,
// or both. Bad input (a discount outside 0–100, a malformed or implausible
// rate, a date in the past, a second term from the same instant) is
// Invalid and changes nothing; without a BYOK key for provider, NotFound.
func (o *Ops) AddContractTerm(account, provider string, t pricing.ContractTerm) (Contract, error) {
	if err := CheckProvider(provider); err != nil {
		return Contract{}, err
	}
	if _, err := o.Store.AddContractTerm(account, provider, t); err != nil {
		return Contract{}, err
	}
	return o.Contract(account, provider)
}

// DeleteContractTerm removes the term taking effect at from, if it has not
// taken effect yet (Conflict otherwise: requests were priced under it).
func (o *Ops) DeleteContractTerm(account, provider string, from time.Time) (Contract, error) {
	if err := CheckProvider(provider); err != nil {
		return Contract{}, err
	}
	err := o.Store.DeleteContractTerm(account, provider, from)
	if errors.Is(err, store.ErrTermInForce) {
		return Contract{}, &Error{Kind: Conflict, Err: err}
	}
	if err != nil {
		return Contract{}, err
	}
	return o.Contract(account, provider)
}
