package admin

import (
	"net/http"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// chargeback: GET accounts/{account}/chargeback?month=YYYY-MM[&format=csv]
// → the month's cost per provider × credential × model × payer, as JSON
// or CSV (the file name says "-incomplete", and
// X-Agent-Router-Missing-Instances names them, when fleet members did not
// answer).
func chargeback(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	q := r.URL.Query()
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return errorf(http.StatusBadRequest, "format must be json or csv")
	}
	cb, err := o.Chargeback(r.Context(), r.PathValue("account"), q.Get("month"))
	if err != nil {
		return err
	}
	if format != "csv" {
		return writeJSON(w, http.StatusOK, cb)
	}
	if len(cb.Missing) > 0 {
		ids := make([]string, len(cb.Missing))
		for i, m := range cb.Missing {
			ids[i] = m.Member
		}
		w.Header().Set("X-Agent-Router-Missing-Instances", strings.Join(ids, ", "))
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+cb.Filename()+`"`)
	return cb.WriteCSV(w)
}
