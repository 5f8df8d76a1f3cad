package reconcile

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// clientOf is the admin client inside a Reader.
func clientOf(r Reader) *adminClient {
	switch r := r.(type) {
	case *openAIReader:
		return r.c
	case *anthropicReader:
		return r.c
	}
	panic("unknown reader")
}

// recordSleeps makes the reader record its backoffs instead of sleeping.
func recordSleeps(r Reader) *[]time.Duration {
	var mu sync.Mutex
	var waits []time.Duration
	clientOf(r).sleep = func(_ context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return nil
	}
	return &waits
}

// 429 and 5xx are retried: after Retry-After when the provider gives one
// (seconds or a date), else after a doubling backoff.
func TestRetriesBackOffAndHonourRetryAfter(t *testing.T) {
	h := newHarness(t, "anthropic", day0)
	cases := []struct {
		name string
		resp providertest.Response
		want []time.Duration
	}{
		{"429 with Retry-After in seconds", providertest.Response{Status: 429, Header: map[string]string{"Retry-After": "7"}}, []time.Duration{7 * time.Second, 7 * time.Second}},
		{"529 overloaded, no Retry-After", providertest.Response{Status: 529}, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}},
		{"503 with an HTTP date", providertest.Response{Status: 503, Header: map[string]string{"Retry-After": time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)}}, nil},
	}
	for _, c := range cases {
		h.fake.FailAdmin(c.resp, 2)
		r := h.reader(Options{BaseDelay: 100 * time.Millisecond})
		waits := recordSleeps(r)
		before := len(h.fake.AdminRecords())
		if _, err := r.Keys(context.Background(), nil); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n := len(h.fake.AdminRecords()) - before; n != 3 {
			t.Errorf("%s: %d requests, want 3", c.name, n)
		}
		if c.want != nil && fmt.Sprint(*waits) != fmt.Sprint(c.want) {
			t.Errorf("%s: waited %v, want %v", c.name, *waits, c.want)
		}
		if c.want == nil && (len(*waits) != 2 || (*waits)[0] < 25*time.Second || (*waits)[0] > 31*time.Second) {
			t.Errorf("%s: waited %v, want about 30s twice", c.name, *waits)
		}
	}
}

// Retries are bounded; a 401, 403 or another 4xx is not retried.
func TestRetriesAreBounded(t *testing.T) {
	h := newHarness(t, "openai", day0)
	cases := []struct {
		resp   providertest.Response
		tries  int
		reason Reason
	}{
		{providertest.Response{Status: 503}, 4, ReasonUnavailable},
		{providertest.Response{Status: 429}, 4, ReasonRateLimited},
		{providertest.Response{Status: 401, Body: `{"error":{"message":"nope"}}`}, 1, ReasonKeyRejected},
		{providertest.Response{Status: 403}, 1, ReasonKeyRejected},
		{providertest.Response{Status: 400, Body: `{"error":{"message":"limit must be between 1 and 168"}}`}, 1, ReasonBadRequest},
	}
	for _, c := range cases {
		h.fake.FailAdmin(c.resp, -1)
		r := h.reader(Options{MaxAttempts: 4})
		recordSleeps(r)
		before := len(h.fake.AdminRecords())
		_, err := r.Usage(context.Background(), LastDays(day0, 1))
		if n := len(h.fake.AdminRecords()) - before; n != c.tries || ReasonOf(err) != c.reason {
			t.Errorf("HTTP %d: %d tries, %v; want %d, %s", c.resp.Status, n, err, c.tries, c.reason)
		}
	}
}

// A run ends when its context does: during a request that hangs, and
// during a backoff.
func TestContextCancels(t *testing.T) {
	h := newHarness(t, "openai", day0)
	for _, resp := range []providertest.Response{{Hang: true}, {Status: 503, Header: map[string]string{"Retry-After": "30"}}} {
		h.fake.FailAdmin(resp, -1)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := h.reader(Options{}).Costs(ctx, LastDays(day0, 1))
		cancel()
		if ReasonOf(err) != ReasonCanceled || time.Since(start) > 5*time.Second {
			t.Errorf("hang %v: %v after %s", resp.Hang, err, time.Since(start))
		}
	}
}

// The admin key goes to the provider's admin endpoint and nowhere else: a
// redirect is refused, not followed, so the key never reaches the host it
// points to.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var got []string
	var mu sync.Mutex
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("X-Api-Key")+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Write([]byte(`{"data":[],"has_more":false}`))
	}))
	defer elsewhere.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	for _, mk := range []func(string, Options) (Reader, error){NewOpenAI, NewAnthropic} {
		r, err := mk("sk-admin-CANARYredirectCANARYredirect01", Options{HTTPClient: http.DefaultClient, BaseURL: redirector.URL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Keys(context.Background(), nil); ReasonOf(err) != ReasonBadAnswer {
			t.Errorf("%s: %v", r.Provider(), err)
		}
	}
	if len(got) != 0 {
		t.Errorf("the redirect target got requests: %q", got)
	}
}

// Answers that cannot be read end the run with bad_answer, not a loop, a
// panic or an unbounded read.
func TestBadAnswers(t *testing.T) {
	cases := map[string]string{
		"not JSON":                 `<html>502 Bad Gateway</html>`,
		"a cursor that repeats":    `{"data":[],"has_more":true,"next_page":"page_same"}`,
		"has_more without a page":  `{"data":[],"has_more":true,"next_page":null}`,
		"a cost that is no number": `{"data":[{"start_time":1793577600,"results":[{"amount":{"value":"lots","currency":"usd"}}]}],"has_more":false}`,
		"a cost in euros":          `{"data":[{"start_time":1793577600,"results":[{"amount":{"value":1,"currency":"eur"}}]}],"has_more":false}`,
		"too big":                  `{"data":[],"pad":"` + strings.Repeat("x", 4096) + `"}`,
	}
	for name, body := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
		r, _ := NewOpenAI(openAIAdminKey, Options{HTTPClient: http.DefaultClient, BaseURL: srv.URL, MaxBody: 2048})
		_, err := r.Costs(context.Background(), LastDays(day0, 1))
		if ReasonOf(err) != ReasonBadAnswer {
			t.Errorf("%s: %v", name, err)
		}
		srv.Close()
	}
}

// Readers refuse to start without what they need.
func TestReaderSetup(t *testing.T) {
	if _, err := NewOpenAI(openAIAdminKey, Options{}); ReasonOf(err) != ReasonConfig {
		t.Errorf("no HTTP client: %v", err)
	}
	if _, err := NewAnthropic("", Options{HTTPClient: http.DefaultClient}); ReasonOf(err) != ReasonConfig {
		t.Errorf("no key: %v", err)
	}
	if _, err := NewOpenAI(openAIAdminKey, Options{HTTPClient: http.DefaultClient, BaseURL: "ftp://x"}); ReasonOf(err) != ReasonConfig {
		t.Errorf("ftp base: %v", err)
	}
	rc := &Reconciler{Ledger: &MemoryLedger{}}
	r, _ := NewOpenAI(openAIAdminKey, Options{HTTPClient: http.DefaultClient})
	for name, job := range map[string]Job{
		"no reader":        {Scope: Scope{account, "openai"}},
		"another provider": {Scope: Scope{account, "anthropic"}, Reader: r},
		"40 days":          {Scope: Scope{account, "openai"}, Reader: r, Window: LastDays(day0, 40)},
	} {
		if res, err := rc.Run(context.Background(), job); ReasonOf(err) != ReasonConfig || res.OK {
			t.Errorf("%s: %v", name, err)
		}
	}
}
