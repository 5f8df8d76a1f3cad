package pricing

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Table is the price book as data: the form of the embedded default
// (prices.json), of an effective book after overrides, and of a stored
// version. Prices are decimal strings in USD per 1M tokens.
type Table struct {
	// Version names the default table a book was built from; it changes
	// whenever prices.json does.
	Version string `json:"version"`
	// AsOf is the date (YYYY-MM-DD) the default prices were taken from the
	// providers' pages.
	AsOf string `json:"as_of"`
	// Note says what the table covers and what it leaves out.
	Note   string `json:"note,omitempty"`
	Models []Row  `json:"models"`
}

// Row prices one model at one provider.
type Row struct {
	// Provider is one of Providers; Model is the name the provider is
	// called with. Aliases are other names for the same model at the same
	// prices (dated snapshots).
	Provider string   `json:"provider"`
	Model    string   `json:"model"`
	Aliases  []string `json:"aliases,omitempty"`
	// Source is the provider's pricing page the prices come from, or what
	// set them ("override", "litellm import").
	Source string `json:"source,omitempty"`
	Note   string `json:"note,omitempty"`
	// FeesNotPriced, when set, says what the provider charges besides
	// tokens that the book does not price (per-request or per-search fees):
	// a cost on this model is then marked partial.
	FeesNotPriced string `json:"fees_not_priced,omitempty"`

	// Standard are the on-demand prices; Batch, Flex and Priority the
	// provider's other service tiers, where it has them.
	Standard PriceSet  `json:"standard"`
	Batch    *PriceSet `json:"batch,omitempty"`
	Flex     *PriceSet `json:"flex,omitempty"`
	Priority *PriceSet `json:"priority,omitempty"`
	// LongContext are the prices of a request whose prompt is longer than
	// LongContext.Above tokens: all its tokens are priced at them.
	LongContext *LongContext `json:"long_context,omitempty"`
}

// LongContext is a row's long-context tier.
type LongContext struct {
	// Above is the prompt size, in tokens, beyond which the tier applies
	// (200000 for Claude Sonnet 4.x and Gemini 2.5 Pro).
	Above    int64     `json:"above"`
	Standard PriceSet  `json:"standard"`
	Batch    *PriceSet `json:"batch,omitempty"`
	Flex     *PriceSet `json:"flex,omitempty"`
	Priority *PriceSet `json:"priority,omitempty"`
}

// PriceSet is one set of unit prices, decimal strings in USD per 1M
// tokens; an empty string is a price the set does not have. A set without
// CacheRead or CacheWrite prices charges those tokens as Input; one without
// CacheWrite1h charges 1 h writes as CacheWrite5m; one without Reasoning
// charges reasoning tokens as Output (see Cost).
type PriceSet struct {
	Input        string `json:"input,omitempty"`
	CacheRead    string `json:"cache_read,omitempty"`
	CacheWrite5m string `json:"cache_write_5m,omitempty"`
	CacheWrite1h string `json:"cache_write_1h,omitempty"`
	Output       string `json:"output,omitempty"`
	// Reasoning is set only where the provider prices reasoning tokens
	// apart from output (Perplexity's Sonar Deep Research).
	Reasoning string `json:"reasoning,omitempty"`
}

// Class is a class of tokens, priced apart.
type Class uint8

const (
	Input        Class = iota // uncached input
	CacheRead                 // input read from the provider's prompt cache
	CacheWrite5m              // input written to the cache for 5 minutes
	CacheWrite1h              // input written to the cache for 1 hour
	Output                    // output, reasoning included unless priced apart
	Reasoning                 // reasoning (thinking) tokens
	nClass
)

var classNames = [nClass]string{"input", "cache_read", "cache_write_5m", "cache_write_1h", "output", "reasoning"}

func (c Class) String() string { return classNames[c] }

func (s *PriceSet) field(c Class) *string {
	switch c {
	case Input:
		return &s.Input
	case CacheRead:
		return &s.CacheRead
	case CacheWrite5m:
		return &s.CacheWrite5m
	case CacheWrite1h:
		return &s.CacheWrite1h
	case Output:
		return &s.Output
	default:
		return &s.Reasoning
	}
}

// Tier is a provider's service tier.
type Tier uint8

const (
	Standard Tier = iota
	Batch
	Flex
	PriorityTier
	nTier
)

var tierNames = [nTier]string{"standard", "batch", "flex", "priority"}

func (t Tier) String() string { return tierNames[t] }

// ParseTier maps a provider's service-tier word to a Tier: OpenAI's
// service_tier ("default", "auto", "flex", "priority", "scale"),
// Anthropic's usage.service_tier ("standard", "priority", "batch") and
// Gemini's usageMetadata.trafficType ("ON_DEMAND", "ON_DEMAND_PRIORITY",
// "FLEX", "BATCH"). Unknown words are Standard: OpenAI's "scale" tier is
// prepaid capacity, which a per-token list price does not describe either way.
func ParseTier(s string) Tier {
	switch strings.ToLower(s) {
	case "batch", "batches":
		return Batch
	case "flex":
		return Flex
	case "priority", "on_demand_priority":
		return PriorityTier
	}
	return Standard
}

func (r *Row) tier(t Tier) *PriceSet {
	switch t {
	case Standard:
		return &r.Standard
	case Batch:
		return r.Batch
	case Flex:
		return r.Flex
	default:
		return r.Priority
	}
}

func (l *LongContext) tier(t Tier) *PriceSet {
	switch t {
	case Standard:
		return &l.Standard
	case Batch:
		return l.Batch
	case Flex:
		return l.Flex
	default:
		return l.Priority
	}
}

// Providers are the provider names a row may carry, as the providers
// package spells them (a test holds the two lists together).
var Providers = []string{"openai", "anthropic", "gemini", "azure", "mistral", "together", "perplexity", "cohere"}

//go:embed prices.json
var defaultJSON []byte

// Default returns a copy of the embedded default table.
func Default() *Table {
	t, err := ParseTable(defaultJSON)
	if err != nil {
		panic("pricing: the embedded prices.json is invalid: " + err.Error())
	}
	return t
}

// ParseTable reads a Table from JSON, refusing unknown fields, and checks
// it (see Table.Check).
func ParseTable(data []byte) (*Table, error) {
	var t Table
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("price table: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("price table: trailing data after the JSON object")
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Clone returns a deep copy of t.
func (t *Table) Clone() *Table {
	c := *t
	c.Models = make([]Row, len(t.Models))
	for i := range t.Models {
		c.Models[i] = t.Models[i].clone()
	}
	return &c
}

func (r Row) clone() Row {
	r.Aliases = slices.Clone(r.Aliases)
	r.Batch, r.Flex, r.Priority = clonePS(r.Batch), clonePS(r.Flex), clonePS(r.Priority)
	if r.LongContext != nil {
		l := *r.LongContext
		l.Batch, l.Flex, l.Priority = clonePS(l.Batch), clonePS(l.Flex), clonePS(l.Priority)
		r.LongContext = &l
	}
	return r
}

func clonePS(p *PriceSet) *PriceSet {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

// find returns the index of the row for provider and model (or alias), or
// -1. An empty provider matches any provider when exactly one row has the
// name; ambiguous reports that more than one does.
func (t *Table) find(provider, model string) (i int, ambiguous bool) {
	i = -1
	for j := range t.Models {
		r := &t.Models[j]
		if provider != "" && r.Provider != provider {
			continue
		}
		if r.Model == model || slices.Contains(r.Aliases, model) {
			if i >= 0 {
				return i, true
			}
			i = j
		}
	}
	return i, false
}
