package gateway_test

// Budgets and rate limits through the real gateway (limits/WIRING.md §3,
// §4): a real limiter (limits.New over limits.NewLocal, the single-node
// backend) installed with a set, real HTTP to the fake providers, the real
// bbolt request log.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	antoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// limitClock is the limiter's clock: the wall clock shifted by an offset
// the test sets (windows are read on it; nothing sleeps to reach an edge).
type limitClock struct{ off atomic.Int64 }

func (c *limitClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())).UTC() }

// at makes the clock read t now.
func (c *limitClock) at(t time.Time) { c.off.Store(int64(time.Until(t))) }

// newLimiter starts a real limiter on the single-node backend with set
// installed; it is closed when the test ends.
func newLimiter(t *testing.T, clk *limitClock, set limits.Set) *limits.Limiter {
	t.Helper()
	cfg := limits.Config{Backend: limits.NewLocal(limits.NewMapKV())}
	if clk != nil {
		cfg.Now = clk.Now
	}
	l, err := limits.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Install(set); err != nil {
		t.Fatal(err)
	}
	return l
}

func budget(id, account, amount string) limits.Budget {
	return limits.Budget{ID: id, Scope: limits.Scope{Kind: limits.ScopeAccount, Account: account},
		Amount: limits.MustUSD(amount), Window: limits.WindowMonth}
}

// bigUsage makes one gpt-4o-mini answer cost 0.0027 USD (10,000 input ×
// 0.15 + 2,000 output × 0.60 per 1M), far more than a request with
// max_tokens 10 reserves.
var bigUsage = providertest.Usage{Input: 10000, Output: 2000}

// statusOf returns a limit's status.
func statusOf(t *testing.T, l *limits.Limiter, id string) limits.Status {
	t.Helper()
	for _, s := range l.Status() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no status for limit %s", id)
	return limits.Status{}
}

// limitError reads an OpenAI-shaped limit refusal.
type limitError struct {
	Error struct {
		Message, Type, Code string
		Param               *string
		LimitSource         string     `json:"limit_source"`
		Budget              *limitDesc `json:"budget"`
		Rate                *limitDesc `json:"rate_limit"`
	}
}

type limitDesc struct {
	ID, Kind, Scope, Account, Window, Provider string
	AmountUSD                                  string `json:"amount_usd"`
	ResetAt                                    string `json:"reset_at"`
	Limit                                      int64
}

func expectLimitError(t *testing.T, r *reply, status int, code, source string) limitError {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r)
	}
	var le limitError
	if err := json.Unmarshal(r.body, &le); err != nil {
		t.Fatalf("not JSON: %s", r.body)
	}
	if le.Error.Code != code || le.Error.Type != code || le.Error.LimitSource != source || le.Error.Message == "" {
		t.Errorf("error %+v, want type and code %s, limit_source %s", le.Error, code, source)
	}
	if got := r.header.Get(gateway.HeaderLimitSource); got != source {
		t.Errorf("%s = %q, want %q", gateway.HeaderLimitSource, got, source)
	}
	return le
}

// expectAnthropicLimit checks Anthropic's envelope for a limit refusal.
func expectAnthropicLimit(t *testing.T, r *reply, status int, typ, code, source string) string {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r)
	}
	var body struct {
		Type  string
		Error struct{ Type, Message string }
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Type != "error" || body.Error.Type != typ ||
		!strings.HasPrefix(body.Error.Message, code+": ") {
		t.Errorf("body %s, want Anthropic's error envelope with type %s and the code %s", r.body, typ, code)
	}
	if got := r.header.Get(gateway.HeaderLimitSource); got != source {
		t.Errorf("%s = %q, want %q", gateway.HeaderLimitSource, got, source)
	}
	return body.Error.Message
}

// messagesPost sends a Messages request as Anthropic's clients do.
func (e *env) messagesPost(t testing.TB, key, body string) *reply {
	t.Helper()
	return e.do(t, http.MethodPost, "/v1/messages", "", strings.NewReader(body), func(q *http.Request) {
		q.Header.Set("x-api-key", key)
		q.Header.Set("anthropic-version", "2023-06-01")
	})
}

func upstreamCount(e *env) int {
	n := 0
	for _, f := range e.fakes {
		n += len(f.Records())
	}
	return n
}

