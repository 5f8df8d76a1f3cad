package limits

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

var noCap = Config{ReserveOutputCap: -1}

// A hard budget reserves the worst case at admission, refuses with a 402
// naming the budget, its window and its reset, and counts what was
// settled, not what was reserved, once the usage arrives.
func TestHardBudgetReservesSettlesAndRefuses(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	l := newTestLimiter(t, clk, noCap, Set{Budgets: []Budget{accountBudget("acme-month", "acme", "1")}})

	// Each request: 100k input ($0.10) + 50k max output ($0.10) = $0.20 worst case.
	var held []*Reservation
	for range 5 {
		r, _ := admit(t, l, req("acme", "k1", 100_000, 50_000), Allowed)
		if r.Cost != usd("0.2") {
			t.Fatalf("reserved %s, want 0.2", r.Cost)
		}
		held = append(held, r)
	}
	_, d := admit(t, l, req("acme", "k1", 100_000, 50_000), BudgetExceeded)
	if d.Outcome.Status() != 402 || d.Outcome.Code() != "budget_exceeded" || d.Source.String() != "gateway" {
		t.Errorf("refusal: %d %s %s", d.Outcome.Status(), d.Outcome.Code(), d.Source)
	}
	if d.Kind != KindBudget || d.LimitID != "acme-month" || d.Scope.Kind != ScopeAccount || d.Scope.Account != "acme" || d.Window != WindowMonth {
		t.Errorf("refusal names %v %q %+v %s", d.Kind, d.LimitID, d.Scope, d.Window)
	}
	if !d.ResetAt.Equal(date("2027-01-01T00:00:00Z")) || d.RetryAfter != d.ResetAt.Sub(clk.Now()) {
		t.Errorf("reset %v retry after %v", d.ResetAt, d.RetryAfter)
	}
	if d.Amount != usd("1") || d.Reserved != usd("1") || d.Spent != 0 || d.Need != usd("0.2") {
		t.Errorf("amounts: amount %s reserved %s spent %s need %s", d.Amount, d.Reserved, d.Spent, d.Need)
	}

	// Each used 100k in + 10k out: $0.12. Settled: $0.60, nothing reserved.
	for _, r := range held {
		r.Settle(Actual{Tokens: 110_000, Reported: true, Cost: usd("0.12"), Priced: true})
		r.Settle(Actual{Tokens: 1, Reported: true, Cost: usd("5"), Priced: true}) // a second settle does nothing
	}
	s := status(t, l, KindBudget, "acme-month")
	if s.Spent != int64(usd("0.6")) || s.Reserved != 0 || s.Remaining != int64(usd("0.4")) {
		t.Fatalf("after settle: %+v", s)
	}
	// $0.40 left: two more $0.20 reservations fit, a third does not.
	admit(t, l, req("acme", "k1", 100_000, 50_000), Allowed)
	r, _ := admit(t, l, req("acme", "k1", 100_000, 50_000), Allowed)
	admit(t, l, req("acme", "k1", 100_000, 50_000), BudgetExceeded)
	// Release gives the reservation back whole.
	r.Release()
	admit(t, l, req("acme", "k1", 100_000, 50_000), Allowed)
	// Another account is not touched.
	admit(t, l, req("other", "k9", 100_000_000, 50_000), Allowed)
}

