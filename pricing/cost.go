package pricing

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Usage is a request's tokens by price class, normalised from a provider's
// own usage block (see FromProvider). The classes do not overlap: Input is
// the uncached input only, and a cache write is counted once, in the class
// of its lifetime.
type Usage struct {
	Input        int64 `json:"input"`
	CacheRead    int64 `json:"cache_read,omitempty"`
	CacheWrite5m int64 `json:"cache_write_5m,omitempty"`
	CacheWrite1h int64 `json:"cache_write_1h,omitempty"`
	// Output counts the output tokens; it includes Reasoning unless
	// ReasoningApart says the provider counts those separately.
	Output    int64 `json:"output"`
	Reasoning int64 `json:"reasoning,omitempty"`
	// ReasoningApart is true where the provider reports reasoning tokens
	// outside its output count (Perplexity's reasoning_tokens).
	ReasoningApart bool `json:"reasoning_apart,omitempty"`
	// PromptTokens is the prompt's size for the long-context rule; 0 means
	// Input + CacheRead + CacheWrite5m + CacheWrite1h.
	PromptTokens int64 `json:"prompt_tokens,omitempty"`
	// LongContext forces the long-context prices where the provider says
	// the request used them (Anthropic's usage report does).
	LongContext bool `json:"long_context,omitempty"`
	// Tier is the service tier the provider says it served the request on.
	Tier Tier `json:"-"`
}

// Prompt is the prompt size the long-context rule compares.
func (u *Usage) Prompt() int64 {
	if u.PromptTokens > 0 {
		return u.PromptTokens
	}
	return u.Input + u.CacheRead + u.CacheWrite5m + u.CacheWrite1h
}

// Reason says why a cost is unpriced.
type Reason uint8

const (
	Priced        Reason = iota
	NoModel              // the book has no row for the model at this provider
	NoTier               // the row has no prices for the service tier used
	NoLongContext        // the prompt is past the row's long-context threshold, which has no prices for the tier used
	NoOutputPrice        // the request produced output and the row has no output price (an embeddings row)
	NoUsage              // the provider reported no usage (set by the caller)
	Overflow             // the token counts are beyond any real request
	nReason
)

var reasonNames = [nReason]string{"", "no_price_for_model", "no_price_for_tier", "no_price_for_long_context", "no_output_price", "no_usage", "overflow"}

func (r Reason) String() string { return reasonNames[r] }

// Cost is what one request cost, and everything needed to check it by
// hand: the tokens by class, the unit price used for each, the tier, the
// price version and the contract term applied.
//
// An unpriced cost has no total, never a total of 0: Unpriced is true,
// Reason says why and NanoUSD is 0 and not to be summed.
type Cost struct {
	// Version is the price version's ID (set by Version.Cost).
	Version string
	// Provider and Model name the row that priced the request (Model is
	// the row's own name when the request used an alias).
	Provider, Model string
	Unpriced        bool
	Reason          Reason
	// NanoUSD is the total in nano-USD, after any contract term; ListNanoUSD
	// the same before it (at list price).
	NanoUSD, ListNanoUSD Nano
	Tier                 Tier
	LongContext          bool
	Tokens               Usage
	// Unit holds the unit price used for each class that had tokens (an
	// unset price where none did), after fallbacks and contract rates.
	Unit [nClass]Price
	// Partial says the provider also charges fees the book does not price
	// (per-request or per-search): the total is the tokens' cost only.
	Partial bool
	// ContractFrom is the effective_from of the contract term applied, zero
	// when none was; DiscountPPM the term's discount in parts per million.
	ContractFrom time.Time
	DiscountPPM  int64
	// PaidBy says who pays the request's provider bill, as the request
	// log's credential_source does: "byok" (the account's own key, under
	// its contract) or "platform". The caller sets it; "" on a shadow cost,
	// which nobody paid.
	PaidBy string
}

// IsZero reports whether c is no cost at all (not even an unpriced one):
// the request made no metered call. The request log omits it.
func (c Cost) IsZero() bool {
	return c.Provider == "" && c.Model == "" && c.Version == "" && !c.Unpriced
}

// USD is the total as a decimal string ("0.0453"), or "" when unpriced.
// It allocates; the hot path keeps the Cost and formats it when the
// request-log record is written.
func (c *Cost) USD() string {
	if c.Unpriced {
		return ""
	}
	return c.NanoUSD.String()
}

