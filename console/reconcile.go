package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
)

// Reconciliation in the console: the usage-reader card beside a BYOK card
// (OpenAI and Anthropic), and Monitoring → Reconciliation, the ledger of
// the gateway's counts against the provider's own records, with the
// alerts, the keys left for the owner to match and the price calibration
// proposals. Members read; owners register keys, run, choose and accept.

// readerCard is the usage-reader card of the open provider on the BYOK
// page.
type readerCard struct {
	providerInfo
	Status ops.UsageReaderStatus
	Hint   string
	Error  string
	Test   *ops.ReaderTestOutcome
	Notice string
}

var readerHints = map[string]string{
	providers.OpenAI:    "OpenAI admin keys begin with sk-admin- (Organization settings → Admin keys).",
	providers.Anthropic: "Anthropic admin keys begin with sk-ant-admin (Console → Settings → Admin keys).",
}

// readerAlerts are the standing out-of-band alerts of the account's BYOK
// keys, by provider, for the BYOK cards.
func (h *Handler) readerAlerts(account string) map[string][]reconcile.Alert {
	out := map[string][]reconcile.Alert{}
	all, err := h.ops.UsageReaders(account)
	if err != nil {
		return out
	}
	for _, st := range all {
		if len(st.Alerts) > 0 {
			out[st.Provider] = st.Alerts
		}
	}
	return out
}

// readerCardOf is the open provider's usage-reader card, nil for a
// provider without one.
func (h *Handler) readerCardOf(account, provider string) *readerCard {
	if !slices.Contains(ops.ReaderProviders, provider) {
		return nil
	}
	st, err := h.ops.UsageReader(account, provider)
	if err != nil {
		return nil
	}
	return &readerCard{providerInfo: providerInfos[provider], Status: st, Hint: readerHints[provider]}
}

// readerPost handles the usage-reader form: action save, test or remove.
func (h *Handler) readerPost(w http.ResponseWriter, r *request) {
	provider := r.PathValue("provider")
	if !slices.Contains(ops.ReaderProviders, provider) {
		h.notFound(w, r.Request)
		return
	}
	key := providers.NormalizeKey(r.PostFormValue("reader_key"))
	var in ops.UsageReaderInput
	if key != "" {
		in.APIKey = &key
	}
	d := byokData{}
	fail := func(err error) {
		st, msg := h.userError(err)
		if errors.Is(err, ops.ErrNoStoredReader) {
			st, msg = http.StatusBadRequest, "Paste an admin key to test, or save one first."
		}
		d.ReaderError = msg
		h.renderBYOK(w, r, st, provider, d)
	}
	switch r.PostFormValue("action") {
	case "save":
		if key == "" {
			d.ReaderError = "Paste an admin key to save."
			h.renderBYOK(w, r, http.StatusBadRequest, provider, d)
			return
		}
		if _, err := h.ops.SaveUsageReader(r.account, provider, in); err != nil {
			fail(err)
			return
		}
		http.Redirect(w, r.Request, Prefix+"/byok/"+provider+"?done=reader_saved#usage-reader", http.StatusSeeOther)
	case "test":
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		out, err := h.ops.TestUsageReader(ctx, r.account, provider, in)
		if err != nil {
			fail(err)
			return
		}
		d.ReaderTest = &out
		h.renderBYOK(w, r, http.StatusOK, provider, d)
	case "remove":
		if err := h.ops.DeleteUsageReader(r.account, provider); err != nil {
			fail(err)
			return
		}
		http.Redirect(w, r.Request, Prefix+"/byok/"+provider+"?done=reader_removed#usage-reader", http.StatusSeeOther)
	default:
		d.ReaderError = "Unknown action."
		h.renderBYOK(w, r, http.StatusBadRequest, provider, d)
	}
}

// --- Monitoring → Reconciliation ---

var reconRanges = []struct {
	Value, Label string
	Days         int
}{{"3d", "Last 3 days", 3}, {"7d", "Last 7 days", 7}, {"31d", "Last 31 days", 31}}

type reconData struct {
	Range    string
	Provider string
	Ranges   []struct {
		Value, Label string
		Days         int
	}
	Providers []ops.UsageReaderStatus
	CostRows  []reconcile.Row
	TokenRows []reconcile.Row
	// Hidden counts the token rows that matched, not listed one by one.
	Hidden int
	Counts map[reconcile.Status]int
	CSV    template.URL
	Owner  bool
	Notice string
	Error  string
	// Run is the result of a run just made on demand.
	Run *reconcile.Result
}

func (h *Handler) reconQuery(r *request) (ops.ReconciliationQuery, string, string, error) {
	q := r.URL.Query()
	rng, provider := q.Get("range"), q.Get("provider")
	if rng == "" {
		rng = "3d"
	}
	days := 0
	for _, rr := range reconRanges {
		if rr.Value == rng {
			days = rr.Days
		}
	}
	if days == 0 {
		return ops.ReconciliationQuery{}, rng, provider, errText("Unknown time range.")
	}
	if provider != "" && !slices.Contains(ops.ReaderProviders, provider) {
		return ops.ReconciliationQuery{}, rng, provider, errText("Unknown provider.")
	}
	w := reconcile.LastDays(now(), days)
	return ops.ReconciliationQuery{From: w.From, To: w.To, Provider: provider}, rng, provider, nil
}

