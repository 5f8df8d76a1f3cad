package ops

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/limits"
)

// Budgets and rate limits (issue 22; limits/WIRING.md §7). Each account's
// budgets, rate limits, spillover allowance and caps are one stored set
// (store.UpdateLimitSet); after every change the running limiter installs
// the union (Limiting.Sync), so the change holds from the next request.
//
// Who sets what: the operator (admin API) sets anything; an account's
// owner (console) sets budgets and rate limits on the account's own API
// keys and budgets on its BYOK spend (limits.OwnerMaySet), within the
// operator's caps, and may not change or remove what the operator set.
// Spillover and caps are the operator's. Members read.

// Limiting is the running process's limiter, as the operations need it.
type Limiting interface {
	// Status is every installed limit's state (the stored sets and the
	// config's defaults).
	Status() []limits.Status
	// Events are the account's recent threshold events, newest first.
	Events(account string) []limits.Event
	// Sync installs the stored sets (and the config's defaults) now.
	Sync() error
}

// Actor says who changes a limit.
type Actor int

const (
	// ByOperator: the admin API.
	ByOperator Actor = iota
	// ByOwner: one of the account's owners (the console).
	ByOwner
)

// ReservedLimitPrefix starts the ids of the limits the config's defaults
// derive per key and per account; stored objects may not use it.
const ReservedLimitPrefix = "default-"

// AccountLimits is an account's stored set, every installed limit's state
// for it (its own and the config's defaults) and its recent alerts.
type AccountLimits struct {
	Account string          `json:"account"`
	Set     limits.Set      `json:"set"`
	Status  []limits.Status `json:"status"`
	Events  []LimitEvent    `json:"events"`
}

// LimitEvent is a threshold event as the doors show it.
type LimitEvent struct {
	Kind    string `json:"kind"`
	LimitID string `json:"limit_id"`
	limits.Scope
	Window      limits.WindowKind `json:"window"`
	Percent     int               `json:"percent,omitempty"`
	Amount      limits.USD        `json:"amount_usd"`
	Spent       limits.USD        `json:"spent_usd"`
	WindowStart string            `json:"window_start"`
	At          string            `json:"at"`
}

// LimitEventOf turns an event into its door form.
func LimitEventOf(e limits.Event) LimitEvent {
	return LimitEvent{Kind: e.Kind.String(), LimitID: e.LimitID, Scope: e.Scope, Window: e.Window, Percent: e.Percent,
		Amount: e.Amount, Spent: e.Spent, WindowStart: e.WindowStart.UTC().Format("2006-01-02T15:04:05Z"), At: e.At.UTC().Format("2006-01-02T15:04:05Z")}
}

// AllLimits returns every account's stored set (the operator's view).
func (o *Ops) AllLimits() limits.Set { return o.Store.LimitSets() }

// AccountLimits returns the account's set, the state of every limit that
// applies to it and its recent alerts.
func (o *Ops) AccountLimits(account string) (AccountLimits, error) {
	set, err := o.Store.LimitSet(account)
	if err != nil {
		return AccountLimits{}, err
	}
	out := AccountLimits{Account: account, Set: set, Status: []limits.Status{}, Events: []LimitEvent{}}
	if o.Limits != nil {
		for _, s := range o.Limits.Status() {
			if s.Account == account {
				out.Status = append(out.Status, s)
			}
		}
		for _, e := range o.Limits.Events(account) {
			out.Events = append(out.Events, LimitEventOf(e))
		}
	}
	return out, nil
}

// sameObject fills the object's account and id from the path, and refuses
// a body that names others.
func sameObject(what, account, id string, sc *limits.Scope, bodyID *string) error {
	if *bodyID == "" {
		*bodyID = id
	}
	if *bodyID != id {
		return errorf(Invalid, "the %s's id %q is not the path's %q", what, clip(*bodyID), clip(id))
	}
	if strings.HasPrefix(id, ReservedLimitPrefix) {
		return errorf(Invalid, "%s ids starting with %q are the config's defaults (one per key or account); choose another id", what, ReservedLimitPrefix)
	}
	if sc.Account == "" {
		sc.Account = account
	}
	if sc.Account != account {
		return errorf(Invalid, "the %s names account %q, not the path's %q", what, clip(sc.Account), clip(account))
	}
	return nil
}

