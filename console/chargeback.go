package console

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// chargebackMonths is how many months the Chargeback page offers, the
// current one included (the usage rollups it reads are kept 90 days by
// default: older months show what is left).
const chargebackMonths = 13

type chargebackData struct {
	Month  string
	Months []struct{ Value, Label string }
	Report ops.Chargeback
	CSV    template.URL
	// Missing names the fleet members that did not answer.
	Missing string
	Error   string
}

// chargebackMonth is the page's month: the query's, or the current one.
func chargebackMonth(r *request) string {
	if m := r.URL.Query().Get("month"); m != "" {
		return m
	}
	return now().UTC().Format("2006-01")
}

func (h *Handler) chargebackPage(w http.ResponseWriter, r *request) {
	d := chargebackData{Month: chargebackMonth(r)}
	first := now().UTC()
	first = time.Date(first.Year(), first.Month(), 1, 0, 0, 0, 0, time.UTC)
	for i := range chargebackMonths {
		m := first.AddDate(0, -i, 0)
		d.Months = append(d.Months, struct{ Value, Label string }{m.Format("2006-01"), m.Format("January 2006")})
	}
	cb, err := h.ops.Chargeback(r.Request.Context(), r.account, d.Month)
	if err != nil {
		st, msg := h.userError(err)
		if st != http.StatusBadRequest {
			h.failReq(w, r, err)
			return
		}
		d.Error = msg
		h.render(w, r.Request, st, "chargeback", r, "Chargeback", d)
		return
	}
	d.Report, d.Missing = cb, missingNote(cb.Missing)
	d.CSV = template.URL(Prefix + "/chargeback.csv?month=" + url.QueryEscape(d.Month))
	h.render(w, r.Request, http.StatusOK, "chargeback", r, "Chargeback", d)
}

// chargebackCSV downloads the month's report (ops.Chargeback.WriteCSV).
func (h *Handler) chargebackCSV(w http.ResponseWriter, r *request) {
	cb, err := h.ops.Chargeback(r.Request.Context(), r.account, chargebackMonth(r))
	if err != nil {
		st, msg := h.userError(err)
		if st != http.StatusBadRequest {
			h.failReq(w, r, err)
			return
		}
		h.fail(w, r.Request, st, msg)
		return
	}
	if len(cb.Missing) > 0 {
		ids := make([]string, len(cb.Missing))
		for i, m := range cb.Missing {
			ids[i] = m.Member
		}
		w.Header().Set(HeaderMissingInstances, strings.Join(ids, ", "))
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+cb.Filename()+`"`)
	cb.WriteCSV(w)
}
