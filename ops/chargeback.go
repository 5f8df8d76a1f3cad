package ops

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Chargeback is an account's monthly cost report, the one a business
// unit's finance team asks for: per provider, BYOK credential and model,
// what it cost and who paid. It is read from the usage rollups (kept
// usage_retention, 90 days by default), summed over the fleet.
type Chargeback struct {
	Account string          `json:"account"`
	Month   string          `json:"month"`
	From    time.Time       `json:"from"`
	To      time.Time       `json:"to"`
	Rows    []ChargebackRow `json:"rows"`
	// Totals sums the rows by payer ("byok", "platform").
	Totals map[string]ChargebackTotal `json:"totals"`
	// Missing lists the fleet members that did not answer: their
	// requests are not in the report.
	Missing []MemberError `json:"missing,omitempty"`
}

// ChargebackRow is one provider × credential × model × payer of the month.
type ChargebackRow struct {
	Provider string `json:"provider"`
	// Credential is the BYOK key's fingerprint ("" for the platform key):
	// after a rotation, each key has its own rows.
	Credential string           `json:"credential"`
	Model      string           `json:"model"`
	PaidBy     string           `json:"paid_by"`
	Requests   int64            `json:"requests"`
	Errors     int64            `json:"errors"`
	Tokens     ChargebackTokens `json:"tokens"`
	// Cost is what the priced requests cost (USD, and nano-USD), after the
	// payer's contract terms; ShadowCost, on BYOK rows, what they would
	// have cost on the platform's book. Unpriced counts the requests whose
	// cost is unknown: they are in no sum.
	CostUSD           string   `json:"cost_usd"`
	CostNanoUSD       int64    `json:"cost_nano_usd"`
	ShadowCostUSD     string   `json:"shadow_cost_usd,omitempty"`
	ShadowCostNanoUSD int64    `json:"shadow_cost_nano_usd,omitempty"`
	Unpriced          int64    `json:"unpriced"`
	PriceVersions     []string `json:"price_versions"`
}

// ChargebackTokens are a row's tokens by price class.
type ChargebackTokens struct {
	Input        int64 `json:"input"`
	CacheRead    int64 `json:"cache_read"`
	CacheWrite5m int64 `json:"cache_write_5m"`
	CacheWrite1h int64 `json:"cache_write_1h"`
	Output       int64 `json:"output"`
	Reasoning    int64 `json:"reasoning"`
}

// ChargebackTotal sums one payer's rows.
type ChargebackTotal struct {
	Requests          int64  `json:"requests"`
	CostUSD           string `json:"cost_usd"`
	CostNanoUSD       int64  `json:"cost_nano_usd"`
	ShadowCostUSD     string `json:"shadow_cost_usd,omitempty"`
	ShadowCostNanoUSD int64  `json:"shadow_cost_nano_usd,omitempty"`
	Unpriced          int64  `json:"unpriced"`
}

// ParseMonth reads "YYYY-MM" into the month's UTC range [from, to).
func ParseMonth(month string) (from, to time.Time, err error) {
	t, perr := time.Parse("2006-01", month)
	if perr != nil || t.Year() < 2000 {
		return from, to, errorf(Invalid, "month must be YYYY-MM (a month from 2000 on), got %q", clip(month))
	}
	return t, t.AddDate(0, 1, 0), nil
}