// checkLimitScope checks that an api_key scope names one of the account's keys
// and a byok_credential scope one of its BYOK credentials.
func (o *Ops) checkLimitScope(what, id string, sc *limits.Scope) error {
	sn := o.Store.Snapshot()
	switch sc.Kind {
	case limits.ScopeAPIKey:
		if k, ok := sn.KeyByID(sc.APIKey); !ok || k.AccountID != sc.Account {
			return errorf(Invalid, "%s %q: api key %s is not a key of account %s", what, clip(id), clip(sc.APIKey), clip(sc.Account))
		}
	case limits.ScopeCredential:
		if sn.Credential(sc.Account, sc.Provider) == nil {
			return errorf(Invalid, "%s %q: account %s has no BYOK credential for %s", what, clip(id), clip(sc.Account), clip(sc.Provider))
		}
	}
	return nil
}

// edit runs fn on the account's stored set and installs the result.
func (o *Ops) edit(account string, fn func(*limits.Set) error) (limits.Set, error) {
	set, err := o.Store.UpdateLimitSet(account, fn)
	if err != nil {
		return limits.Set{}, err
	}
	if o.Limits != nil {
		if err := o.Limits.Sync(); err != nil {
			return set, fmt.Errorf("the limits were stored but not installed: %w", err)
		}
	}
	return set, nil
}

func invalid(err error) error { return &Error{Kind: Invalid, Err: err} }

// PutBudget creates or replaces the account's budget id. Every check runs
// before anything is stored (each a clear Invalid that changes nothing):
// the budget's own fields, its account and id against the path, its key
// or credential belonging to the account, and for an owner what an owner
// may set, the caps, and that the operator did not set it.
func (o *Ops) PutBudget(account, id string, b limits.Budget, by Actor) (limits.Budget, error) {
	if err := sameObject("budget", account, id, &b.Scope, &b.ID); err != nil {
		return b, err
	}
	if by == ByOwner {
		b.SetBy = limits.SetByOwner
	} else if b.SetBy == "" {
		b.SetBy = limits.SetByOperator
	}
	if err := b.Normalize(); err != nil {
		return b, invalid(err)
	}
	if by == ByOwner {
		if err := limits.OwnerMaySet(&b); err != nil {
			return b, invalid(err)
		}
	}
	if err := o.checkLimitScope("budget", id, &b.Scope); err != nil {
		return b, err
	}
	_, err := o.edit(account, func(set *limits.Set) error {
		i := slices.IndexFunc(set.Budgets, func(x limits.Budget) bool { return x.ID == id })
		if i < 0 {
			set.Budgets = append(set.Budgets, b)
			return nil
		}
		if by == ByOwner && set.Budgets[i].SetBy != limits.SetByOwner {
			return errorf(Invalid, "budget %q was set by the operator; an owner cannot change it", id)
		}
		set.Budgets[i] = b
		return nil
	})
	return b, err
}

// DeleteBudget removes the account's budget id (its counter goes with
// it). An owner cannot remove one the operator set.
func (o *Ops) DeleteBudget(account, id string, by Actor) error {
	_, err := o.edit(account, func(set *limits.Set) error {
		i := slices.IndexFunc(set.Budgets, func(x limits.Budget) bool { return x.ID == id })
		if i < 0 {
			return errorf(NotFound, "account %s has no budget %q", clip(account), clip(id))
		}
		if by == ByOwner && set.Budgets[i].SetBy != limits.SetByOwner {
			return errorf(Invalid, "budget %q was set by the operator; an owner cannot remove it", id)
		}
		set.Budgets = slices.Delete(set.Budgets, i, i+1)
		return nil
	})
	return err
}

