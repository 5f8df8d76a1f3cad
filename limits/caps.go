package limits

import (
	"fmt"
	"math/bits"
)

// OwnerMaySet says whether an account's owner may set budget b: budgets
// on the account's own API keys (any payer), on its BYOK credentials, and
// on its BYOK spend (payer byok). Budgets on the platform's money at the
// account or account+model scope are the operator's.
func OwnerMaySet(b *Budget) error {
	switch {
	case b.Kind == ScopeAPIKey, b.Kind == ScopeCredential, b.Payer == PayerBYOK:
		return nil
	}
	return fmt.Errorf("budget %q: an owner sets budgets on the account's API keys, BYOK credentials or BYOK spend (payer byok); a %s budget on payer %s is the operator's", b.ID, b.Kind, b.Payer)
}

// CheckBudget says whether budget b stays within the caps: its amount,
// as an hourly rate over its window, is at most the cap's (a month counts
// as 31 days). Nil caps, or caps without a budget cap, allow anything.
func (c *Caps) CheckBudget(b *Budget) error {
	if c == nil || c.BudgetAmount == nil {
		return nil
	}
	bw, err := compileWindow(b.Window, b.RollingHours)
	if err != nil {
		return fmt.Errorf("budget %q: %w", b.ID, err)
	}
	cw, err := compileWindow(c.BudgetWindow, c.BudgetRollingHrs)
	if err != nil {
		return fmt.Errorf("caps of account %q: %w", c.Account, err)
	}
	// b.Amount / bw.hours ≤ cap / cw.hours, cross-multiplied in 128 bits.
	h1, l1 := bits.Mul64(uint64(b.Amount), uint64(cw.hours()))
	h2, l2 := bits.Mul64(uint64(*c.BudgetAmount), uint64(bw.hours()))
	if h1 > h2 || h1 == h2 && l1 > l2 {
		return fmt.Errorf("budget %q: %s USD a %s is above the operator's cap of %s USD a %s for account %q",
			b.ID, b.Amount, windowName(b.Window, b.RollingHours), *c.BudgetAmount, windowName(c.BudgetWindow, c.BudgetRollingHrs), c.Account)
	}
	return nil
}

// CheckRateLimit says whether r stays within the caps: each of its set
// fields at most the cap's. A field r leaves at 0 sets no limit of its own
// and is within any cap (the operator's own rate limits enforce a cap).
func (c *Caps) CheckRateLimit(r *RateLimit) error {
	if c == nil {
		return nil
	}
	for _, f := range []struct {
		name     string
		v, limit int64
	}{{"rpm", r.RPM, c.RPM}, {"tpm", r.TPM, c.TPM}, {"concurrent", r.Concurrent, c.Concurrent}} {
		if f.limit > 0 && f.v > f.limit {
			return fmt.Errorf("rate limit %q: %s %d is above the operator's cap of %d for account %q", r.ID, f.name, f.v, f.limit, c.Account)
		}
	}
	return nil
}

func windowName(k WindowKind, hours int) string {
	if k == WindowRolling {
		return fmt.Sprintf("rolling %d h", hours)
	}
	return string(k)
}
