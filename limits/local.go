package limits

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// KV is the little a single-node backend needs from a store; a bbolt
// bucket does it in a few lines: Get and Scan in a read transaction (Scan
// is a cursor Seek over the prefix), Apply in one write transaction
// (db.Batch, so that flushes of many counters share a commit).
type KV interface {
	// Get returns the value of key, nil when absent.
	Get(key string) ([]byte, error)
	// Scan calls fn for each key with the prefix, in key order.
	Scan(prefix string, fn func(key string, value []byte) error) error
	// Apply writes every entry at once: a nil value deletes its key.
	Apply(writes map[string][]byte) error
}

// Local is the single-node Backend: exact (the one instance counts against
// the whole limit) and persisted in a KV so a restart keeps the spend of
// the current windows. Keys: "<counter>/u/<slot>" (settled, with what was
// in flight at the last write) and "<counter>/c/<slot>/<what>" (alerts
// claimed).
type Local struct {
	mu sync.Mutex // Claim's read-then-write
	kv KV
}

// NewLocal returns a single-node backend over kv.
func NewLocal(kv KV) *Local { return &Local{kv: kv} }

func (b *Local) Exact() bool   { return true }
func (b *Local) Epoch() uint64 { return 0 }

func slotKey(slot int64) string { return fmt.Sprintf("%015d", slot) }

func (b *Local) Load(_ context.Context, counter string, span Span) (View, error) {
	v := View{Instances: 1}
	if span.Ephemeral {
		return v, nil
	}
	err := b.kv.Scan(counter+"/u/", func(k string, val []byte) error {
		slot, err := strconv.ParseInt(strings.TrimPrefix(k, counter+"/u/"), 10, 64)
		if err != nil {
			return fmt.Errorf("limits: bad key %q", k)
		}
		n, err := strconv.ParseInt(string(val), 10, 64)
		if err != nil {
			return fmt.Errorf("limits: bad value at %q", k)
		}
		if slot >= span.From {
			v.Mine = append(v.Mine, SlotUsed{slot, n})
		}
		return nil
	})
	return v, err
}

// Acquire grants what the limit has left over the stored spend: one
// instance needs no slicing, but the method keeps the contract.
func (b *Local) Acquire(ctx context.Context, counter string, span Span, limit, need int64, mine Share) (int64, View, error) {
	v, err := b.Report(ctx, counter, span, mine)
	if err != nil {
		return 0, v, err
	}
	left := limit - mine.used() - mine.Held
	if left < need || left <= 0 {
		return 0, v, nil
	}
	return left, v, nil
}

// Report writes the instance's slots of span and drops older ones, in
// one Apply.
func (b *Local) Report(_ context.Context, counter string, span Span, mine Share) (View, error) {
	v := View{Instances: 1}
	if span.Ephemeral {
		return v, nil
	}
	writes := map[string][]byte{}
	err := b.kv.Scan(counter+"/", func(k string, _ []byte) error {
		rest := strings.TrimPrefix(k, counter+"/")
		if len(rest) > 2 && (rest[:2] == "u/" || rest[:2] == "c/") {
			if slot, err := strconv.ParseInt(strings.SplitN(rest[2:], "/", 2)[0], 10, 64); err == nil && slot < span.From {
				writes[k] = nil
			}
		}
		return nil
	})
	if err != nil {
		return v, err
	}
	for _, u := range mine.Used {
		if u.Slot >= span.From {
			writes[counter+"/u/"+slotKey(u.Slot)] = strconv.AppendInt(nil, u.Used, 10)
		}
	}
	if len(writes) == 0 {
		return v, nil
	}
	return v, b.kv.Apply(writes)
}

func (b *Local) Claim(_ context.Context, counter string, slot int64, what string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := counter + "/c/" + slotKey(slot) + "/" + what
	old, err := b.kv.Get(k)
	if err != nil || old != nil {
		return false, err
	}
	return true, b.kv.Apply(map[string][]byte{k: []byte("1")})
}

// MapKV is a KV in memory, for tests and for a process that wants the
// single-node limiter without persistence.
type MapKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func NewMapKV() *MapKV { return &MapKV{m: map[string][]byte{}} }

func (m *MapKV) Get(k string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.m[k]), nil
}

func (m *MapKV) Apply(writes map[string][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range writes {
		if v == nil {
			delete(m.m, k)
		} else {
			m.m[k] = slices.Clone(v)
		}
	}
	return nil
}

func (m *MapKV) Scan(prefix string, fn func(string, []byte) error) error {
	m.mu.Lock()
	var keys []string
	for k := range m.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = slices.Clone(m.m[k])
	}
	m.mu.Unlock()
	for i, k := range keys {
		if err := fn(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// Len is the number of keys (tests check stale slots are dropped).
func (m *MapKV) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}