// AppendDiscount appends the contract term's discount in percent
// ("12.5"), as the request log's discount_percent writes it.
func (c *Cost) AppendDiscount(dst []byte) []byte { return appendFixed(dst, c.DiscountPPM, 4) }

// costJSON is the serialised form of a Cost, for the request log.
type costJSON struct {
	TotalUSD     string            `json:"total_usd,omitempty"`
	TotalNanoUSD *Nano             `json:"total_nano_usd,omitempty"`
	ListNanoUSD  *Nano             `json:"list_nano_usd,omitempty"`
	Unpriced     bool              `json:"unpriced,omitempty"`
	Reason       string            `json:"unpriced_reason,omitempty"`
	Version      string            `json:"price_version,omitempty"`
	PaidBy       string            `json:"paid_by,omitempty"`
	Provider     string            `json:"provider,omitempty"`
	Model        string            `json:"priced_model,omitempty"`
	Tier         string            `json:"service_tier"`
	LongContext  bool              `json:"long_context,omitempty"`
	Tokens       Usage             `json:"tokens"`
	Unit         map[string]string `json:"unit_prices,omitempty"`
	Partial      bool              `json:"partial,omitempty"`
	ContractFrom *time.Time        `json:"contract_from,omitempty"`
	Discount     string            `json:"discount_percent,omitempty"`
}

