package limits

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ScopeKind is what a budget or a rate limit applies to.
type ScopeKind string

const (
	// ScopeAccount: every request of the account.
	ScopeAccount ScopeKind = "account"
	// ScopeAPIKey: the requests made with one of the account's API keys
	// (APIKey is the key's id, never the key).
	ScopeAPIKey ScopeKind = "api_key"
	// ScopeAccountModel: the account's requests to one model (the upstream
	// model the request resolved to, after aliases).
	ScopeAccountModel ScopeKind = "account_model"
	// ScopeCredential: the requests served by the account's BYOK
	// credential for one provider (budgets only).
	ScopeCredential ScopeKind = "byok_credential"
)

// Payer says whose money a budget counts: the platform's (requests served
// with the platform key), the account's own contract (BYOK), or both.
type Payer string

const (
	PayerPlatform Payer = "platform"
	PayerBYOK     Payer = "byok"
	PayerAll      Payer = "all"
)

// Mode says what a budget does when it is spent.
type Mode string

const (
	// ModeHard refuses the request (402 budget_exceeded).
	ModeHard Mode = "hard"
	// ModeSoft only alerts: threshold events, never a refusal.
	ModeSoft Mode = "soft"
	// ModeShadow counts as a hard budget would and records the requests it
	// would have refused (Decision.Shadow, an event), refusing none.
	ModeShadow Mode = "shadow"
)

// SetBy says who owns a limit: the operator (platform budgets, caps) or
// one of the account's owners (their keys, their BYOK spend), whose
// limits must stay within the operator's caps (CheckCaps).
type SetBy string

const (
	SetByOperator SetBy = "operator"
	SetByOwner    SetBy = "owner"
)

// DefaultAlerts are a budget's alert thresholds, in percent of its
// amount, when it names none.
var DefaultAlerts = []int{50, 80, 100}

const (
	maxAlerts  = 8    // thresholds per budget (a bitmask of 8)
	maxAlertPc = 1000 // a soft budget may alert past 100 %
	maxIDLen   = 64
	maxNameLen = 200
)

// Scope names the requests a limit applies to. Account is always set;
// APIKey, Model and Provider as the kind requires, and only then.
type Scope struct {
	Kind    ScopeKind `json:"scope"`
	Account string    `json:"account"`
	// APIKey is the id of an API key of Account (scope api_key).
	APIKey string `json:"api_key,omitempty"`
	// Model is an upstream model name (scope account_model).
	Model string `json:"model,omitempty"`
	// Provider names the BYOK credential of Account for that provider
	// (scope byok_credential).
	Provider string `json:"provider,omitempty"`
}

// Budget is a ceiling on money over a window.
type Budget struct {
	// ID names the budget; unique among the account's budgets. Letters,
	// digits, '.', '_' and '-', at most 64.
	ID string `json:"id"`
	Scope
	// Amount is the ceiling in USD, a decimal string ("2000", "0.50"). A
	// budget of 0 refuses every request it counts.
	Amount USD `json:"amount_usd"`
	// Window is day, week or month (calendar, UTC), or rolling with
	// RollingHours (1..8760).
	Window       WindowKind `json:"window"`
	RollingHours int        `json:"rolling_hours,omitempty"`
	// Payer is whose spend counts: platform (default), byok or all. A
	// byok_credential budget counts BYOK spend only (default byok).
	Payer Payer `json:"payer,omitempty"`
	// Mode is hard (default), soft or shadow.
	Mode Mode `json:"mode,omitempty"`
	// Alerts are thresholds in percent of Amount (default 50, 80, 100):
	// each crossing is one event per window. An empty list means none.
	Alerts []int `json:"alerts"`
	SetBy  SetBy `json:"set_by,omitempty"`
}

