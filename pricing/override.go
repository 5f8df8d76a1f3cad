package pricing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Override is an operator's change to the default price of one model: any
// subset of its prices, the rest staying as the default table has them. It
// is the Go form of the Caddyfile's price block and of its JSON twin.
type Override struct {
	// Provider may be left empty when exactly one provider's row has the
	// model. It is required to price a model the table does not have (a
	// fine-tune, a new model, an Azure deployment): the override then adds
	// a row, which needs at least an input price.
	Provider string `json:"provider,omitempty"`
	Model    string `json:"model"`
	// Source says where the prices come from (a contract, an import).
	Source        string `json:"source,omitempty"`
	Note          string `json:"note,omitempty"`
	FeesNotPriced string `json:"fees_not_priced,omitempty"`

	Standard PriceSet  `json:"standard"`
	Batch    *PriceSet `json:"batch,omitempty"`
	Flex     *PriceSet `json:"flex,omitempty"`
	Priority *PriceSet `json:"priority,omitempty"`
	// LongContext sets long-context prices; Above may be 0 to keep the
	// row's threshold.
	LongContext *LongContext `json:"long_context,omitempty"`
}

// Apply returns base with the overrides applied, checked as a whole; base
// is not changed. An override for a model the table does not know, without
// a provider, is an error; so is an unknown provider, a model priced by
// several providers when none is named, two overrides for one model, and
// any price the sanity bounds refuse (named by model and field).
func Apply(base *Table, overrides []Override) (*Table, error) {
	t := base.Clone()
	var errs []error
	done := map[rowKey]bool{}
	for _, o := range overrides {
		if err := applyOne(t, o, done); err != nil {
			errs = append(errs, fmt.Errorf("price override %s: %w", describe(o), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return t, nil
}

func describe(o Override) string {
	if o.Provider == "" {
		return fmt.Sprintf("%q", o.Model)
	}
	return fmt.Sprintf("%q", o.Provider+"/"+o.Model)
}

func applyOne(t *Table, o Override, done map[rowKey]bool) error {
	if o.Model == "" {
		return errors.New("no model")
	}
	if o.Provider != "" && !slices.Contains(Providers, o.Provider) {
		return fmt.Errorf("unknown provider %q (known: %s)", o.Provider, strings.Join(Providers, ", "))
	}
	i, ambiguous := t.find(o.Provider, o.Model)
	switch {
	case ambiguous:
		return fmt.Errorf("several providers price %q: name the provider", o.Model)
	case i < 0 && o.Provider == "":
		return fmt.Errorf("unknown model %q: the price book has no row for it; to price a custom model, give its provider", o.Model)
	case i < 0:
		if o.Standard.Input == "" {
			return fmt.Errorf("new model %q needs at least an input price", o.Model)
		}
		t.Models = append(t.Models, Row{Provider: o.Provider, Model: o.Model, Source: "override"})
		i = len(t.Models) - 1
	}
	r := &t.Models[i]
	k := rowKey{r.Provider, r.Model}
	if done[k] {
		return fmt.Errorf("%s/%s is overridden twice", r.Provider, r.Model)
	}
	done[k] = true
	if o.Source != "" {
		r.Source = o.Source
	}
	if o.Note != "" {
		r.Note = o.Note
	}
	if o.FeesNotPriced != "" {
		r.FeesNotPriced = o.FeesNotPriced
	}
	mergeSet(&r.Standard, &o.Standard)
	r.Batch = mergeOptional(r.Batch, o.Batch)
	r.Flex = mergeOptional(r.Flex, o.Flex)
	r.Priority = mergeOptional(r.Priority, o.Priority)
	if ol := o.LongContext; ol != nil {
		if r.LongContext == nil {
			if ol.Above <= 0 {
				return errors.New("long_context.above is needed: the row has no long-context tier yet")
			}
			r.LongContext = &LongContext{}
		}
		l := r.LongContext
		if ol.Above > 0 {
			l.Above = ol.Above
		}
		mergeSet(&l.Standard, &ol.Standard)
		l.Batch = mergeOptional(l.Batch, ol.Batch)
		l.Flex = mergeOptional(l.Flex, ol.Flex)
		l.Priority = mergeOptional(l.Priority, ol.Priority)
	}
	return nil
}

func mergeSet(dst, src *PriceSet) {
	for c := range nClass {
		if v := *src.field(c); v != "" {
			*dst.field(c) = v
		}
	}
}

func mergeOptional(dst, src *PriceSet) *PriceSet {
	if src == nil {
		return dst
	}
	if dst == nil {
		dst = &PriceSet{}
	}
	mergeSet(dst, src)
	return dst
}
