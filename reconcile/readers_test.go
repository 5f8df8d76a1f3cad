package reconcile

import (
	"context"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// Over 31 days with pages of 5 buckets, each reader asks for at most 168
// hourly or 31 daily buckets per request, follows every page, and returns
// exactly the tokens and requests the fake organisation recorded.
func TestReadersStayWithinBucketLimits(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		t.Run(provider, func(t *testing.T) {
			h := newHarness(t, provider, day0)
			h.fake.SetPageBuckets(5)
			h.fake.SetListPage(1)
			key, _ := h.key(1, workspaces(provider)[0])
			h.key(2, workspaces(provider)[1])
			for d := 0; d < 31; d += 3 {
				h.set(day0.AddDate(0, 0, d).Add(time.Duration(d%24) * time.Hour))
				h.send(key, modelsFor(provider)[d%2], d%2 == 0)
			}
			h.fake.InjectUsage("", providertest.UsageEvent{Time: day0.Add(50 * time.Hour), Model: modelsFor(provider)[0], Input: 3, Output: 1})
			h.set(day0.AddDate(0, 0, 32))
			w := Window{From: day0, To: day0.AddDate(0, 0, 31)}
			r := h.reader(Options{})
			usage, err := r.Usage(context.Background(), w)
			if err != nil {
				t.Fatal(err)
			}
			costs, err := r.Costs(context.Background(), w)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := r.Keys(context.Background(), nil)
			if err != nil || len(keys) != 2 {
				t.Fatalf("keys: %v %+v", err, keys)
			}

			var want, got Tokens
			var wantReq, gotReq int64
			for _, e := range h.fake.Usage() {
				want.Add(Tokens{Input: e.Input, CacheRead: e.CacheRead, CacheWrite5m: e.CacheWrite5m, CacheWrite1h: e.CacheWrite1h, Output: e.Output})
				wantReq += e.Requests
			}
			for _, u := range usage {
				got.Add(u.Tokens)
				gotReq += u.Requests
			}
			if got != want || want.Total() == 0 {
				t.Errorf("tokens read %+v, recorded %+v", got, want)
			}
			if provider == "openai" && gotReq != wantReq {
				t.Errorf("requests read %d, recorded %d", gotReq, wantReq)
			}
			var nano int64
			for _, c := range costs {
				nano += c.NanoUSD
			}
			if nano <= 0 {
				t.Errorf("costs %+v", costs)
			}

			for _, rec := range h.fake.AdminRecords() {
				q, _ := url.ParseQuery(rec.Query)
				limit, _ := strconv.Atoi(q.Get("limit"))
				span := requestSpan(q)
				switch q.Get("bucket_width") {
				case "1h":
					if limit < 1 || limit > 168 || span > 168*time.Hour {
						t.Errorf("hourly request: limit %d over %s", limit, span)
					}
				case "1d":
					if limit < 1 || limit > 31 || span > 31*24*time.Hour {
						t.Errorf("daily request: limit %d over %s", limit, span)
					}
				}
			}
			t.Logf("%s: %d admin requests for 31 days", provider, len(h.fake.AdminRecords()))
		})
	}
}

// requestSpan is the time range an admin request asked for.
func requestSpan(q url.Values) time.Duration {
	if s := q.Get("start_time"); s != "" {
		a, _ := strconv.ParseInt(s, 10, 64)
		b, _ := strconv.ParseInt(q.Get("end_time"), 10, 64)
		return time.Duration(b-a) * time.Second
	}
	a, _ := time.Parse(time.RFC3339, q.Get("starting_at"))
	b, _ := time.Parse(time.RFC3339, q.Get("ending_at"))
	return b.Sub(a)
}
