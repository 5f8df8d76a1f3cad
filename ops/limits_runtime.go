package ops

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// LimitDefaults are the config's limits that apply to each API key or
// each account (limits/WIRING.md §2): not limiter objects, but expanded,
// whenever the stored sets, the keys or the accounts change, into one
// rate limit or budget per key or account with a derived id
// ("default-rate-0.<key id>", "default-budget-0"), so the limiter stays
// template-free.
type LimitDefaults struct {
	// RateLimits apply to each key or each account.
	RateLimits []DefaultRateLimit `json:"rate_limits,omitempty"`
	// Budgets apply to each account or each key.
	Budgets []DefaultBudget `json:"budgets,omitempty"`
}

// DefaultRateLimit is a rate limit on each API key ("each": "key") or
// each account ("account"). A zero field is no limit of that kind.
type DefaultRateLimit struct {
	Each       string `json:"each"`
	RPM        int64  `json:"rpm,omitempty"`
	TPM        int64  `json:"tpm,omitempty"`
	Concurrent int64  `json:"concurrent,omitempty"`
}

// DefaultBudget is a budget on each account ("each": "account") or each
// API key ("key"), with a budget's fields (limits.Budget).
type DefaultBudget struct {
	Each         string            `json:"each"`
	Amount       limits.USD        `json:"amount_usd"`
	Window       limits.WindowKind `json:"window"`
	RollingHours int               `json:"rolling_hours,omitempty"`
	Payer        limits.Payer      `json:"payer,omitempty"`
	Mode         limits.Mode       `json:"mode,omitempty"`
	// Alerts in percent; nil: 50, 80, 100.
	Alerts []int `json:"alerts,omitempty"`
}

const eachKey, eachAccount = "key", "account"

func (d DefaultRateLimit) object(i int, account, key string) limits.RateLimit {
	r := limits.RateLimit{ID: fmt.Sprintf("%srate-%d", ReservedLimitPrefix, i), Scope: limits.Scope{Kind: limits.ScopeAccount, Account: account},
		RPM: d.RPM, TPM: d.TPM, Concurrent: d.Concurrent, SetBy: limits.SetByOperator}
	if key != "" {
		r.ID += "." + key
		r.Kind, r.APIKey = limits.ScopeAPIKey, key
	}
	return r
}

func (d DefaultBudget) object(i int, account, key string) limits.Budget {
	b := limits.Budget{ID: fmt.Sprintf("%sbudget-%d", ReservedLimitPrefix, i), Scope: limits.Scope{Kind: limits.ScopeAccount, Account: account},
		Amount: d.Amount, Window: d.Window, RollingHours: d.RollingHours, Payer: d.Payer, Mode: d.Mode,
		Alerts: slices.Clone(d.Alerts), SetBy: limits.SetByOperator}
	if key != "" {
		b.ID += "." + key
		b.Kind, b.APIKey = limits.ScopeAPIKey, key
	}
	return b
}

// Check validates the defaults as the objects they expand to.
func (d *LimitDefaults) Check() error {
	if d == nil {
		return nil
	}
	for i, r := range d.RateLimits {
		if r.Each != eachKey && r.Each != eachAccount {
			return fmt.Errorf("default rate limit %d: each is %q; want key or account", i, r.Each)
		}
		o := r.object(i, "account", "key_example")
		if err := o.Normalize(); err != nil {
			return fmt.Errorf("default rate limit %d (each %s): %v", i, r.Each, err)
		}
	}
	for i, b := range d.Budgets {
		if b.Each != eachKey && b.Each != eachAccount {
			return fmt.Errorf("default budget %d: each is %q; want key or account", i, b.Each)
		}
		o := b.object(i, "account", "key_example")
		if err := o.Normalize(); err != nil {
			return fmt.Errorf("default budget %d (each %s): %v", i, b.Each, err)
		}
	}
	return nil
}

func (d *LimitDefaults) uses(each string) bool {
	if d == nil {
		return false
	}
	for _, r := range d.RateLimits {
		if r.Each == each {
			return true
		}
	}
	for _, b := range d.Budgets {
		if b.Each == each {
			return true
		}
	}
	return false
}

