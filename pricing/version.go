package pricing

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Version is one immutable state of the effective price book. A request
// takes the current version once, when it starts, and is priced with it
// even if the book changes before its answer ends.
type Version struct {
	// ID is "<seq>-<first 12 hex of the hash>": unique in a registry and
	// stable for the same prices.
	ID      string
	Seq     uint64
	Created time.Time
	// Parent is the ID of the version this one replaced ("" for the first).
	Parent string
	// Changes lists what differs from the parent, field by field.
	Changes []Change
	book    *Book
}

// Change is one difference between two versions of the book: a row added
// or removed (Field "row"), or a price changed (Field such as
// "standard.input" or "long_context.batch.output"; Old or New "" when the
// price was absent).
type Change struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Field    string `json:"field"`
	Old      string `json:"old,omitempty"`
	New      string `json:"new,omitempty"`
}

// Book is the version's compiled book.
func (v *Version) Book() *Book { return v.book }

// Hash is the content hash of the version's book.
func (v *Version) Hash() string { return v.book.hash }

// Cost prices u under this version, as Book.CostAt does, and names the
// version on the cost. It does not allocate.
func (v *Version) Cost(provider, model string, u Usage, c *Contract, start time.Time) Cost {
	cost := v.book.cost(provider, model, &u, c.at(start))
	cost.Version = v.ID
	return cost
}

// Record is the serialisable form of a Version, for a store to keep: the
// whole effective table rides along, so a cost can be re-derived from the
// record alone after the default table has moved on.
type Record struct {
	ID      string    `json:"id"`
	Seq     uint64    `json:"seq"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Parent  string    `json:"parent,omitempty"`
	Changes []Change  `json:"changes,omitempty"`
	Table   *Table    `json:"table"`
}

// Record returns v's serialisable form.
func (v *Version) Record() Record {
	return Record{ID: v.ID, Seq: v.Seq, Hash: v.book.hash, Created: v.Created, Parent: v.Parent,
		Changes: append([]Change(nil), v.Changes...), Table: v.book.Table()}
}

// Registry keeps every version of the effective book, in order, and the
// current one. Current is a single atomic load, for the hot path; Publish
// and Restore take a lock. Versions are never changed or dropped.
type Registry struct {
	mu       sync.Mutex
	versions []*Version
	byID     map[string]*Version
	current  atomic.Pointer[Version]
	// now stamps new versions; tests swap it.
	now func() time.Time
}

// NewRegistry returns an empty registry: Publish the first table, or
// Restore stored versions, before calling Current.
func NewRegistry() *Registry {
	return &Registry{byID: map[string]*Version{}, now: time.Now}
}

// Current returns the version new requests are priced with (nil before the
// first Publish or Restore).
func (r *Registry) Current() *Version { return r.current.Load() }

// Get returns the version with the given ID.
func (r *Registry) Get(id string) (*Version, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.byID[id]
	return v, ok
}

// Versions returns every version, oldest first.
func (r *Registry) Versions() []*Version {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Version(nil), r.versions...)
}

// Publish makes t the current book. When its prices equal the current
// book's it returns the current version and false: a version is a change
// of prices, not of who asked. A table that fails its checks changes
// nothing.
func (r *Registry) Publish(t *Table) (*Version, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.current.Load()
	v, changed, err := NextVersion(cur, t, r.now())
	if err != nil || !changed {
		return v, false, err
	}
	r.add(v)
	return v, true, nil
}

// NextVersion returns the version that follows parent (nil: the first
// version) with t's prices, made at now; when t prices exactly as parent
// does, it returns parent and false. It changes nothing: a store that
// keeps versions elsewhere (and may lose a race to publish) decides with
// it, then Follows what it stored. A table that fails its checks is an
// error.
func NextVersion(parent *Version, t *Table, now time.Time) (*Version, bool, error) {
	b, err := Compile(t)
	if err != nil {
		return nil, false, err
	}
	if parent != nil && parent.book.hash == b.hash {
		return parent, false, nil
	}
	v := &Version{Seq: 1, Created: now.UTC(), book: b}
	if parent != nil {
		v.Seq, v.Parent, v.Changes = parent.Seq+1, parent.ID, Diff(parent.book.table, b.table)
	} else {
		v.Changes = Diff(&Table{}, b.table)
	}
	v.ID = fmt.Sprintf("%d-%s", v.Seq, b.hash[:12])
	return v, true, nil
}

// FromRecord rebuilds a stored version and verifies it: its table must
// compile to its recorded hash and its id must be its sequence number and
// hash. An altered record is refused.
func FromRecord(rec Record) (*Version, error) {
	if rec.Table == nil {
		return nil, fmt.Errorf("price version %s: no table", rec.ID)
	}
	b, err := Compile(rec.Table)
	if err != nil {
		return nil, fmt.Errorf("price version %s: %w", rec.ID, err)
	}
	if b.hash != rec.Hash || rec.ID != fmt.Sprintf("%d-%s", rec.Seq, b.hash[:12]) {
		return nil, fmt.Errorf("price version %s: its table does not match its hash", rec.ID)
	}
	return &Version{ID: rec.ID, Seq: rec.Seq, Created: rec.Created, Parent: rec.Parent, Changes: rec.Changes, book: b}, nil
}

// Follow adds a version stored by whoever published it (this process or
// another fleet instance) and makes it current: the first version an
// empty registry sees, or the one whose parent is the current version. A
// version the registry already has changes nothing; one that does not
// follow the current version is an error, and so is an altered record.
func (r *Registry) Follow(rec Record) (*Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.byID[rec.ID]; ok {
		return v, nil
	}
	cur := r.current.Load()
	if cur != nil && (rec.Parent != cur.ID || rec.Seq <= cur.Seq) {
		return nil, fmt.Errorf("price version %s does not follow the current version %s", rec.ID, cur.ID)
	}
	v, err := FromRecord(rec)
	if err != nil {
		return nil, err
	}
	r.add(v)
	return v, nil
}

func (r *Registry) add(v *Version) {
	r.versions = append(r.versions, v)
	r.byID[v.ID] = v
	r.current.Store(v)
}

// Restore loads stored versions into an empty registry, oldest first, and
// makes the last one current. Each record's table must compile to its
// recorded hash, and sequence numbers must rise: a record that was altered
// is refused, and nothing is loaded.
func (r *Registry) Restore(records []Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.versions) > 0 {
		return errors.New("price versions: restore into a registry that already has versions")
	}
	var vs []*Version
	for i, rec := range records {
		v, err := FromRecord(rec)
		if err != nil {
			return err
		}
		if i > 0 && (rec.Seq <= vs[i-1].Seq || rec.Parent != vs[i-1].ID) {
			return fmt.Errorf("price version %s: out of order after %s", rec.ID, vs[i-1].ID)
		}
		vs = append(vs, v)
	}
	for _, v := range vs {
		r.add(v)
	}
	return nil
}
