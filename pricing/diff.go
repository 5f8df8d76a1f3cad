package pricing

import (
	"strconv"
	"strings"
)

// Diff lists what changed from a to b, row by row in b's order (removed
// rows last), field by field. Both should be canonical (Book.Table) for
// "3.5" and "3.50" to compare equal.
func Diff(a, b *Table) []Change {
	old := map[rowKey]*Row{}
	for i := range a.Models {
		r := &a.Models[i]
		old[rowKey{r.Provider, r.Model}] = r
	}
	var out []Change
	seen := map[rowKey]bool{}
	for i := range b.Models {
		r := &b.Models[i]
		k := rowKey{r.Provider, r.Model}
		seen[k] = true
		o := old[k]
		if o == nil {
			out = append(out, Change{Provider: r.Provider, Model: r.Model, Field: "row", New: "added"})
			continue
		}
		of, nf := flatten(o), flatten(r)
		for _, f := range unionKeys(of, nf) {
			if of.get(f) != nf.get(f) {
				out = append(out, Change{Provider: r.Provider, Model: r.Model, Field: f, Old: of.get(f), New: nf.get(f)})
			}
		}
	}
	for i := range a.Models {
		r := &a.Models[i]
		if !seen[rowKey{r.Provider, r.Model}] {
			out = append(out, Change{Provider: r.Provider, Model: r.Model, Field: "row", Old: "removed"})
		}
	}
	return out
}

type fields [][2]string

func (f fields) get(k string) string {
	for _, kv := range f {
		if kv[0] == k {
			return kv[1]
		}
	}
	return ""
}

func unionKeys(a, b fields) []string {
	var keys []string
	has := map[string]bool{}
	for _, f := range [2]fields{a, b} {
		for _, kv := range f {
			if !has[kv[0]] {
				has[kv[0]] = true
				keys = append(keys, kv[0])
			}
		}
	}
	return keys
}

// flatten lists a row's fields as path → value, for Diff.
func flatten(r *Row) fields {
	f := fields{{"aliases", strings.Join(r.Aliases, ",")}, {"source", r.Source}, {"note", r.Note}, {"fees_not_priced", r.FeesNotPriced}}
	set := func(prefix string, s *PriceSet) {
		if s == nil {
			return
		}
		for c := range nClass {
			f = append(f, [2]string{prefix + c.String(), *s.field(c)})
		}
	}
	for t := range nTier {
		set(t.String()+".", r.tier(t))
	}
	if l := r.LongContext; l != nil {
		f = append(f, [2]string{"long_context.above", strconv.FormatInt(l.Above, 10)})
		for t := range nTier {
			set("long_context."+t.String()+".", l.tier(t))
		}
	}
	return f
}
