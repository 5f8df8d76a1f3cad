package console

import (
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// logPageSize is the number of records on a Request Logs page.
const logPageSize = 50

// logScanBudget bounds the records one page reads, so a filter that
// matches little cannot make a page read the whole log (100,000 records
// and more): the page then says so and "Older" searches on.
const logScanBudget = 20000

// ranges are the time ranges the filters and the usage page offer.
var ranges = []struct{ Value, Label string }{
	{"1h", "Last hour"}, {"24h", "Last 24 hours"}, {"7d", "Last 7 days"}, {"30d", "Last 30 days"}, {"", "All time"},
}

func rangeStart(v string, t time.Time) (time.Time, bool) {
	switch v {
	case "1h":
		return t.Add(-time.Hour), true
	case "24h":
		return t.Add(-24 * time.Hour), true
	case "7d":
		return t.Add(-7 * 24 * time.Hour), true
	case "30d":
		return t.Add(-30 * 24 * time.Hour), true
	case "":
		return time.Time{}, true
	}
	return time.Time{}, false
}

type logFilters struct {
	Key, Provider, Source, Status, Range string
}

func (f logFilters) Query(before string) string {
	q := url.Values{}
	for k, v := range map[string]string{"key": f.Key, "provider": f.Provider, "source": f.Source, "status": f.Status, "range": f.Range, "before": before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q.Encode()
}

type logRow struct {
	store.LogRecord
	KeyName string
}

type logsData struct {
	Filters   logFilters
	Keys      []store.APIKey
	Providers []providerInfo
	Ranges    []struct{ Value, Label string }
	Rows      []logRow
	Next      template.URL
	Newest    template.URL
	First     bool
	Error     string
	// Partial: the page stopped at its read budget before it was full.
	Partial bool
	Budget  int
}

func (h *Handler) logsPage(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	f := logFilters{Key: q.Get("key"), Provider: q.Get("provider"), Source: q.Get("source"), Status: q.Get("status"), Range: q.Get("range")}
	keys, err := h.keys(r.account)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	d := logsData{Filters: f, Keys: keys, Ranges: ranges, First: q.Get("before") == "", Newest: template.URL(Prefix + "/logs?" + f.Query("")), Budget: logScanBudget}
	for _, n := range providers.Names {
		d.Providers = append(d.Providers, providerInfos[n])
	}
	names := make(map[string]string, len(keys))
	for _, k := range keys {
		names[k.ID] = k.Name
	}
	lf := store.LogFilter{AccountID: r.account, Before: q.Get("before"), Limit: logPageSize, MaxScan: logScanBudget}
	status := http.StatusOK
	if f.Key != "" {
		if _, ok := names[f.Key]; !ok {
			h.notFound(w, r.Request)
			return
		}
		lf.KeyID = f.Key
	}
	if f.Provider != "" && providers.Get(f.Provider) == nil {
		d.Error, status = "Unknown provider.", http.StatusBadRequest
	}
	lf.Provider = f.Provider
	switch f.Source {
	case "", "byok", "platform":
		lf.CredentialSource = f.Source
	default:
		d.Error, status = "Credential source must be BYOK or platform.", http.StatusBadRequest
	}
	switch f.Status {
	case "":
	case "2xx", "4xx", "5xx":
		lf.StatusClass = int(f.Status[0] - '0')
	default:
		d.Error, status = "Status must be 2xx, 4xx or 5xx.", http.StatusBadRequest
	}
	from, ok := rangeStart(f.Range, now())
	if !ok {
		d.Error, status = "Unknown time range.", http.StatusBadRequest
	}
	lf.From = from
	if len(lf.Before) > 2048 { // fleet-wide cursors carry one cursor per member
		d.Error, status = "Bad page cursor.", http.StatusBadRequest
	}
	if d.Error == "" {
		page, err := h.ops.Logs(r.Request.Context(), lf)
		if err != nil {
			h.failReq(w, r, err)
			return
		}
		d.Error = missingNote(page.Missing)
		d.Rows = make([]logRow, len(page.Records))
		for i, rec := range page.Records {
			d.Rows[i] = logRow{LogRecord: rec, KeyName: names[rec.KeyID]}
		}
		if page.Next != "" {
			d.Next = template.URL(Prefix + "/logs?" + f.Query(page.Next))
			d.Partial = len(page.Records) < logPageSize
		}
	}
	h.render(w, r.Request, status, "logs", r, "Request Logs", d)
}