// TestSpentBudgetRefusesEveryDoor: once the account's budget is spent
// (settled with the real cost of an answer, far above what it reserved),
// every metered door refuses with 402 budget_exceeded in its own format,
// passthrough and translated alike, and no provider is called (the
// passthrough doors do not bypass the budget: bifrost#2873).
func TestSpentBudgetRefusesEveryDoor(t *testing.T) {
	l := newLimiter(t, nil, limits.Set{Budgets: []limits.Budget{budget("acme-month", "acme", "0.001")}})
	e := newEnv(t, options{limits: l})
	keys, _ := e.account(t, "acme", 1)
	created := e.post(t, "/v1/responses", keys[0], `{"model":"gpt-4o-mini","max_output_tokens":10,"input":"hi"}`)
	stored := gjson.GetBytes(created.body, "id").Str
	if created.status != http.StatusOK || stored == "" {
		t.Fatalf("create: %v", created)
	}
	e.openai.SetUsage(&bigUsage)

	first := e.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	expectOK(t, first, providers.OpenAI, gateway.SourcePlatform)
	if got, want := statusOf(t, l, "acme-month"), 2_700_000+int64(e.record(t, created.id).Cost.NanoUSD); got.Spent != want || got.Reserved != 0 {
		t.Fatalf("after two answers: spent %d nano-USD reserved %d, want their cost %d settled", got.Spent, got.Reserved, want)
	}
	before := upstreamCount(e)

	doors := []struct {
		name, path, body string
		anthropic        bool
	}{
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`, false},
		{"chat stream", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"embeddings", "/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`, false},
		{"messages passthrough", "/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"messages translated", "/v1/messages", `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, true},
		{"responses passthrough", "/v1/responses", `{"model":"gpt-4o-mini","input":"hi"}`, false},
		{"responses translated", "/v1/responses", `{"model":"claude-sonnet-4-5","input":"hi"}`, false},
	}
	for _, d := range doors {
		t.Run(d.name, func(t *testing.T) {
			var r *reply
			if d.anthropic {
				r = e.messagesPost(t, keys[0], d.body)
				msg := expectAnthropicLimit(t, r, http.StatusPaymentRequired, "billing_error", "budget_exceeded", "gateway")
				for _, want := range []string{"acme-month", "account acme", "0.001 USD a month", "resets at 20"} {
					if !strings.Contains(msg, want) {
						t.Errorf("message %q does not say %q", msg, want)
					}
				}
			} else {
				r = e.post(t, d.path, keys[0], d.body)
				le := expectLimitError(t, r, http.StatusPaymentRequired, "budget_exceeded", "gateway")
				b := le.Error.Budget
				if b == nil || b.ID != "acme-month" || b.Scope != "account" || b.Account != "acme" || b.Window != "month" ||
					b.AmountUSD != "0.001" || !strings.HasSuffix(b.ResetAt, "-01T00:00:00Z") {
					t.Errorf("budget %+v, want acme-month, account scope, month window, its reset", b)
				}
			}
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 || ra > 31*24*3600 {
				t.Errorf("Retry-After %q, want the seconds to the month's end", r.header.Get("Retry-After"))
			}
			rec := e.record(t, r.id)
			if rec.Status != 402 || rec.ErrorCode != "budget_exceeded" || rec.Limit != "acme-month" ||
				len(rec.Attempts) != 1 || rec.Attempts[0].Skipped != "budget_exceeded" {
				t.Errorf("record status %d code %q limit %q attempts %+v", rec.Status, rec.ErrorCode, rec.Limit, rec.Attempts)
			}
		})
	}
	if n := upstreamCount(e); n != before {
		t.Errorf("the providers got %d requests after the budget was spent, want none", n-before)
	}
	// Free endpoints are not admitted: counting tokens still works.
	r := e.do(t, http.MethodPost, "/v1/messages/count_tokens", keys[0],
		strings.NewReader(`{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`))
	if r.status != http.StatusOK {
		t.Errorf("count_tokens under a spent budget: %v", r)
	}
	// Nor is reading a stored response.
	if r := e.do(t, http.MethodGet, "/v1/responses/"+stored, keys[0], nil); r.status != http.StatusOK {
		t.Errorf("a stored response under a spent budget: %v", r)
	}
}

