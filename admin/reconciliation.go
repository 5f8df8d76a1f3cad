package admin

import (
	"net/http"
	"strconv"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// Reconciliation: the ledger of the gateway's counts against the
// providers' own records, runs on demand, the owner's key choices and
// calibration proposals. Routes without an account are the platform's
// own contract.

// getReconciliation: GET [accounts/{account}/]reconciliation
// ?from=&to=&provider=&format=json|csv → the ledger's rows and each
// provider's last run, alerts, unmatched keys and proposals (JSON), or
// the rows as CSV.
func getReconciliation(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	q := r.URL.Query()
	from, to, err := timeRange(q)
	if err != nil {
		return err
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return errorf(http.StatusBadRequest, "format must be json or csv")
	}
	view, err := o.Reconciliation(r.Context(), r.PathValue("account"), ops.ReconciliationQuery{From: from, To: to, Provider: q.Get("provider")})
	if err != nil {
		return err
	}
	if format != "csv" {
		return writeJSON(w, http.StatusOK, view)
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="reconciliation.csv"`)
	return ops.WriteLedgerCSV(w, view.Rows)
}

// runReconciliation: POST [accounts/{account}/]reconciliation/{provider}/run
// ?days=N (1 to 31; default the configured window) reconciles now → the
// run's result (ok false, with the reason, when the provider or the
// fleet could not be read: the ledger is then as it was).
func runReconciliation(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	days := 0
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errorf(http.StatusBadRequest, "days must be a number from 1 to 31")
		}
		days = n
	}
	res, err := o.RunReconcile(r.Context(), r.PathValue("account"), r.PathValue("provider"), days)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

type keyChoice struct {
	Fingerprint   string `json:"fingerprint"`
	ProviderKeyID string `json:"provider_key_id"`
}

// chooseProviderKey: PUT [accounts/{account}/]reconciliation/{provider}/keys
// with {"fingerprint": "fp_…", "provider_key_id": "key_…"} records the
// owner's choice for a key the reconciler could not match on its own
// ("" withdraws it).
func chooseProviderKey(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var in keyChoice
	if err := decode(r, &in); err != nil {
		return err
	}
	n, err := o.ChooseProviderKey(r.PathValue("account"), r.PathValue("provider"), in.Fingerprint, in.ProviderKeyID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"fingerprint": in.Fingerprint, "provider_key_id": n.ChosenKeyID})
}

// acceptProposal: POST [accounts/{account}/]reconciliation/{provider}/proposals/{id}/accept
// keeps a calibration proposal's contract term for its keys.
func acceptProposal(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	v, err := o.AcceptProposal(r.PathValue("account"), r.PathValue("provider"), r.PathValue("id"), "admin API")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// listAlerts: GET reconciliation/alerts → every scope's standing
// out-of-band alerts (the operator's view across accounts).
func listAlerts(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	out, err := o.Alerts()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}