// Chargeback builds the account's report for month ("YYYY-MM", UTC).
func (o *Ops) Chargeback(ctx context.Context, account, month string) (Chargeback, error) {
	from, to, err := ParseMonth(month)
	if err != nil {
		return Chargeback{}, err
	}
	if _, err := o.Store.Account(account); err != nil {
		return Chargeback{}, err
	}
	q := store.UsageQuery{AccountID: account, From: from, To: to, Bucket: "day",
		GroupBy: []string{store.DimProvider, store.DimCredential, store.DimModel, store.DimCredentialSource}}
	res, missing, err := FleetUsage(ctx, o.Store, q)
	if err != nil {
		return Chargeback{}, err
	}
	cb := Chargeback{Account: account, Month: month, From: from, To: to, Rows: []ChargebackRow{},
		Totals: map[string]ChargebackTotal{}, Missing: missing}
	for _, g := range res.Totals {
		if g.Key[store.DimProvider] == "" {
			continue // refused before a provider was chosen: nothing to charge
		}
		row := chargebackRow(g)
		cb.Rows = append(cb.Rows, row)
		t := cb.Totals[row.PaidBy]
		t.Requests += row.Requests
		t.CostNanoUSD += row.CostNanoUSD
		t.ShadowCostNanoUSD += row.ShadowCostNanoUSD
		t.Unpriced += row.Unpriced
		t.CostUSD = pricing.Nano(t.CostNanoUSD).String()
		if t.ShadowCostNanoUSD != 0 {
			t.ShadowCostUSD = pricing.Nano(t.ShadowCostNanoUSD).String()
		}
		cb.Totals[row.PaidBy] = t
	}
	sort.SliceStable(cb.Rows, func(i, j int) bool {
		a, b := cb.Rows[i], cb.Rows[j]
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		if a.Credential != b.Credential {
			return a.Credential < b.Credential
		}
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		return a.PaidBy < b.PaidBy
	})
	return cb, nil
}

func chargebackRow(g store.UsageGroup) ChargebackRow {
	c := &g.UsageCounters
	row := ChargebackRow{Provider: g.Key[store.DimProvider], Credential: g.Key[store.DimCredential], Model: g.Key[store.DimModel],
		PaidBy: g.Key[store.DimCredentialSource], Requests: c.Requests, Errors: c.Errors,
		Tokens: ChargebackTokens{Input: c.InputTokens, CacheRead: c.CacheReadTokens, CacheWrite5m: c.CacheWrite5mTokens,
			CacheWrite1h: c.CacheWrite1hTokens, Output: c.OutputTokens, Reasoning: c.ReasoningTokens},
		CostNanoUSD: c.CostNanoUSD(), ShadowCostNanoUSD: c.ShadowCostNanoUSD, Unpriced: c.Unpriced,
		PriceVersions: c.PriceVersions}
	row.CostUSD = pricing.Nano(row.CostNanoUSD).String()
	if row.ShadowCostNanoUSD != 0 {
		row.ShadowCostUSD = pricing.Nano(row.ShadowCostNanoUSD).String()
	}
	if row.PriceVersions == nil {
		row.PriceVersions = []string{}
	}
	return row
}

// chargebackColumns head the CSV form.
var chargebackColumns = []string{"month", "provider", "credential", "model", "paid_by", "requests", "errors",
	"input_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "output_tokens", "reasoning_tokens",
	"cost_usd", "shadow_cost_usd", "unpriced_requests", "price_versions"}

// WriteCSV writes the report as CSV, one row per report row (price
// versions space-separated), values a spreadsheet cannot read as formulas.
func (cb *Chargeback) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(chargebackColumns)
	n := strconv.FormatInt
	for _, r := range cb.Rows {
		t := r.Tokens
		cw.Write([]string{cb.Month, CSVSafe(r.Provider), CSVSafe(r.Credential), CSVSafe(r.Model), CSVSafe(r.PaidBy),
			n(r.Requests, 10), n(r.Errors, 10), n(t.Input, 10), n(t.CacheRead, 10), n(t.CacheWrite5m, 10),
			n(t.CacheWrite1h, 10), n(t.Output, 10), n(t.Reasoning, 10), r.CostUSD, r.ShadowCostUSD, n(r.Unpriced, 10),
			CSVSafe(strings.Join(r.PriceVersions, " "))})
	}
	cw.Flush()
	return cw.Error()
}

// ChargebackFilename names the report's CSV download: the account, the
// month, and "-incomplete" when fleet members did not answer.
func (cb *Chargeback) Filename() string {
	name := fmt.Sprintf("chargeback-%s-%s", cb.Account, cb.Month)
	if len(cb.Missing) > 0 {
		name += "-incomplete"
	}
	return name + ".csv"
}

// CSVSafe keeps a client-chosen value (a model name) from being read as a
// formula by a spreadsheet.
func CSVSafe(v string) string {
	if len(v) > 1 && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r') {
		return "'" + v
	}
	return v
}