// TestUnpricedModelUnderBudget: a dollar budget cannot count a model the
// price book has no price for: the request is refused and says so (never
// counted as free).
func TestUnpricedModelUnderBudget(t *testing.T) {
	l := newLimiter(t, nil, limits.Set{Budgets: []limits.Budget{budget("acme-month", "acme", "100")}})
	e := newEnv(t, options{limits: l})
	keys, _ := e.account(t, "acme", 1)
	r := e.chat(t, keys[0], "azure/other-deployment")
	le := expectLimitError(t, r, http.StatusPaymentRequired, "budget_exceeded", "gateway")
	if !strings.Contains(le.Error.Message, "the model other-deployment has no price and a dollar budget applies") {
		t.Errorf("message %q", le.Error.Message)
	}
	e.expectNoUpstream(t)
	expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourcePlatform)
}

// TestSettleWithRealCost: a request reserves its worst case and settles to
// what the provider's usage cost, so the spend is exactly the sum of the
// records' costs; streams settle the same way.
func TestSettleWithRealCost(t *testing.T) {
	l := newLimiter(t, nil, limits.Set{Budgets: []limits.Budget{budget("acme-month", "acme", "0.005")}})
	e := newEnv(t, options{limits: l})
	keys, _ := e.account(t, "acme", 1)
	e.openai.SetUsage(&bigUsage)
	var ids []string
	for _, body := range []string{
		`{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o-mini","max_tokens":10,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`,
	} {
		r := e.post(t, "/v1/chat/completions", keys[0], body)
		expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
		ids = append(ids, r.id)
	}
	var sum pricing.Nano
	for _, id := range ids {
		c := e.record(t, id).Cost
		if c.Unpriced {
			t.Fatalf("unpriced %+v", c)
		}
		sum += c.NanoUSD
	}
	if got := statusOf(t, l, "acme-month"); got.Spent != int64(sum) || got.Reserved != 0 || sum != 5_400_000 {
		t.Errorf("spent %d reserved %d, want the records' sum %d (5400000)", got.Spent, got.Reserved, sum)
	}
	// Now above the budget: refused.
	r := e.chat(t, keys[0], "gpt-4o-mini")
	expectLimitError(t, r, http.StatusPaymentRequired, "budget_exceeded", "gateway")
}

