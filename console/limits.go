package console

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// The Budgets & Limits page (limits/WIRING.md §7): every budget and rate
// limit on the account with its current window (spent, reserved here,
// remaining, reset; shadow budgets' would-refuse counts), the spillover
// allowance, the operator's caps and the recent threshold alerts. Owners
// add and remove budgets on the account's API keys, BYOK credentials and
// BYOK spend, and rate limits on its keys, within the caps; what the
// operator set they read. Members read.

// limitRow is one limit's state on the page.
type limitRow struct {
	ID, Kind, Scope, Window, Payer, Mode string
	Limit, Spent, Reserved, Remaining    string
	ResetAt                              time.Time
	WouldRefuse                          int64
	// Owned: an owner set it (an owner may remove it); Default: the
	// config's default for each key or account.
	Owned, Default bool
	// Exhausted: nothing left in the window.
	Exhausted bool
}

type limitsData struct {
	Owner   bool
	Budgets []limitRow
	Rates   []limitRow
	Caps    string
	Events  []ops.LimitEvent
	Keys    []store.APIKey
	// Credentials are the providers the account has a BYOK key for.
	Credentials []string
	Notice      string
	Error       string
	// Form keeps what the owner typed when it was refused, in the form
	// FormFor names (budget or rate).
	Form    map[string]string
	FormFor string
}

func (h *Handler) limitsData(r *request) (limitsData, error) {
	d := limitsData{Owner: r.isOwner, Form: map[string]string{}}
	al, err := h.ops.AccountLimits(r.account)
	if err != nil {
		return d, err
	}
	owned := map[string]bool{}
	for _, b := range al.Set.Budgets {
		owned["b/"+b.ID] = b.SetBy == limits.SetByOwner
	}
	for _, rl := range al.Set.RateLimits {
		owned["r/"+rl.ID] = rl.SetBy == limits.SetByOwner
	}
	for _, s := range al.Status {
		row := limitRow{ID: s.ID, Kind: s.KindStr, Scope: scopeText(s.Scope), Payer: string(s.Payer), Mode: string(s.Mode),
			ResetAt: s.ResetAt, WouldRefuse: s.WouldRefuse, Default: strings.HasPrefix(s.ID, ops.ReservedLimitPrefix),
			Exhausted: s.Remaining <= 0}
		if s.Window != "" {
			row.Window = windowText(s.Window, s.RollingHours)
		}
		switch s.Kind {
		case limits.KindBudget, limits.KindSpillover:
			row.Limit, row.Spent, row.Reserved, row.Remaining = usd(s.Limit), usd(s.Spent), usd(s.Reserved), usd(s.Remaining)
			row.Owned = owned["b/"+s.ID]
			d.Budgets = append(d.Budgets, row)
		default:
			row.Limit, row.Spent, row.Reserved, row.Remaining = num(s.Limit), num(s.Spent), num(s.Reserved), num(s.Remaining)
			row.Owned = owned["r/"+s.ID]
			d.Rates = append(d.Rates, row)
		}
	}
	if c := ops.CapsOf(&al.Set); c != nil {
		d.Caps = capsText(c)
	}
	d.Events = al.Events
	if r.isOwner {
		keys, err := h.cfg.Store.APIKeysPage(r.account, store.PageRequest{Limit: store.MaxPageLimit})
		if err != nil {
			return d, err
		}
		d.Keys = keys.Items
		sn := h.cfg.Store.Snapshot()
		for _, p := range providers.Names {
			if sn.Credential(r.account, p) != nil {
				d.Credentials = append(d.Credentials, p)
			}
		}
	}
	return d, nil
}

func num(n int64) string { return strconv.FormatInt(n, 10) }

func scopeText(s limits.Scope) string {
	switch s.Kind {
	case limits.ScopeAPIKey:
		return "API key " + s.APIKey
	case limits.ScopeAccountModel:
		return "model " + s.Model
	case limits.ScopeCredential:
		return "BYOK key for " + s.Provider
	}
	return "whole account"
}

func windowText(k limits.WindowKind, hours int) string {
	if k == limits.WindowRolling {
		return fmt.Sprintf("rolling %d h", hours)
	}
	return string(k)
}

func capsText(c *limits.Caps) string {
	var parts []string
	if c.BudgetAmount != nil {
		parts = append(parts, fmt.Sprintf("budgets up to $%s a %s", c.BudgetAmount.String(), windowText(c.BudgetWindow, c.BudgetRollingHrs)))
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"requests a minute", c.RPM}, {"tokens a minute", c.TPM}, {"requests at once", c.Concurrent}} {
		if f.v > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", f.v, f.name))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " · ")
}

