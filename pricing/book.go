package pricing

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
)

// Book is a compiled, immutable price book: a checked Table with its prices
// parsed and indexed for the hot path. Build one with Compile; it is never
// changed afterwards, so any number of requests may read it at once.
type Book struct {
	table *Table // canonical: rows sorted, prices normalised
	hash  string // sha256 of the canonical table's JSON, hex
	index map[rowKey]*entry
}

type rowKey struct{ provider, model string }

// rates are one price set's unit prices by class; unset where the set has
// none.
type rates [nClass]Price

// entry is a compiled row.
type entry struct {
	provider, model string
	partial         bool
	tiers           [nTier]*rates
	longAbove       int64
	long            [nTier]*rates
}

// Compile checks t and builds its Book. Prices are normalised ("3.50" and
// "3.5" are the same price and the same book), so the book's hash depends
// on what it charges, not on how it was typed.
func Compile(t *Table) (*Book, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	c := t.Clone()
	slices.SortFunc(c.Models, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Model, b.Model))
	})
	b := &Book{table: c, index: make(map[rowKey]*entry, len(c.Models)*2)}
	for i := range c.Models {
		r := &c.Models[i]
		slices.Sort(r.Aliases)
		e := &entry{provider: r.Provider, model: r.Model, partial: r.FeesNotPriced != ""}
		for t := range nTier {
			e.tiers[t] = compileSet(r.tier(t))
		}
		if l := r.LongContext; l != nil {
			e.longAbove = l.Above
			for t := range nTier {
				e.long[t] = compileSet(l.tier(t))
			}
		}
		for _, m := range append([]string{r.Model}, r.Aliases...) {
			b.index[rowKey{r.Provider, m}] = e
		}
	}
	data, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	b.hash = hex.EncodeToString(sum[:])
	return b, nil
}

// compileSet parses a checked price set, normalising its strings in place.
func compileSet(s *PriceSet) *rates {
	if s == nil {
		return nil
	}
	var r rates
	for c := range nClass {
		f := s.field(c)
		r[c] = unset
		if *f != "" {
			p, _ := ParsePrice(*f) // checked by Table.Check
			r[c] = p
			*f = p.String()
		}
	}
	return &r
}

// MustCompile is Compile for tables known to be valid (the embedded default).
func MustCompile(t *Table) *Book {
	b, err := Compile(t)
	if err != nil {
		panic(err)
	}
	return b
}

// Table returns a copy of the book's canonical table.
func (b *Book) Table() *Table { return b.table.Clone() }

// Hash is the sha256 of the canonical table, hex: two books with the same
// prices have the same hash.
func (b *Book) Hash() string { return b.hash }

// Has reports whether the book prices model at provider.
func (b *Book) Has(provider, model string) bool { return b.lookup(provider, model) != nil }

// lookup finds the row for a model as the gateway calls it upstream: the
// exact name or an alias, and for Gemini without its "models/" prefix.
// It does not allocate.
func (b *Book) lookup(provider, model string) *entry {
	if e := b.index[rowKey{provider, model}]; e != nil {
		return e
	}
	if provider == "gemini" {
		if m, ok := strings.CutPrefix(model, "models/"); ok {
			return b.index[rowKey{provider, m}]
		}
	}
	return nil
}
