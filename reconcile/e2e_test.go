package reconcile

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// End to end over the fakes: requests over real HTTP with BYOK keys → the
// fake provider's own records → the admin readers → the comparison → the
// ledger.

var day0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func modelsFor(provider string) [2]string {
	if provider == "anthropic" {
		return [2]string{"claude-haiku-4-5", "claude-sonnet-4-5"}
	}
	return [2]string{"gpt-4o-mini", "gpt-4.1-nano"}
}

func workspaces(provider string) [2]string {
	if provider == "anthropic" {
		return [2]string{"wrkspc_01A", "wrkspc_01B"}
	}
	return [2]string{"proj_a", "proj_b"}
}

// Traffic only through "the gateway": every token row of our credentials
// matches exactly, class by class, per (credential, model, hour), and every
// day's cost is within 1 %. Keys that are not ours show as provider_only.
func TestGatewayOnlyTrafficMatches(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		t.Run(provider, func(t *testing.T) {
			h := newHarness(t, provider, day0)
			models, ws := modelsFor(provider), workspaces(provider)
			var keys []string
			var creds []Credential
			for i := range 3 {
				k, c := h.key(i+1, ws[i/2])
				keys, creds = append(keys, k), append(creds, c)
			}
			other, _ := h.key(9, ws[0]) // the organisation's key, not this account's
			for d := range 3 {
				for _, hr := range []int{1, 7, 13, 22} {
					h.set(day0.AddDate(0, 0, d).Add(time.Duration(hr)*time.Hour + 7*time.Minute))
					for _, k := range keys {
						h.send(k, models[0], false)
						h.send(k, models[1], true)
					}
					if hr == 13 {
						h.sendOutside(other, models[0])
						h.fake.InjectUsage("", providertest.UsageEvent{Model: models[0], Input: 40, Output: 9}) // Workbench
					}
				}
			}
			h.set(day0.AddDate(0, 0, 4).Add(time.Hour)) // every hour settled
			w := Window{From: day0, To: day0.AddDate(0, 0, 4)}
			l := &MemoryLedger{}
			res, err := h.run(l, w, creds, Options{})
			if err != nil || !res.OK {
				t.Fatalf("run: %v %+v", err, res)
			}
			for _, m := range res.Matches {
				if m.Status != Matched {
					t.Fatalf("credential %s not matched: %+v", m.Credential, m)
				}
			}
			ours := map[string]bool{}
			for _, c := range creds {
				ours[c.Fingerprint] = true
			}
			var tokenRows, costRows, providerOnly int
			var worstPPM int64
			for _, r := range rowsOf(t, l, provider, w) {
				mine := ours[r.Credential] || len(r.Credentials) > 0
				switch {
				case r.Status == StatusProviderOnly:
					providerOnly++
					if mine {
						t.Errorf("our credential's row is provider_only: %+v", r)
					}
				case !mine:
					t.Errorf("a row that is neither ours nor provider_only: %+v", r)
				case r.Status != StatusMatch:
					t.Errorf("%s row %s %s %s: %s (%s), delta %+v", r.Kind, r.Credential, r.Model, r.Start.Format(time.RFC3339), r.Status, r.Note, r.Delta)
				case r.Kind == KindTokens:
					tokenRows++
					if *r.Gateway.Tokens != *r.ProviderSide.Tokens || r.Gateway.Tokens.Total() == 0 {
						t.Errorf("tokens row: gateway %+v, provider %+v", *r.Gateway.Tokens, *r.ProviderSide.Tokens)
					}
				case r.Kind == KindCost:
					costRows++
					worstPPM = max(worstPPM, abs(r.Delta.CostPPM))
					if r.Gateway.CostNanoUSD <= 0 {
						t.Errorf("cost row without a gateway cost: %+v", r)
					}
				}
			}
			wantCost := 3 * 3 // a row per credential and day
			if provider == "anthropic" {
				wantCost = 2 * 3 // a row per workspace and day
			}
			if tokenRows != 3*3*4*2 || costRows != wantCost {
				t.Errorf("%d matching token rows (want 72), %d cost rows (want %d)", tokenRows, costRows, wantCost)
			}
			if providerOnly == 0 {
				t.Error("the other key's and Workbench usage are not in the ledger")
			}
			if len(res.Alerts) != 0 || len(res.Proposals) != 0 {
				t.Errorf("alerts %+v, proposals %+v", res.Alerts, res.Proposals)
			}
			t.Logf("%s: %d token rows match exactly, %d cost rows within %d ppm (1 %% is 10000), %d provider_only rows",
				provider, tokenRows, costRows, worstPPM, providerOnly)
		})
	}
}

