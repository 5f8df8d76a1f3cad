package pricing

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Sanity bounds, checked whenever prices are loaded (the default table,
// overrides, an import, a contract term). They catch the unit slips peers'
// users hit (money.md §1): a per-token price typed where the book wants
// USD per 1M tokens (3.75e-06 for 3.75) lands far below MinPrice, and a
// price typed a million times too high lands far above MaxPrice.
const (
	// MinPrice is the least nonzero price: 0.001 USD per 1M tokens. The
	// cheapest published price (a batch cache read) is 0.0025; the dearest
	// per-token figure (600 USD per 1M tokens = 0.0006 per token) is below.
	MinPrice Price = 1_000_000
	// MaxPrice is the greatest: 10,000 USD per 1M tokens, about 16 times the
	// dearest published price (o1-pro output, 600).
	MaxPrice Price = 10_000 * 1_000_000_000
	// MaxRatio bounds any price of a row against its standard input price:
	// published rows stay under 10 (long-context output is 7.5 × input), so
	// a price 100 times the input is a typo, not a tariff.
	MaxRatio = 100
)

// Check reports every problem in t, each naming the model and field: an
// unknown provider, a duplicate name, a malformed price, a price outside
// the sanity bounds, a long-context tier that does not price what its base
// prices. It changes nothing.
func (t *Table) Check() error {
	var errs []error
	add := func(err error) {
		if len(errs) < 50 {
			errs = append(errs, err)
		}
	}
	if t.Version == "" {
		add(errors.New("price table: version is empty"))
	}
	if _, err := time.Parse(time.DateOnly, t.AsOf); err != nil {
		add(fmt.Errorf("price table: as_of %q is not a date (YYYY-MM-DD)", t.AsOf))
	}
	seen := map[rowKey]string{}
	for i := range t.Models {
		r := &t.Models[i]
		name := r.Provider + "/" + r.Model
		if r.Model == "" {
			add(fmt.Errorf("price table: row %d has no model", i))
			continue
		}
		if !slices.Contains(Providers, r.Provider) {
			add(fmt.Errorf("price table: %s: unknown provider %q", name, r.Provider))
		}
		for _, m := range append([]string{r.Model}, r.Aliases...) {
			k := rowKey{r.Provider, m}
			if m == "" {
				add(fmt.Errorf("price table: %s: empty alias", name))
			} else if prev, dup := seen[k]; dup {
				add(fmt.Errorf("price table: %s: %q is already priced by %s", name, m, prev))
			}
			seen[k] = name
		}
		for _, err := range checkRow(r) {
			add(fmt.Errorf("price table: %s %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// checkRow checks one row's prices.
func checkRow(r *Row) []error {
	var errs []error
	in, err := ParsePrice(r.Standard.Input)
	if r.Standard.Input == "" {
		errs = append(errs, errors.New("standard.input: missing (every row needs an input price)"))
	} else if err != nil {
		in = 0 // reported below
	}
	sets := func(yield func(string, *PriceSet) bool) {
		for t := range nTier {
			if s := r.tier(t); s != nil && !yield(t.String(), s) {
				return
			}
		}
		if l := r.LongContext; l != nil {
			for t := range nTier {
				if s := l.tier(t); s != nil && !yield("long_context."+t.String(), s) {
					return
				}
			}
		}
	}
	for path, s := range sets {
		if s.Input == "" {
			errs = append(errs, fmt.Errorf("%s.input: missing (a price set needs an input price)", path))
		}
		for c := range nClass {
			if err := checkPrice(*s.field(c), in); err != nil {
				errs = append(errs, fmt.Errorf("%s.%s: %w", path, c, err))
			}
		}
	}
	if l := r.LongContext; l != nil {
		if l.Above <= 0 {
			errs = append(errs, fmt.Errorf("long_context.above: %d is not a positive token count", l.Above))
		}
		for t := range nTier {
			base, long := r.tier(t), l.tier(t)
			if long == nil {
				continue
			}
			if base == nil {
				errs = append(errs, fmt.Errorf("long_context.%s: the row has no %s prices below the threshold", t, t))
				continue
			}
			for c := range nClass {
				if *base.field(c) != "" && *long.field(c) == "" {
					errs = append(errs, fmt.Errorf("long_context.%s.%s: missing, while %s.%s has a price", t, c, t, c))
				}
			}
		}
	}
	return errs
}

// checkPrice parses s ("" is no price) and holds it to the sanity bounds;
// input is the row's standard input price, for the ratio bound.
func checkPrice(s string, input Price) error {
	if s == "" {
		return nil
	}
	p, err := ParsePrice(s)
	if err != nil {
		return fmt.Errorf("%q is %v (want a decimal string in USD per 1M tokens)", s, err)
	}
	return checkBounds(p, input)
}

func checkBounds(p, input Price) error {
	switch {
	case p == 0:
		return nil
	case p < MinPrice:
		return fmt.Errorf("%s USD per 1M tokens is below %s: it looks like a per-token price; prices are USD per 1M tokens", p, MinPrice)
	case p > MaxPrice:
		return fmt.Errorf("%s USD per 1M tokens is above the sanity bound of %s", p, MaxPrice)
	case input > 0 && p > input*MaxRatio:
		return fmt.Errorf("%s USD per 1M tokens is more than %d times the input price (%s): a typo?", p, MaxRatio, input)
	}
	return nil
}
