package caddymodule

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// The price book in the config: a provider block's price blocks override
// the embedded list prices (corrections, new models, fine-tunes, Azure
// deployments) for every payer, and its contract blocks are the platform's
// own terms with the provider (they price what the platform key serves,
// and BYOK requests' shadow cost). A BYOK request is priced at the same
// book under its credential's own contract terms (set by the account's
// owner through the admin API or the console).
//
// The book is one per process — and per fleet, whose instances share its
// versions through etcd — so the price blocks of every agent_router handler
// of a config are merged (the same model priced differently by two
// handlers is refused), checked when the handlers are provisioned, and
// published as a new price version when the app starts, if they changed
// the book.

// unmarshalPrice reads a price block into an override of provider's
// prices (the override names no provider: its block does):
//
//	price <model> {
//		input          <USD per 1M tokens>
//		cache_read     <USD per 1M tokens>
//		cache_write_5m <USD per 1M tokens>
//		cache_write_1h <USD per 1M tokens>
//		output         <USD per 1M tokens>
//		reasoning      <USD per 1M tokens>   # only where priced apart from output
//		batch|flex|priority { <the six above> }
//		long_context <above tokens> { <the six above>; batch|flex|priority { … } }
//		source          <text>
//		note            <text>
//		fees_not_priced <text>
//	}
func unmarshalPrice(d *caddyfile.Dispenser, provider string) (pricing.Override, error) {
	args := d.RemainingArgs()
	if len(args) != 1 {
		return pricing.Override{}, d.Errf("price: want 'price <model> { input … output … }'")
	}
	o := pricing.Override{Model: args[0]}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "source", "note", "fees_not_priced":
			v, err := oneArg(d)
			if err != nil {
				return o, err
			}
			*map[string]*string{"source": &o.Source, "note": &o.Note, "fees_not_priced": &o.FeesNotPriced}[opt] = v
		case "batch", "flex", "priority":
			ps, err := unmarshalPriceSet(d, "price "+o.Model+" "+opt)
			if err != nil {
				return o, err
			}
			*tierOf(&o.Batch, &o.Flex, &o.Priority, opt) = ps
		case "long_context":
			lc, err := unmarshalLongContext(d, o.Model)
			if err != nil {
				return o, err
			}
			o.LongContext = lc
		default:
			if err := setPrice(d, &o.Standard, "price "+o.Model); err != nil {
				return o, err
			}
		}
	}
	// The bounds (a per-token price typed as per 1M, an absurd one) are
	// checked here too, so the error points at the block.
	check := o
	check.Provider = provider
	if _, err := pricing.Apply(pricing.Default(), []pricing.Override{check}); err != nil {
		return o, d.Errf("%v", err)
	}
	return o, nil
}

func tierOf(batch, flex, priority **pricing.PriceSet, name string) **pricing.PriceSet {
	switch name {
	case "batch":
		return batch
	case "flex":
		return flex
	}
	return priority
}

func unmarshalLongContext(d *caddyfile.Dispenser, model string) (*pricing.LongContext, error) {
	v, err := oneArgOpen(d)
	if err != nil {
		return nil, err
	}
	above, err := strconv.ParseInt(v, 10, 64)
	if err != nil || above <= 0 {
		return nil, d.Errf("price %s: long_context: want 'long_context <prompt tokens above which it applies> { … }', got %q", model, v)
	}
	lc := &pricing.LongContext{Above: above}
	where := "price " + model + " long_context"
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "batch", "flex", "priority":
			ps, err := unmarshalPriceSet(d, where+" "+opt)
			if err != nil {
				return nil, err
			}
			*tierOf(&lc.Batch, &lc.Flex, &lc.Priority, opt) = ps
		default:
			if err := setPrice(d, &lc.Standard, where); err != nil {
				return nil, err
			}
		}
	}
	return lc, nil
}

