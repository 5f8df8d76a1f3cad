package limits

import (
	"testing"
	"time"
)

// A restart mid-window keeps the spend: the single-node backend persists
// each window's settled spend (and what was in flight at the last write,
// counted as spent) and Install restores it before the first request.
func TestRestartKeepsSpendSingleNode(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	kv := NewMapKV()
	set := Set{
		Budgets:    []Budget{accountBudget("b", "a", "1"), {ID: "r", Scope: Scope{Kind: ScopeAccount, Account: "a"}, Amount: usd("1"), Window: WindowRolling, RollingHours: 2}},
		RateLimits: []RateLimit{{ID: "k", Scope: Scope{Kind: ScopeAPIKey, Account: "a", APIKey: "k"}, RPM: 5, Concurrent: 1}},
	}
	cfg := Config{ReserveOutputCap: -1, Backend: NewLocal(kv), FlushInterval: time.Hour} // no tick: Close writes
	l := newTestLimiter(t, clk, cfg, set)
	r, _ := admit(t, l, req("a", "k", 100_000, 0), Allowed)
	r.Settle(Actual{Cost: usd("0.7"), Priced: true})
	inFlight, _ := admit(t, l, req("a", "k", 100_000, 0), Allowed) // $0.10 in flight when the process stops
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	clk.Advance(10 * time.Second)
	l2 := newTestLimiter(t, clk, cfg, set)
	for _, id := range []string{"b", "r"} {
		if s := status(t, l2, KindBudget, id); s.Spent != int64(usd("0.7")+inFlight.Cost) || s.Reserved != 0 {
			t.Fatalf("%s after the restart: %+v", id, s)
		}
	}
	if s := status(t, l2, KindRPM, "k"); s.Spent != 2 {
		t.Fatalf("requests this minute after the restart: %+v", s)
	}
	if s := status(t, l2, KindConcurrent, "k"); s.Reserved != 0 {
		t.Fatalf("concurrency does not survive its requests: %+v", s)
	}
	admit(t, l2, req("a", "k", 200_000, 1), BudgetExceeded) // 0.808192 + 0.2 > 1
	r, _ = admit(t, l2, req("a", "k", 190_000, 1), Allowed)
	r.Release()

	// The next month starts empty and the old month's keys are dropped
	// at the next write.
	clk.Set(date("2027-01-02T00:00:00Z"))
	r, _ = admit(t, l2, req("a", "k", 1000, 0), Allowed)
	r.Settle(Actual{Cost: usd("0.001"), Priced: true})
	l2.Close()
	kv.Scan("b/a/b/month/", func(k string, _ []byte) error {
		if k != "b/a/b/month/u/"+slotKey(windowMonth.slot(clk.Now())) {
			t.Errorf("stale key %q kept", k)
		}
		return nil
	})
}

// Alerts survive a restart too: a threshold sent before it is not sent
// again in the same window.
func TestAlertsOncePerWindowAcrossRestart(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	kv := NewMapKV()
	var ev events
	cfg := Config{ReserveOutputCap: -1, Backend: NewLocal(kv), OnEvent: ev.add}
	set := Set{Budgets: []Budget{accountBudget("b", "a", "1")}}
	spend := func(l *Limiter, cost string) {
		r, _ := admit(t, l, req("a", "k", 1000, 0), Allowed)
		r.Settle(Actual{Cost: usd(cost), Priced: true})
	}
	l := newTestLimiter(t, clk, cfg, set)
	spend(l, "0.6")
	l.Close()
	l = newTestLimiter(t, clk, cfg, set)
	spend(l, "0.01") // still past 50 %: a new process finds the claim
	spend(l, "0.3")
	l.Close()
	var got []int
	for _, e := range ev.list() {
		got = append(got, e.Percent)
	}
	if !equalInts(got, []int{50, 80}) {
		t.Fatalf("thresholds across a restart: %v", got)
	}
}
