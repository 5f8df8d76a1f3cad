package store

import (
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The KV seam: the store's shared records (the schema's shared buckets:
// accounts, API keys, sealed BYOK credentials, policies, health marks,
// console people and sessions) are read and written through these small
// interfaces, which bbolt implements as is (the single-node default, file
// format unchanged) and the etcd fleet backend (fleet.go) implements over an
// in-memory mirror of an etcd prefix plus optimistic, revision-compared
// transactions. The request log, usage rollups and "last used" clocks are
// per instance and stay on bbolt directly.
//
// Both backends hand every committed change to a snapshot bucket to the
// store (the apply function given to setApply), in commit order, before
// update returns: bbolt right after the commit, the fleet backend from its
// watch, on every instance. That is how a write changes the request path's
// snapshot by what it changed (snapshot.go).

// kvTx is a transaction: a set of named buckets.
type kvTx interface {
	// Bucket returns the bucket. Every shared and local bucket exists.
	Bucket(b *bucket) kvBucket
}

// kvBucket is an ordered key/value namespace, as a bbolt bucket. Values
// returned by Get, ForEach and cursors are valid for the transaction only
// and must not be modified.
type kvBucket interface {
	Get(k []byte) []byte
	Put(k, v []byte) error
	Delete(k []byte) error
	// ForEach calls fn for every key in byte order. fn must not modify the
	// bucket.
	ForEach(fn func(k, v []byte) error) error
	Cursor() kvCursor
}

// kvCursor walks a bucket in byte order.
type kvCursor interface {
	Seek(seek []byte) (k, v []byte)
	Next() (k, v []byte)
}

// change is one committed write to a snapshot bucket: v is the new value,
// nil for a deletion.
type change struct {
	b    *bucket
	k, v []byte
}

// applyFunc applies committed changes to the snapshot; tx reads the state
// just after them.
type applyFunc func(tx kvTx, changes []change) error

// kvBackend runs transactions, and says what differs between single-node
// and fleet mode so that the rest of the store does not ask which it is.
type kvBackend interface {
	view(fn func(tx kvTx) error) error
	// update commits fn atomically, and returns once the snapshot holds
	// the change. The fleet backend may run fn more than once (a
	// conflicting concurrent write retries it), so fn must only write
	// through tx and assign results.
	update(fn func(tx kvTx) error) error
	// updateQuick is update for writes made from the request path: in
	// fleet mode bounded to a second and failing fast during an etcd
	// outage.
	updateQuick(fn func(tx kvTx) error) error
	// setApply installs the function committed snapshot changes go to.
	setApply(fn applyFunc)
	// maxOps is the most records one transaction may change, 0 for no
	// bound (etcd takes 128 operations per transaction by default).
	maxOps() int
	// waitRev waits until the snapshot reached etcd revision rev, at most
	// d (single-node: at once, true).
	waitRev(rev int64, d time.Duration) bool
	status() FleetStatus
	members() []Member
	instanceID() string
	close()
}

// boltKV is the single-node backend: one bbolt file.
type boltKV struct {
	db *bolt.DB
	// mu holds a write's commit and its snapshot change together, so that
	// snapshots follow commits in order (bbolt serialises the commits
	// themselves).
	mu    sync.Mutex
	apply applyFunc
}

func (b *boltKV) view(fn func(tx kvTx) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx: tx}) })
}

func (b *boltKV) update(fn func(tx kvTx) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var rec changeLog
	err := b.db.Update(func(tx *bolt.Tx) error {
		rec = rec[:0]
		return fn(boltTx{tx: tx, rec: &rec})
	})
	if err != nil || len(rec) == 0 || b.apply == nil {
		return err
	}
	return b.db.View(func(tx *bolt.Tx) error { return b.apply(boltTx{tx: tx}, rec) })
}

func (b *boltKV) updateQuick(fn func(tx kvTx) error) error { return b.update(fn) }
func (b *boltKV) setApply(fn applyFunc)                    { b.mu.Lock(); b.apply = fn; b.mu.Unlock() }
func (b *boltKV) maxOps() int                              { return 0 }
func (b *boltKV) waitRev(int64, time.Duration) bool        { return true }
func (b *boltKV) status() FleetStatus                      { return FleetStatus{} }
func (b *boltKV) members() []Member                        { return []Member{{Self: true}} }
func (b *boltKV) instanceID() string                       { return "" }
func (b *boltKV) close()                                   {}

// changeLog records a write transaction's changes to snapshot buckets.
type changeLog []change

func (l *changeLog) add(b *bucket, k, v []byte) {
	if l == nil || !b.snapshot {
		return
	}
	c := change{b: b, k: append([]byte(nil), k...)}
	if v != nil {
		c.v = append(make([]byte, 0, len(v)), v...)
	}
	*l = append(*l, c)
}

type boltTx struct {
	tx  *bolt.Tx
	rec *changeLog // nil in a read transaction
}

func (t boltTx) Bucket(b *bucket) kvBucket {
	return boltBucket{Bucket: t.tx.Bucket(b.name), b: b, rec: t.rec}
}

type boltBucket struct {
	*bolt.Bucket
	b   *bucket
	rec *changeLog
}

func (b boltBucket) Put(k, v []byte) error {
	if err := b.Bucket.Put(k, v); err != nil {
		return err
	}
	b.rec.add(b.b, k, v)
	return nil
}

func (b boltBucket) Delete(k []byte) error {
	if err := b.Bucket.Delete(k); err != nil {
		return err
	}
	b.rec.add(b.b, k, nil)
	return nil
}

func (b boltBucket) Cursor() kvCursor { return b.Bucket.Cursor() }
