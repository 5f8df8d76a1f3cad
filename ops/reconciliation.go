package ops

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
)

// ReconciliationView is an account's ledger over a range, with each
// provider's usage-reader slot (its last run, standing alerts, unmatched
// keys and proposals): the answer of GET
// /agent_router/accounts/{account}/reconciliation and the console's
// Reconciliation page.
type ReconciliationView struct {
	// Account is "" for the platform's own contract.
	Account   string              `json:"account"`
	From      time.Time           `json:"from"`
	To        time.Time           `json:"to"`
	Providers []UsageReaderStatus `json:"providers"`
	// Rows are the ledger's rows starting in [From, To), in ledger order,
	// provider by provider.
	Rows []reconcile.Row `json:"rows"`
}

// MaxReconciliationRange bounds one read of the ledger.
const MaxReconciliationRange = 93 * 24 * time.Hour

// ReconciliationQuery selects ledger rows. Zero From and To are the last
// run's default window (reconcile.DefaultDays UTC days ending today);
// Provider "" is every provider with a usage reader slot.
type ReconciliationQuery struct {
	From, To time.Time
	Provider string
}

// Reconciliation reads the account's ("" the platform's) ledger.
func (o *Ops) Reconciliation(_ context.Context, account string, q ReconciliationQuery) (ReconciliationView, error) {
	provs := ReaderProviders
	if q.Provider != "" {
		if err := CheckReaderProvider(q.Provider); err != nil {
			return ReconciliationView{}, &Error{Kind: Invalid, Err: err}
		}
		provs = []string{q.Provider}
	}
	if account != "" {
		if _, err := o.Store.Account(account); err != nil {
			return ReconciliationView{}, err
		}
	}
	w := reconcile.LastDays(o.Reconcile.now(), reconcile.DefaultDays)
	if q.From.IsZero() && !q.To.IsZero() {
		q.From = q.To.Add(-time.Duration(reconcile.DefaultDays) * 24 * time.Hour)
	}
	if !q.From.IsZero() {
		w.From = q.From.UTC()
	}
	if !q.To.IsZero() {
		w.To = q.To.UTC()
	}
	switch {
	case !w.To.After(w.From):
		return ReconciliationView{}, errorf(Invalid, "to must be after from")
	case w.To.Sub(w.From) > MaxReconciliationRange:
		return ReconciliationView{}, errorf(Invalid, "from and to may be at most %d days apart", int(MaxReconciliationRange/(24*time.Hour)))
	}
	view := ReconciliationView{Account: account, From: w.From, To: w.To, Providers: []UsageReaderStatus{}, Rows: []reconcile.Row{}}
	all, err := o.UsageReaders(account)
	if err != nil {
		return ReconciliationView{}, err
	}
	// The store keeps whole UTC days: read the days the range touches.
	days := reconcile.Window{From: w.From.Truncate(24 * time.Hour), To: w.To.Add(24*time.Hour - time.Nanosecond).Truncate(24 * time.Hour)}
	for _, st := range all {
		if len(provs) == 1 && st.Provider != provs[0] {
			continue
		}
		view.Providers = append(view.Providers, st)
		rows, err := storeLedger{o.Store}.Rows(context.Background(), reconcile.Scope{Account: account, Provider: st.Provider}, days)
		if err != nil {
			return ReconciliationView{}, err
		}
		for _, r := range rows {
			if w.Contains(r.Start) {
				view.Rows = append(view.Rows, r)
			}
		}
	}
	return view, nil
}

// LedgerCSVHeader names the columns of WriteLedgerCSV.
var LedgerCSVHeader = []string{"kind", "start", "end", "provider", "credential", "provider_key_id", "workspace", "model", "status", "settled",
	"gateway_requests", "provider_requests",
	"gateway_input", "gateway_cache_read", "gateway_cache_write_5m", "gateway_cache_write_1h", "gateway_output",
	"provider_input", "provider_cache_read", "provider_cache_write_5m", "provider_cache_write_1h", "provider_output",
	"gateway_cost_usd", "provider_cost_usd", "delta_cost_usd", "delta_cost_ppm", "note"}

// WriteLedgerCSV writes rows as CSV, one line per row, the header first:
// both sides' requests, tokens by class and cost (USD, decimal), the cost
// delta and the status.
func WriteLedgerCSV(w io.Writer, rows []reconcile.Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(LedgerCSVHeader); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{string(r.Kind), r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339), r.Provider,
			r.Credential, r.KeyID, r.Workspace, r.Model, string(r.Status), strconv.FormatBool(r.Settled),
			requests(r.Gateway), requests(r.ProviderSide)}
		rec = append(rec, tokenCells(r.Gateway)...)
		rec = append(rec, tokenCells(r.ProviderSide)...)
		rec = append(rec, costCell(r.Gateway), costCell(r.ProviderSide))
		delta, ppm := "", ""
		if r.Kind == reconcile.KindCost {
			delta, ppm = pricing.Nano(r.Delta.CostNanoUSD).String(), strconv.FormatInt(r.Delta.CostPPM, 10)
		}
		rec = append(rec, delta, ppm, csvSafe(r.Note))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func requests(s *reconcile.Side) string {
	if s == nil || s.Requests < 0 {
		return ""
	}
	return strconv.FormatInt(s.Requests, 10)
}

func tokenCells(s *reconcile.Side) []string {
	if s == nil || s.Tokens == nil {
		return []string{"", "", "", "", ""}
	}
	t := s.Tokens
	out := make([]string, 0, 5)
	for _, v := range []int64{t.Input, t.CacheRead, t.CacheWrite5m, t.CacheWrite1h, t.Output} {
		out = append(out, strconv.FormatInt(v, 10))
	}
	return out
}

func costCell(s *reconcile.Side) string {
	if s == nil || s.Tokens != nil {
		return ""
	}
	return pricing.Nano(s.CostNanoUSD).String()
}

// csvSafe keeps a spreadsheet from reading a cell as a formula.
func csvSafe(v string) string {
	if v != "" && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@') {
		return "'" + v
	}
	return v
}

// AlertView is a standing out-of-band alert with the run that raised it.
type AlertView struct {
	reconcile.Alert
	// RunAt is when the last completed run of the scope raised it.
	RunAt time.Time `json:"run_at"`
}

// Alerts lists every scope's standing out-of-band alerts (from each
// scope's last completed run), for the operator: the platform's first,
// then by account and provider.
func (o *Ops) Alerts() ([]AlertView, error) {
	runs, err := o.Store.AllReconcileRuns()
	if err != nil {
		return nil, err
	}
	out := []AlertView{}
	for _, r := range runs {
		var rec RunRecord
		if err := json.Unmarshal(r.Result, &rec); err != nil || rec.LastOK == nil {
			continue
		}
		for _, a := range rec.LastOK.Alerts {
			out = append(out, AlertView{Alert: a, RunAt: rec.LastOK.At})
		}
	}
	return out, nil
}