// One request on one of our keys that the gateway never sent is flagged in
// the first run after the provider shows it, and not before.
func TestOutOfBandFlaggedFirstRunAfterVisible(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		t.Run(provider, func(t *testing.T) {
			h := newHarness(t, provider, day0)
			h.fake.SetLateness(2 * time.Hour)
			model := modelsFor(provider)[0]
			key, cred := h.key(1, workspaces(provider)[0])
			for _, hr := range []int{9, 10, 11} {
				h.set(day0.Add(time.Duration(hr)*time.Hour + 15*time.Minute))
				h.send(key, model, false)
			}
			leak := day0.Add(12*time.Hour + 30*time.Minute)
			h.fake.InjectUsage(key, providertest.UsageEvent{Time: leak, Model: model, Input: 50, Output: 20})
			w := LastDays(leak, 1)
			l := &MemoryLedger{}

			h.set(leak.Add(119 * time.Minute)) // not visible yet
			res, err := h.run(l, w, []Credential{cred}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Alerts) != 0 || res.Counts[StatusOutOfBand] != 0 {
				t.Fatalf("flagged before the provider shows it: %+v", res)
			}

			h.set(leak.Add(2 * time.Hour)) // the first run after it is visible
			res, err = h.run(l, w, []Credential{cred}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Alerts) != 1 {
				t.Fatalf("alerts: %+v (counts %v)", res.Alerts, res.Counts)
			}
			a := res.Alerts[0]
			if a.Credential != cred.Fingerprint || a.Hours != 1 || !a.First.Equal(day0.Add(12*time.Hour)) || a.ExcessTokens != 70 || a.Models[0] != model {
				t.Errorf("alert %+v", a)
			}
			if provider == "openai" && a.ExcessRequests != 1 || provider == "anthropic" && a.ExcessRequests != -1 {
				t.Errorf("excess requests %d", a.ExcessRequests)
			}
			for _, r := range rowsOf(t, l, provider, w) {
				if r.Kind != KindTokens {
					continue
				}
				want := StatusMatch
				if r.Start.Equal(day0.Add(12 * time.Hour)) {
					want = StatusOutOfBand
				}
				if r.Status != want {
					t.Errorf("hour %s: %s (%s), want %s", r.Start.Format("15:04"), r.Status, r.Note, want)
				}
			}
		})
	}
}