func (h *Handler) limitsPage(w http.ResponseWriter, r *request) {
	d, err := h.limitsData(r)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	switch r.URL.Query().Get("done") {
	case "budget":
		d.Notice = "Budget saved: it holds from the next request."
	case "rate":
		d.Notice = "Rate limit saved: it holds from the next request."
	case "removed":
		d.Notice = "Removed."
	}
	h.render(w, r.Request, http.StatusOK, "limits", r, "Budgets & Limits", d)
}

// limitsFail re-renders the page with the reason; nothing was changed.
func (h *Handler) limitsFail(w http.ResponseWriter, r *request, err error) {
	st, msg := h.userError(err)
	if _, ok := err.(errText); ok {
		st, msg = http.StatusBadRequest, err.Error()
	}
	if st == http.StatusInternalServerError || st == http.StatusServiceUnavailable {
		h.fail(w, r.Request, st, msg)
		return
	}
	d, derr := h.limitsData(r)
	if derr != nil {
		h.failReq(w, r, derr)
		return
	}
	d.Error = msg
	d.FormFor = "budget"
	if strings.HasSuffix(r.URL.Path, "/rate_limits") {
		d.FormFor = "rate"
	}
	for _, f := range []string{"id", "scope", "api_key", "provider", "amount", "window", "rolling_hours", "payer", "mode", "rpm", "tpm", "concurrent"} {
		d.Form[f] = r.PostFormValue(f)
	}
	h.render(w, r.Request, st, "limits", r, "Budgets & Limits", d)
}

// budgetPost: an owner adds (or replaces) a budget of their own.
func (h *Handler) budgetPost(w http.ResponseWriter, r *request) {
	b, err := budgetFromForm(r)
	if err == nil {
		_, err = h.ops.PutBudget(r.account, b.ID, b, ops.ByOwner)
	}
	if err != nil {
		h.limitsFail(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/limits?done=budget", http.StatusSeeOther)
}

func budgetFromForm(r *request) (limits.Budget, error) {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	b := limits.Budget{ID: v("id"), Scope: limits.Scope{Kind: limits.ScopeKind(v("scope")), Account: r.account},
		Window: limits.WindowKind(v("window")), Payer: limits.Payer(v("payer")), Mode: limits.Mode(v("mode"))}
	if b.ID == "" {
		return b, errText("Give the budget a name (letters, digits, '.', '_' or '-').")
	}
	switch b.Kind {
	case limits.ScopeAPIKey:
		b.APIKey = v("api_key")
	case limits.ScopeCredential:
		b.Provider = v("provider")
	}
	amt, err := limits.ParseUSD(strings.TrimPrefix(v("amount"), "$"))
	if err != nil {
		return b, errText("The amount in USD is " + err.Error() + ".")
	}
	b.Amount = amt
	if b.Window == limits.WindowRolling {
		n, err := strconv.Atoi(v("rolling_hours"))
		if err != nil {
			return b, errText("A rolling window needs its length in hours.")
		}
		b.RollingHours = n
	}
	return b, nil
}

// ratePost: an owner adds (or replaces) a rate limit on one of the
// account's keys.
func (h *Handler) ratePost(w http.ResponseWriter, r *request) {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	rl := limits.RateLimit{ID: v("id"), Scope: limits.Scope{Kind: limits.ScopeAPIKey, Account: r.account, APIKey: v("api_key")}}
	var err error
	if rl.ID == "" {
		err = errText("Give the rate limit a name (letters, digits, '.', '_' or '-').")
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"rpm", &rl.RPM}, {"tpm", &rl.TPM}, {"concurrent", &rl.Concurrent}} {
		if s := v(f.name); s != "" && err == nil {
			n, perr := strconv.ParseInt(s, 10, 64)
			if perr != nil {
				err = errText("The " + f.name + " must be a whole number.")
			}
			*f.dst = n
		}
	}
	if err == nil {
		_, err = h.ops.PutRateLimit(r.account, rl.ID, rl, ops.ByOwner)
	}
	if err != nil {
		h.limitsFail(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/limits?done=rate", http.StatusSeeOther)
}

// limitRemove: an owner removes a budget or rate limit of their own.
func (h *Handler) limitRemove(w http.ResponseWriter, r *request) {
	id := r.PathValue("id")
	var err error
	switch r.PathValue("what") {
	case "budgets":
		err = h.ops.DeleteBudget(r.account, id, ops.ByOwner)
	case "rate_limits":
		err = h.ops.DeleteRateLimit(r.account, id, ops.ByOwner)
	default:
		h.notFound(w, r.Request)
		return
	}
	if err != nil {
		if ops.KindOf(err) == ops.NotFound {
			h.notFound(w, r.Request)
			return
		}
		h.limitsFail(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/limits?done=removed", http.StatusSeeOther)
}