// RateLimit caps requests per minute, tokens per minute (input + output)
// and requests in flight (streams included). A zero field is no limit of
// that kind; at least one is set.
type RateLimit struct {
	ID string `json:"id"`
	Scope
	RPM        int64 `json:"rpm,omitempty"`
	TPM        int64 `json:"tpm,omitempty"`
	Concurrent int64 `json:"concurrent,omitempty"`
	SetBy      SetBy `json:"set_by,omitempty"`
}

// Spillover is how many platform dollars a month a fallback from an
// account's failing BYOK key to the platform key may spend. 0 is strict:
// no such fallback is admitted. An account without one is not limited
// here (its byok_only policy still is).
type Spillover struct {
	Account string `json:"account"`
	Amount  USD    `json:"amount_usd"`
}

// Caps are the operator's ceilings on what an account's owners may set.
// A zero field caps nothing. Budget caps compare amounts as an hourly
// rate (a month counts as 31 days), so an owner's daily budget is held to
// a monthly cap too.
type Caps struct {
	Account          string     `json:"account"`
	BudgetAmount     *USD       `json:"budget_usd,omitempty"`
	BudgetWindow     WindowKind `json:"budget_window,omitempty"`
	BudgetRollingHrs int        `json:"budget_rolling_hours,omitempty"`
	RPM              int64      `json:"rpm,omitempty"`
	TPM              int64      `json:"tpm,omitempty"`
	Concurrent       int64      `json:"concurrent,omitempty"`
}

// Set is every limit object the limiter enforces; its JSON form is what a
// store keeps and the admin API serves.
type Set struct {
	Budgets    []Budget    `json:"budgets,omitempty"`
	RateLimits []RateLimit `json:"rate_limits,omitempty"`
	Spillover  []Spillover `json:"spillover,omitempty"`
	Caps       []Caps      `json:"caps,omitempty"`
}

func checkID(id string) error {
	if id == "" {
		return errors.New("id is missing")
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("id is longer than %d characters", maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("id %q may hold only letters, digits, '.', '_' and '-'", id)
		}
	}
	return nil
}

// checkName checks an account, key, model or provider name: present,
// bounded, printable, no '/' (names become parts of store keys).
func checkName(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is missing", field)
	}
	if len(v) > maxNameLen {
		return fmt.Errorf("%s is longer than %d characters", field, maxNameLen)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == '/' || r == 0xfffd {
			return fmt.Errorf("%s %q holds a character that is not allowed ('/' or a control character)", field, v)
		}
	}
	return nil
}

// Validate checks a scope for a limit that allows the given kinds.
func (s *Scope) validate(allowed ...ScopeKind) error {
	if !slices.Contains(allowed, s.Kind) {
		names := make([]string, len(allowed))
		for i, k := range allowed {
			names[i] = string(k)
		}
		if s.Kind == "" {
			return fmt.Errorf("scope is missing (%s)", strings.Join(names, ", "))
		}
		return fmt.Errorf("scope %q is not one of %s", s.Kind, strings.Join(names, ", "))
	}
	if err := checkName("account", s.Account); err != nil {
		return err
	}
	need := map[ScopeKind]string{ScopeAPIKey: "api_key", ScopeAccountModel: "model", ScopeCredential: "provider"}[s.Kind]
	for _, f := range []struct{ name, v string }{{"api_key", s.APIKey}, {"model", s.Model}, {"provider", s.Provider}} {
		switch {
		case f.name == need:
			if err := checkName(f.name, f.v); err != nil {
				return fmt.Errorf("%w (scope %s names one)", err, s.Kind)
			}
		case f.v != "":
			return fmt.Errorf("%s is not part of scope %s", f.name, s.Kind)
		}
	}
	return nil
}

// Normalize fills a budget's defaults (payer, mode, alerts, set_by) and
// checks it; the error names the field and says what is wrong.
func (b *Budget) Normalize() error {
	if err := b.normalize(); err != nil {
		if b.ID != "" && checkID(b.ID) == nil {
			return fmt.Errorf("budget %q: %w", b.ID, err)
		}
		return fmt.Errorf("budget: %w", err)
	}
	return nil
}

