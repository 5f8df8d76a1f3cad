package reconcile

import (
	"fmt"
	"maps"
	"math/big"
	"slices"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Price calibration. A provider's bill and its own token counts imply the
// rate it charges. When, on CalibrationDays consecutive settled days, that
// rate differs from what the gateway prices the same tokens at (the book,
// with the credential's contract terms) by more than CalibrationPPM in the
// same direction, the owner is offered a contract term that would make the
// two agree: a discount when the provider charges less than the list price,
// explicit rates (the list's, scaled) when it charges more. The term takes
// effect from the next UTC midnight, never retroactively; it is a proposal
// for the owner to accept, not applied here.
//
// The bill and the tokens are the provider's own on both sides of the
// ratio, so a volume mismatch (out-of-band use, lost requests) does not
// move it. For Anthropic, the unit is a workspace (its cost report cannot
// group by key).

// Proposal is a contract term the owner may accept.
type Proposal struct {
	Account  string `json:"account"`
	Provider string `json:"provider"`
	// Credentials are the fingerprints the term would apply to.
	Credentials []string `json:"credentials"`
	KeyID       string   `json:"provider_key_id,omitempty"`
	Workspace   string   `json:"workspace,omitempty"`
	// Days are the consecutive settled days the rate differed on.
	Days []time.Time `json:"days"`
	// RatioPPM is the provider's bill over the gateway's price of the same
	// tokens (with any contract in force), in parts per million (1000000:
	// the same); ListRatioPPM the same over the list price, which the term
	// is computed from.
	RatioPPM     int64 `json:"ratio_ppm"`
	ListRatioPPM int64 `json:"list_ratio_ppm"`
	// ProviderNanoUSD and BookNanoUSD are the two sums over Days.
	ProviderNanoUSD int64                `json:"provider_nano_usd"`
	BookNanoUSD     int64                `json:"book_nano_usd"`
	Term            pricing.ContractTerm `json:"term"`
	Note            string               `json:"note"`
}

// calUnit is what one proposal is about: a key, or a workspace.
type calUnit struct {
	creds    []string
	key, ws  string
	usage    func(ProviderUsage) bool
	cost     func(ProviderCost) bool
	contract *pricing.Contract
}

type calDay struct {
	prov, booked, list int64
	unpriced           bool
	models             []string
}

func (c *comparison) calUnits() []calUnit {
	var units []calUnit
	if c.in.CostScope == CostByWorkspace {
		ours := map[string][]string{}
		for fp, ws := range c.credWS {
			ours[ws] = append(ours[ws], fp)
		}
		for _, ws := range slices.Sorted(maps.Keys(ours)) {
			u := calUnit{creds: slices.Sorted(slices.Values(ours[ws])), ws: ws,
				usage: func(p ProviderUsage) bool { return p.Workspace == ws },
				cost:  func(p ProviderCost) bool { return p.Workspace == ws }}
			if len(u.creds) == 1 {
				u.contract = c.contract(u.creds[0])
			}
			units = append(units, u)
		}
		return units
	}
	for _, fp := range slices.Sorted(maps.Keys(c.credKey)) {
		key := c.credKey[fp]
		units = append(units, calUnit{creds: []string{fp}, key: key, contract: c.contract(fp),
			usage: func(p ProviderUsage) bool { return p.KeyID == key },
			cost:  func(p ProviderCost) bool { return p.KeyID == key }})
	}
	return units
}

func (c *comparison) proposals() []Proposal {
	if c.book == nil {
		return nil
	}
	var out []Proposal
	for _, u := range c.calUnits() {
		if p, ok := c.calibrate(u); ok {
			out = append(out, p)
		}
	}
	return out
}

func (c *comparison) calibrate(u calUnit) (Proposal, bool) {
	days := map[int64]*calDay{}
	get := func(d int64) *calDay {
		if days[d] == nil {
			days[d] = &calDay{}
		}
		return days[d]
	}
	for _, p := range c.in.Costs {
		if u.cost(p) && c.in.Window.Contains(p.Day) {
			get(dayOf(p.Day)).prov += p.NanoUSD
		}
	}
	for _, p := range c.in.Usage {
		if !u.usage(p) || !c.in.Window.Contains(p.Hour) {
			continue
		}
		d, model := get(dayOf(p.Hour)), c.canon(p.Model)
		booked, ok1 := c.listValue(model, p.Tokens, u.contract, p.Hour)
		list, ok2 := c.listValue(model, p.Tokens, nil, p.Hour)
		d.booked, d.list, d.unpriced = d.booked+booked, d.list+list, d.unpriced || !ok1 || !ok2
		if !slices.Contains(d.models, model) {
			d.models = append(d.models, model)
		}
	}
	// The trailing run of settled days whose rate differs the same way.
	var run []int64
	sign := 0
	for _, d := range slices.Backward(slices.Sorted(maps.Keys(days))) {
		v := days[d]
		if !c.tol.settled(time.Unix(d, 0).Add(day), c.in.Now) || v.unpriced || v.prov <= 0 || v.booked < c.tol.CalibrationMinNanoUSD {
			continue
		}
		dev := mulDiv(v.prov, 1_000_000, v.booked) - 1_000_000
		s := cmpSign(dev)
		if abs(dev) <= c.tol.CalibrationPPM || (sign != 0 && s != sign) {
			break
		}
		sign = s
		run = append(run, d)
	}
	if len(run) < c.tol.CalibrationDays {
		return Proposal{}, false
	}
	if u.contract != nil {
		// A term the contract already holds from the proposal's start
		// (the owner's own, or one accepted before) that explains the
		// rate leaves nothing to propose.
		if t, ok := u.contract.InForce(c.in.Now.UTC().Truncate(day).Add(day)); ok && c.explains(u, t, run, days) {
			return Proposal{}, false
		}
	}
	slices.Reverse(run)
	p := Proposal{Account: c.in.Scope.Account, Provider: c.in.Scope.Provider, Credentials: u.creds, KeyID: u.key, Workspace: u.ws}
	var list int64
	var models []string
	for _, d := range run {
		v := days[d]
		p.Days = append(p.Days, time.Unix(d, 0).UTC())
		p.ProviderNanoUSD, p.BookNanoUSD, list = p.ProviderNanoUSD+v.prov, p.BookNanoUSD+v.booked, list+v.list
		for _, m := range v.models {
			if !slices.Contains(models, m) {
				models = append(models, m)
			}
		}
	}
	p.RatioPPM = mulDiv(p.ProviderNanoUSD, 1_000_000, p.BookNanoUSD)
	p.ListRatioPPM = mulDiv(p.ProviderNanoUSD, 1_000_000, list)
	p.Term, p.Note = c.term(p.ListRatioPPM, models, len(run))
	if _, err := pricing.NewContract([]pricing.ContractTerm{p.Term}); err != nil {
		return Proposal{}, false // a term the price book would refuse is no proposal
	}
	return p, true
}

// explains says whether term, applied to the run's days, brings the
// provider's bill within the calibration tolerance.
func (c *comparison) explains(u calUnit, term pricing.ContractTerm, run []int64, days map[int64]*calDay) bool {
	term.EffectiveFrom = time.Unix(0, 0).UTC()
	ctr, err := pricing.NewContract([]pricing.ContractTerm{term})
	if err != nil {
		return false
	}
	var prov, booked int64
	for _, p := range c.in.Usage {
		if u.usage(p) && c.in.Window.Contains(p.Hour) && slices.Contains(run, dayOf(p.Hour)) {
			v, ok := c.listValue(c.canon(p.Model), p.Tokens, ctr, p.Hour)
			if !ok {
				return false
			}
			booked += v
		}
	}
	for _, d := range run {
		prov += days[d].prov
	}
	return booked > 0 && abs(mulDiv(prov, 1_000_000, booked)-1_000_000) <= c.tol.CalibrationPPM
}

// term is the contract term that prices the list at ratio.
func (c *comparison) term(ratio int64, models []string, days int) (pricing.ContractTerm, string) {
	t := pricing.ContractTerm{EffectiveFrom: c.in.Now.UTC().Truncate(day).Add(day)}
	pct := func(ppm int64) string { return trimZeros(fmt.Sprintf("%d.%04d", ppm/10_000, ppm%10_000)) }
	if ratio < 1_000_000 {
		t.DiscountPercent = pct(1_000_000 - ratio)
		t.Note = "proposed by reconciliation: the provider billed " + t.DiscountPercent + " % below the list price"
		return t, fmt.Sprintf("for %d days the provider billed %s %% below the list price: a %s %% discount would match it", days, t.DiscountPercent, t.DiscountPercent)
	}
	slices.Sort(models)
	for _, m := range models {
		cost := c.book.Cost(c.in.Scope.Provider, m, pricing.Usage{Input: 1, CacheRead: 1, CacheWrite5m: 1, CacheWrite1h: 1, Output: 1})
		scaled := func(cl pricing.Class) string {
			if cost.Unit[cl] < 0 {
				return ""
			}
			return pricing.Price(mulDiv(int64(cost.Unit[cl]), ratio, 1_000_000)).String()
		}
		t.Rates = append(t.Rates, pricing.ContractRate{Model: m, Prices: pricing.PriceSet{Input: scaled(pricing.Input),
			CacheRead: scaled(pricing.CacheRead), CacheWrite5m: scaled(pricing.CacheWrite5m),
			CacheWrite1h: scaled(pricing.CacheWrite1h), Output: scaled(pricing.Output)}})
	}
	over := pct(ratio - 1_000_000)
	t.Note = "proposed by reconciliation: the provider billed " + over + " % above the list price"
	return t, fmt.Sprintf("for %d days the provider billed %s %% above the list price (is the price book out of date?): these rates would match it", days, over)
}

func trimZeros(s string) string {
	for len(s) > 0 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

func cmpSign(v int64) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// mulDiv is a × b / d rounded half up, exact for any int64 inputs (0 when
// d is 0, the largest int64 when the result does not fit).
func mulDiv(a, b, d int64) int64 {
	if d == 0 {
		return 0
	}
	n := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	den := big.NewInt(d)
	q, m := new(big.Int).QuoRem(n, den, new(big.Int))
	if new(big.Int).Abs(new(big.Int).Mul(m, big.NewInt(2))).Cmp(new(big.Int).Abs(den)) >= 0 {
		if (n.Sign() < 0) != (den.Sign() < 0) {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return 1<<63 - 1
	}
	return q.Int64()
}