// TestStreamCutChargesWorstCase: a stream that breaks before any usage is
// charged its reserved worst case, never nothing.
func TestStreamCutChargesWorstCase(t *testing.T) {
	l := newLimiter(t, nil, limits.Set{Budgets: []limits.Budget{budget("acme-month", "acme", "100")}})
	e := newEnv(t, options{limits: l})
	keys, _ := e.account(t, "acme", 1)
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		return providertest.Response{Custom: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			for _, ev := range providertest.StreamEvents(rec.Model, []string{"Hel", "lo"})[:2] {
				fmt.Fprintf(w, "data: %s\n\n", ev)
			}
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // the connection breaks mid-stream
		}}
	})
	body := `{"model":"gpt-4o-mini","max_tokens":1000,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	r := e.post(t, "/v1/chat/completions", keys[0], body)
	if r.status != http.StatusOK {
		t.Fatalf("%v", r)
	}
	rec := e.record(t, r.id)
	if rec.ErrorCode == "" || !rec.Cost.Unpriced {
		t.Fatalf("record code %q cost %+v, want a cut stream without usage", rec.ErrorCode, rec.Cost)
	}
	// The worst case: the body's bytes / 3 input tokens and max_tokens of
	// output, at gpt-4o-mini's list prices.
	in := int64((len(body) + 2) / 3)
	worst := pricing.MustCompile(pricing.Default()).Cost(providers.OpenAI, "gpt-4o-mini", pricing.Usage{Input: in, Output: 1000})
	if got := statusOf(t, l, "acme-month"); got.Spent != int64(worst.NanoUSD) || got.Spent == 0 || got.Reserved != 0 {
		t.Errorf("spent %d reserved %d, want the worst case %d charged", got.Spent, got.Reserved, worst.NanoUSD)
	}
}

// TestRateLimitAnswers: requests per minute on an API key; the allowed
// answers carry the gateway's x-ratelimit-* in place of the provider's,
// the refusal is a 429 rate_limit_exceeded with Retry-After to the
// minute's end; on the Messages door in Anthropic's envelope and headers.
func TestRateLimitAnswers(t *testing.T) {
	clk := &limitClock{}
	minute := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	clk.at(minute.Add(30 * time.Second)) // 30 s before the next minute
	l := newLimiter(t, clk, limits.Set{})
	e := newEnv(t, options{limits: l})
	keys, descs := e.account(t, "acme", 2)
	if err := l.Install(limits.Set{RateLimits: []limits.RateLimit{{ID: "key-rpm", RPM: 2,
		Scope: limits.Scope{Kind: limits.ScopeAPIKey, Account: "acme", APIKey: descs[0].ID}},
		{ID: "acct-tpm", TPM: 1_000_000, Scope: limits.Scope{Kind: limits.ScopeAccount, Account: "acme"}}}}); err != nil {
		t.Fatal(err)
	}
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		r := providertest.Default(rec, "chat")
		r.Header = map[string]string{"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9999", "x-ratelimit-limit-tokens": "30000000"}
		return r
	})
	// The clock is set again once the set-up is done: however long that
	// took, the three requests fall 30 s before the minute's end.
	clk.at(minute.Add(30 * time.Second))
	for i, want := range []string{"1", "0"} {
		r := e.chat(t, keys[0], "gpt-4o-mini")
		expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
		h := r.header
		if h.Get("X-Ratelimit-Limit-Requests") != "2" || h.Get("X-Ratelimit-Remaining-Requests") != want ||
			h.Get(gateway.HeaderLimitSource) != "gateway" || h.Get("X-Ratelimit-Limit-Tokens") != "1000000" {
			t.Errorf("answer %d: headers %v, want the gateway's limits (2 requests, remaining %s; 1000000 tokens) in place of the platform's", i, h, want)
		}
		if left, err := strconv.Atoi(h.Get("X-Ratelimit-Remaining-Tokens")); err != nil || left >= 1_000_000 || left < 900_000 {
			t.Errorf("answer %d: remaining tokens %q", i, h.Get("X-Ratelimit-Remaining-Tokens"))
		}
		if d, err := time.ParseDuration(h.Get("X-Ratelimit-Reset-Requests")); err != nil || d <= 0 || d > 30*time.Second {
			t.Errorf("answer %d: reset %q", i, h.Get("X-Ratelimit-Reset-Requests"))
		}
	}
	end := minute.Add(time.Minute)
	before := end.Sub(clk.Now())
	r := e.chat(t, keys[0], "gpt-4o-mini")
	after := end.Sub(clk.Now())
	le := expectLimitError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded", "gateway")
	if rl := le.Error.Rate; rl == nil || rl.ID != "key-rpm" || rl.Kind != "rpm" || rl.Limit != 2 || rl.Scope != "api_key" {
		t.Errorf("rate_limit %+v", le.Error.Rate)
	}
	if !strings.Contains(le.Error.Message, "2 requests a minute") || strings.Contains(le.Error.Message, keys[0]) {
		t.Errorf("message %q", le.Error.Message)
	}
	// Retry-After is the whole seconds to the minute's end, read while
	// the request ran (about 30).
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); float64(ra) < after.Seconds()-1 || float64(ra) > before.Seconds()+1 || ra > 30 {
		t.Errorf("Retry-After %q, want the seconds to the minute's end (%v to %v)", r.header.Get("Retry-After"), after, before)
	}
	if r.header.Get("X-Ratelimit-Remaining-Requests") != "0" || r.header.Get("X-Ratelimit-Limit-Requests") != "2" {
		t.Errorf("refusal headers %v", r.header)
	}
	m := e.messagesPost(t, keys[0], `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`)
	expectAnthropicLimit(t, m, http.StatusTooManyRequests, "rate_limit_error", "rate_limit_exceeded", "gateway")
	if m.header.Get("Anthropic-Ratelimit-Requests-Limit") != "2" || m.header.Get("Anthropic-Ratelimit-Requests-Remaining") != "0" ||
		m.header.Get("Retry-After") == "" {
		t.Errorf("Messages refusal headers %v", m.header)
	}
	if reset, err := time.Parse(time.RFC3339, m.header.Get("Anthropic-Ratelimit-Requests-Reset")); err != nil || reset.Before(time.Now()) {
		t.Errorf("anthropic reset %q", m.header.Get("Anthropic-Ratelimit-Requests-Reset"))
	}
	// The other key of the account is not held to this key's limit.
	expectOK(t, e.chat(t, keys[1], "gpt-4o-mini"), providers.OpenAI, gateway.SourcePlatform)
	// The next minute admits again.
	clk.at(minute.Add(61 * time.Second))
	expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourcePlatform)
	// An allowed Messages answer carries Anthropic's headers.
	m = e.messagesPost(t, keys[0], `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`)
	if m.status != http.StatusOK || m.header.Get("Anthropic-Ratelimit-Requests-Limit") != "2" ||
		m.header.Get("Anthropic-Ratelimit-Requests-Remaining") != "0" || m.header.Get("Anthropic-Ratelimit-Tokens-Limit") != "1000000" {
		t.Errorf("allowed Messages answer: %d %v", m.status, m.header)
	}
	rec := e.record(t, r.id)
	if rec.Status != 429 || rec.ErrorCode != "rate_limit_exceeded" || rec.Limit != "key-rpm" || rec.Attempts[0].Skipped != "rate_limited" {
		t.Errorf("record %+v", rec)
	}
}

// TestConcurrentStreamsCap: a cap of one request in flight holds while a
// stream runs and frees when it ends.
func TestConcurrentStreamsCap(t *testing.T) {
	l := newLimiter(t, nil, limits.Set{RateLimits: []limits.RateLimit{{ID: "one-at-a-time", Concurrent: 1,
		Scope: limits.Scope{Kind: limits.ScopeAccount, Account: "acme"}}}})
	e := newEnv(t, options{limits: l})
	keys, _ := e.account(t, "acme", 1)
	gate := make(chan struct{})
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		r := providertest.Default(rec, "chat")
		if rec.Stream {
			r.Gate = gate
		}
		return r
	})
	stream := `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/chat/completions", strings.NewReader(stream))
	req.Header.Set("Authorization", "Bearer "+keys[0])
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first stream: %d %v", resp.StatusCode, err)
	}
	r := e.post(t, "/v1/chat/completions", keys[0], stream)
	le := expectLimitError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded", "gateway")
	if le.Error.Rate == nil || le.Error.Rate.Kind != "concurrent" || r.header.Get("Retry-After") != "1" {
		t.Errorf("refusal %s, Retry-After %q", r.body, r.header.Get("Retry-After"))
	}
	close(gate)
	var rest strings.Builder
	for {
		n, err := resp.Body.Read(buf)
		rest.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if !strings.Contains(rest.String(), "[DONE]") {
		t.Fatalf("first stream did not finish: %q", rest.String())
	}
	e.waitIdle(t)
	r = e.post(t, "/v1/chat/completions", keys[0], stream)
	if r.status != 200 {
		t.Errorf("after the stream ended: %v", r)
	}
	if s := statusOf(t, l, "one-at-a-time"); s.Reserved != 0 {
		t.Errorf("in flight after both ended: %+v", s)
	}
}

