package pricing

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

const ppm = 1_000_000

// ContractTerm is what a BYOK credential's owner negotiated with their
// provider, from a date on: a discount off the list price, explicit rates
// for some models, or both (the rates replace the list unit prices they
// set, whatever the tier or prompt length; the discount then applies to
// the whole total). It is the serialisable form a store keeps on the
// credential.
type ContractTerm struct {
	// EffectiveFrom is the first instant the term applies: it prices the
	// requests that start at or after it, never earlier ones.
	EffectiveFrom time.Time `json:"effective_from,omitzero"`
	// DiscountPercent is a decimal string, 0 to 100 with up to 4 decimals
	// ("12.5" is 12.5 % off).
	DiscountPercent string         `json:"discount_percent,omitempty"`
	Rates           []ContractRate `json:"rates,omitempty"`
	Note            string         `json:"note,omitempty"`
}

// ContractRate is a negotiated unit price set for one model (a subset of
// classes; the others stay at list price). It may name a model the book
// does not price, which it then prices alone (an input price is needed).
type ContractRate struct {
	Model  string   `json:"model"`
	Prices PriceSet `json:"prices"`
}

// Contract is a credential's checked contract terms, ready to price with.
// The zero value and nil have no terms.
type Contract struct {
	src   []ContractTerm
	terms []term // sorted by from
}

type term struct {
	src         ContractTerm
	from        time.Time
	discountPPM int64
	rates       map[string]*rates
}

// NewContract checks terms and compiles them. Bad input (a negative or
// over-100 % discount, a malformed or implausible rate, two terms from the
// same instant, a term with neither discount nor rates) is an error naming
// the term and field.
func NewContract(terms []ContractTerm) (*Contract, error) {
	c := &Contract{src: slices.Clone(terms)}
	var errs []error
	for i, t := range terms {
		where := fmt.Sprintf("contract term %d (effective_from %s)", i, t.EffectiveFrom.Format(time.RFC3339))
		ct, err := compileTerm(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		c.terms = append(c.terms, ct)
	}
	slices.SortFunc(c.terms, func(a, b term) int { return a.from.Compare(b.from) })
	for i := 1; i < len(c.terms); i++ {
		if c.terms[i].from.Equal(c.terms[i-1].from) {
			errs = append(errs, fmt.Errorf("contract: two terms take effect at %s", c.terms[i].from.Format(time.RFC3339)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func compileTerm(t ContractTerm) (term, error) {
	ct := term{src: t, from: t.EffectiveFrom}
	if t.EffectiveFrom.IsZero() {
		return ct, errors.New("effective_from is missing")
	}
	if t.DiscountPercent == "" && len(t.Rates) == 0 {
		return ct, errors.New("a term needs a discount_percent, rates, or both")
	}
	if t.DiscountPercent != "" {
		d, err := parseDecimal(t.DiscountPercent, 4, false)
		switch {
		case err == errNegative:
			return ct, fmt.Errorf("discount_percent %q is negative", t.DiscountPercent)
		case err != nil:
			return ct, fmt.Errorf("discount_percent %q is %v (want a decimal from 0 to 100, up to 4 decimals)", t.DiscountPercent, err)
		case d > ppm:
			return ct, fmt.Errorf("discount_percent %q is over 100", t.DiscountPercent)
		}
		ct.discountPPM = d
	}
	for _, r := range t.Rates {
		if r.Model == "" {
			return ct, errors.New("a rate has no model")
		}
		if ct.rates[r.Model] != nil {
			return ct, fmt.Errorf("rates for %q are given twice", r.Model)
		}
		in, _ := ParsePrice(r.Prices.Input)
		for c := range nClass {
			if err := checkPrice(*r.Prices.field(c), in); err != nil {
				return ct, fmt.Errorf("rates for %q: %s: %w", r.Model, c, err)
			}
		}
		ps := r.Prices
		if ct.rates == nil {
			ct.rates = map[string]*rates{}
		}
		ct.rates[r.Model] = compileSet(&ps)
	}
	return ct, nil
}

// Terms returns the terms as given.
func (c *Contract) Terms() []ContractTerm {
	if c == nil {
		return nil
	}
	return slices.Clone(c.src)
}

// InForce returns the term in force for a request that starts at start,
// if any.
func (c *Contract) InForce(start time.Time) (ContractTerm, bool) {
	if t := c.at(start); t != nil {
		return t.src, true
	}
	return ContractTerm{}, false
}

// at returns the term in force for a request that starts at start: the
// latest whose effective_from is not after it. It is a pure function of
// its arguments and does not allocate.
func (c *Contract) at(start time.Time) *term {
	if c == nil {
		return nil
	}
	for i := len(c.terms) - 1; i >= 0; i-- {
		if !c.terms[i].from.After(start) {
			return &c.terms[i]
		}
	}
	return nil
}
