package limits

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// clock is a swappable clock: tests move it, nothing sleeps.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func date(s string) time.Time            { t, _ := time.Parse(time.RFC3339, s); return t }
func usd(s string) USD                   { return MustUSD(s) }

// testBook prices two made-up models with round numbers (USD per 1M
// tokens): "m1" 1 in / 2 out, "big" 15 in / 75 out (an Opus-like price).
// 1,000,000 input tokens of m1 cost exactly 1 USD.
var testBook = pricing.MustCompile(&pricing.Table{Version: "test", AsOf: "2026-12-01", Models: []pricing.Row{
	{Provider: "openai", Model: "m1", Standard: pricing.PriceSet{Input: "1", Output: "2"}},
	{Provider: "anthropic", Model: "big", Standard: pricing.PriceSet{Input: "15", Output: "75"}},
}})

// req is a platform request on m1 of in input tokens and out max tokens:
// its worst case costs in·1000 + out·2000 nano-USD.
func req(account, key string, in, out int64) *Request {
	return &Request{Account: account, APIKey: key, Provider: "openai", Model: "m1", Payer: PayerPlatform,
		InputTokens: in, MaxTokens: out, Book: testBook}
}

// newTestLimiter builds a limiter on clk with cfg, installs set and
// closes it when the test ends.
func newTestLimiter(t testing.TB, clk *clock, cfg Config, set Set) *Limiter {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Install(set); err != nil {
		t.Fatal(err)
	}
	return l
}

// admit admits r and fails the test when the outcome is not want.
func admit(t testing.TB, l *Limiter, r *Request, want Outcome) (*Reservation, Decision) {
	t.Helper()
	res := new(Reservation)
	d := l.Admit(r, res)
	if d.Outcome != want {
		t.Fatalf("admit %+v: outcome %v (%+v), want %v", *r, d.Outcome.Code(), d, want.Code())
	}
	return res, d
}

// status finds a limit's status by kind and id.
func status(t testing.TB, l *Limiter, kind LimitKind, id string) Status {
	t.Helper()
	for _, s := range l.Status() {
		if s.Kind == kind && s.ID == id {
			return s
		}
	}
	t.Fatalf("no status for %v %q", kind, id)
	return Status{}
}

// events collects the limiter's events.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }
func (e *events) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.all...)
}

// accountBudget is a hard monthly platform budget on an account.
func accountBudget(id, account, amount string) Budget {
	return Budget{ID: id, Scope: Scope{Kind: ScopeAccount, Account: account}, Amount: usd(amount), Window: WindowMonth}
}

func pricingUsage(in, out int64) pricing.Usage { return pricing.Usage{Input: in, Output: out} }