// Payer decides which budgets count a request; a byok_only account (every
// request on its own key) is never charged to a platform budget.
func TestPayerAndScopes(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	l := newTestLimiter(t, clk, noCap, Set{Budgets: []Budget{
		{ID: "plat", Scope: Scope{Kind: ScopeAccount, Account: "a"}, Amount: usd("10"), Window: WindowMonth},
		{ID: "byok", Scope: Scope{Kind: ScopeAccount, Account: "a"}, Amount: usd("10"), Window: WindowMonth, Payer: PayerBYOK},
		{ID: "all", Scope: Scope{Kind: ScopeAccount, Account: "a"}, Amount: usd("10"), Window: WindowMonth, Payer: PayerAll},
		{ID: "key", Scope: Scope{Kind: ScopeAPIKey, Account: "a", APIKey: "k1"}, Amount: usd("10"), Window: WindowDay, Payer: PayerAll},
		{ID: "model", Scope: Scope{Kind: ScopeAccountModel, Account: "a", Model: "big"}, Amount: usd("10"), Window: WindowWeek, Payer: PayerAll},
		{ID: "cred", Scope: Scope{Kind: ScopeCredential, Account: "a", Provider: "anthropic"}, Amount: usd("10"), Window: WindowMonth},
	}})
	settle := func(r *Request, cost string) {
		res, _ := admit(t, l, r, Allowed)
		res.Settle(Actual{Cost: usd(cost), Priced: true})
	}
	platform := req("a", "k1", 1000, 0)
	byok := req("a", "k2", 1000, 0)
	byok.Payer = PayerBYOK
	bigBYOK := &Request{Account: "a", APIKey: "k2", Provider: "anthropic", Model: "big", Payer: PayerBYOK, InputTokens: 10, Book: testBook}
	settle(platform, "1")
	settle(byok, "2")
	settle(bigBYOK, "4")
	want := map[string]string{"plat": "1", "byok": "6", "all": "7", "key": "1", "model": "4", "cred": "4"}
	for id, amount := range want {
		if s := status(t, l, KindBudget, id); s.Spent != int64(usd(amount)) {
			t.Errorf("budget %s spent %d, want %s USD", id, s.Spent, amount)
		}
	}
	// A byok_only account (every request on its own key) is never charged to a
	// platform budget, even a spent one.
	zero := newTestLimiter(t, clk, noCap, Set{Budgets: []Budget{accountBudget("plat0", "only", "0")}})
	onlyBYOK := req("only", "k", 1000, 1000)
	onlyBYOK.Payer = PayerBYOK
	admit(t, zero, onlyBYOK, Allowed)
	admit(t, zero, req("only", "k", 1000, 1000), BudgetExceeded)
	unset := req("only", "k", 1000, 1000)
	unset.Payer = "" // a wiring slip counts as the platform's
	admit(t, zero, unset, BudgetExceeded)
	if s := status(t, l, KindBudget, "cred"); s.Payer != PayerBYOK {
		t.Errorf("a byok_credential budget defaults to payer byok, got %s", s.Payer)
	}
}

// A dollar budget on a model the book does not price refuses it (never
// counts it as free); with UnpricedRate it counts it at that rate. With
// no dollar budget in the way the request goes ahead.
func TestUnpricedModel(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	set := Set{Budgets: []Budget{accountBudget("b", "a", "1")}}
	unknown := &Request{Account: "a", APIKey: "k", Provider: "openai", Model: "not-in-the-book", Payer: PayerPlatform,
		InputTokens: 1000, MaxTokens: 1000, Book: testBook}

	l := newTestLimiter(t, clk, noCap, set)
	_, d := admit(t, l, unknown, BudgetExceeded)
	if !d.Unpriced || d.LimitID != "b" {
		t.Errorf("unpriced refusal: %+v", d)
	}
	noBook := *req("a", "k", 1, 1)
	noBook.Book = nil
	admit(t, l, &noBook, BudgetExceeded)
	byok := *unknown
	byok.Payer = PayerBYOK // the platform budget does not count BYOK: nothing to price
	admit(t, l, &byok, Allowed)

	rate, _ := pricing.ParsePrice("100") // USD per 1M tokens
	l2 := newTestLimiter(t, clk, Config{ReserveOutputCap: -1, UnpricedRate: rate}, set)
	r, _ := admit(t, l2, unknown, Allowed)
	if r.Cost != usd("0.2") { // 2000 tokens at $100/1M
		t.Fatalf("unpriced reservation at the rate: %s", r.Cost)
	}
	r.Settle(ActualOf(ptr(pricing.Unpriced("openai", "not-in-the-book", pricing.NoUsage))))
	if s := status(t, l2, KindBudget, "b"); s.Spent != int64(usd("0.2")) {
		t.Fatalf("a settle without usage keeps the reservation charged: spent %d", s.Spent)
	}
	r, _ = admit(t, l2, unknown, Allowed)
	cost := testBook.Cost("openai", "not-in-the-book", pricing.Usage{Input: 1000, Output: 500})
	r.Settle(ActualOf(&cost))
	if s := status(t, l2, KindBudget, "b"); s.Spent != int64(usd("0.35")) {
		t.Fatalf("unpriced usage at the rate: spent %d, want 0.35 USD", s.Spent)
	}
}

func ptr[T any](v T) *T { return &v }

