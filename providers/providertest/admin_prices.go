package providertest

import (
	"math/big"
	"sync"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// What the fake bills: the providers' published list prices, as the price
// book's data file records them (pricing.Default(), standard tier, no
// long-context tier: the fakes' requests are small), times the factor a
// test sets (SetPriceFactor). The arithmetic is the fake's own, in exact
// rationals, not the price book's code, so the reconciler's cost check
// compares two independent computations.

// tokenClass names one of a usage event's classes as the reports do.
type tokenClass int

const (
	classInput tokenClass = iota
	classCacheRead
	classCacheWrite5m
	classCacheWrite1h
	classOutput
	nTokenClass
)

func (e UsageEvent) tokens(c tokenClass) int64 {
	return [nTokenClass]int64{e.Input, e.CacheRead, e.CacheWrite5m, e.CacheWrite1h, e.Output}[c]
}

var (
	listOnce   sync.Once
	listPrices map[[2]string]pricing.PriceSet // (provider, model or alias) → standard prices
)

func listPrice(provider, model string) (pricing.PriceSet, bool) {
	listOnce.Do(func() {
		listPrices = map[[2]string]pricing.PriceSet{}
		for _, r := range pricing.Default().Models {
			for _, m := range append([]string{r.Model}, r.Aliases...) {
				listPrices[[2]string{r.Provider, m}] = r.Standard
			}
		}
	})
	p, ok := listPrices[[2]string{provider, model}]
	return p, ok
}

// perToken is a class's list price in USD per token, with the fallbacks
// a price set documents (cache prices fall back to input, a 1 h write to
// a 5 m write); nil when the set has no price for the class.
func perToken(ps pricing.PriceSet, c tokenClass) *big.Rat {
	s := [nTokenClass]string{ps.Input, ps.CacheRead, ps.CacheWrite5m, ps.CacheWrite1h, ps.Output}[c]
	if s == "" {
		switch c {
		case classCacheRead, classCacheWrite5m:
			return perToken(ps, classInput)
		case classCacheWrite1h:
			return perToken(ps, classCacheWrite5m)
		}
		return nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil
	}
	return r.Quo(r, big.NewRat(1_000_000, 1))
}

// classCost is what the event's tokens of class c cost in USD (zero for a
// model the price table does not know).
func (a *AdminServer) classCost(e UsageEvent, c tokenClass) *big.Rat {
	provider := a.Kind
	if provider == "azure" {
		provider = "openai"
	}
	ps, ok := listPrice(provider, e.Model)
	p := perToken(ps, c)
	if !ok || p == nil {
		return new(big.Rat)
	}
	cost := new(big.Rat).Mul(p, big.NewRat(e.tokens(c), 1))
	f := new(big.Rat)
	f.SetFloat64(a.priceFactor(e.Model))
	return cost.Mul(cost, f)
}

// eventCost is the event's whole cost in USD.
func (a *AdminServer) eventCost(e UsageEvent) *big.Rat {
	sum := new(big.Rat)
	for c := range nTokenClass {
		sum.Add(sum, a.classCost(e, c))
	}
	return sum
}

// decimal writes r with up to places decimals, trailing zeros trimmed.
func decimal(r *big.Rat, places int) string {
	s := r.FloatString(places)
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}