func (h *Handler) reconcilePage(w http.ResponseWriter, r *request) {
	h.renderReconcile(w, r, http.StatusOK, reconData{Notice: reconNotice(r.URL.Query().Get("done"))})
}

func reconNotice(code string) string {
	switch code {
	case "chosen":
		return "Saved. The next check uses the key you chose."
	case "accepted":
		return "Accepted. The term prices this key's usage from its effective date on."
	}
	return ""
}

func (h *Handler) renderReconcile(w http.ResponseWriter, r *request, status int, d reconData) {
	q, rng, provider, err := h.reconQuery(r)
	d.Range, d.Provider, d.Ranges, d.Owner = rng, provider, reconRanges, r.isOwner
	if err != nil {
		d.Error = err.Error()
		h.render(w, r.Request, http.StatusBadRequest, "reconciliation", r, "Reconciliation", d)
		return
	}
	view, err := h.ops.Reconciliation(r.Context(), r.account, q)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	d.Providers, d.Counts = view.Providers, map[reconcile.Status]int{}
	d.CSV = template.URL(Prefix + "/reconciliation.csv?range=" + url.QueryEscape(rng) + "&provider=" + url.QueryEscape(provider))
	for _, row := range view.Rows {
		d.Counts[row.Status]++
		switch {
		case row.Kind == reconcile.KindCost:
			d.CostRows = append(d.CostRows, row)
		case row.Status == reconcile.StatusMatch:
			d.Hidden++
		default:
			d.TokenRows = append(d.TokenRows, row)
		}
	}
	// Newest first: what changed last is what a person looks for.
	slices.Reverse(d.CostRows)
	slices.Reverse(d.TokenRows)
	if len(d.TokenRows) > 500 {
		d.Hidden += len(d.TokenRows) - 500
		d.TokenRows = d.TokenRows[:500]
	}
	h.render(w, r.Request, status, "reconciliation", r, "Reconciliation", d)
}

// reconcileCSV downloads the range's ledger.
func (h *Handler) reconcileCSV(w http.ResponseWriter, r *request) {
	q, _, _, err := h.reconQuery(r)
	if err != nil {
		h.fail(w, r.Request, http.StatusBadRequest, err.Error())
		return
	}
	view, err := h.ops.Reconciliation(r.Context(), r.account, q)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="reconciliation-%s-%s.csv"`, r.account, now().UTC().Format("20060102")))
	ops.WriteLedgerCSV(w, view.Rows)
}

// reconcileRun runs one provider's reconciliation now.
func (h *Handler) reconcileRun(w http.ResponseWriter, r *request) {
	provider := r.PostFormValue("provider")
	days, _ := strconv.Atoi(r.PostFormValue("days"))
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	res, err := h.ops.RunReconcile(ctx, r.account, provider, days)
	if err != nil {
		_, msg := h.userError(err)
		h.renderReconcile(w, r, http.StatusBadRequest, reconData{Error: msg})
		return
	}
	h.renderReconcile(w, r, http.StatusOK, reconData{Run: &res})
}

// reconcileChoose records the owner's choice of a provider key.
func (h *Handler) reconcileChoose(w http.ResponseWriter, r *request) {
	provider, fp, key := r.PostFormValue("provider"), r.PostFormValue("fingerprint"), r.PostFormValue("provider_key_id")
	if _, err := h.ops.ChooseProviderKey(r.account, provider, fp, key); err != nil {
		_, msg := h.userError(err)
		h.renderReconcile(w, r, http.StatusBadRequest, reconData{Error: msg})
		return
	}
	http.Redirect(w, r.Request, Prefix+"/reconciliation?done=chosen", http.StatusSeeOther)
}

// reconcileAccept accepts a calibration proposal.
func (h *Handler) reconcileAccept(w http.ResponseWriter, r *request) {
	if _, err := h.ops.AcceptProposal(r.account, r.PostFormValue("provider"), r.PathValue("id"), r.user.Email); err != nil {
		st, msg := h.userError(err)
		h.renderReconcile(w, r, st, reconData{Error: msg})
		return
	}
	http.Redirect(w, r.Request, Prefix+"/reconciliation?done=accepted", http.StatusSeeOther)
}

// Template helpers for the ledger.
var reconFuncs = template.FuncMap{
	"usd": func(nano int64) string { return "$" + pricing.Nano(nano).String() },
	"total": func(t *reconcile.Tokens) int64 {
		if t == nil {
			return 0
		}
		return t.Total()
	},
	"pct": func(ppm int64) string {
		return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", float64(ppm)/1e4), "0"), ".") + " %"
	},
	"statusClass": func(s reconcile.Status) string {
		switch s {
		case reconcile.StatusMatch:
			return "ok"
		case reconcile.StatusDrift, reconcile.StatusOutOfBand:
			return "bad"
		}
		return "off"
	},
	"hour": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:00") },
	"ptitle": func(provider string) string {
		if p, ok := providerInfos[provider]; ok {
			return p.Title
		}
		return provider
	},
	"day": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
}

func init() {
	for k, v := range reconFuncs {
		funcs[k] = v
	}
}