// The provider's figures arrive late: rows are pending until they do, then
// match; nothing is called drift before the lateness has passed.
func TestPendingUntilTheProviderCatchesUp(t *testing.T) {
	h := newHarness(t, "openai", day0)
	h.fake.SetLateness(3 * time.Hour)
	key, cred := h.key(1, "proj_a")
	h.set(day0.Add(10*time.Hour + 10*time.Minute))
	h.send(key, "gpt-4o-mini", false)
	w := LastDays(day0, 1)
	l := &MemoryLedger{}
	h.set(day0.Add(11 * time.Hour))
	res, err := h.run(l, w, []Credential{cred}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[StatusPending] != 2 || res.Rows != 2 {
		t.Errorf("before the provider's data: %v, want the token and the cost row pending", res.Counts)
	}
	h.set(day0.Add(13*time.Hour + 10*time.Minute))
	if res, err = h.run(l, w, []Credential{cred}, Options{}); err != nil {
		t.Fatal(err)
	}
	if res.Counts[StatusMatch] != 2 || res.Rows != 2 {
		t.Errorf("after: %v, want both rows matching", res.Counts)
	}
}

// A provider outage, rate limiting past the bound, a refused admin key or
// a failure half-way through leave the ledger exactly as it was, and say
// why. The admin key the fake echoes is not in the error.
func TestProviderTroubleLeavesTheLedger(t *testing.T) {
	h := newHarness(t, "openai", day0)
	key, cred := h.key(1, "proj_a")
	h.set(day0.Add(10 * time.Hour))
	h.send(key, "gpt-4o-mini", false)
	h.set(day0.Add(36 * time.Hour))
	w := Window{From: day0, To: day0.AddDate(0, 0, 2)}
	l := &MemoryLedger{}
	if _, err := h.run(l, w, []Credential{cred}, Options{}); err != nil {
		t.Fatal(err)
	}
	before := ledgerJSON(t, l, "openai", w)
	h.send(key, "gpt-4o-mini", false) // the gateway side moves on; the ledger must not
	failCosts := &http.Client{Transport: failPath{"/v1/organization/costs", http.DefaultTransport}}
	cases := []struct {
		name   string
		setup  func()
		opts   Options
		reason Reason
	}{
		{"outage", func() {
			h.fake.FailAdmin(providertest.Response{Status: 503, Body: `{"error":{"message":"overloaded"}}`}, -1)
		},
			Options{MaxAttempts: 3}, ReasonUnavailable},
		{"rate limited past the bound", func() {
			h.fake.FailAdmin(providertest.Response{Status: 429, Header: map[string]string{"Retry-After": "3600"}, Body: `{"error":{"message":"slow down"}}`}, -1)
		}, Options{}, ReasonRateLimited},
		{"revoked admin key", func() { h.fake.FailAdmin(providertest.Response{}, 0); h.fake.RevokeAdmin(h.adminKey) }, Options{}, ReasonKeyRejected},
		{"costs fail after usage was read", func() { h.fake.AddAdminKey(h.adminKey) }, Options{HTTPClient: failCosts, MaxAttempts: 2}, ReasonUnavailable},
	}
	for _, c := range cases {
		c.setup()
		start := time.Now()
		res, err := h.run(l, w, []Credential{cred}, c.opts)
		if err == nil || res.OK || res.Reason != c.reason {
			t.Errorf("%s: err %v, result %+v, want reason %s", c.name, err, res, c.reason)
		}
		if strings.Contains(err.Error()+res.Error, h.adminKey) {
			t.Errorf("%s: the admin key is in the error: %s", c.name, res.Error)
		}
		if got := ledgerJSON(t, l, "openai", w); got != before {
			t.Errorf("%s: the ledger changed", c.name)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %s (a Retry-After past MaxDelay must end the run, not sleep)", c.name, d)
		}
		t.Logf("%s: %s", c.name, res.Error)
	}
}

// failPath answers 503 to one path and passes the rest on.
type failPath struct {
	path string
	next http.RoundTripper
}

func (f failPath) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == f.path {
		return &http.Response{StatusCode: 503, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	}
	return f.next.RoundTrip(r)
}

// The same inputs give the same ledger, byte for byte; a run over a range
// replaces that range's rows (rows that no longer hold are gone) and leaves
// the rest.
func TestRunsAreIdempotentAndReplaceTheirRange(t *testing.T) {
	h := newHarness(t, "anthropic", day0)
	key, cred := h.key(1, "wrkspc_01A")
	for d := range 3 {
		h.set(day0.AddDate(0, 0, d).Add(9 * time.Hour))
		h.send(key, "claude-haiku-4-5", d%2 == 0)
	}
	h.set(day0.AddDate(0, 0, 3).Add(2 * time.Hour))
	w := Window{From: day0, To: day0.AddDate(0, 0, 3)}
	l := &MemoryLedger{}
	if _, err := h.run(l, w, []Credential{cred}, Options{}); err != nil {
		t.Fatal(err)
	}
	first := ledgerJSON(t, l, "anthropic", w)
	if _, err := h.run(l, w, []Credential{cred}, Options{}); err != nil {
		t.Fatal(err)
	}
	if again := ledgerJSON(t, l, "anthropic", w); again != first {
		t.Fatalf("a second run changed the ledger:\n%s\n%s", first, again)
	}

	// Day 1 only: a gateway aggregate the provider never saw appears, then
	// is dropped by the next run that no longer has it; days 0 and 2 stay.
	day1 := Window{From: day0.AddDate(0, 0, 1), To: day0.AddDate(0, 0, 2)}
	rc := &Reconciler{Ledger: l, Book: h.book, Now: h.now}
	ghost := GatewayUsage{Account: account, Provider: "anthropic", Credential: cred.Fingerprint, Model: "claude-haiku-4-5",
		Hour: day1.From.Add(15 * time.Hour), Requests: 1, Tokens: Tokens{Input: 5, Output: 5}, CostNanoUSD: 30_000}
	job := Job{Scope: Scope{account, "anthropic"}, Window: day1, Credentials: []Credential{cred},
		Gateway: append(h.gateway(), ghost), Reader: h.reader(Options{})}
	if _, err := rc.Run(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(t, l, "anthropic", day1)
	if !slices.ContainsFunc(rows, func(r Row) bool { return r.Kind == KindTokens && r.Status == StatusDrift && r.Start.Equal(ghost.Hour) }) {
		t.Fatalf("the ghost hour is not a drift row: %+v", rows)
	}
	job.Gateway = h.gateway()
	if _, err := rc.Run(context.Background(), job); err != nil {
		t.Fatal(err)
	}
	if got := ledgerJSON(t, l, "anthropic", w); got != first {
		t.Errorf("after re-running day 1 without the ghost, the ledger differs from the first run")
	}
}

// 31 days, 20 credentials: a run reads ~15,000 hourly usage rows over
// paginated, chunked requests and compares them; it logs how long it took
// (BenchmarkRun31Days20Credentials measures it).
func TestThirtyOneDaysTwentyCredentials(t *testing.T) {
	h, creds, w := bigHarness(t)
	start := time.Now()
	res, err := h.run(&MemoryLedger{}, w, creds, Options{})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[StatusMatch] != res.Rows || res.Rows < 20*31*4 {
		t.Errorf("counts %v of %d rows", res.Counts, res.Rows)
	}
	reqs := len(h.fake.AdminRecords())
	t.Logf("31 days × 20 credentials: %d rows (%v), %d admin requests, run took %s", res.Rows, res.Counts, reqs, elapsed)
	if elapsed > 60*time.Second {
		t.Errorf("a 31-day run took %s", elapsed)
	}
	for _, r := range h.fake.AdminRecords() {
		if strings.Contains(r.Path, "usage") && !strings.Contains(r.Query, "limit=") {
			t.Errorf("usage request without a limit: %s", r.Query)
		}
	}
}

func BenchmarkRun31Days20Credentials(b *testing.B) {
	h, creds, w := bigHarness(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := h.run(&MemoryLedger{}, w, creds, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// bigHarness: 20 credentials, each sending 4 requests a day (two models,
// plain and streamed) for 31 days; pages of 24 buckets, so the hourly usage
// takes 5 chunks of 7 days × 7 pages each.
func bigHarness(t testing.TB) (*harness, []Credential, Window) {
	h := newHarness(t, "openai", day0)
	h.fake.SetPageBuckets(24)
	var keys []string
	var creds []Credential
	for i := range 20 {
		k, c := h.key(i+1, "proj_a")
		keys, creds = append(keys, k), append(creds, c)
	}
	for d := range 31 {
		for i, k := range keys {
			h.set(day0.AddDate(0, 0, d).Add(time.Duration(i%24)*time.Hour + 3*time.Minute))
			h.send(k, "gpt-4o-mini", false)
			h.send(k, "gpt-4.1-nano", true)
			h.set(day0.AddDate(0, 0, d).Add(time.Duration((i+12)%24)*time.Hour + 3*time.Minute))
			h.send(k, "gpt-4o-mini", true)
			h.send(k, "gpt-4o-mini", false)
		}
	}
	h.set(day0.AddDate(0, 0, 33))
	return h, creds, Window{From: day0, To: day0.AddDate(0, 0, 31)}
}

// A credential the organisation does not show is missing, one whose
// redacted form two keys share is ambiguous: neither is guessed, their rows
// are unmapped, and the owner's choice maps them.
func TestUnmatchedKeysAreTheOwnersToChoose(t *testing.T) {
	h := newHarness(t, "openai", day0)
	key, cred := h.key(1, "proj_a")
	twin := strings.Replace(key, "BYOK", "TWIN", 1) // same head and tail
	h.fake.AddKey(twin, providertest.AdminKey{Project: "proj_b"})
	stranger := "sk-proj-" + strings.Repeat("Zz9", 14) + "notInTheOrg"
	strangerCred := Credential{Fingerprint: fingerprint(stranger), Masked: "sk-proj-…gOrg"}
	h.set(day0.Add(9 * time.Hour))
	h.send(key, "gpt-4o-mini", false)
	h.send(stranger, "gpt-4o-mini", false)
	h.set(day0.Add(40 * time.Hour))
	w := LastDays(day0, 1)
	l := &MemoryLedger{}
	res, err := h.run(l, w, []Credential{cred, strangerCred}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Matches[0]; m.Status != Ambiguous || len(m.Candidates) != 2 {
		t.Errorf("twin keys: %+v", m)
	}
	if m := res.Matches[1]; m.Status != Missing {
		t.Errorf("a key the organisation does not have: %+v", m)
	}
	if res.Counts[StatusUnmapped] != 4 || res.Counts[StatusMatch] != 0 {
		t.Errorf("counts %v: want the two credentials' token and cost rows unmapped", res.Counts)
	}
	ids := map[string]string{}
	for _, k := range res.Matches[0].Candidates {
		ids[k.Project] = k.ID
	}
	cred.Chosen = ids["proj_a"]
	if res, err = h.run(l, w, []Credential{cred, strangerCred}, Options{}); err != nil {
		t.Fatal(err)
	}
	if m := res.Matches[0]; m.Status != Matched || m.By != "owner" {
		t.Errorf("after the owner's choice: %+v", m)
	}
	if res.Counts[StatusMatch] != 2 {
		t.Errorf("after the owner's choice: %v", res.Counts)
	}
}
