package store

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// "Last used" clocks: one per API key and per BYOK credential, in memory,
// moved by the request path with one atomic operation (Touch), shared by
// every snapshot, and written to the instance's bbolt file by the log
// writer (persistClocks) when they moved.

// clock is one "last used" time, unix nanoseconds.
type clock struct {
	atomic.Int64
	id string
	// saved is the value last written to bbolt; only the log writer
	// (and Open, before it starts) touches it.
	saved int64
	// dead is set when the key or credential is deleted.
	dead atomic.Bool
}

// clockSet holds the store's clocks by id, and in a list the log writer
// scans without holding the lock (it reads the clocks through their atomics).
type clockSet struct {
	mu   sync.Mutex
	byID map[string]*clock
	all  []*clock // appended to; compacted into a new array when mostly dead
	dead int
}

func storeMax(c *atomic.Int64, v int64) {
	for {
		old := c.Load()
		if v <= old || c.CompareAndSwap(old, v) {
			return
		}
	}
}

func keyClockID(keyID string) string              { return "key\x00" + keyID }
func credClockID(account, provider string) string { return "byok\x00" + account + "\x00" + provider }

// clock returns the clock with this id, creating it.
func (s *Store) clock(id string) *clock {
	cs := &s.clocks
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c, ok := cs.byID[id]
	if !ok {
		c = &clock{id: id}
		cs.byID[id] = c
		cs.all = append(cs.all, c)
	}
	return c
}

func (s *Store) lastUsedAt(id string) *time.Time {
	s.clocks.mu.Lock()
	c := s.clocks.byID[id]
	s.clocks.mu.Unlock()
	if c == nil || c.Load() == 0 {
		return nil
	}
	t := time.Unix(0, c.Load()).UTC()
	return &t
}

// dropClock forgets clock c in memory if it is still the one with this id
// (a deletion applied to the snapshot; the deleting write removes the
// persisted value, forgetClocks).
func (s *Store) dropClock(id string, c *clock) {
	cs := &s.clocks
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c != nil && cs.byID[id] == c {
		cs.forget(id)
	}
}

// forget drops the clock id. Callers hold mu.
func (cs *clockSet) forget(id string) {
	c, ok := cs.byID[id]
	if !ok {
		return
	}
	delete(cs.byID, id)
	c.dead.Store(true)
	cs.dead++
	if cs.dead > 1024 && cs.dead > len(cs.all)/2 {
		live := make([]*clock, 0, len(cs.all)-cs.dead)
		for _, c := range cs.all {
			if !c.dead.Load() {
				live = append(live, c)
			}
		}
		cs.all, cs.dead = live, 0
	}
}

// forgetClocks drops "last used" clocks of deleted keys and credentials, in
// memory and in tx, so a re-created credential does not inherit them.
func (s *Store) forgetClocks(tx kvTx, ids ...string) error {
	s.clocks.mu.Lock()
	for _, id := range ids {
		s.clocks.forget(id)
	}
	s.clocks.mu.Unlock()
	b := tx.Bucket(bucketLastUsed)
	for _, id := range ids {
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
	}
	return nil
}

// loadClocks reads the persisted "last used" clocks.
func (s *Store) loadClocks(tx *bolt.Tx) error {
	s.clocks.byID = make(map[string]*clock)
	return tx.Bucket(bucketLastUsed.name).ForEach(func(k, v []byte) error {
		if len(v) == 8 {
			c := &clock{id: string(k)}
			c.Store(int64(binary.BigEndian.Uint64(v)))
			c.saved = c.Load()
			s.clocks.byID[c.id] = c
			s.clocks.all = append(s.clocks.all, c)
		}
		return nil
	})
}

// persistClocks writes the "last used" clocks that moved since the last call.
// When none moved it does not open a write transaction: every bbolt commit is
// an fsync, and the writer calls this on each flush tick. It scans the
// clocks through their atomics without holding the lock, so the writes that
// create and drop clocks never wait for the scan.
func (s *Store) persistClocks() {
	s.clocks.mu.Lock()
	all := s.clocks.all
	s.clocks.mu.Unlock()
	type moved struct {
		c *clock
		v int64
	}
	var dirty []moved
	for _, c := range all {
		if v := c.Load(); v > c.saved && !c.dead.Load() {
			dirty = append(dirty, moved{c, v})
		}
	}
	if len(dirty) == 0 {
		return
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLastUsed.name)
		var buf [8]byte
		for _, d := range dirty {
			// A key or credential deleted since the clocks were read
			// (forgetClocks, in a write transaction of its own) stays
			// deleted: write only clocks that are still the live ones.
			s.clocks.mu.Lock()
			live := s.clocks.byID[d.c.id] == d.c
			s.clocks.mu.Unlock()
			if !live {
				continue
			}
			if old := b.Get([]byte(d.c.id)); len(old) == 8 && int64(binary.BigEndian.Uint64(old)) >= d.v {
				continue
			}
			binary.BigEndian.PutUint64(buf[:], uint64(d.v))
			if err := b.Put([]byte(d.c.id), buf[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, d := range dirty {
			d.c.saved = d.v
		}
	}
}
