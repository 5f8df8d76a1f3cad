package reconcile

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
)

// Anthropic's organisation admin API (money.md §3; Anthropic's Admin API
// reference), with an Admin API key ("sk-ant-admin…") in x-api-key and
// anthropic-version: 2023-06-01:
//
//   - GET /v1/organizations/usage_report/messages: hourly buckets (at most
//     168 a request), grouped by api_key_id, workspace_id and model.
//     Workbench usage has a null api_key_id; the default workspace is a
//     null workspace_id.
//   - GET /v1/organizations/cost_report: daily buckets only, grouped by
//     workspace_id and description (it cannot group by key); amount is in
//     cents as a decimal string ("123.45" is $1.2345). Token costs
//     (cost_type "tokens") are what the gateway prices; the rest (web
//     search, code execution) is kept apart.
//   - GET /v1/organizations/api_keys: id, partial_key_hint, workspace_id
//     (newer answers also say scope.workspace_id), paged by after_id
//     (limit ≤ 1000).
//
// The legacy usage and cost report is what this reads; the beta
// "Usage and Cost Analytics" API (/v1/organizations/analytics/…, a beta
// header) also groups cost by key, and is not relied on here.

const anthropicVersion = "2023-06-01"

type anthropicReader struct{ c *adminClient }

// NewAnthropic returns a Reader of an Anthropic organisation's records
// with the admin key.
func NewAnthropic(adminKey string, opts Options) (Reader, error) {
	c, err := newAdminClient("anthropic", "https://api.anthropic.com", adminKey, opts, func(h http.Header, key string) {
		h.Set("X-Api-Key", key)
		h.Set("Anthropic-Version", anthropicVersion)
	})
	if err != nil {
		return nil, err
	}
	return &anthropicReader{c: c}, nil
}

func (r *anthropicReader) Provider() string     { return "anthropic" }
func (r *anthropicReader) CostScope() CostScope { return CostByWorkspace }
func (r *anthropicReader) String() string       { return r.c.String() }

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (r *anthropicReader) Usage(ctx context.Context, w Window) ([]ProviderUsage, error) {
	var out []ProviderUsage
	for _, ch := range w.chunks(time.Hour, 168) {
		hours := int(ch.To.Sub(ch.From) / time.Hour)
		q := url.Values{"starting_at": {rfc3339(ch.From)}, "ending_at": {rfc3339(ch.To)}, "bucket_width": {"1h"},
			"limit": {strconv.Itoa(hours)}, "group_by[]": {"api_key_id", "workspace_id", "model"}}
		err := r.c.pager("usage", func(cursor string) (string, error) {
			setPage(q, "page", cursor)
			body, err := r.c.get(ctx, "usage", "/v1/organizations/usage_report/messages", q)
			if err != nil {
				return "", err
			}
			page := gjson.ParseBytes(body)
			for _, b := range page.Get("data").Array() {
				hour, err := time.Parse(time.RFC3339, b.Get("starting_at").String())
				if err != nil {
					return "", r.c.fail("usage", 200, ReasonBadAnswer, "starting_at is not RFC 3339")
				}
				for _, res := range b.Get("results").Array() {
					out = append(out, ProviderUsage{Hour: hour.UTC(), KeyID: res.Get("api_key_id").String(),
						Workspace: res.Get("workspace_id").String(), Model: res.Get("model").String(), Requests: -1,
						Tokens: Tokens{Input: res.Get("uncached_input_tokens").Int(), CacheRead: res.Get("cache_read_input_tokens").Int(),
							CacheWrite5m: res.Get("cache_creation.ephemeral_5m_input_tokens").Int(),
							CacheWrite1h: res.Get("cache_creation.ephemeral_1h_input_tokens").Int(),
							Output:       res.Get("output_tokens").Int()}})
				}
			}
			return r.c.nextPage("usage", page)
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *anthropicReader) Ping(ctx context.Context) error {
	from := r.c.now().UTC().Truncate(time.Hour).Add(-time.Hour)
	_, err := r.c.get(ctx, "ping", "/v1/organizations/usage_report/messages", url.Values{"starting_at": {rfc3339(from)},
		"ending_at": {rfc3339(from.Add(time.Hour))}, "bucket_width": {"1h"}, "limit": {"1"}})
	return err
}

func (r *anthropicReader) Costs(ctx context.Context, w Window) ([]ProviderCost, error) {
	type dayWS struct {
		day int64
		ws  string
	}
	sums := map[dayWS]*ProviderCost{}
	var order []dayWS
	for _, ch := range w.chunks(day, MaxDays) {
		q := url.Values{"starting_at": {rfc3339(ch.From)}, "ending_at": {rfc3339(ch.To)}, "bucket_width": {"1d"},
			"limit": {strconv.Itoa(ch.Days())}, "group_by[]": {"workspace_id", "description"}}
		err := r.c.pager("costs", func(cursor string) (string, error) {
			setPage(q, "page", cursor)
			body, err := r.c.get(ctx, "costs", "/v1/organizations/cost_report", q)
			if err != nil {
				return "", err
			}
			page := gjson.ParseBytes(body)
			for _, b := range page.Get("data").Array() {
				d, err := time.Parse(time.RFC3339, b.Get("starting_at").String())
				if err != nil {
					return "", r.c.fail("costs", 200, ReasonBadAnswer, "starting_at is not RFC 3339")
				}
				for _, res := range b.Get("results").Array() {
					if cur := res.Get("currency").String(); cur != "" && cur != "USD" && cur != "usd" {
						return "", r.c.fail("costs", 200, ReasonBadAnswer, "a cost in "+cur+", not USD")
					}
					nano, err := parseNano(number(res.Get("amount")), -2)
					if err != nil {
						return "", r.c.fail("costs", 200, ReasonBadAnswer, "amount: "+err.Error())
					}
					k := dayWS{d.Unix(), res.Get("workspace_id").String()}
					p := sums[k]
					if p == nil {
						p = &ProviderCost{Day: d.UTC(), Workspace: k.ws}
						sums[k] = p
						order = append(order, k)
					}
					if ct := res.Get("cost_type").String(); ct == "tokens" || ct == "" {
						p.NanoUSD += nano
					} else {
						p.OtherNanoUSD += nano
					}
				}
			}
			return r.c.nextPage("costs", page)
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]ProviderCost, len(order))
	for i, k := range order {
		out[i] = *sums[k]
	}
	return out, nil
}

func (r *anthropicReader) Keys(ctx context.Context, _ []string) ([]ProviderKey, error) {
	var keys []ProviderKey
	q := url.Values{"limit": {"1000"}}
	err := r.c.pager("keys", func(cursor string) (string, error) {
		setPage(q, "after_id", cursor)
		body, err := r.c.get(ctx, "keys", "/v1/organizations/api_keys", q)
		if err != nil {
			return "", err
		}
		page := gjson.ParseBytes(body)
		for _, k := range page.Get("data").Array() {
			ws := k.Get("workspace_id")
			if !ws.Exists() {
				ws = k.Get("scope.workspace_id")
			}
			keys = append(keys, ProviderKey{ID: k.Get("id").String(), Name: k.Get("name").String(),
				Redacted: k.Get("partial_key_hint").String(), Workspace: ws.String(), Status: k.Get("status").String()})
		}
		if !page.Get("has_more").Bool() {
			return "", nil
		}
		last := page.Get("last_id").String()
		if last == "" {
			return "", r.c.fail("keys", 200, ReasonBadAnswer, "has_more without last_id")
		}
		return last, nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}