// MarshalJSON writes the cost as the request log keeps it: total as a
// decimal string and as integer nano-USD (both absent when unpriced), unit
// prices as decimal strings in USD per 1M tokens.
func (c Cost) MarshalJSON() ([]byte, error) {
	j := costJSON{Unpriced: c.Unpriced, Version: c.Version, PaidBy: c.PaidBy, Provider: c.Provider, Model: c.Model,
		Tier: c.Tier.String(), LongContext: c.LongContext, Tokens: c.Tokens, Partial: c.Partial}
	if c.Unpriced {
		j.Reason = c.Reason.String()
	} else {
		total, list := c.NanoUSD, c.ListNanoUSD
		j.TotalUSD, j.TotalNanoUSD = total.String(), &total
		if list != total {
			j.ListNanoUSD = &list
		}
	}
	for cl, p := range c.Unit {
		if p >= 0 {
			if j.Unit == nil {
				j.Unit = map[string]string{}
			}
			j.Unit[Class(cl).String()] = p.String()
		}
	}
	if !c.ContractFrom.IsZero() {
		from := c.ContractFrom
		j.ContractFrom = &from
		if c.DiscountPPM > 0 {
			j.Discount = string(appendFixed(nil, c.DiscountPPM, 4))
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a cost back from the form MarshalJSON writes, so a
// stored request-log record round-trips.
func (c *Cost) UnmarshalJSON(data []byte) error {
	var j costJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*c = Cost{Version: j.Version, PaidBy: j.PaidBy, Provider: j.Provider, Model: j.Model, Unpriced: j.Unpriced,
		Tier: ParseTier(j.Tier), LongContext: j.LongContext, Tokens: j.Tokens, Partial: j.Partial}
	c.Tokens.Tier = c.Tier
	if j.Unpriced {
		if i := slices.Index(reasonNames[:], j.Reason); i > 0 {
			c.Reason = Reason(i)
		}
	} else if j.TotalNanoUSD != nil {
		c.NanoUSD, c.ListNanoUSD = *j.TotalNanoUSD, *j.TotalNanoUSD
		if j.ListNanoUSD != nil {
			c.ListNanoUSD = *j.ListNanoUSD
		}
	}
	for i := range c.Unit {
		c.Unit[i] = unset
		if s, ok := j.Unit[Class(i).String()]; ok {
			p, err := ParsePrice(s)
			if err != nil {
				return fmt.Errorf("cost: unit price %s %q: %v", Class(i), s, err)
			}
			c.Unit[i] = p
		}
	}
	if j.ContractFrom != nil {
		c.ContractFrom = *j.ContractFrom
	}
	if j.Discount != "" {
		d, err := parseDecimal(j.Discount, 4, false)
		if err != nil {
			return fmt.Errorf("cost: discount_percent %q: %v", j.Discount, err)
		}
		c.DiscountPPM = d
	}
	return nil
}

// Cost prices u for model at provider with the book's list prices.
func (b *Book) Cost(provider, model string, u Usage) Cost {
	return b.cost(provider, model, &u, nil)
}

// CostAt prices u as Cost does, then applies the contract term in force at
// start (the request's start time), if any: a term applies to requests
// that start at or after its effective_from, never to earlier ones.
func (b *Book) CostAt(provider, model string, u Usage, c *Contract, start time.Time) Cost {
	return b.cost(provider, model, &u, c.at(start))
}

// cost is the one place a request is priced. It does not allocate.
func (b *Book) cost(provider, model string, u *Usage, term *term) Cost {
	c := Cost{Provider: provider, Model: model, Tier: u.Tier, Tokens: *u}
	for i := range c.Unit {
		c.Unit[i] = unset
	}
	e := b.lookup(provider, model)
	var contract *rates
	if term != nil {
		contract = term.rates[model]
		if contract == nil && e != nil {
			contract = term.rates[e.model]
		}
	}
	var r *rates
	why := NoModel
	if e != nil {
		c.Model, c.Partial = e.model, e.partial
		r, why = e.tiers[u.Tier], NoTier
		if e.longAbove > 0 && (u.LongContext || u.Prompt() > e.longAbove) {
			c.LongContext = true
			if r != nil {
				r, why = e.long[u.Tier], NoLongContext
			}
		}
	}
	if r == nil {
		if contract == nil || contract[Input] < 0 {
			return unpriced(c, why)
		}
		r = contract // a contract may price what the book does not
	}

	tokens := [nClass]int64{u.Input, u.CacheRead, u.CacheWrite5m, u.CacheWrite1h, u.Output, u.Reasoning}
	if !u.ReasoningApart { // reasoning is inside Output: bill the rest of Output as output
		tokens[Output] = max(u.Output-u.Reasoning, 0)
		tokens[Reasoning] = min(u.Reasoning, u.Output)
	}
	var sum femto
	for cl := range nClass {
		n := max(tokens[cl], 0)
		if n == 0 {
			continue
		}
		p := unitPrice(r, contract, Class(cl))
		if p < 0 {
			return unpriced(c, NoOutputPrice) // only output can be missing: input is required
		}
		c.Unit[cl] = p
		if !sum.add(n, p) {
			return unpriced(c, Overflow)
		}
	}
	list, ok := sum.round(femtoPerNano)
	if !ok {
		return unpriced(c, Overflow)
	}
	c.NanoUSD, c.ListNanoUSD = list, list
	if contract != nil {
		// The list total is the book's, without the contract's rates (when
		// the book has no price, the contract's own before any discount).
		if l := b.cost(provider, model, u, nil); !l.Unpriced {
			c.ListNanoUSD = l.NanoUSD
		}
	}
	if term != nil {
		c.ContractFrom = term.from
		if term.discountPPM > 0 {
			c.DiscountPPM = term.discountPPM
			if !sum.scale(ppm - uint64(term.discountPPM)) {
				return unpriced(c, Overflow)
			}
			if c.NanoUSD, ok = sum.round(femtoPerNano * ppm); !ok {
				return unpriced(c, Overflow)
			}
		}
	}
	return c
}

// unitPrice is the price of one class under r, with a contract's own rate
// first, then the fallbacks PriceSet documents.
func unitPrice(r, contract *rates, cl Class) Price {
	get := func(cl Class) Price {
		if contract != nil && contract[cl] >= 0 {
			return contract[cl]
		}
		return r[cl]
	}
	for {
		if p := get(cl); p >= 0 {
			return p
		}
		switch cl {
		case CacheRead, CacheWrite5m:
			cl = Input
		case CacheWrite1h:
			cl = CacheWrite5m
		case Reasoning:
			cl = Output
		default:
			return unset
		}
	}
}

func unpriced(c Cost, why Reason) Cost {
	c.Unpriced, c.Reason, c.NanoUSD, c.ListNanoUSD = true, why, 0, 0
	for i := range c.Unit {
		c.Unit[i] = unset
	}
	return c
}

// Unpriced returns the cost of a request that cannot be priced for a
// reason outside the book, e.g. NoUsage when an answer carried no usage.
func Unpriced(provider, model string, why Reason) Cost {
	c := Cost{Provider: provider, Model: model}
	return unpriced(c, why)
}