// TestByokBudgetSpillsToPlatform: a route that falls back from the
// account's own key to the platform's: when the BYOK budget is spent the
// BYOK target drops out and the platform key serves, counted against the
// spillover allowance; once that is spent, the last refusal is answered.
// The other way round, a spent platform budget lets a BYOK fallback
// through.
func TestByokBudgetSpillsToPlatform(t *testing.T) {
	rc := routing.Config{Routes: map[string]*routing.Route{
		"own-first":      {Targets: []routing.Target{{Model: "gpt-4o-mini", Credential: routing.PinBYOK}, {Model: "gpt-4o-mini", Credential: routing.PinPlatform}}},
		"platform-only":  {Targets: []routing.Target{{Model: "gpt-4o-mini", Credential: routing.PinPlatform}}},
		"platform-first": {Targets: []routing.Target{{Model: "gpt-4o-mini", Credential: routing.PinPlatform}, {Model: "gpt-4o-mini", Credential: routing.PinBYOK}}},
	}}
	l := newLimiter(t, nil, limits.Set{})
	e := newEnv(t, options{limits: l, routing: rc})
	keys, _ := e.account(t, "acme", 1)
	own := canaryOpenAI("own")
	e.putCred(t, "acme", providers.OpenAI, own, store.Extras{})
	e.openai.SetUsage(&bigUsage) // 0.0027 USD an answer
	ownBudget := limits.Budget{ID: "own-key", Scope: limits.Scope{Kind: limits.ScopeCredential, Account: "acme", Provider: providers.OpenAI},
		Amount: limits.MustUSD("0.001"), Window: limits.WindowDay}
	if err := l.Install(limits.Set{Budgets: []limits.Budget{ownBudget}, Spillover: []limits.Spillover{{Account: "acme", Amount: limits.MustUSD("0.002")}}}); err != nil {
		t.Fatal(err)
	}
	body := `{"model":"own-first","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	expectOK(t, e.post(t, "/v1/chat/completions", keys[0], body), providers.OpenAI, gateway.SourceBYOK) // spends the BYOK budget
	r := e.post(t, "/v1/chat/completions", keys[0], body)
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform) // spillover
	rec := e.record(t, r.id)
	if len(rec.Attempts) != 2 || rec.Attempts[0].Skipped != "budget_exceeded" || rec.Attempts[1].CredentialSource != "platform" {
		t.Errorf("attempts %+v, want the BYOK target skipped for its budget, then the platform key", rec.Attempts)
	}
	var spill limits.Status
	for _, s := range l.Status() {
		if s.Kind == limits.KindSpillover {
			spill = s
		}
	}
	if spill.Spent != 2_700_000 {
		t.Errorf("spillover spent %d, want the platform answer's 2700000", spill.Spent)
	}
	// The spillover allowance is spent too: the last refusal (the
	// platform target's, spillover) is answered.
	r = e.post(t, "/v1/chat/completions", keys[0], body)
	le := expectLimitError(t, r, http.StatusPaymentRequired, "budget_exceeded", "gateway")
	if le.Error.Budget == nil || le.Error.Budget.Kind != "spillover" || !strings.Contains(le.Error.Message, "spillover") {
		t.Errorf("refusal %s", r.body)
	}

	// A spent platform budget, and a route from the platform key to the
	// account's own: the BYOK fallback serves.
	if err := l.Install(limits.Set{Budgets: []limits.Budget{budget("platform-month", "acme", "0")}}); err != nil {
		t.Fatal(err)
	}
	r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"platform-first","messages":[{"role":"user","content":"hi"}]}`)
	expectOK(t, r, providers.OpenAI, gateway.SourceBYOK)
	if rec := e.record(t, r.id); rec.Attempts[0].Skipped != "budget_exceeded" {
		t.Errorf("attempts %+v", rec.Attempts)
	}
	// Without a fallback the platform budget answers.
	expectLimitError(t, e.post(t, "/v1/chat/completions", keys[0], `{"model":"platform-only","messages":[{"role":"user","content":"hi"}]}`),
		http.StatusPaymentRequired, "budget_exceeded", "gateway")
	_ = own
}

