package limits

import (
	"fmt"
	"slices"
)

// maxHolds bounds how many limits may apply to one request: a
// Reservation keeps them in a fixed array, so admission allocates
// nothing. Install refuses a set where more could apply.
const maxHolds = 16

// Policy is a compiled, immutable Set: the limits indexed by account, key,
// model and credential, each bound to its counter. The limiter swaps a
// whole Policy atomically on every change; requests read it lock-free.
type Policy struct {
	set      Set
	accounts map[string]*accountRules
	budgets  []*budgetRule
	rates    []*rateRule
	counters []*counter
	limits   []binding // counters[i]'s limit, set by bind when the policy is installed
}

type binding struct {
	limit int64
	hard  bool
}

// bind sets each counter's limit to this policy's: called once the policy
// is about to be installed, so a set that fails to compile changes nothing.
func (p *Policy) bind() {
	for i, c := range p.counters {
		c.limit.Store(p.limits[i].limit)
		c.hard.Store(p.limits[i].hard)
	}
}

// budgetRule is a budget (or a spillover allowance) bound to its counter.
type budgetRule struct {
	Budget
	kind   LimitKind // KindBudget or KindSpillover
	win    window
	alerts []int64 // thresholds in percent, ascending
	c      *counter
}

// rateRule is a rate limit bound to its counters (nil where unset).
type rateRule struct {
	RateLimit
	rpm, tpm, conc *counter
}

type accountRules struct {
	budgets      []*budgetRule
	keyBudgets   map[string][]*budgetRule
	modelBudgets map[string][]*budgetRule
	credBudgets  map[string][]*budgetRule // by provider
	rates        []*rateRule
	keyRates     map[string][]*rateRule
	modelRates   map[string][]*rateRule
	spill        *budgetRule
}

// counterSource hands out the counter of a key, creating it when new.
type counterSource func(key string, kind counterKind, w window) *counter

// compile builds a Policy from a normalised set.
func compile(s Set, get counterSource) (*Policy, error) {
	p := &Policy{set: s, accounts: map[string]*accountRules{}}
	acct := func(id string) *accountRules {
		a := p.accounts[id]
		if a == nil {
			a = &accountRules{keyBudgets: map[string][]*budgetRule{}, modelBudgets: map[string][]*budgetRule{},
				credBudgets: map[string][]*budgetRule{}, keyRates: map[string][]*rateRule{}, modelRates: map[string][]*rateRule{}}
			p.accounts[id] = a
		}
		return a
	}
	bind := func(c *counter, limit int64, hard bool) *counter {
		p.counters = append(p.counters, c)
		p.limits = append(p.limits, binding{limit, hard})
		return c
	}
	for _, b := range s.Budgets {
		w, err := compileWindow(b.Window, b.RollingHours)
		if err != nil {
			return nil, fmt.Errorf("budget %q: %w", b.ID, err)
		}
		r := &budgetRule{Budget: b, kind: KindBudget, win: w}
		for _, a := range b.Alerts {
			r.alerts = append(r.alerts, int64(a))
		}
		r.c = bind(get("b/"+b.Account+"/"+b.ID+"/"+w.key(), spend, w), int64(b.Amount), b.Mode == ModeHard)
		p.budgets = append(p.budgets, r)
		a := acct(b.Account)
		switch b.Kind {
		case ScopeAccount:
			a.budgets = append(a.budgets, r)
		case ScopeAPIKey:
			a.keyBudgets[b.APIKey] = append(a.keyBudgets[b.APIKey], r)
		case ScopeAccountModel:
			a.modelBudgets[b.Model] = append(a.modelBudgets[b.Model], r)
		case ScopeCredential:
			a.credBudgets[b.Provider] = append(a.credBudgets[b.Provider], r)
		}
	}
	for _, sp := range s.Spillover {
		b := Budget{ID: "spillover", Scope: Scope{Kind: ScopeAccount, Account: sp.Account}, Amount: sp.Amount,
			Window: WindowMonth, Payer: PayerPlatform, Mode: ModeHard, Alerts: []int{}, SetBy: SetByOperator}
		r := &budgetRule{Budget: b, kind: KindSpillover, win: windowMonth}
		r.c = bind(get("s/"+sp.Account+"/month", spend, windowMonth), int64(sp.Amount), true)
		p.budgets = append(p.budgets, r)
		acct(sp.Account).spill = r
	}
	for _, rl := range s.RateLimits {
		r := &rateRule{RateLimit: rl}
		if rl.RPM > 0 {
			r.rpm = bind(get("r/"+rl.Account+"/"+rl.ID+"/rpm", count, windowMinute), rl.RPM, true)
		}
		if rl.TPM > 0 {
			r.tpm = bind(get("r/"+rl.Account+"/"+rl.ID+"/tpm", spend, windowMinute), rl.TPM, true)
		}
		if rl.Concurrent > 0 {
			r.conc = bind(get("r/"+rl.Account+"/"+rl.ID+"/conc", gauge, windowNone), rl.Concurrent, true)
		}
		p.rates = append(p.rates, r)
		a := acct(rl.Account)
		switch rl.Kind {
		case ScopeAccount:
			a.rates = append(a.rates, r)
		case ScopeAPIKey:
			a.keyRates[rl.APIKey] = append(a.keyRates[rl.APIKey], r)
		case ScopeAccountModel:
			a.modelRates[rl.Model] = append(a.modelRates[rl.Model], r)
		}
	}
	for id, a := range p.accounts {
		if n := a.maxHolds(); n > maxHolds {
			return nil, fmt.Errorf("account %q: up to %d limits could apply to one request; at most %d may", id, n, maxHolds)
		}
	}
	return p, nil
}

// maxHolds is the most counters one request of the account can charge.
func (a *accountRules) maxHolds() int {
	n := len(a.budgets) + longest(a.keyBudgets) + longest(a.modelBudgets) + longest(a.credBudgets)
	if a.spill != nil {
		n++
	}
	counters := func(rs []*rateRule) (k int) {
		for _, r := range rs {
			for _, c := range []*counter{r.rpm, r.tpm, r.conc} {
				if c != nil {
					k++
				}
			}
		}
		return k
	}
	n += counters(a.rates)
	most := 0
	for _, rs := range a.keyRates {
		most = max(most, counters(rs))
	}
	n += most
	most = 0
	for _, rs := range a.modelRates {
		most = max(most, counters(rs))
	}
	return n + most
}

func longest[V any](m map[string][]V) (n int) {
	for _, v := range m {
		n = max(n, len(v))
	}
	return n
}

// Set returns a copy of the set the policy was compiled from.
func (p *Policy) Set() Set {
	s := p.set
	s.Budgets = slices.Clone(s.Budgets)
	s.RateLimits = slices.Clone(s.RateLimits)
	s.Spillover = slices.Clone(s.Spillover)
	s.Caps = slices.Clone(s.Caps)
	return s
}
