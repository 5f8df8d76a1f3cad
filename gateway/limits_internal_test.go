package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// limitStep is the limits step of a served request, as attempt and served
// run it: admit the attempt (a BYOK key's provider limit, then an account
// with a budget on the platform's money, one on the account's own key and
// a rate limit with requests, tokens and requests in flight), write the
// gateway's rate-limit headers on the answer, settle with the cost (priced
// once, outside the step: pricing is the cost step's, BenchmarkCostStep).
func limitStep(tb testing.TB) (func(), http.Header) {
	tb.Helper()
	reg := pricing.NewRegistry()
	if _, _, err := reg.Publish(pricing.Default()); err != nil {
		tb.Fatal(err)
	}
	l, err := limits.New(limits.Config{Backend: limits.NewLocal(limits.NewMapKV())})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	acct := limits.Scope{Kind: limits.ScopeAccount, Account: "acme"}
	if err := l.Install(limits.Set{
		Budgets: []limits.Budget{
			{ID: "platform", Scope: acct, Amount: limits.MustUSD("1000000"), Window: limits.WindowMonth},
			{ID: "all", Scope: acct, Amount: limits.MustUSD("1000000"), Window: limits.WindowDay, Payer: limits.PayerAll},
		},
		RateLimits: []limits.RateLimit{{ID: "rl", Scope: acct, RPM: 1 << 40, TPM: 1 << 40, Concurrent: 1 << 20}},
	}); err != nil {
		tb.Fatal(err)
	}
	s := storetest.Open(tb)
	if _, err := s.CreateAccount("acme", ""); err != nil {
		tb.Fatal(err)
	}
	g := &Gateway{limits: l, providerLimits: limits.NewTracker(nil), providers: map[string]*ProviderConfig{providers.OpenAI: {}}}
	rec := &store.LogRecord{Time: time.Now().UTC(), Provider: providers.OpenAI, UpstreamModel: "gpt-4o-mini"}
	w := httptest.NewRecorder()
	x := &exchange{w: w, rec: rec, ep: chatCompletions, prices: reg.Current(), snap: s.Snapshot(),
		c: caller{account: "acme", keyID: "k_1"}, body: []byte(`{"model":"gpt-4o-mini","max_tokens":200,"messages":[{"role":"user","content":"Say hi in five words."}]}`), maxTokens: 200,
		cred: credential{source: SourcePlatform}}
	t := target{provider: providers.Get(providers.OpenAI), model: "gpt-4o-mini"}
	u := providers.Usage{PromptTokens: 20, CompletionTokens: 5, TotalTokens: 25}
	h := w.Header()
	for _, names := range rateHeaderNames[0] {
		for _, k := range names {
			h[k] = nil // the header map's slots exist, as on a reused connection
		}
	}
	h[HeaderLimitSource] = nil
	c := g.priceAttempt(x, &u) // priced once: the cost step is measured on its own
	return func() {
		var att store.Attempt
		x.hdr = headerValues{} // a new request's exchange
		if _, ok := g.admitAttempt(x, t, &att); !ok {
			panic("refused")
		}
		x.setRateHeaders(h, &x.lim.d, true)
		x.settleAttempt(&c, false)
		x.releaseLimits()
	}, h
}

// TestLimitStepAllocatesNothing holds a request's limits step (its state
// taken from the pool and given back, admission, the rate-limit headers,
// whose values are formatted into the exchange, and settlement) at 0
// allocations, with the headers written. A request of an account no limit
// counts takes no state and allocates nothing either.
func TestLimitStepAllocatesNothing(t *testing.T) {
	step, h := limitStep(t)
	if n := testing.AllocsPerRun(200, step); n != 0 {
		t.Errorf("the limits step allocates %v times per request, want 0", n)
	}
	if got := h.Get("X-Ratelimit-Remaining-Tokens"); got == "" || h.Get("X-Ratelimit-Limit-Requests") != "1099511627776" {
		t.Errorf("the step's rate-limit headers: %v", h)
	}
	g, x, tg := unlimitedStep(t)
	n := testing.AllocsPerRun(200, func() {
		var att store.Attempt
		if _, ok := g.admitAttempt(x, tg, &att); !ok {
			panic("refused")
		}
	})
	if n != 0 || x.lim != nil {
		t.Errorf("an account without limits: %v allocations, state %v; want 0 and none", n, x.lim != nil)
	}
}

