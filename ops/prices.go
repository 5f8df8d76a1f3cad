package ops

import (
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// PriceVersion is one version of the price book, without its table: when
// it was made, the one it replaced and what changed.
type PriceVersion struct {
	ID      string           `json:"id"`
	Created time.Time        `json:"created"`
	Parent  string           `json:"parent,omitempty"`
	Changes []pricing.Change `json:"changes"`
	// AsOf and TableVersion name the embedded default table it was built
	// on.
	TableVersion string `json:"table_version"`
	AsOf         string `json:"as_of"`
}

// PriceBook lists the price book's versions, oldest first, and names the
// current one (new requests are priced with it).
type PriceBook struct {
	Current  string         `json:"current"`
	Versions []PriceVersion `json:"versions"`
}

// Prices lists the stored price versions.
func (o *Ops) Prices() (PriceBook, error) {
	recs, err := o.Store.PriceVersions()
	if err != nil {
		return PriceBook{}, err
	}
	out := PriceBook{Versions: make([]PriceVersion, 0, len(recs))}
	if v := o.Store.Prices().Current(); v != nil {
		out.Current = v.ID
	}
	for _, r := range recs {
		pv := PriceVersion{ID: r.ID, Created: r.Created, Parent: r.Parent, Changes: r.Changes}
		if pv.Changes == nil {
			pv.Changes = []pricing.Change{}
		}
		if r.Table != nil {
			pv.TableVersion, pv.AsOf = r.Table.Version, r.Table.AsOf
		}
		out.Versions = append(out.Versions, pv)
	}
	return out, nil
}

// PriceVersion returns one stored version whole, its table included: what
// a cost that names it can be re-derived from.
func (o *Ops) PriceVersion(id string) (pricing.Record, error) {
	recs, err := o.Store.PriceVersions()
	if err != nil {
		return pricing.Record{}, err
	}
	for _, r := range recs {
		if r.ID == id {
			return r, nil
		}
	}
	return pricing.Record{}, errorf(NotFound, "no price version %q", clip(id))
}
