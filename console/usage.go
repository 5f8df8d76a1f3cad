package console

import (
	"encoding/csv"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// usageRanges are the ranges of the Usage page, with their default bucket.
var usageRanges = []struct{ Value, Label, Bucket string }{
	{"24h", "Last 24 hours", "hour"}, {"7d", "Last 7 days", "day"}, {"30d", "Last 30 days", "day"}, {"90d", "Last 90 days", "day"},
}

type usageRow struct {
	Time                       time.Time
	BYOK, Platform             int64
	BYOKTokens, PlatformTokens int64
	Errors                     int64
	// Cost by payer, in nano-USD.
	BYOKCost, PlatformCost int64
}

type breakdown struct {
	Title string
	Dim   string
	Rows  []store.UsageGroup
	Names map[string]string
}

type usageData struct {
	Range, Bucket string
	Ranges        []struct{ Value, Label, Bucket string }
	Rows          []usageRow
	Total         store.UsageCounters
	BYOK          int64
	Platform      int64
	Breakdowns    []breakdown
	Chart         chartView // a bar for every bucket of the range
	// CostChart is the money of the same range: what the account's own
	// keys cost its contracts (BYOK) under what the platform paid.
	CostChart chartView
	Error     string
	// Missing names the fleet members that did not answer (their usage is
	// not in the numbers), "" when all did.
	Missing string
	CSV     template.URL
}

func (h *Handler) usageQuery(r *request) (store.UsageQuery, string, string, error) {
	q := r.URL.Query()
	rng, bucket := q.Get("range"), q.Get("bucket")
	if rng == "" {
		rng = "24h"
	}
	def := ""
	for _, u := range usageRanges {
		if u.Value == rng {
			def = u.Bucket
		}
	}
	if def == "" {
		return store.UsageQuery{}, rng, bucket, errText("Unknown time range.")
	}
	if bucket == "" {
		bucket = def
	}
	if bucket != "hour" && bucket != "day" {
		return store.UsageQuery{}, rng, bucket, errText("Bucket must be hour or day.")
	}
	days := map[string]int{"24h": 1, "7d": 7, "30d": 30, "90d": 90}[rng]
	// The range is whole buckets ending with the current one: "Last 24
	// hours" is this hour and the 23 before it, "Last 7 days" today and
	// the 6 days before (UTC), so the chart has exactly that many bars.
	to := now().UTC()
	step := bucketStep(bucket)
	n := days * int(24*time.Hour/step)
	from := to.Truncate(step).Add(-time.Duration(n-1) * step)
	return store.UsageQuery{AccountID: r.account, From: from, To: to, Bucket: bucket,
		GroupBy: []string{store.DimCredentialSource}}, rng, bucket, nil
}

func (h *Handler) usagePage(w http.ResponseWriter, r *request) {
	uq, rng, bucket, err := h.usageQuery(r)
	d := usageData{Range: rng, Bucket: bucket, Ranges: usageRanges}
	if err != nil {
		d.Error = err.Error()
		h.render(w, r.Request, http.StatusBadRequest, "usage", r, "Usage", d)
		return
	}
	d.CSV = template.URL(Prefix + "/usage.csv?range=" + url.QueryEscape(rng) + "&bucket=" + url.QueryEscape(bucket))
	// One fleet-wide read for the chart and the three breakdowns: every
	// member is asked once, so a slow one costs one bounded wait.
	breakdowns := []struct{ title, dim string }{{"By provider", store.DimProvider}, {"By model", store.DimModel}, {"By API key", store.DimKeyID}}
	qs := []store.UsageQuery{uq}
	for _, b := range breakdowns {
		q := uq
		q.GroupBy = []string{b.dim}
		qs = append(qs, q)
	}
	results, missing, err := h.ops.UsageBatch(r.Request.Context(), qs)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	d.Missing = missingNote(missing)
	res := results[0]
	d.Total = res.Total
	step := bucketStep(bucket)
	chart := barChart{Label: "Requests per " + bucket + " (UTC), BYOK stacked under platform", Unit: "requests",
		Series: []chartSeries{{"BYOK", "byok"}, {"Platform", "platform"}}, From: uq.From, Step: step}
	// The range is the query's (whole buckets, usageQuery), whatever the
	// members answered.
	chart.Values = make([][]float64, buckets(uq.From, uq.To, step))
	for i := range chart.Values {
		chart.Values[i] = make([]float64, 2)
	}
	money := barChart{Label: "Cost per " + bucket + " (UTC, USD), BYOK stacked under platform", Unit: "USD",
		Series: chart.Series, From: uq.From, Step: step, Format: formatUSD, Values: make([][]float64, len(chart.Values))}
	for i := range money.Values {
		money.Values[i] = make([]float64, 2)
	}
	for _, b := range res.Series {
		row := usageRow{Time: b.Time}
		for _, g := range b.Groups {
			switch g.Key[store.DimCredentialSource] {
			case "byok":
				row.BYOK += g.Requests
				row.BYOKTokens += g.TotalTokens
			default:
				row.Platform += g.Requests
				row.PlatformTokens += g.TotalTokens
			}
			row.Errors += g.Errors
			row.BYOKCost += g.BYOKCostNanoUSD
			row.PlatformCost += g.PlatformCostNanoUSD
		}
		d.BYOK += row.BYOK
		d.Platform += row.Platform
		if i := int(b.Time.Sub(uq.From) / step); i >= 0 && i < len(chart.Values) {
			chart.Values[i][0] += float64(row.BYOK)
			chart.Values[i][1] += float64(row.Platform)
			money.Values[i][0] += float64(row.BYOKCost) / 1e9
			money.Values[i][1] += float64(row.PlatformCost) / 1e9
		}
		d.Rows = append(d.Rows, row)
	}
	d.Chart, d.CostChart = chart.view(), money.view()
	keys, err := h.keys(r.account)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	keyNames := map[string]string{"": "(console / none)"}
	for _, k := range keys {
		keyNames[k.ID] = k.Name
	}
	for i, b := range breakdowns {
		rows := results[i+1].Totals
		sort.SliceStable(rows, func(i, j int) bool {
			if a, b := rows[i].CostNanoUSD(), rows[j].CostNanoUSD(); a != b {
				return a > b
			}
			return rows[i].Requests > rows[j].Requests
		})
		bd := breakdown{Title: b.title, Dim: b.dim, Rows: rows}
		if b.dim == store.DimKeyID {
			bd.Names = keyNames
		}
		d.Breakdowns = append(d.Breakdowns, bd)
	}
	h.render(w, r.Request, http.StatusOK, "usage", r, "Usage", d)
}

// bucketStep is the duration of a usage bucket ("hour" or "day").
func bucketStep(bucket string) time.Duration {
	if bucket == "day" {
		return 24 * time.Hour
	}
	return time.Hour
}

// usageCSV downloads the range's usage, one row per bucket, credential
// source, provider, model and API key.
func (h *Handler) usageCSV(w http.ResponseWriter, r *request) {
	uq, _, _, err := h.usageQuery(r)
	if err != nil {
		h.fail(w, r.Request, http.StatusBadRequest, err.Error())
		return
	}
	uq.GroupBy = []string{store.DimCredentialSource, store.DimProvider, store.DimModel, store.DimKeyID}
	res, err := h.ops.Usage(r.Request.Context(), uq)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	missing := res.Missing
	// A file that lacks some instances' usage says so in its name (what a
	// person downloading it sees) and in a header (what a script reads);
	// its rows stay plain data.
	name := fmt.Sprintf("usage-%s-%s", r.account, now().UTC().Format("20060102"))
	if len(missing) > 0 {
		name += "-incomplete"
		ids := make([]string, len(missing))
		for i, m := range missing {
			ids[i] = m.Member
		}
		w.Header().Set(HeaderMissingInstances, strings.Join(ids, ", "))
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.csv"`, name))
	cw := csv.NewWriter(w)
	cw.Write([]string{"time", "credential_source", "provider", "model", "key_id", "requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens",
		"cost_usd", "shadow_cost_usd", "unpriced_requests"})
	for _, b := range res.Series {
		for _, g := range b.Groups {
			cw.Write([]string{b.Time.UTC().Format(time.RFC3339), csvSafe(g.Key[store.DimCredentialSource]), csvSafe(g.Key[store.DimProvider]),
				csvSafe(g.Key[store.DimModel]), csvSafe(g.Key[store.DimKeyID]),
				strconv.FormatInt(g.Requests, 10), strconv.FormatInt(g.Errors, 10), strconv.FormatInt(g.PromptTokens, 10),
				strconv.FormatInt(g.CompletionTokens, 10), strconv.FormatInt(g.TotalTokens, 10),
				pricing.Nano(g.CostNanoUSD()).String(), pricing.Nano(g.ShadowCostNanoUSD).String(), strconv.FormatInt(g.Unpriced, 10)})
		}
	}
	cw.Flush()
}

// csvSafe keeps a client-chosen value (a model name) from being read as a
// formula by a spreadsheet (ops.CSVSafe).
func csvSafe(v string) string { return ops.CSVSafe(v) }

// HeaderMissingInstances, on a usage CSV, names the fleet members that did
// not answer: their usage is not in the file.
const HeaderMissingInstances = "X-Agent-Router-Missing-Instances"

// missingNote says which fleet members did not answer a fleet-wide read
// ("" when all did).
func missingNote(missing []ops.MemberError) string {
	if len(missing) == 0 {
		return ""
	}
	ids := make([]string, len(missing))
	for i, m := range missing {
		ids[i] = m.Member
	}
	return "Some gateway instances did not answer, so their requests are missing here: " + strings.Join(ids, ", ") + "."
}
