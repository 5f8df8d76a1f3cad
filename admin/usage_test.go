package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Three hours across a UTC midnight.
var (
	au0 = time.Date(2030, 3, 1, 22, 0, 0, 0, time.UTC)
	au1 = au0.Add(time.Hour)
	au2 = au0.Add(2 * time.Hour)
)

func usageRecord(i int, at time.Time, account, key, provider, model, source string, status int, prompt, completion int64, latency float64) *store.LogRecord {
	return &store.LogRecord{
		ID: fmt.Sprintf("%016x%08x", at.UnixNano(), i), Time: at, AccountID: account, KeyID: key,
		Endpoint: "/v1/chat/completions", Model: model, Provider: provider, UpstreamModel: model,
		CredentialSource: source, Status: status, Stream: i%2 == 0, LatencyMS: latency,
		PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion,
	}
}

func TestUsage(t *testing.T) {
	h := newHarness(t)
	recs := []*store.LogRecord{
		usageRecord(1, au0.Add(time.Minute), "acme", "key_a1", "openai", "gpt-4o", "byok", 200, 100, 10, 10),
		usageRecord(2, au0.Add(2*time.Minute), "acme", "key_a1", "openai", "gpt-4o", "platform", 200, 50, 5, 5),
		usageRecord(3, au1.Add(time.Minute), "globex", "key_g1", "anthropic", "claude-sonnet-4-5", "byok", 200, 30, 3, 2.5),
		usageRecord(4, au1.Add(2*time.Minute), "acme", "key_a2", "", "no-such-model", "", 404, 0, 0, 0.5),
		usageRecord(5, au2.Add(time.Minute), "globex", "key_g1", "openai", "gpt-4o-mini", "platform", 429, 0, 0, 1),
		usageRecord(6, au2.Add(3*time.Minute), "acme", "key_a1", "openai", "gpt-4o", "byok", 200, 7, 3, 4),
		// Now, for the default range (the last 24 hours).
		usageRecord(7, time.Now().UTC(), "acme", "key_a1", "openai", "gpt-4o", "byok", 200, 1, 1, 1),
	}
	for _, r := range recs {
		h.s.Record(r)
	}
	h.s.FlushLog()
	get := func(query string) store.UsageResult {
		t.Helper()
		var res store.UsageResult
		h.ok("GET", "/agent_router/usage?"+query, "", http.StatusOK, &res)
		return res
	}
	rng := "from=2030-03-01T22:00:00Z&to=2030-03-02T01:00:00Z"

	res := get(rng + "&group_by=credential_source,provider")
	if res.Bucket != "hour" || !res.From.Equal(au0) || !res.To.Equal(au2.Add(time.Hour)) || strings.Join(res.GroupBy, ",") != "credential_source,provider" {
		t.Errorf("header = %s %v %v %v", res.Bucket, res.From, res.To, res.GroupBy)
	}
	if len(res.Series) != 3 || !res.Series[0].Time.Equal(au0) || !res.Series[1].Time.Equal(au1) || !res.Series[2].Time.Equal(au2) {
		t.Fatalf("series = %+v", res.Series)
	}
	want := store.UsageCounters{Requests: 6, Errors: 2, PromptTokens: 187, CompletionTokens: 21, TotalTokens: 208, LatencyMSSum: 23}
	if !reflect.DeepEqual(res.Total, want) {
		t.Errorf("total = %+v, want %+v", res.Total, want)
	}
	var keys []string
	for _, g := range res.Totals {
		keys = append(keys, fmt.Sprintf("%s/%s=%d", g.Key["credential_source"], g.Key["provider"], g.Requests))
	}
	if got := strings.Join(keys, " "); got != "/=1 byok/anthropic=1 byok/openai=2 platform/openai=2" {
		t.Errorf("totals = %s", got)
	}
	if g := res.Series[0].Groups; len(g) != 2 || g[0].Key["credential_source"] != "byok" || g[0].PromptTokens != 100 || g[1].Key["credential_source"] != "platform" {
		t.Errorf("first hour = %+v", g)
	}

	// The JSON shape.
	r := h.ok("GET", "/agent_router/usage?"+rng+"&group_by=provider&account=globex", "", http.StatusOK, nil)
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bucket", "from", "to", "group_by", "series", "totals", "total"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in %s", k, r.body)
		}
	}
	for _, frag := range []string{
		`"from":"2030-03-01T22:00:00Z"`,
		`{"time":"2030-03-01T23:00:00Z","groups":[{"key":{"provider":"anthropic"},"requests":1,"errors":0,"prompt_tokens":30,"completion_tokens":3,"total_tokens":33,"cached_tokens":0,"reasoning_tokens":0,"latency_ms_sum":2.5,"byok_cost_nano_usd":0,"platform_cost_nano_usd":0,"shadow_cost_nano_usd":0,"unpriced":0}]}`,
		`"total":{"requests":2,"errors":1,`,
	} {
		if !strings.Contains(string(r.body), frag) {
			t.Errorf("response lacks %s:\n%s", frag, r.body)
		}
	}

	// Account filter, every dimension.
	res = get(rng + "&account=acme&group_by=" + url.QueryEscape("account, key_id,model,provider,credential_source"))
	if res.Total.Requests != 4 || len(res.Totals) != 3 || len(res.GroupBy) != 5 {
		t.Errorf("acme by everything: %d requests, %d groups, group_by %v", res.Total.Requests, len(res.Totals), res.GroupBy)
	}
	for _, g := range res.Totals {
		if g.Key["account"] != "acme" || len(g.Key) != 5 {
			t.Errorf("acme group %v", g.Key)
		}
	}
	if res = get(rng + "&account=initech"); res.Total.Requests != 0 || len(res.Series) != 0 || len(res.Totals) != 0 {
		t.Errorf("account without usage: %+v", res)
	}

	// Days, with plain dates; two UTC days.
	res = get("from=2030-03-01&to=2030-03-03&bucket=day&group_by=account")
	if res.Bucket != "day" || len(res.Series) != 2 || !res.Series[0].Time.Equal(time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)) ||
		!res.Series[1].Time.Equal(time.Date(2030, 3, 2, 0, 0, 0, 0, time.UTC)) || res.Total.Requests != 6 {
		t.Fatalf("days = %+v", res)
	}
	if d := res.Series[0].Groups; len(d) != 2 || d[0].Key["account"] != "acme" || d[0].Requests != 3 || d[1].Requests != 1 {
		t.Errorf("first day = %+v", d)
	}

	// Bounds with offsets, "+" sent escaped and unescaped: 23:00Z to 00:00Z
	// is the middle hour alone.
	for _, q := range []string{"from=2030-03-02T00:00:00%2B01:00&to=2030-03-02T01:00:00%2B01:00", "from=2030-03-02T00:00:00+01:00&to=2030-03-01T21:00:00-03:00"} {
		if res = get(q); res.Total.Requests != 2 || len(res.Series) != 1 || !res.Series[0].Time.Equal(au1) {
			t.Errorf("%s: %+v", q, res)
		}
	}
	// Only from: to is now. Only to: from is 24 hours before it.
	if res = get("from=2030-03-02T00:00:00Z&to=2030-03-02T00:30:00Z"); res.Total.Requests != 2 || !res.To.Equal(au2.Add(time.Hour)) {
		t.Errorf("mid-hour to: %d requests to %v", res.Total.Requests, res.To)
	}
	if res = get("to=2030-03-02T00:00:00Z"); res.Total.Requests != 4 || !res.From.Equal(au2.Add(-24*time.Hour)) {
		t.Errorf("only to: %d requests from %v", res.Total.Requests, res.From)
	}
	// No parameters: the last 24 hours, every account.
	if res = get(""); res.Total.Requests != 1 || res.Total.PromptTokens != 1 || res.Bucket != "hour" || len(res.GroupBy) != 0 {
		t.Errorf("default = %+v", res)
	}

	// Bad input.
	for _, tc := range []struct{ query, want string }{
		{"bucket=week", "bucket must be hour or day"},
		{"bucket=HOUR", "bucket must be hour or day"},
		{"group_by=provider,colour", `unknown group_by dimension "colour"`},
		{"group_by=tenant", "credential_source, provider, model, key_id, account"},
		{"from=yesterday", "from must be an RFC 3339 timestamp"},
		{"to=2030-13-01", "to must be an RFC 3339 timestamp"},
		{"from=2030-03-01T22:00:00", "from must be"},
		{"from=2030-03-02&to=2030-03-01", "from must be before to"},
		{"from=2030-03-02&to=2030-03-02", "from must be before to"},
		{"from=2029-03-01&to=2030-03-03", "longer than 366 days"},
		{"from=2020-01-01", "longer than 366 days"},
		{"from=2999-01-01", "from must be before to"},
	} {
		h.fail("GET", "/agent_router/usage?"+tc.query, "", http.StatusBadRequest, tc.want)
	}
	h.ok("GET", "/agent_router/usage?from=2029-03-01&to=2030-03-02", "", http.StatusOK, nil) // 366 days
	h.fail("POST", "/agent_router/usage", "{}", http.StatusMethodNotAllowed, "allowed: GET")
	h.fail("GET", "/agent_router/usage/acme", "", http.StatusNotFound, "no such route")
}