// unlimitedStep is the limits step of an account no limit counts, on a
// limiter with limits for another.
func unlimitedStep(tb testing.TB) (*Gateway, *exchange, target) {
	l, err := limits.New(limits.Config{Backend: limits.NewLocal(limits.NewMapKV())})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	other := limits.Scope{Kind: limits.ScopeAccount, Account: "other"}
	if err := l.Install(limits.Set{RateLimits: []limits.RateLimit{{ID: "rl", Scope: other, RPM: 10}}}); err != nil {
		tb.Fatal(err)
	}
	g := &Gateway{limits: l, providerLimits: limits.NewTracker(nil)}
	x := &exchange{w: httptest.NewRecorder(), rec: &store.LogRecord{Time: time.Now().UTC()}, ep: chatCompletions,
		c: caller{account: "acme", keyID: "k_1"}, body: []byte(`{"model":"gpt-4o-mini","messages":[]}`), cred: credential{source: SourcePlatform}}
	return g, x, target{provider: providers.Get(providers.OpenAI), model: "gpt-4o-mini"}
}

// BenchmarkLimitStep: `go test -run '^$' -bench LimitStep -benchmem ./gateway/`.
func BenchmarkLimitStep(b *testing.B) {
	step, _ := limitStep(b)
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}

// TestAppendDuration: the rate-limit reset is written as
// time.Duration.String writes it.
func TestAppendDuration(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 999, time.Microsecond, 1500 * time.Microsecond, 20 * time.Millisecond, time.Second,
		1500 * time.Millisecond, 59*time.Second + 999*time.Millisecond, 6 * time.Minute, 90 * time.Minute, 25*time.Hour + 3*time.Second, -time.Second} {
		if got, want := string(appendDuration(nil, d)), d.String(); got != want {
			t.Errorf("appendDuration(%d) = %q, want %q", d, got, want)
		}
	}
}

// TestMaxTokens: the largest output bound a request names at its top
// level, read in readRequest's one pass; none, 0 or a mention inside a
// message is no bound; a member spelled with escapes is read as the
// provider's decoder reads it.
func TestMaxTokens(t *testing.T) {
	for body, want := range map[string]int64{
		`{"model":"m","messages":[]}`:                                            0,
		`{"model":"m","max_tokens":300}`:                                         300,
		`{"max_completion_tokens":50,"max_tokens":700}`:                          700,
		`{"model":"m","max_output_tokens":4000,"input":"x"}`:                     4000,
		`{"model":"m","max_tokens":0}`:                                           0,
		`{"model":"m","max_tokens":"9"}`:                                         0,
		`{"messages":[{"content":"set \"max_tokens\": 90000"}],"max_tokens":12}`: 12,
		`{"messages":[{"content":"set \"max_tokens\": 90000"}]}`:                 0,
		`{"max_tokensX":5,"max_":7}`:                                             0,
		`{"model":"m","max\u005ftokens":5}`:                                      5,
	} {
		m := readMembersOf([]byte(body))
		if got := m.maxTokens(); got != want {
			t.Errorf("maxTokens of %s = %d, want %d", body, got, want)
		}
	}
}

// TestRateHeaderValuesAreTheAnswers: an answer's rate-limit and limit
// source values are its own. Caddy's header directive replaces values in
// place (hdr[k][i] = ...), so a value slice shared by every answer (as the
// limit source's was) would be rewritten for all of them, and raced on.
func TestRateHeaderValuesAreTheAnswers(t *testing.T) {
	d := limits.Decision{Source: limits.SourceGateway, Requests: limits.RateInfo{Set: true, Limit: 600, Remaining: 599, Reset: time.Second}}
	var hs [2]http.Header
	for i := range hs {
		x := &exchange{ep: chatCompletions, cred: credential{source: SourcePlatform}}
		hs[i] = http.Header{}
		x.setRateHeaders(hs[i], &d, true)
	}
	for k, v := range hs[0] {
		v[0] = "rewritten" // as Caddy's `header` replace does
		if got := hs[1][k]; len(got) != 1 || got[0] == "rewritten" {
			t.Errorf("%s: rewriting one answer's value rewrote another's: %q", k, got)
		}
	}
	if hs[1].Get(HeaderLimitSource) != "gateway" || hs[1].Get("X-Ratelimit-Remaining-Requests") != "599" {
		t.Errorf("second answer's headers: %v", hs[1])
	}
}