// TestShadowBudgetIsRecorded: a shadow budget never refuses; the request
// log says which one would have.
func TestShadowBudgetIsRecorded(t *testing.T) {
	b := budget("trial", "acme", "0")
	b.Mode = limits.ModeShadow
	l := newLimiter(t, nil, limits.Set{Budgets: []limits.Budget{b}})
	e := newEnv(t, options{limits: l})
	keys, _ := e.account(t, "acme", 1)
	r := e.chat(t, keys[0], "gpt-4o-mini")
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	if rec := e.record(t, r.id); rec.LimitShadow != "trial" || rec.Limit != "" {
		t.Errorf("record limit %q shadow %q, want shadow trial", rec.Limit, rec.LimitShadow)
	}
	if s := statusOf(t, l, "trial"); s.WouldRefuse != 1 {
		t.Errorf("would refuse %d", s.WouldRefuse)
	}
}

// TestProviderLimitOfByokKey: the gateway reads the BYOK key's own
// rate-limit headers; once the provider says nothing remains, the key is
// sent nothing until the reset: a lone target is answered 429 with
// limit_source provider and Retry-After, a route moves on to its next
// target. The platform key's headers block nothing.
func TestProviderLimitOfByokKey(t *testing.T) {
	tr := limits.NewTracker(nil)
	rc := routing.Config{Routes: map[string]*routing.Route{
		"own-first": {Targets: []routing.Target{{Model: "gpt-4o-mini", Credential: routing.PinBYOK}, {Model: "gpt-4o-mini", Credential: routing.PinPlatform}}},
	}}
	e := newEnv(t, options{providerLimits: tr, routing: rc})
	keys, _ := e.account(t, "acme", 1)
	own := canaryOpenAI("own")
	e.putCred(t, "acme", providers.OpenAI, own, store.Extras{})
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		r := providertest.Default(rec, "chat")
		r.Header = map[string]string{"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"}
		return r
	})
	expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourceBYOK)
	n := e.openai.Count(own)
	r := e.chat(t, keys[0], "gpt-4o-mini")
	le := expectLimitError(t, r, http.StatusTooManyRequests, "rate_limit_exceeded", "provider")
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > 20 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if le.Error.Rate == nil || le.Error.Rate.Kind != "provider" || strings.Contains(string(r.body), own[:12]) {
		t.Errorf("refusal %s", r.body)
	}
	if got := e.openai.Count(own); got != n {
		t.Errorf("the blocked key was sent %d requests", got-n)
	}
	rec := e.record(t, r.id)
	if rec.Limit != "provider" || rec.Attempts[0].Skipped != "byok_key_rate_limited" {
		t.Errorf("record %+v", rec)
	}
	r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"own-first","messages":[{"role":"user","content":"hi"}]}`)
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	// The platform key said nothing remains too; it is not tracked.
	expectOK(t, e.post(t, "/v1/chat/completions", keys[0], `{"model":"own-first","messages":[{"role":"user","content":"hi"}]}`), providers.OpenAI, gateway.SourcePlatform)
}

// TestSDKsOnLimitAnswers: the official SDKs, unmodified and with their
// default retries, do not retry a 402 (one request reaches the gateway)
// and honour Retry-After on a 429: the limiter's clock is set just under a
// second before a minute's end, so the 429 says "Retry-After: 1"; an SDK
// that waits for it is admitted in the next minute on its first retry (3
// requests in all), one that retried on its own shorter backoff would be
// refused again (4).
func TestSDKsOnLimitAnswers(t *testing.T) {
	type sdk struct {
		name string
		call func(e *env, key string) (status int, err error)
	}
	sdks := []sdk{
		{"openai-go", func(e *env, key string) (int, error) {
			c := openai.NewClient(option.WithBaseURL(e.srv.URL+"/v1/"), option.WithAPIKey(key), option.WithRequestTimeout(15*time.Second))
			_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
			var apiErr *openai.Error
			if errors.As(err, &apiErr) {
				return apiErr.StatusCode, err
			}
			return 200, err
		}},
		{"anthropic-sdk-go", func(e *env, key string) (int, error) {
			c := anthropic.NewClient(antoption.WithoutEnvironmentDefaults(), antoption.WithBaseURL(e.srv.URL), antoption.WithAPIKey(key),
				antoption.WithRequestTimeout(15*time.Second))
			_, err := c.Messages.New(context.Background(), anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 100,
				Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
			var apiErr *anthropic.Error
			if errors.As(err, &apiErr) {
				return apiErr.StatusCode, err
			}
			return 200, err
		}},
	}
	for _, s := range sdks {
		t.Run(s.name+"/402", func(t *testing.T) {
			l := newLimiter(t, nil, limits.Set{Budgets: []limits.Budget{budget("spent", "acme", "0")}})
			e := newEnv(t, options{limits: l})
			keys, _ := e.account(t, "acme", 1)
			status, err := s.call(e, keys[0])
			if status != http.StatusPaymentRequired {
				t.Fatalf("status %d (%v), want 402", status, err)
			}
			if n := len(e.records(t, "acme")); n != 1 {
				t.Errorf("the gateway got %d requests, want 1: the SDK retried a 402", n)
			}
			e.expectNoUpstream(t)
		})
		t.Run(s.name+"/429", func(t *testing.T) {
			clk := &limitClock{}
			l := newLimiter(t, clk, limits.Set{RateLimits: []limits.RateLimit{{ID: "acct-rpm", RPM: 1,
				Scope: limits.Scope{Kind: limits.ScopeAccount, Account: "acme"}}}})
			e := newEnv(t, options{limits: l})
			keys, _ := e.account(t, "acme", 1)
			edge := time.Now().UTC().Truncate(time.Minute).Add(2 * time.Minute)
			// The first request takes the minute's one request early in the
			// minute; the clock moves to just under a second before its end
			// only then, so however long the first request took on a busy
			// machine, the second one is refused in the same minute.
			clk.at(edge.Add(-30 * time.Second))
			if status, err := s.call(e, keys[0]); status != 200 || err != nil { // takes the minute's one request
				t.Fatalf("first request: %d %v", status, err)
			}
			clk.at(edge.Add(-950 * time.Millisecond))
			start := time.Now()
			if status, err := s.call(e, keys[0]); status != 200 || err != nil {
				t.Fatalf("second request: %d %v, want the SDK's retry after Retry-After admitted", status, err)
			}
			if waited := time.Since(start); waited < 900*time.Millisecond {
				t.Errorf("the SDK retried after %v, want the second Retry-After said", waited)
			}
			recs := e.records(t, "acme")
			refused := 0
			for _, r := range recs {
				if r.Status == http.StatusTooManyRequests {
					refused++
				}
			}
			if len(recs) != 3 || refused != 1 {
				t.Errorf("the gateway got %d requests (%d refused), want 3 (1 refused)", len(recs), refused)
			}
			upstream := 0
			for _, f := range e.fakes {
				upstream += len(f.Records())
			}
			if upstream != 2 {
				t.Errorf("the provider got %d requests, want 2", upstream)
			}
		})
	}
}

// TestStreamCutAfterPartialUsage: a Messages stream cut after
// message_start, which reports the input and one output token, is charged
// its worst case: the usage sent before the cut is not what the provider
// bills for the output it went on generating.
func TestStreamCutAfterPartialUsage(t *testing.T) {
	l := newLimiter(t, nil, limits.Set{Budgets: []limits.Budget{budget("acme-month", "acme", "100")}})
	e := newEnv(t, options{limits: l})
	keys, _ := e.account(t, "acme", 1)
	e.anthropic.SetResponder(func(rec providertest.Record) providertest.Response {
		events := providertest.AnthropicStream(rec.Model, []string{"Hel", "lo"}, providertest.AnthropicUsage{Input: 40, Output: 2})
		return providertest.Response{Custom: func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			for _, ev := range events[:4] { // message_start, ping, content_block_start, one delta
				fmt.Fprint(w, ev)
			}
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}}
	})
	body := `{"model":"claude-sonnet-4-5","max_tokens":2000,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	r := e.messagesPost(t, keys[0], body)
	if r.status != http.StatusOK {
		t.Fatalf("%v", r)
	}
	rec := e.record(t, r.id)
	if rec.ErrorCode == "" || rec.Cost.Unpriced || rec.Cost.Tokens.Input != 40 {
		t.Fatalf("record code %q cost %+v, want a cut stream priced with message_start's usage", rec.ErrorCode, rec.Cost)
	}
	in := int64((len(body) + 2) / 3)
	worst := pricing.MustCompile(pricing.Default()).Cost(providers.Anthropic, "claude-sonnet-4-5", pricing.Usage{Input: in, Output: 2000})
	if got := statusOf(t, l, "acme-month"); got.Spent != int64(worst.NanoUSD) || got.Spent <= int64(rec.Cost.NanoUSD) {
		t.Errorf("spent %d, want the worst case %d (the partial usage cost %d)", got.Spent, worst.NanoUSD, rec.Cost.NanoUSD)
	}
}