// expand appends the defaults' objects for every key and account of sn.
func (d *LimitDefaults) expand(set *limits.Set, sn *store.Snapshot) {
	if d == nil {
		return
	}
	if d.uses(eachAccount) {
		sn.EachAccount(func(id string) {
			for i, r := range d.RateLimits {
				if r.Each == eachAccount {
					set.RateLimits = append(set.RateLimits, r.object(i, id, ""))
				}
			}
			for i, b := range d.Budgets {
				if b.Each == eachAccount {
					set.Budgets = append(set.Budgets, b.object(i, id, ""))
				}
			}
		})
	}
	if d.uses(eachKey) {
		sn.EachKey(func(k *store.KeyEntry) {
			for i, r := range d.RateLimits {
				if r.Each == eachKey {
					set.RateLimits = append(set.RateLimits, r.object(i, k.AccountID, k.KeyID))
				}
			}
			for i, b := range d.Budgets {
				if b.Each == eachKey {
					set.Budgets = append(set.Budgets, b.object(i, k.AccountID, k.KeyID))
				}
			}
		})
	}
}

// LimitsRuntime keeps one process's limiter in step with the store: the
// union of the stored sets plus the config's defaults is installed on a
// change (Sync, and Run on the store's signal), never per request. It
// remembers each account's recent alerts for the doors (Record). It is
// the Limiting the admin API and the console use.
type LimitsRuntime struct {
	store    *store.Store
	limiter  *limits.Limiter
	defaults atomic.Pointer[LimitDefaults]

	mu           sync.Mutex // Sync
	installed    bool
	last         store.LimitsVersion
	lastDefaults *LimitDefaults

	evMu   sync.Mutex
	events map[string][]limits.Event
}

// maxEvents is how many recent alerts are kept per account.
const maxEvents = 8

// NewLimitsRuntime returns the runtime of lim over s (nothing installed
// until Sync).
func NewLimitsRuntime(s *store.Store, lim *limits.Limiter) *LimitsRuntime {
	return &LimitsRuntime{store: s, limiter: lim, events: map[string][]limits.Event{}}
}

// Limiter is the limiter the runtime installs into (nil for a nil
// runtime).
func (r *LimitsRuntime) Limiter() *limits.Limiter {
	if r == nil {
		return nil
	}
	return r.limiter
}

// SetDefaults replaces the config's defaults (checked) and installs.
func (r *LimitsRuntime) SetDefaults(d *LimitDefaults) error {
	if err := d.Check(); err != nil {
		return err
	}
	if d == nil {
		d = &LimitDefaults{}
	}
	r.defaults.Store(d)
	return r.Sync()
}

// Sync installs the stored sets and the defaults if either (or, for
// defaults per key or account, the keys or accounts) changed since the
// last install.
func (r *LimitsRuntime) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.store.LimitsVersion() // before reading: a change after it syncs again
	d := r.defaults.Load()
	if r.installed && d == r.lastDefaults && v.Sets == r.last.Sets &&
		(!d.uses(eachKey) || v.Keys == r.last.Keys) && (!d.uses(eachAccount) || v.Accounts == r.last.Accounts) {
		return nil
	}
	set := r.store.LimitSets()
	d.expand(&set, r.store.Snapshot())
	if err := r.limiter.Install(set); err != nil {
		return err
	}
	r.installed, r.last, r.lastDefaults = true, v, d
	return nil
}

// Run syncs on every change the store signals until ctx ends; onErr
// receives a failed install (the previous policy stays).
func (r *LimitsRuntime) Run(ctx context.Context, onErr func(error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.store.LimitsChanged():
			if err := r.Sync(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

// Status is the limiter's Status.
func (r *LimitsRuntime) Status() []limits.Status { return r.limiter.Status() }

// Record keeps an event for its account's banner.
func (r *LimitsRuntime) Record(e limits.Event) {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	evs := append(r.events[e.Scope.Account], e)
	if len(evs) > maxEvents {
		evs = slices.Clone(evs[len(evs)-maxEvents:])
	}
	r.events[e.Scope.Account] = evs
}

// Events are the account's recent events, newest first.
func (r *LimitsRuntime) Events(account string) []limits.Event {
	r.evMu.Lock()
	defer r.evMu.Unlock()
	out := slices.Clone(r.events[account])
	slices.Reverse(out)
	return out
}

var _ Limiting = (*LimitsRuntime)(nil)