// unmarshalPriceSet reads a block of the six prices.
func unmarshalPriceSet(d *caddyfile.Dispenser, where string) (*pricing.PriceSet, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	ps := &pricing.PriceSet{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := setPrice(d, ps, where); err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// setPrice reads one '<class> <USD per 1M tokens>' line into ps.
func setPrice(d *caddyfile.Dispenser, ps *pricing.PriceSet, where string) error {
	opt := d.Val()
	field := map[string]*string{"input": &ps.Input, "cache_read": &ps.CacheRead, "cache_write_5m": &ps.CacheWrite5m,
		"cache_write_1h": &ps.CacheWrite1h, "output": &ps.Output, "reasoning": &ps.Reasoning}[opt]
	if field == nil {
		return d.Errf("%s: unrecognized option %s (prices: input, cache_read, cache_write_5m, cache_write_1h, output, reasoning)", where, opt)
	}
	v, err := oneArg(d)
	if err != nil {
		return err
	}
	if _, err := pricing.ParsePrice(v); err != nil {
		return d.Errf("%s: %s %q: %v (a decimal in USD per 1M tokens, like 2.50)", where, opt, v, err)
	}
	*field = v
	return nil
}

// unmarshalContract reads a contract block, the platform's terms with the
// provider:
//
//	contract [<effective_from: YYYY-MM-DD or RFC 3339>] {
//		discount <percent off the list price>
//		rate <model> { <the six prices> }   # repeatable
//		note <text>
//	}
func unmarshalContract(d *caddyfile.Dispenser) (pricing.ContractTerm, error) {
	var t pricing.ContractTerm
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
	case 1:
		from, err := parseDate(args[0])
		if err != nil {
			return t, d.Errf("contract: effective_from %q: want YYYY-MM-DD or RFC 3339", args[0])
		}
		t.EffectiveFrom = from
	default:
		return t, d.Errf("contract: want 'contract [<effective_from>] { discount … rate … }'")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "discount":
			v, err := oneArg(d)
			if err != nil {
				return t, err
			}
			t.DiscountPercent = strings.TrimSuffix(v, "%")
		case "note":
			v, err := oneArg(d)
			if err != nil {
				return t, err
			}
			t.Note = v
		case "rate":
			model, err := oneArgOpen(d)
			if err != nil {
				return t, err
			}
			ps := pricing.PriceSet{}
			for n := d.Nesting(); d.NextBlock(n); {
				if err := setPrice(d, &ps, "contract rate "+model); err != nil {
					return t, err
				}
			}
			t.Rates = append(t.Rates, pricing.ContractRate{Model: model, Prices: ps})
		default:
			return t, d.Errf("contract: unrecognized option %s (use discount, rate or note)", opt)
		}
	}
	check := t
	if check.EffectiveFrom.IsZero() {
		check.EffectiveFrom = time.Unix(0, 0)
	}
	if _, err := pricing.NewContract([]pricing.ContractTerm{check}); err != nil {
		return t, d.Errf("%v", err)
	}
	return t, nil
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// oneArg reads exactly one argument on the line.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.ArgErr()
	}
	return v, nil
}

// oneArgOpen reads exactly one argument before a block.
func oneArgOpen(d *caddyfile.Dispenser) (string, error) {
	args := d.RemainingArgs()
	if len(args) != 1 {
		return "", d.ArgErr()
	}
	return args[0], nil
}

// platformContract compiles a provider block's contract terms. A term
// without effective_from applies from the start (the config is its own
// history: a reload does not reprice past requests).
func platformContract(provider string, terms []pricing.ContractTerm) (*pricing.Contract, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	ts := slices.Clone(terms)
	for i := range ts {
		if ts[i].EffectiveFrom.IsZero() {
			ts[i].EffectiveFrom = time.Unix(0, 0).UTC()
		}
	}
	c, err := pricing.NewContract(ts)
	if err != nil {
		return nil, fmt.Errorf("provider %s: contract: %w", provider, err)
	}
	return c, nil
}

// priceOverrides are the price blocks of one config's handlers, merged:
// the book the app publishes when it starts.
type priceOverrides struct {
	mu   sync.Mutex
	rows map[string]pricing.Override // by provider/model
}

// add merges one handler's overrides and checks the whole against the
// default table. The same model priced differently by two handlers is
// refused (the book is one for the process), as is an override the book
// refuses; either way nothing is kept.
func (p *priceOverrides) add(overrides []pricing.Override) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	next := make(map[string]pricing.Override, len(p.rows)+len(overrides))
	for k, v := range p.rows {
		next[k] = v
	}
	for _, o := range overrides {
		k := o.Provider + "/" + o.Model
		if prev, ok := next[k]; ok && !reflect.DeepEqual(prev, o) {
			return fmt.Errorf("price %s is set differently by two agent_router handlers: the price book is one for the whole process (and fleet); give it once", k)
		}
		next[k] = o
	}
	if _, err := pricing.Apply(pricing.Default(), sortedOverrides(next)); err != nil {
		return err
	}
	p.rows = next
	return nil
}

// table is the effective price book: the default table with the
// overrides.
func (p *priceOverrides) table() (*pricing.Table, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pricing.Apply(pricing.Default(), sortedOverrides(p.rows))
}

func sortedOverrides(m map[string]pricing.Override) []pricing.Override {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]pricing.Override, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