// litellm#38647: reservations for coding agents with a 32k max_tokens pin
// a $25 budget. The reservation cap keeps the worst case at 4096 output
// tokens; settlement still charges what was used.
func TestReservationCapDoesNotPinBudget(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	set := Set{Budgets: []Budget{accountBudget("b", "a", "25")}}
	agent := &Request{Account: "a", APIKey: "k", Provider: "anthropic", Model: "big", Payer: PayerPlatform,
		InputTokens: 2000, MaxTokens: 32000, Book: testBook}
	inFlight := func(l *Limiter) int {
		n := 0
		for {
			var r Reservation
			if d := l.Admit(agent, &r); !d.Allowed() {
				return n
			}
			n++
		}
	}
	uncapped := inFlight(newTestLimiter(t, clk, noCap, set))  // $2.43 each
	capped := inFlight(newTestLimiter(t, clk, Config{}, set)) // default cap 4096: $0.3372 each
	if uncapped != 10 || capped != 74 {
		t.Fatalf("concurrent agents on $25: %d without the cap (want 10), %d with it (want 74)", uncapped, capped)
	}
	// The model's own maximum bounds the reservation too.
	l := newTestLimiter(t, clk, noCap, set)
	small := *agent
	small.ModelMaxOutput = 8000
	var r Reservation
	l.Admit(&small, &r)
	if r.Tokens != 10000 || r.Cost != usd("0.63") {
		t.Fatalf("bounded by the model's max output: %d tokens, %s", r.Tokens, r.Cost)
	}
	// Without a count the input is estimated from the body size.
	est := *agent
	est.InputTokens, est.BodyBytes = 0, 3000
	newTestLimiter(t, clk, Config{}, set).Admit(&est, &r)
	if r.Tokens != 1000+4096 {
		t.Fatalf("estimated from 3000 bytes: %d tokens", r.Tokens)
	}
}

// Streams are reserved at admission, not charged after the fact: a
// second stream cannot start on money or tokens the first may still use
// (Envoy AI Gateway's 1,000-token limit letting 1,200 through).
func TestStreamsReservedBeforeTheyRun(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	l := newTestLimiter(t, clk, noCap, Set{
		Budgets:    []Budget{accountBudget("b", "a", "1")},
		RateLimits: []RateLimit{{ID: "t", Scope: Scope{Kind: ScopeAPIKey, Account: "a", APIKey: "k"}, TPM: 1000}},
	})
	stream, _ := admit(t, l, req("a", "k", 400, 200), Allowed) // 600 tokens
	_, d := admit(t, l, req("a", "k", 400, 200), RateLimited)
	if d.Kind != KindTPM || !d.Tokens.Set || d.Tokens.Limit != 1000 || d.Tokens.Remaining != 400 {
		t.Fatalf("tpm refusal while the first stream runs: %+v", d)
	}
	stream.Settle(Actual{Tokens: 450, Reported: true, Cost: usd("0.0005"), Priced: true})
	admit(t, l, req("a", "k", 300, 200), Allowed) // 450 + 500 ≤ 1000

	big := newTestLimiter(t, clk, noCap, Set{Budgets: []Budget{accountBudget("b", "a", "1")}})
	s1, _ := admit(t, big, req("a", "k", 200_000, 200_000), Allowed) // $0.60
	admit(t, big, req("a", "k", 200_000, 200_000), BudgetExceeded)
	s1.Settle(Actual{Cost: usd("0.25"), Priced: true})
	admit(t, big, req("a", "k", 200_000, 200_000), Allowed)
}

