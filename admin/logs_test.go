package admin_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

type logPage struct {
	Records []store.LogRecord `json:"records"`
	Next    string            `json:"next"`
}

func ids(recs []store.LogRecord) string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return strings.Join(out, ",")
}

func TestLogs(t *testing.T) {
	h := newHarness(t)

	// Seven records, one second apart, ids shaped like the gateway's (time
	// in hex nanoseconds, then a counter) so they sort by time. Times are
	// recent so retention keeps them.
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
	var all []*store.LogRecord // oldest first
	for i := range 7 {
		at := base.Add(time.Duration(i) * time.Second)
		acct, key := "acme", "key_a1"
		if i%3 == 1 {
			acct, key = "globex", "key_g1"
		}
		if i == 5 {
			key = "key_a2"
		}
		rec := &store.LogRecord{
			ID: fmt.Sprintf("%016x%08x", at.UnixNano(), i+1), Time: at, AccountID: acct, KeyID: key,
			Endpoint: "/v1/chat/completions", Model: "gpt-4o-mini", Provider: "openai", UpstreamModel: "gpt-4o-mini",
			CredentialSource: "byok", CredentialVersion: 2, CredentialFingerprint: "fp_0123456789ab",
			Status: 200, Stream: i%2 == 0, LatencyMS: 12.5, TTFBMS: 3.25,
		}
		all = append(all, rec)
		h.s.Record(rec)
	}
	h.s.FlushLog()
	newest := func(keep func(*store.LogRecord) bool) string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				out = append(out, all[i].ID)
			}
		}
		return strings.Join(out, ",")
	}
	any := func(*store.LogRecord) bool { return true }

	var page logPage
	r := h.ok("GET", "/agent_router/logs", "", http.StatusOK, &page)
	if got, want := ids(page.Records), newest(any); got != want || page.Next != "" {
		t.Fatalf("all logs = %s next %q, want %s", got, page.Next, want)
	}
	if strings.Contains(string(r.body), `"next"`) {
		t.Errorf("last page carries a next cursor: %s", r.body)
	}
	if got := page.Records[0]; got.AccountID != "acme" || got.Model != "gpt-4o-mini" || got.CredentialSource != "byok" ||
		got.CredentialVersion != 2 || got.Status != 200 || !got.Time.Equal(all[6].Time) || got.LatencyMS != 12.5 {
		t.Errorf("newest record = %+v", got)
	}

	// Filters.
	h.ok("GET", "/agent_router/logs?account=acme", "", http.StatusOK, &page)
	if got, want := ids(page.Records), newest(func(r *store.LogRecord) bool { return r.AccountID == "acme" }); got != want {
		t.Errorf("account=acme: %s, want %s", got, want)
	}
	h.ok("GET", "/agent_router/logs?account=globex", "", http.StatusOK, &page)
	if got, want := ids(page.Records), newest(func(r *store.LogRecord) bool { return r.AccountID == "globex" }); got != want || len(page.Records) != 2 {
		t.Errorf("account=globex: %s, want %s", got, want)
	}
	h.ok("GET", "/agent_router/logs?key_id=key_a2", "", http.StatusOK, &page)
	if len(page.Records) != 1 || page.Records[0].ID != all[5].ID {
		t.Errorf("key_id=key_a2: %s", ids(page.Records))
	}
	h.ok("GET", "/agent_router/logs?account=globex&key_id=key_a1", "", http.StatusOK, &page)
	if len(page.Records) != 0 {
		t.Errorf("account=globex&key_id=key_a1: %s", ids(page.Records))
	}
	r = h.ok("GET", "/agent_router/logs?account=nobody", "", http.StatusOK, &page)
	if len(page.Records) != 0 || !strings.Contains(string(r.body), `"records":[]`) {
		t.Errorf("no matches should be an empty array: %s", r.body)
	}

	// Paging with limit and the next cursor walks every record exactly once.
	var walked []string
	q := "limit=2"
	for n := 0; ; n++ {
		if n > 10 {
			t.Fatal("paging does not end")
		}
		h.ok("GET", "/agent_router/logs?"+q, "", http.StatusOK, &page)
		if len(page.Records) > 2 {
			t.Fatalf("limit=2 returned %d records", len(page.Records))
		}
		walked = append(walked, ids(page.Records))
		if page.Next == "" {
			break
		}
		if page.Next != page.Records[len(page.Records)-1].ID {
			t.Errorf("next = %q, want the last id of the page", page.Next)
		}
		q = "limit=2&before=" + url.QueryEscape(page.Next)
	}
	if got, want := strings.Join(walked, ","), newest(any); got != want || len(walked) != 4 {
		t.Errorf("paged walk = %v, want %s in 4 pages", walked, want)
	}
	// Paging within a filter.
	h.ok("GET", "/agent_router/logs?account=acme&limit=3", "", http.StatusOK, &page)
	acmeIDs := strings.Split(newest(func(r *store.LogRecord) bool { return r.AccountID == "acme" }), ",")
	if ids(page.Records) != strings.Join(acmeIDs[:3], ",") || page.Next != acmeIDs[2] {
		t.Fatalf("acme page 1 = %s next %q", ids(page.Records), page.Next)
	}
	h.ok("GET", "/agent_router/logs?account=acme&limit=3&before="+page.Next, "", http.StatusOK, &page)
	if ids(page.Records) != strings.Join(acmeIDs[3:], ",") || page.Next != "" {
		t.Errorf("acme page 2 = %s next %q, want %v", ids(page.Records), page.Next, acmeIDs[3:])
	}
	// Exactly limit records left: no next cursor.
	h.ok("GET", "/agent_router/logs?limit=7", "", http.StatusOK, &page)
	if len(page.Records) != 7 || page.Next != "" {
		t.Errorf("limit=7 of 7: %d records, next %q", len(page.Records), page.Next)
	}
	// before the oldest: nothing; before a time in the future: everything.
	h.ok("GET", "/agent_router/logs?before="+all[0].ID, "", http.StatusOK, &page)
	if len(page.Records) != 0 || page.Next != "" {
		t.Errorf("before oldest: %s", ids(page.Records))
	}
	h.ok("GET", "/agent_router/logs?before=ffffffffffffffffffffffff", "", http.StatusOK, &page)
	if ids(page.Records) != newest(any) {
		t.Errorf("before the future: %s", ids(page.Records))
	}
	h.ok("GET", "/agent_router/logs?limit=1000", "", http.StatusOK, &page)
	h.ok("GET", "/agent_router/logs?limit=1", "", http.StatusOK, &page)
	if len(page.Records) != 1 || page.Next != all[6].ID {
		t.Errorf("limit=1: %s next %q", ids(page.Records), page.Next)
	}

	for _, l := range []string{"0", "abc", "5000", "-1", "1001", "1.5", "%20"} {
		h.fail("GET", "/agent_router/logs?limit="+l, "", http.StatusBadRequest, "limit must be a number from 1 to 1000")
	}

	// One record.
	var one store.LogRecord
	h.ok("GET", "/agent_router/logs/"+all[3].ID, "", http.StatusOK, &one)
	if one.ID != all[3].ID || one.AccountID != all[3].AccountID || one.KeyID != all[3].KeyID || !one.Time.Equal(all[3].Time) ||
		one.Endpoint != "/v1/chat/completions" || one.CredentialFingerprint != "fp_0123456789ab" {
		t.Errorf("log %s = %+v", all[3].ID, one)
	}
	h.fail("GET", "/agent_router/logs/00000000000000000000dead", "", http.StatusNotFound, "00000000000000000000dead", "not found")
}