func (b *Budget) normalize() error {
	if err := checkID(b.ID); err != nil {
		return err
	}
	if err := b.Scope.validate(ScopeAccount, ScopeAPIKey, ScopeAccountModel, ScopeCredential); err != nil {
		return err
	}
	if b.Amount < 0 {
		return fmt.Errorf("amount_usd: %w", errAmountNegative)
	}
	if b.Amount > maxUSD {
		return fmt.Errorf("amount_usd: %w", errAmountRange)
	}
	if _, err := compileWindow(b.Window, b.RollingHours); err != nil {
		return err
	}
	switch {
	case b.Payer == "" && b.Kind == ScopeCredential:
		b.Payer = PayerBYOK
	case b.Payer == "":
		b.Payer = PayerPlatform
	case b.Payer != PayerPlatform && b.Payer != PayerBYOK && b.Payer != PayerAll:
		return fmt.Errorf("payer %q is not one of platform, byok, all", b.Payer)
	case b.Kind == ScopeCredential && b.Payer == PayerPlatform:
		return errors.New("payer platform on a byok_credential budget: that credential's requests are paid by its own contract (byok)")
	}
	switch b.Mode {
	case "":
		b.Mode = ModeHard
	case ModeHard, ModeSoft, ModeShadow:
	default:
		return fmt.Errorf("mode %q is not one of hard, soft, shadow", b.Mode)
	}
	if b.Alerts == nil {
		b.Alerts = slices.Clone(DefaultAlerts)
	}
	if len(b.Alerts) > maxAlerts {
		return fmt.Errorf("alerts: at most %d thresholds, got %d", maxAlerts, len(b.Alerts))
	}
	for _, a := range b.Alerts {
		if a < 1 || a > maxAlertPc {
			return fmt.Errorf("alerts: %d is not a percentage between 1 and %d", a, maxAlertPc)
		}
	}
	slices.Sort(b.Alerts)
	if len(slices.Compact(slices.Clone(b.Alerts))) != len(b.Alerts) {
		return errors.New("alerts: a threshold is listed twice")
	}
	return normalizeSetBy(&b.SetBy)
}

func normalizeSetBy(s *SetBy) error {
	switch *s {
	case "":
		*s = SetByOperator
	case SetByOperator, SetByOwner:
	default:
		return fmt.Errorf("set_by %q is not one of operator, owner", *s)
	}
	return nil
}

// Normalize fills a rate limit's defaults and checks it.
func (r *RateLimit) Normalize() error {
	if err := r.normalize(); err != nil {
		if r.ID != "" && checkID(r.ID) == nil {
			return fmt.Errorf("rate limit %q: %w", r.ID, err)
		}
		return fmt.Errorf("rate limit: %w", err)
	}
	return nil
}

func (r *RateLimit) normalize() error {
	if err := checkID(r.ID); err != nil {
		return err
	}
	if err := r.Scope.validate(ScopeAccount, ScopeAPIKey, ScopeAccountModel); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"rpm", r.RPM}, {"tpm", r.TPM}, {"concurrent", r.Concurrent}} {
		if f.v < 0 {
			return fmt.Errorf("%s is negative (%d)", f.name, f.v)
		}
		if f.v > 1<<40 {
			return fmt.Errorf("%s is beyond any real limit (%d)", f.name, f.v)
		}
	}
	if r.RPM == 0 && r.TPM == 0 && r.Concurrent == 0 {
		return errors.New("sets no limit: give rpm, tpm or concurrent (> 0)")
	}
	return normalizeSetBy(&r.SetBy)
}

