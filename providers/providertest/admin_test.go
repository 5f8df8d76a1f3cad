package providertest

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const (
	testOpenAIAdmin    = "sk-admin-FAKEfakeFAKEfakeFAKEfake01"
	testAnthropicAdmin = "sk-ant-admin01-FAKEfakeFAKEfakeFAKEfake01"
)

func adminGet(t *testing.T, a *AdminServer, path string, q url.Values, header map[string]string) (int, gjson.Result) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.URL+path+"?"+q.Encode(), nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, gjson.ParseBytes(b)
}

func post(t *testing.T, url, body string, header map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d", url, resp.StatusCode)
	}
}

// The OpenAI fake's admin API reports what its data plane served (plain and
// streamed), per key and model, pages through hourly buckets, and refuses
// what OpenAI refuses.
func TestOpenAIAdminReportsServedUsage(t *testing.T) {
	a := NewOpenAIAdmin()
	defer a.Close()
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	clock := t0.Add(5 * time.Minute)
	a.SetClock(func() time.Time { return clock })
	a.AddAdminKey(testOpenAIAdmin)
	key := "sk-proj-FAKEkeyFAKEkeyFAKEkey0001"
	k := a.AddKey(key, AdminKey{Project: "proj_a"})
	auth := map[string]string{"Authorization": "Bearer " + key}
	post(t, a.BaseURL()+"/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, auth)
	clock = t0.Add(2*time.Hour + time.Minute)
	post(t, a.BaseURL()+"/chat/completions", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, auth)
	post(t, a.BaseURL()+"/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, map[string]string{"Authorization": "Bearer sk-proj-UNKNOWNunknownUNKNOWN01"})
	if n := len(a.Usage()); n != 3 {
		t.Fatalf("%d usage events, want 3", n)
	}

	admin := map[string]string{"Authorization": "Bearer " + testOpenAIAdmin}
	a.SetPageBuckets(2)
	q := url.Values{"start_time": {strconv.FormatInt(t0.Unix(), 10)}, "end_time": {strconv.FormatInt(t0.Add(3*time.Hour).Unix(), 10)},
		"bucket_width": {"1h"}, "limit": {"3"}, "group_by[]": {"api_key_id", "model"}}
	st, page := adminGet(t, a, "/v1/organization/usage/completions", q, admin)
	if st != 200 || !page.Get("has_more").Bool() || len(page.Get("data").Array()) != 2 {
		t.Fatalf("first page: %d %s", st, page.Raw)
	}
	first := page.Get("data.0.results.0")
	if first.Get("api_key_id").String() != k.ID || first.Get("model").String() != "gpt-4o-mini" ||
		first.Get("input_tokens").Int() != 11 || first.Get("output_tokens").Int() != 5 || first.Get("num_model_requests").Int() != 1 {
		t.Fatalf("first result: %s", first.Raw)
	}
	if first.Get("project_id").Type != gjson.Null {
		t.Errorf("project_id not grouped by, yet %s", first.Get("project_id").Raw)
	}
	q.Set("page", page.Get("next_page").String())
	st, page = adminGet(t, a, "/v1/organization/usage/completions", q, admin)
	if st != 200 || page.Get("has_more").Bool() || page.Get("next_page").Type != gjson.Null {
		t.Fatalf("second page: %d %s", st, page.Raw)
	}
	results := page.Get("data.0.results").Array()
	if len(results) != 2 {
		t.Fatalf("hour 3: %s", page.Raw)
	}
	for _, r := range results {
		switch r.Get("model").String() {
		case "gpt-4o-mini": // the stream's usage chunk
			if r.Get("api_key_id").String() != k.ID || r.Get("input_tokens").Int() != 11 || r.Get("output_tokens").Int() != 5 {
				t.Errorf("streamed: %s", r.Raw)
			}
		case "gpt-4o": // an unknown key: null key id
			if r.Get("api_key_id").Type != gjson.Null {
				t.Errorf("unknown key reported as %s", r.Get("api_key_id").Raw)
			}
		}
	}

	// Costs: 1d only, per key, from list prices: gpt-4o-mini is $0.15 and
	// $0.60 per 1M; two requests of 11 + 5 tokens = 2 × 4.65e-6.
	cq := url.Values{"start_time": {strconv.FormatInt(t0.Truncate(24*time.Hour).Unix(), 10)}, "bucket_width": {"1d"}, "group_by[]": {"api_key_id"}, "api_key_ids[]": {k.ID}}
	st, page = adminGet(t, a, "/v1/organization/costs", cq, admin)
	if st != 200 || page.Get("data.0.results.0.amount.value").String() != "0.0000093" || page.Get("data.0.results.0.amount.currency").String() != "usd" {
		t.Fatalf("costs: %d %s", st, page.Raw)
	}
	cq.Set("bucket_width", "1h")
	if st, _ := adminGet(t, a, "/v1/organization/costs", cq, admin); st != 400 {
		t.Errorf("costs at 1h: %d, want 400", st)
	}
	q.Del("page")
	q.Set("limit", "169")
	if st, _ := adminGet(t, a, "/v1/organization/usage/completions", q, admin); st != 400 {
		t.Errorf("limit 169 at 1h: %d, want 400", st)
	}
	q.Set("limit", "3")
	q["group_by[]"] = []string{"color"}
	if st, _ := adminGet(t, a, "/v1/organization/usage/completions", q, admin); st != 400 {
		t.Errorf("group_by color: %d, want 400", st)
	}

	// Keys: the project's keys with their redacted value.
	st, page = adminGet(t, a, "/v1/organization/projects/proj_a/api_keys", nil, admin)
	if st != 200 || page.Get("data.0.redacted_value").String() != RedactOpenAI(key) || page.Get("data.0.id").String() != k.ID {
		t.Fatalf("keys: %d %s", st, page.Raw)
	}
	if st, _ := adminGet(t, a, "/v1/organization/projects/proj_nope/api_keys", nil, admin); st != 404 {
		t.Errorf("unknown project: %d", st)
	}

	// Auth: no key, a project key, a revoked admin key (echoed, for the
	// scrubbing tests).
	if st, _ := adminGet(t, a, "/v1/organization/usage/completions", q, nil); st != 401 {
		t.Errorf("no key: %d", st)
	}
	if st, _ := adminGet(t, a, "/v1/organization/usage/completions", q, auth); st != 403 {
		t.Errorf("project key: %d", st)
	}
	a.RevokeAdmin(testOpenAIAdmin)
	st, body := adminGet(t, a, "/v1/organization/usage/completions", q, admin)
	if st != 401 || !strings.Contains(body.Raw, testOpenAIAdmin) {
		t.Errorf("revoked: %d %s", st, body.Raw)
	}
	if n := len(a.AdminRecords()); n != 11 {
		t.Errorf("%d admin records", n)
	}
	if n := len(a.Records()); n != 3 {
		t.Errorf("%d data-plane records: admin requests leaked into them", n)
	}
}

// The Anthropic fake's usage report splits the cache writes, reports null
// keys and the default workspace as null, and its cost report is in cents.
func TestAnthropicAdminReportsServedUsage(t *testing.T) {
	a := NewAnthropicAdmin()
	defer a.Close()
	t0 := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	a.SetClock(func() time.Time { return t0.Add(90 * time.Minute) })
	a.AddAdminKey(testAnthropicAdmin)
	key := "sk-ant-api03-FAKEkeyFAKEkeyFAKEkeyFAKE-0001"
	k := a.AddKey(key, AdminKey{Workspace: "wrkspc_01A"})
	if k.Redacted != key[:16]+"..."+key[len(key)-4:] {
		t.Fatalf("partial_key_hint %q", k.Redacted)
	}
	hdr := map[string]string{"X-Api-Key": key, "Anthropic-Version": "2023-06-01"}
	msg := `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	post(t, a.URL+"/v1/messages", msg, hdr)
	post(t, a.URL+"/v1/messages", strings.Replace(msg, `"max_tokens"`, `"stream":true,"max_tokens"`, 1), hdr)
	a.InjectUsage("", UsageEvent{Model: "claude-haiku-4-5", Input: 100, Output: 7}) // Workbench

	admin := map[string]string{"X-Api-Key": testAnthropicAdmin, "Anthropic-Version": "2023-06-01"}
	q := url.Values{"starting_at": {t0.Format(time.RFC3339)}, "ending_at": {t0.Add(2 * time.Hour).Format(time.RFC3339)},
		"bucket_width": {"1h"}, "group_by[]": {"api_key_id", "workspace_id", "model"}}
	st, page := adminGet(t, a, "/v1/organizations/usage_report/messages", q, admin)
	if st != 200 || len(page.Get("data").Array()) != 2 {
		t.Fatalf("usage: %d %s", st, page.Raw)
	}
	results := page.Get("data.1.results").Array()
	if len(results) != 2 {
		t.Fatalf("hour 2: %s", page.Raw)
	}
	ours, workbench := results[0], results[1]
	if ours.Get("api_key_id").String() != k.ID || ours.Get("workspace_id").String() != "wrkspc_01A" ||
		ours.Get("uncached_input_tokens").Int() != 18 || ours.Get("cache_read_input_tokens").Int() != 4 || ours.Get("output_tokens").Int() != 10 ||
		ours.Get("cache_creation.ephemeral_5m_input_tokens").Int() != 0 {
		t.Errorf("our key: %s", ours.Raw)
	}
	if workbench.Get("api_key_id").Type != gjson.Null || workbench.Get("workspace_id").Type != gjson.Null || workbench.Get("uncached_input_tokens").Int() != 100 {
		t.Errorf("workbench: %s", workbench.Raw)
	}

	// Cost in cents: per request 9 × $1 + 2 × $0.10 + 5 × $5 per 1M =
	// $0.0000342; two of them = 0.00684 cents.
	cq := url.Values{"starting_at": {t0.Format(time.RFC3339)}, "group_by[]": {"workspace_id"}}
	st, page = adminGet(t, a, "/v1/organizations/cost_report", cq, admin)
	if st != 200 || page.Get("data.0.results.#(workspace_id==\"wrkspc_01A\").amount").String() != "0.00684" {
		t.Fatalf("cost: %d %s", st, page.Raw)
	}
	cq["group_by[]"] = []string{"workspace_id", "description"}
	st, page = adminGet(t, a, "/v1/organizations/cost_report", cq, admin)
	out := page.Get(`data.0.results.#(token_type=="output_tokens")#`).Array()
	if st != 200 || len(out) != 2 || out[0].Get("cost_type").String() != "tokens" {
		t.Fatalf("cost by description: %d %s", st, page.Raw)
	}
	cq.Set("bucket_width", "1h")
	if st, _ := adminGet(t, a, "/v1/organizations/cost_report", cq, admin); st != 400 {
		t.Errorf("cost_report at 1h: %d", st)
	}

	st, page = adminGet(t, a, "/v1/organizations/api_keys", nil, admin)
	if st != 200 || page.Get("data.0.partial_key_hint").String() != k.Redacted || page.Get("data.0.workspace_id").String() != "wrkspc_01A" {
		t.Fatalf("keys: %d %s", st, page.Raw)
	}
	if st, _ := adminGet(t, a, "/v1/organizations/api_keys", nil, map[string]string{"X-Api-Key": testAnthropicAdmin}); st != 400 {
		t.Errorf("no anthropic-version: %d", st)
	}
	if st, _ := adminGet(t, a, "/v1/organizations/api_keys", nil, hdr); st != 403 {
		t.Errorf("an ordinary key: %d", st)
	}

	// Lateness: the Workbench usage is not visible until its time plus it.
	a.SetLateness(time.Hour)
	_, page = adminGet(t, a, "/v1/organizations/usage_report/messages", q, admin)
	if n := len(page.Get("data.1.results").Array()); n != 0 {
		t.Errorf("with an hour's lateness, %d results are visible at once", n)
	}
}

// FailAdmin answers the next requests with an outage, then recovers.
func TestAdminOutage(t *testing.T) {
	a := NewOpenAIAdmin()
	defer a.Close()
	a.AddAdminKey(testOpenAIAdmin)
	a.FailAdmin(Response{Status: 503, Header: map[string]string{"Retry-After": "1"}, Body: `{"error":{"message":"down"}}`}, 2)
	admin := map[string]string{"Authorization": "Bearer " + testOpenAIAdmin}
	for i, want := range []int{503, 503, 200} {
		if st, _ := adminGet(t, a, "/v1/organization/projects", nil, admin); st != want {
			t.Errorf("request %d: %d, want %d", i, st, want)
		}
	}
}