// PutRateLimit creates or replaces the account's rate limit id, with the
// checks PutBudget makes; an owner sets rate limits on the account's API
// keys only.
func (o *Ops) PutRateLimit(account, id string, r limits.RateLimit, by Actor) (limits.RateLimit, error) {
	if err := sameObject("rate limit", account, id, &r.Scope, &r.ID); err != nil {
		return r, err
	}
	if by == ByOwner {
		r.SetBy = limits.SetByOwner
	} else if r.SetBy == "" {
		r.SetBy = limits.SetByOperator
	}
	if err := r.Normalize(); err != nil {
		return r, invalid(err)
	}
	if by == ByOwner && r.Kind != limits.ScopeAPIKey {
		return r, errorf(Invalid, "rate limit %q: an owner sets rate limits on the account's API keys (scope api_key); the %s scope is the operator's", id, r.Kind)
	}
	if err := o.checkLimitScope("rate limit", id, &r.Scope); err != nil {
		return r, err
	}
	_, err := o.edit(account, func(set *limits.Set) error {
		i := slices.IndexFunc(set.RateLimits, func(x limits.RateLimit) bool { return x.ID == id })
		if i < 0 {
			set.RateLimits = append(set.RateLimits, r)
			return nil
		}
		if by == ByOwner && set.RateLimits[i].SetBy != limits.SetByOwner {
			return errorf(Invalid, "rate limit %q was set by the operator; an owner cannot change it", id)
		}
		set.RateLimits[i] = r
		return nil
	})
	return r, err
}

// DeleteRateLimit removes the account's rate limit id.
func (o *Ops) DeleteRateLimit(account, id string, by Actor) error {
	_, err := o.edit(account, func(set *limits.Set) error {
		i := slices.IndexFunc(set.RateLimits, func(x limits.RateLimit) bool { return x.ID == id })
		if i < 0 {
			return errorf(NotFound, "account %s has no rate limit %q", clip(account), clip(id))
		}
		if by == ByOwner && set.RateLimits[i].SetBy != limits.SetByOwner {
			return errorf(Invalid, "rate limit %q was set by the operator; an owner cannot remove it", id)
		}
		set.RateLimits = slices.Delete(set.RateLimits, i, i+1)
		return nil
	})
	return err
}

// PutSpillover sets the account's monthly spillover allowance (the
// operator's: it is platform money); nil removes it (not limited).
func (o *Ops) PutSpillover(account string, sp *limits.Spillover) (limits.Set, error) {
	if sp != nil {
		if sp.Account == "" {
			sp.Account = account
		}
		if sp.Account != account {
			return limits.Set{}, errorf(Invalid, "the spillover names account %q, not the path's %q", clip(sp.Account), clip(account))
		}
		if err := sp.Normalize(); err != nil {
			return limits.Set{}, invalid(err)
		}
	}
	return o.edit(account, func(set *limits.Set) error {
		set.Spillover = nil
		if sp != nil {
			set.Spillover = []limits.Spillover{*sp}
		}
		return nil
	})
}

// PutCaps sets the operator's caps on what the account's owners may set;
// nil removes them. Caps below a limit an owner already set are refused
// (Invalid, naming it): lower or remove that limit first.
func (o *Ops) PutCaps(account string, c *limits.Caps) (limits.Set, error) {
	if c != nil {
		if c.Account == "" {
			c.Account = account
		}
		if c.Account != account {
			return limits.Set{}, errorf(Invalid, "the caps name account %q, not the path's %q", clip(c.Account), clip(account))
		}
		if err := c.Normalize(); err != nil {
			return limits.Set{}, invalid(err)
		}
	}
	return o.edit(account, func(set *limits.Set) error {
		set.Caps = nil
		if c != nil {
			set.Caps = []limits.Caps{*c}
		}
		return nil
	})
}

// CapsOf returns the account's caps in set, or nil.
func CapsOf(set *limits.Set) *limits.Caps {
	if len(set.Caps) == 0 {
		return nil
	}
	return &set.Caps[0]
}