// Normalize checks a spillover allowance.
func (s *Spillover) Normalize() error {
	if err := checkName("account", s.Account); err != nil {
		return fmt.Errorf("spillover: %w", err)
	}
	if s.Amount < 0 {
		return fmt.Errorf("spillover of account %q: amount_usd: %w", s.Account, errAmountNegative)
	}
	if s.Amount > maxUSD {
		return fmt.Errorf("spillover of account %q: amount_usd: %w", s.Account, errAmountRange)
	}
	return nil
}

// Normalize checks an account's caps.
func (c *Caps) Normalize() error {
	if err := checkName("account", c.Account); err != nil {
		return fmt.Errorf("caps: %w", err)
	}
	wrap := func(err error) error { return fmt.Errorf("caps of account %q: %w", c.Account, err) }
	if c.BudgetAmount != nil {
		if *c.BudgetAmount < 0 {
			return wrap(fmt.Errorf("budget_usd: %w", errAmountNegative))
		}
		if _, err := compileWindow(c.BudgetWindow, c.BudgetRollingHrs); err != nil {
			return wrap(fmt.Errorf("budget_window: %w", err))
		}
	} else if c.BudgetWindow != "" || c.BudgetRollingHrs != 0 {
		return wrap(errors.New("budget_window without budget_usd"))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"rpm", c.RPM}, {"tpm", c.TPM}, {"concurrent", c.Concurrent}} {
		if f.v < 0 {
			return wrap(fmt.Errorf("%s is negative (%d)", f.name, f.v))
		}
	}
	return nil
}

// Normalize fills the defaults of every object in the set and checks
// each, then the set as a whole: ids unique within an account (two
// accounts may both have a budget "monthly"), one spillover and one caps
// per account, owners' limits within their account's caps. The first
// error is returned; the set may be partly normalised then.
func (s *Set) Normalize() error {
	seen := map[string]bool{}
	for i := range s.Budgets {
		b := &s.Budgets[i]
		if err := b.Normalize(); err != nil {
			return err
		}
		if k := "b/" + b.Account + "/" + b.ID; seen[k] {
			return fmt.Errorf("budget %q of account %q: the id is used twice", b.ID, b.Account)
		} else {
			seen[k] = true
		}
	}
	for i := range s.RateLimits {
		r := &s.RateLimits[i]
		if err := r.Normalize(); err != nil {
			return err
		}
		if k := "r/" + r.Account + "/" + r.ID; seen[k] {
			return fmt.Errorf("rate limit %q of account %q: the id is used twice", r.ID, r.Account)
		} else {
			seen[k] = true
		}
	}
	for i := range s.Spillover {
		sp := &s.Spillover[i]
		if err := sp.Normalize(); err != nil {
			return err
		}
		if seen["s/"+sp.Account] {
			return fmt.Errorf("spillover of account %q is given twice", sp.Account)
		}
		seen["s/"+sp.Account] = true
	}
	caps := map[string]*Caps{}
	for i := range s.Caps {
		c := &s.Caps[i]
		if err := c.Normalize(); err != nil {
			return err
		}
		if caps[c.Account] != nil {
			return fmt.Errorf("caps of account %q are given twice", c.Account)
		}
		caps[c.Account] = c
	}
	for i := range s.Budgets {
		if b := &s.Budgets[i]; b.SetBy == SetByOwner {
			if err := OwnerMaySet(b); err != nil {
				return err
			}
			if err := caps[b.Account].CheckBudget(b); err != nil {
				return err
			}
		}
	}
	for i := range s.RateLimits {
		if r := &s.RateLimits[i]; r.SetBy == SetByOwner {
			if err := caps[r.Account].CheckRateLimit(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// ParseSet reads a Set from JSON, refusing unknown fields, and normalises
// it. The error names the object and the field.
func ParseSet(data []byte) (Set, error) {
	var s Set
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Set{}, fmt.Errorf("limits: %w", err)
	}
	if dec.More() {
		return Set{}, errors.New("limits: trailing data after the JSON object")
	}
	if err := s.Normalize(); err != nil {
		return Set{}, err
	}
	return s, nil
}