// litellm#34732, #40095: concurrent first requests past a budget. 200
// goroutines start at once on a fresh $1 budget with $0.20 requests:
// exactly 5 are admitted. Run with -race.
func TestConcurrentFirstRequestsDoNotPassTheBudget(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	l := newTestLimiter(t, clk, noCap, Set{
		Budgets:    []Budget{accountBudget("b", "a", "1")},
		RateLimits: []RateLimit{{ID: "r", Scope: Scope{Kind: ScopeAccount, Account: "a"}, RPM: 150, Concurrent: 100}},
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	outcomes := map[Outcome]int{}
	kinds := map[LimitKind]int{}
	start := make(chan struct{})
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var r Reservation
			d := l.Admit(req("a", "k", 100_000, 50_000), &r)
			mu.Lock()
			outcomes[d.Outcome]++
			kinds[d.Kind]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if outcomes[Allowed] != 5 {
		t.Fatalf("admitted %d of 200 concurrent first requests on a $1 budget of $0.20 each, want 5 (%v %v)", outcomes[Allowed], outcomes, kinds)
	}
	s := status(t, l, KindBudget, "b")
	if s.Reserved != int64(usd("1")) {
		t.Fatalf("reserved %d", s.Reserved)
	}
	// Refused requests hold nothing: 5 in flight, 5 counted in the minute.
	if c := status(t, l, KindConcurrent, "r"); c.Reserved != 5 {
		t.Errorf("in flight: %d", c.Reserved)
	}
	if c := status(t, l, KindRPM, "r"); c.Spent != 5 {
		t.Errorf("requests this minute: %d", c.Spent)
	}
}

// Rate limits: requests per minute with Retry-After to the minute's end,
// a fallback attempt not counted twice, concurrency given back on
// release, the headers' numbers on allowed answers too.
func TestRateLimits(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:20Z"))
	l := newTestLimiter(t, clk, noCap, Set{RateLimits: []RateLimit{
		{ID: "k", Scope: Scope{Kind: ScopeAPIKey, Account: "a", APIKey: "k"}, RPM: 3, TPM: 10_000, Concurrent: 2},
		{ID: "acct", Scope: Scope{Kind: ScopeAccount, Account: "a"}, RPM: 100},
		{ID: "model", Scope: Scope{Kind: ScopeAccountModel, Account: "a", Model: "big"}, Concurrent: 1},
	}})
	r1, d := admit(t, l, req("a", "k", 100, 100), Allowed)
	if !d.Requests.Set || d.Requests.Limit != 3 || d.Requests.Remaining != 2 || d.Requests.Reset != 40*time.Second {
		t.Errorf("requests info on an allowed answer: %+v", d.Requests)
	}
	if !d.Tokens.Set || d.Tokens.Limit != 10_000 || d.Tokens.Remaining != 9_800 {
		t.Errorf("tokens info: %+v", d.Tokens)
	}
	r2, _ := admit(t, l, req("a", "k", 100, 100), Allowed)
	_, d = admit(t, l, req("a", "k", 100, 100), RateLimited)
	if d.Kind != KindConcurrent || d.RetryAfter != time.Second || d.Outcome.Status() != 429 {
		t.Errorf("concurrency refusal: %+v", d)
	}
	r1.Release()
	fb := req("a", "k", 100, 100)
	fb.Fallback = true // the first attempt failed: the next is the same request
	r3, _ := admit(t, l, fb, Allowed)
	r2.Settle(Actual{Tokens: 150, Reported: true})
	r3.Release()
	admit(t, l, req("a", "k", 100, 100), Allowed)
	_, d = admit(t, l, req("a", "k", 100, 100), RateLimited)
	if d.Kind != KindRPM || d.LimitID != "k" || d.RetryAfter != 40*time.Second || !d.ResetAt.Equal(date("2026-12-10T12:01:00Z")) {
		t.Errorf("rpm refusal: %+v", d)
	}
	if d.Requests.Limit != 3 || d.Requests.Remaining != 0 {
		t.Errorf("rpm refusal's requests info: %+v", d.Requests)
	}
	if s := status(t, l, KindRPM, "acct"); s.Spent != 3 {
		t.Errorf("the refused request was not counted on the account's rpm: %d", s.Spent)
	}
	clk.Advance(40 * time.Second)
	admit(t, l, req("a", "k", 100, 100), Allowed)
	// account+model concurrency applies only to that model.
	big := &Request{Account: "a", APIKey: "k2", Provider: "anthropic", Model: "big", Payer: PayerPlatform, InputTokens: 1, Book: testBook}
	admit(t, l, big, Allowed)
	admit(t, l, big, RateLimited)
	admit(t, l, req("a", "k2", 1, 1), Allowed)
}

// A window that rolls while a stream runs: the reservation is carried
// into the new window (which cannot be overrun by it) and the cost lands
// where it settles.
func TestWindowRollsDuringAStream(t *testing.T) {
	clk := newClock(date("2026-12-31T23:59:59Z"))
	l := newTestLimiter(t, clk, noCap, Set{Budgets: []Budget{accountBudget("b", "a", "1")}})
	first, _ := admit(t, l, req("a", "k", 200_000, 200_000), Allowed) // $0.60 until it ends
	old, _ := admit(t, l, req("a", "k", 100_000, 50_000), Allowed)    // $0.20, settled in December
	old.Settle(Actual{Cost: usd("0.15"), Priced: true})
	clk.Advance(2 * time.Second) // 2027-01-01T00:00:01Z
	s := status(t, l, KindBudget, "b")
	if s.Spent != 0 || s.Reserved != int64(usd("0.6")) || !s.WindowStart.Equal(date("2027-01-01T00:00:00Z")) {
		t.Fatalf("new window: %+v", s)
	}
	admit(t, l, req("a", "k", 200_000, 200_000), BudgetExceeded) // 0.6 + 0.6 > 1
	first.Settle(Actual{Cost: usd("0.5"), Priced: true})
	if s := status(t, l, KindBudget, "b"); s.Spent != int64(usd("0.5")) || s.Reserved != 0 {
		t.Fatalf("settled in the new window: %+v", s)
	}
	clk.Set(date("2027-02-01T00:00:00Z"))
	if s := status(t, l, KindBudget, "b"); s.Spent != 0 {
		t.Fatalf("February starts empty: %+v", s)
	}
}

// A rolling window counts spend for N hours and at most one slot (N/24)
// more, never less, and says when the oldest spend leaves.
func TestRollingWindow(t *testing.T) {
	t0 := date("2026-12-10T10:30:00Z")
	clk := newClock(t0)
	l := newTestLimiter(t, clk, noCap, Set{Budgets: []Budget{{ID: "r", Scope: Scope{Kind: ScopeAccount, Account: "a"},
		Amount: usd("1"), Window: WindowRolling, RollingHours: 24}}})
	r, _ := admit(t, l, req("a", "k", 100_000, 0), Allowed)
	r.Settle(Actual{Cost: usd("0.6"), Priced: true})
	// The slot of 10:00–11:00 leaves when the 11:00 slot 25 hours later starts.
	leaves := date("2026-12-11T11:00:00Z")
	for _, at := range []time.Time{t0.Add(time.Hour), t0.Add(24 * time.Hour), leaves.Add(-time.Second)} {
		clk.Set(at)
		_, d := admit(t, l, req("a", "k", 300_000, 100_000), BudgetExceeded) // $0.50 more would pass $1
		if !d.ResetAt.Equal(leaves) || d.Window != WindowRolling || d.RollingHours != 24 {
			t.Fatalf("at %v: reset %v", at, d.ResetAt)
		}
	}
	clk.Set(leaves)
	admit(t, l, req("a", "k", 300_000, 100_000), Allowed)
}

// Soft budgets never refuse; alert thresholds fire once per window, in
// order, and again in the next window.
func TestSoftBudgetAlertsOncePerWindow(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	var ev events
	l := newTestLimiter(t, clk, Config{ReserveOutputCap: -1, OnEvent: ev.add}, Set{Budgets: []Budget{
		{ID: "soft", Scope: Scope{Kind: ScopeAccount, Account: "a"}, Amount: usd("1"), Window: WindowDay, Mode: ModeSoft},
	}})
	spend := func(cost string) {
		r, _ := admit(t, l, req("a", "k", 1000, 0), Allowed)
		r.Settle(Actual{Cost: usd(cost), Priced: true})
	}
	spend("0.3")
	spend("0.3") // 60 %: 50
	spend("0.3") // 90 %: 80
	spend("0.3") // 120 %: 100, and still allowed
	spend("0.3")
	clk.Advance(24 * time.Hour)
	spend("0.85") // the next day: 50, 80
	l.Close()
	var got []int
	for _, e := range ev.list() {
		if e.Kind != EventThreshold || e.LimitID != "soft" || e.Amount != usd("1") {
			t.Errorf("event %+v", e)
		}
		got = append(got, e.Percent)
	}
	if want := []int{50, 80, 100, 50, 80}; !equalInts(got, want) {
		t.Fatalf("thresholds %v, want %v", got, want)
	}
	if e := ev.list()[3]; !e.WindowStart.Equal(date("2026-12-11T00:00:00Z")) || e.Spent != usd("0.85") {
		t.Errorf("second day's event: %+v", e)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A shadow budget counts as a hard one would, refuses nothing, and
// records every request it would have refused (one event a window).
func TestShadowBudgetRecordsWouldRefuse(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	var ev events
	l := newTestLimiter(t, clk, Config{ReserveOutputCap: -1, OnEvent: ev.add}, Set{Budgets: []Budget{
		{ID: "sh", Scope: Scope{Kind: ScopeAccount, Account: "a"}, Amount: usd("0.5"), Window: WindowMonth, Mode: ModeShadow, Alerts: []int{}},
	}})
	for i := range 5 {
		r, d := admit(t, l, req("a", "k", 100_000, 50_000), Allowed) // $0.20 each
		if wantShadow := i >= 2; (d.Shadow == "sh") != wantShadow {
			t.Errorf("request %d: shadow %q", i, d.Shadow)
		}
		r.Settle(Actual{Cost: usd("0.2"), Priced: true})
	}
	if s := status(t, l, KindBudget, "sh"); s.WouldRefuse != 3 || s.Spent != int64(usd("1")) {
		t.Errorf("status: %+v", s)
	}
	l.Close()
	if e := ev.list(); len(e) != 1 || e[0].Kind != EventWouldRefuse || e[0].LimitID != "sh" {
		t.Fatalf("events: %+v", e)
	}
}

// The spillover allowance: a BYOK→platform fallback draws on it; 0 is
// strict; an account without one is not limited by it.
func TestSpillover(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	l := newTestLimiter(t, clk, noCap, Set{Spillover: []Spillover{{Account: "strict", Amount: 0}, {Account: "some", Amount: usd("0.5")}}})
	spill := func(account string) *Request {
		r := req(account, "k", 100_000, 50_000) // $0.20
		r.Spillover = true
		return r
	}
	_, d := admit(t, l, spill("strict"), BudgetExceeded)
	if d.Kind != KindSpillover || d.Scope.Account != "strict" || d.Window != WindowMonth {
		t.Errorf("strict spillover: %+v", d)
	}
	admit(t, l, req("strict", "k", 100_000, 50_000), Allowed) // not a fallback
	admit(t, l, spill("some"), Allowed)
	admit(t, l, spill("some"), Allowed)
	admit(t, l, spill("some"), BudgetExceeded)
	admit(t, l, spill("unset"), Allowed)
}

// Installing a new set keeps the spend of limits that stay, changes
// their amounts, and a set with an error changes nothing.
func TestInstallKeepsCounters(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	l := newTestLimiter(t, clk, noCap, Set{Budgets: []Budget{accountBudget("b", "a", "1")}})
	r, _ := admit(t, l, req("a", "k", 100_000, 0), Allowed)
	r.Settle(Actual{Cost: usd("0.7"), Priced: true})
	if err := l.Install(Set{Budgets: []Budget{accountBudget("b", "a", "2")}}); err != nil {
		t.Fatal(err)
	}
	if s := status(t, l, KindBudget, "b"); s.Spent != int64(usd("0.7")) || s.Limit != int64(usd("2")) {
		t.Fatalf("after the amount changed: %+v", s)
	}
	bad := Set{Budgets: []Budget{accountBudget("b", "a", "5"), {ID: "x", Scope: Scope{Kind: "team", Account: "a"}, Amount: 1, Window: WindowDay}}}
	if err := l.Install(bad); err == nil || !strings.Contains(err.Error(), `scope "team"`) {
		t.Fatalf("bad set: %v", err)
	}
	if s := status(t, l, KindBudget, "b"); s.Limit != int64(usd("2")) {
		t.Fatalf("a refused set changed the limit: %+v", s)
	}
	if err := l.Install(Set{}); err != nil {
		t.Fatal(err)
	}
	admit(t, l, req("a", "k", 100_000_000, 0), Allowed)
}

// Ids are per account: two accounts' budgets of the same id count apart.
func TestSameIDInTwoAccounts(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	l := newTestLimiter(t, clk, noCap, Set{
		Budgets:    []Budget{accountBudget("monthly", "a", "1"), accountBudget("monthly", "b", "1")},
		RateLimits: []RateLimit{{ID: "r", Scope: Scope{Kind: ScopeAccount, Account: "a"}, RPM: 1}, {ID: "r", Scope: Scope{Kind: ScopeAccount, Account: "b"}, RPM: 1}},
	})
	r, _ := admit(t, l, req("a", "k", 900_000, 0), Allowed)
	r.Settle(Actual{Cost: usd("0.9"), Priced: true})
	admit(t, l, req("b", "k", 900_000, 0), Allowed)
	admit(t, l, req("a", "k", 1, 0), RateLimited)
}

// Too many limits on one request is refused at install: a Reservation
// holds them in a fixed array.
func TestTooManyLimitsForOneRequest(t *testing.T) {
	var s Set
	for i := range maxHolds + 1 {
		s.Budgets = append(s.Budgets, accountBudget("b"+itoa(i), "a", "1"))
	}
	l, _ := New(Config{})
	defer l.Close()
	if err := l.Install(s); err == nil || !strings.Contains(err.Error(), "at most 16") {
		t.Fatalf("17 budgets on one account: %v", err)
	}
}
