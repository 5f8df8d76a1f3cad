package limits

import (
	"sync/atomic"
	"testing"
)

// benchSet is an account with what a busy account might carry: a monthly
// platform budget, a BYOK budget, a key budget and a model budget, a key
// rate limit (rpm, tpm, concurrency) and an account rpm.
func benchSet() Set {
	return Set{
		Budgets: []Budget{
			{ID: "month", Scope: Scope{Kind: ScopeAccount, Account: "acme"}, Amount: usd("1000000"), Window: WindowMonth},
			{ID: "byok", Scope: Scope{Kind: ScopeAccount, Account: "acme"}, Amount: usd("1000000"), Window: WindowDay, Payer: PayerBYOK},
			{ID: "key", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k1"}, Amount: usd("1000000"), Window: WindowRolling, RollingHours: 24, Payer: PayerAll},
			{ID: "model", Scope: Scope{Kind: ScopeAccountModel, Account: "acme", Model: "m1"}, Amount: usd("1000000"), Window: WindowWeek, Mode: ModeShadow},
		},
		RateLimits: []RateLimit{
			{ID: "key", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k1"}, RPM: 1 << 40, TPM: 1 << 40, Concurrent: 1 << 20},
			{ID: "acct", Scope: Scope{Kind: ScopeAccount, Account: "acme"}, RPM: 1 << 40},
		},
	}
}

// admitSettle is one request through the limiter: admit, then settle with
// the cost the provider's usage gave.
func admitSettle(tb testing.TB, l *Limiter, r *Request, res *Reservation) {
	if d := l.Admit(r, res); !d.Allowed() {
		tb.Fatalf("refused: %+v", d)
	}
	res.Settle(Actual{Tokens: 1500, Reported: true, Cost: 1700, Priced: true})
}

// TestAdmitAllocatesNothing holds the benchmark's claim in every test
// run: admission, settlement and release allocate nothing (a refusal
// neither).
func TestAdmitAllocatesNothing(t *testing.T) {
	clk := newClock(date("2026-12-10T12:00:00Z"))
	l := newTestLimiter(t, clk, Config{}, benchSet())
	r := req("acme", "k1", 1000, 500)
	var res Reservation
	if n := testing.AllocsPerRun(500, func() {
		admitSettle(t, l, r, &res)
		l.Admit(r, &res)
		res.Release()
	}); n != 0 {
		t.Fatalf("admit + settle + release allocate %v times per request", n)
	}
	refused := req("acme", "k1", 1<<41, 0)
	if n := testing.AllocsPerRun(200, func() {
		if d := l.Admit(refused, &res); d.Allowed() {
			t.Fatal("allowed")
		}
	}); n != 0 {
		t.Fatalf("a refusal allocates %v times", n)
	}
	// Not a limited account: the lookup alone.
	other := req("other", "k", 1000, 500)
	if n := testing.AllocsPerRun(200, func() { l.Admit(other, &res) }); n != 0 {
		t.Fatalf("an unlimited account allocates %v times", n)
	}
}

// BenchmarkAdmitSettle: one request's admission and settlement on an
// account with 4 budgets and 2 rate limits (7 counters), pricing its
// worst case included.
func BenchmarkAdmitSettle(b *testing.B) {
	l := realClockLimiter(b, benchSet()) // time.Now once per call, as in production
	// The check alone: Admit, and Release to keep the budget whole.
	b.Run("admit", func(b *testing.B) {
		r := req("acme", "k1", 1000, 500)
		var res Reservation
		b.ReportAllocs()
		for b.Loop() {
			if d := l.Admit(r, &res); !d.Allowed() {
				b.Fatal(d)
			}
			res.Release()
		}
	})
	b.Run("single", func(b *testing.B) {
		r := req("acme", "k1", 1000, 500)
		var res Reservation
		b.ReportAllocs()
		for b.Loop() {
			admitSettle(b, l, r, &res)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := req("acme", "k1", 1000, 500)
			var res Reservation
			for pb.Next() {
				admitSettle(b, l, r, &res)
			}
		})
	})
	// Parallel over many accounts: the common case of a gateway.
	b.Run("parallel-accounts", func(b *testing.B) {
		set := Set{}
		for i := range 64 {
			a := "acct" + itoa(i)
			set.Budgets = append(set.Budgets, Budget{ID: a, Scope: Scope{Kind: ScopeAccount, Account: a}, Amount: usd("1000000"), Window: WindowMonth})
			set.RateLimits = append(set.RateLimits, RateLimit{ID: a, Scope: Scope{Kind: ScopeAccount, Account: a}, RPM: 1 << 40, Concurrent: 1 << 20})
		}
		l := realClockLimiter(b, set)
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := req("acct"+itoa(int(next.Add(1)%64)), "k", 1000, 500)
			var res Reservation
			for pb.Next() {
				admitSettle(b, l, r, &res)
			}
		})
	})
}

// realClockLimiter is a limiter on the default clock (Config.Now nil),
// which reads the time once per call.
func realClockLimiter(b *testing.B, set Set) *Limiter {
	l, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	if err := l.Install(set); err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkTracker: reading a BYOK answer's rate-limit headers and
// checking the credential before the next request.
func BenchmarkTracker(b *testing.B) {
	tr := NewTracker(nil)
	h := hdr("x-ratelimit-limit-requests", "60", "x-ratelimit-remaining-requests", "59", "x-ratelimit-reset-requests", "1s",
		"x-ratelimit-limit-tokens", "150000", "x-ratelimit-remaining-tokens", "149984", "x-ratelimit-reset-tokens", "6m0s")
	b.ReportAllocs()
	for b.Loop() {
		tr.Observe("fp", 200, h)
		tr.Check("fp")
	}
}