func TestLogsFilters(t *testing.T) {
	h := newHarness(t)
	// Twelve records a minute apart, recent so retention keeps them.
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Minute)
	var all []*store.LogRecord // oldest first
	for i := range 12 {
		at := base.Add(time.Duration(i) * time.Minute)
		rec := &store.LogRecord{
			ID: fmt.Sprintf("%016x%08x", at.UnixNano(), i+1), Time: at, AccountID: "acme", KeyID: "key_a1",
			Endpoint: "/v1/chat/completions", Model: "gpt-4o-mini",
			Provider: []string{"openai", "anthropic", "mistral"}[i%3], CredentialSource: []string{"byok", "platform"}[i%2],
			Status: []int{200, 200, 429, 502}[i%4], LatencyMS: 1,
		}
		all = append(all, rec)
		h.s.Record(rec)
	}
	h.s.FlushLog()
	newest := func(keep func(*store.LogRecord) bool) string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				out = append(out, all[i].ID)
			}
		}
		return strings.Join(out, ",")
	}
	from, to := base.Add(3*time.Minute), base.Add(9*time.Minute)
	inRange := func(r *store.LogRecord) bool { return !r.Time.Before(from) && r.Time.Before(to) }
	rng := "from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))

	for _, tc := range []struct {
		query string
		keep  func(*store.LogRecord) bool
	}{
		{"provider=anthropic", func(r *store.LogRecord) bool { return r.Provider == "anthropic" }},
		{"credential_source=platform", func(r *store.LogRecord) bool { return r.CredentialSource == "platform" }},
		{"status=429", func(r *store.LogRecord) bool { return r.Status == 429 }},
		{"status=404", func(r *store.LogRecord) bool { return false }},
		{rng, inRange},
		{"from=" + url.QueryEscape(from.Format(time.RFC3339)), func(r *store.LogRecord) bool { return !r.Time.Before(from) }},
		{"to=" + url.QueryEscape(to.Format(time.RFC3339)), func(r *store.LogRecord) bool { return r.Time.Before(to) }},
		{rng + "&provider=openai&credential_source=byok", func(r *store.LogRecord) bool {
			return inRange(r) && r.Provider == "openai" && r.CredentialSource == "byok"
		}},
		{rng + "&status=200&account=acme&key_id=key_a1", func(r *store.LogRecord) bool { return inRange(r) && r.Status == 200 }},
		{"to=" + base.Format(time.DateOnly), func(r *store.LogRecord) bool { return false }},
	} {
		want := newest(tc.keep)
		// One page, then pages of two through the next cursor.
		var page logPage
		h.ok("GET", "/agent_router/logs?"+tc.query, "", http.StatusOK, &page)
		if got := ids(page.Records); got != want || page.Next != "" {
			t.Errorf("%s: %s next %q, want %s", tc.query, got, page.Next, want)
		}
		var walked []string
		q := tc.query + "&limit=2"
		for n := 0; ; n++ {
			if n > 20 {
				t.Fatal("paging does not end")
			}
			h.ok("GET", "/agent_router/logs?"+q, "", http.StatusOK, &page)
			if len(page.Records) > 0 {
				walked = append(walked, ids(page.Records))
			}
			if page.Next == "" {
				break
			}
			q = tc.query + "&limit=2&before=" + url.QueryEscape(page.Next)
		}
		if got := strings.Join(walked, ","); got != want {
			t.Errorf("%s, pages of 2: %s, want %s", tc.query, got, want)
		}
	}

	for _, tc := range []struct{ query, want string }{
		{"provider=nope", `unknown provider "nope"`},
		{"credential_source=mine", "credential_source must be byok or platform"},
		{"status=abc", "status must be an HTTP status"},
		{"status=99", "status must be an HTTP status"},
		{"status=600", "status must be an HTTP status"},
		{"from=yesterday", "from must be an RFC 3339 timestamp"},
		{"to=2030-02-30", "to must be an RFC 3339 timestamp"},
		{"from=2030-03-02&to=2030-03-01", "from must be before to"},
		{"from=2030-03-02&to=2030-03-02", "from must be before to"},
	} {
		h.fail("GET", "/agent_router/logs?"+tc.query, "", http.StatusBadRequest, tc.want)
	}
}
