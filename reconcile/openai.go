package reconcile

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
)

// OpenAI's organisation admin API (money.md §3; openai-go's
// AdminOrganizationUsage and ProjectAPIKey types), with an Admin API key
// ("sk-admin-…") as a Bearer token:
//
//   - GET /v1/organization/usage/completions: hourly buckets (at most 168 a
//     request), grouped by api_key_id, model and project_id.
//   - GET /v1/organization/costs: daily buckets only (limit up to 180; we
//     ask for 31 at most), grouped by api_key_id. amount.value is USD as a
//     JSON number.
//   - GET /v1/organization/projects and /projects/{id}/api_keys: the keys
//     and their redacted_value, paged by the after cursor (limit ≤ 100).
//
// Arrays go as name[]=v, as the SDKs send them.

type openAIReader struct{ c *adminClient }

// NewOpenAI returns a Reader of an OpenAI organisation's records with the
// admin key.
func NewOpenAI(adminKey string, opts Options) (Reader, error) {
	c, err := newAdminClient("openai", "https://api.openai.com", adminKey, opts, func(h http.Header, key string) {
		h.Set("Authorization", "Bearer "+key)
	})
	if err != nil {
		return nil, err
	}
	return &openAIReader{c: c}, nil
}

func (r *openAIReader) Provider() string     { return "openai" }
func (r *openAIReader) CostScope() CostScope { return CostByKey }
func (r *openAIReader) String() string       { return r.c.String() }

func (r *openAIReader) Usage(ctx context.Context, w Window) ([]ProviderUsage, error) {
	var out []ProviderUsage
	for _, ch := range w.chunks(time.Hour, 168) {
		hours := int(ch.To.Sub(ch.From) / time.Hour)
		q := url.Values{"start_time": {unix(ch.From)}, "end_time": {unix(ch.To)}, "bucket_width": {"1h"},
			"limit": {strconv.Itoa(hours)}, "group_by[]": {"api_key_id", "model", "project_id"}}
		err := r.c.pager("usage", func(cursor string) (string, error) {
			setPage(q, "page", cursor)
			body, err := r.c.get(ctx, "usage", "/v1/organization/usage/completions", q)
			if err != nil {
				return "", err
			}
			page := gjson.ParseBytes(body)
			for _, b := range page.Get("data").Array() {
				hour := time.Unix(b.Get("start_time").Int(), 0).UTC()
				for _, res := range b.Get("results").Array() {
					in, cached := res.Get("input_tokens").Int(), res.Get("input_cached_tokens").Int()
					out = append(out, ProviderUsage{Hour: hour, KeyID: res.Get("api_key_id").String(),
						Workspace: res.Get("project_id").String(), Model: res.Get("model").String(),
						Tokens:   Tokens{Input: in - cached, CacheRead: cached, Output: res.Get("output_tokens").Int()},
						Requests: res.Get("num_model_requests").Int()})
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

func (r *openAIReader) Ping(ctx context.Context) error {
	from := r.c.now().UTC().Truncate(time.Hour).Add(-time.Hour)
	_, err := r.c.get(ctx, "ping", "/v1/organization/usage/completions", url.Values{"start_time": {unix(from)},
		"end_time": {unix(from.Add(time.Hour))}, "bucket_width": {"1h"}, "limit": {"1"}})
	return err
}

func (r *openAIReader) Costs(ctx context.Context, w Window) ([]ProviderCost, error) {
	var out []ProviderCost
	for _, ch := range w.chunks(day, MaxDays) {
		q := url.Values{"start_time": {unix(ch.From)}, "end_time": {unix(ch.To)}, "bucket_width": {"1d"},
			"limit": {strconv.Itoa(ch.Days())}, "group_by[]": {"api_key_id"}}
		err := r.c.pager("costs", func(cursor string) (string, error) {
			setPage(q, "page", cursor)
			body, err := r.c.get(ctx, "costs", "/v1/organization/costs", q)
			if err != nil {
				return "", err
			}
			page := gjson.ParseBytes(body)
			for _, b := range page.Get("data").Array() {
				d := time.Unix(b.Get("start_time").Int(), 0).UTC()
				for _, res := range b.Get("results").Array() {
					amount := res.Get("amount")
					if cur := amount.Get("currency").String(); cur != "" && cur != "usd" && cur != "USD" {
						return "", r.c.fail("costs", 200, ReasonBadAnswer, "a cost in "+cur+", not USD")
					}
					nano, err := parseNano(number(amount.Get("value")), 0)
					if err != nil {
						return "", r.c.fail("costs", 200, ReasonBadAnswer, "amount.value: "+err.Error())
					}
					out = append(out, ProviderCost{Day: d, KeyID: res.Get("api_key_id").String(), NanoUSD: nano})
				}
			}
			return r.c.nextPage("costs", page)
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *openAIReader) Keys(ctx context.Context, projects []string) ([]ProviderKey, error) {
	if len(projects) == 0 {
		err := r.list(ctx, "/v1/organization/projects", func(p gjson.Result) {
			projects = append(projects, p.Get("id").String())
		})
		if err != nil {
			return nil, err
		}
	}
	var keys []ProviderKey
	for _, p := range projects {
		err := r.list(ctx, "/v1/organization/projects/"+url.PathEscape(p)+"/api_keys", func(k gjson.Result) {
			keys = append(keys, ProviderKey{ID: k.Get("id").String(), Name: k.Get("name").String(),
				Redacted: k.Get("redacted_value").String(), Project: p, Status: "active"})
		})
		if err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// list walks an after-cursor listing.
func (r *openAIReader) list(ctx context.Context, path string, each func(gjson.Result)) error {
	q := url.Values{"limit": {"100"}}
	return r.c.pager("keys", func(cursor string) (string, error) {
		setPage(q, "after", cursor)
		body, err := r.c.get(ctx, "keys", path, q)
		if err != nil {
			return "", err
		}
		page := gjson.ParseBytes(body)
		for _, item := range page.Get("data").Array() {
			each(item)
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
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
