package reconcile

import (
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// calibrationTraffic sends 6 requests a day for days days with each key.
func calibrationTraffic(h *harness, keys []string, days int) {
	model := modelsFor(h.provider)[0]
	for d := range days {
		for hr := range 6 {
			h.set(day0.AddDate(0, 0, d).Add(time.Duration(3*hr+1) * time.Hour))
			for _, k := range keys {
				h.send(k, model, hr%2 == 0)
			}
		}
	}
}

// The provider bills 10 % under the list price for five days: the cost rows
// drift by 10 %, and the owner is offered a 10 % discount from the next
// midnight. With that discount accepted (in force on those days), nothing
// is proposed.
func TestCalibrationProposesADiscount(t *testing.T) {
	h := newHarness(t, "openai", day0)
	h.fake.SetPriceFactor("", 0.9)
	key, cred := h.key(1, "proj_a")
	calibrationTraffic(h, []string{key}, 5)
	now := day0.AddDate(0, 0, 6).Add(2 * time.Hour)
	h.set(now)
	w := Window{From: day0, To: day0.AddDate(0, 0, 7)}
	res, err := h.run(&MemoryLedger{}, w, []Credential{cred}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[StatusDrift] != 5 {
		t.Errorf("counts %v: want the five cost rows drifting", res.Counts)
	}
	if len(res.Proposals) != 1 {
		t.Fatalf("proposals: %+v", res.Proposals)
	}
	p := res.Proposals[0]
	if p.Term.DiscountPercent != "10" || p.ListRatioPPM != 900_000 || len(p.Days) != 5 || p.Credentials[0] != cred.Fingerprint ||
		!p.Term.EffectiveFrom.Equal(day0.AddDate(0, 0, 7)) {
		t.Errorf("proposal %+v", p)
	}
	t.Logf("proposal: %s (ratio %d ppm over %d days)", p.Note, p.RatioPPM, len(p.Days))

	// The owner typed the same discount on the key's contract, from the
	// proposal's start (a term is never retroactive): nothing to propose.
	own, err := pricing.NewContract([]pricing.ContractTerm{{EffectiveFrom: now, DiscountPercent: "10"}})
	if err != nil {
		t.Fatal(err)
	}
	withOwn := cred
	withOwn.Contract = own
	if res, err := h.run(&MemoryLedger{}, w, []Credential{withOwn}, Options{}); err != nil || len(res.Proposals) != 0 {
		t.Errorf("with the owner's own discount from now on: %+v %v", res.Proposals, err)
	}
	// A different discount does not explain the rate: the proposal stands.
	other, _ := pricing.NewContract([]pricing.ContractTerm{{EffectiveFrom: now, DiscountPercent: "5"}})
	withOwn.Contract = other
	if res, err := h.run(&MemoryLedger{}, w, []Credential{withOwn}, Options{}); err != nil || len(res.Proposals) != 1 {
		t.Errorf("with a 5 %% discount from now on: %+v %v", res.Proposals, err)
	}

	accepted := p.Term
	accepted.EffectiveFrom = day0
	c, err := pricing.NewContract([]pricing.ContractTerm{accepted})
	if err != nil {
		t.Fatal(err)
	}
	cred.Contract = c
	if res, err = h.run(&MemoryLedger{}, w, []Credential{cred}, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(res.Proposals) != 0 {
		t.Errorf("with the discount in force: %+v", res.Proposals)
	}
}

// Two days of a different rate are not enough; nor is a rate within 0.5 %.
func TestCalibrationNeedsThreeDaysBeyondHalfAPercent(t *testing.T) {
	for _, c := range []struct {
		name   string
		factor float64
		days   int
	}{{"two days", 0.9, 2}, {"0.4 %", 0.996, 5}} {
		h := newHarness(t, "openai", day0)
		h.fake.SetPriceFactor("", c.factor)
		key, cred := h.key(1, "proj_a")
		calibrationTraffic(h, []string{key}, c.days)
		h.set(day0.AddDate(0, 0, 6).Add(2 * time.Hour))
		res, err := h.run(&MemoryLedger{}, Window{From: day0, To: day0.AddDate(0, 0, 7)}, []Credential{cred}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Proposals) != 0 {
			t.Errorf("%s: %+v", c.name, res.Proposals)
		}
	}
}

// A provider billing 2 % above the list (a book out of date) gets explicit
// rates, the list's scaled, for the models it saw.
func TestCalibrationProposesRatesAboveTheList(t *testing.T) {
	h := newHarness(t, "openai", day0)
	h.fake.SetPriceFactor("", 1.02)
	key, cred := h.key(1, "proj_a")
	calibrationTraffic(h, []string{key}, 4)
	h.set(day0.AddDate(0, 0, 6))
	res, err := h.run(&MemoryLedger{}, Window{From: day0, To: day0.AddDate(0, 0, 7)}, []Credential{cred}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Proposals) != 1 || len(res.Proposals[0].Term.Rates) != 1 {
		t.Fatalf("proposals %+v", res.Proposals)
	}
	r := res.Proposals[0].Term.Rates[0]
	// gpt-4o-mini lists $0.15 input, $0.075 cached, $0.60 output per 1M.
	if r.Model != "gpt-4o-mini" || r.Prices.Input != "0.153" || r.Prices.CacheRead != "0.0765" || r.Prices.Output != "0.612" {
		t.Errorf("rates %+v", r)
	}
}

// Anthropic bills per workspace: the proposal is the workspace's, for the
// credentials in it.
func TestCalibrationPerAnthropicWorkspace(t *testing.T) {
	h := newHarness(t, "anthropic", day0)
	h.fake.SetPriceFactor("", 0.8)
	k1, c1 := h.key(1, "wrkspc_01A")
	k2, c2 := h.key(2, "wrkspc_01A")
	calibrationTraffic(h, []string{k1, k2}, 3)
	h.set(day0.AddDate(0, 0, 5))
	res, err := h.run(&MemoryLedger{}, Window{From: day0, To: day0.AddDate(0, 0, 5)}, []Credential{c1, c2}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Proposals) != 1 {
		t.Fatalf("proposals %+v", res.Proposals)
	}
	p := res.Proposals[0]
	if p.Workspace != "wrkspc_01A" || len(p.Credentials) != 2 || p.Term.DiscountPercent != "20" {
		t.Errorf("proposal %+v", p)
	}
}