// TestFailedAttemptReleases: an attempt that fails upstream without usage
// gives its reservation back, and the route's next attempt is admitted as
// a fallback: requests per minute count the request once.
func TestFailedAttemptReleases(t *testing.T) {
	rc := routing.Config{Routes: map[string]*routing.Route{
		"resilient": {Targets: []routing.Target{{Model: "gpt-4o-mini"}, {Model: "claude-haiku-4-5"}}},
	}}
	acct := limits.Scope{Kind: limits.ScopeAccount, Account: "acme"}
	l := newLimiter(t, nil, limits.Set{Budgets: []limits.Budget{budget("acme-month", "acme", "100")},
		RateLimits: []limits.RateLimit{{ID: "rpm", Scope: acct, RPM: 1}}})
	e := newEnv(t, options{limits: l, routing: rc})
	keys, _ := e.account(t, "acme", 1)
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Status: 500, Body: `{"error":{"message":"boom","type":"server_error"}}`}
	})
	r := e.post(t, "/v1/chat/completions", keys[0], `{"model":"resilient","messages":[{"role":"user","content":"hi"}]}`)
	expectOK(t, r, providers.Anthropic, gateway.SourcePlatform)
	rec := e.record(t, r.id)
	if len(rec.Attempts) != 2 || rec.Attempts[0].Status != 500 {
		t.Fatalf("attempts %+v", rec.Attempts)
	}
	b := statusOf(t, l, "acme-month")
	if b.Reserved != 0 || b.Spent != int64(rec.Cost.NanoUSD) || b.Spent == 0 {
		t.Errorf("budget spent %d reserved %d, want only the served answer's %d", b.Spent, b.Reserved, rec.Cost.NanoUSD)
	}
	if s := statusOf(t, l, "rpm"); s.Spent != 1 {
		t.Errorf("requests this minute %d, want 1 for one request of two attempts", s.Spent)
	}
}
