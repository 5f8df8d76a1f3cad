package store

import (
	bolt "go.etcd.io/bbolt"
)

// The KV seam: the store's shared records (accounts, API keys, sealed BYOK
// credentials, policies, health marks, console users and sessions) are read
// and written through these small interfaces, which bbolt implements as is
// (the single-node default, file format unchanged) and the etcd fleet
// backend (fleet.go) implements over an in-memory mirror of an etcd prefix
// plus optimistic, revision-compared transactions. The request log, usage
// rollups and "last used" clocks are per instance and stay on bbolt directly.

// kvTx is a transaction: a set of named buckets.
type kvTx interface {
	// Bucket returns the named bucket. Every bucket the store uses exists.
	Bucket(name []byte) kvBucket
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

// kvBackend runs read and write transactions.
type kvBackend interface {
	view(fn func(tx kvTx) error) error
	// update commits fn atomically. The fleet backend may run fn more than
	// once (a conflicting concurrent write retries it), so fn must only
	// write through tx and assign results, and it returns after the local
	// mirror has caught up with the write.
	update(fn func(tx kvTx) error) error
}

// boltKV is the single-node backend: one bbolt file.
type boltKV struct{ db *bolt.DB }

func (b boltKV) view(fn func(tx kvTx) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b boltKV) update(fn func(tx kvTx) error) error {
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Bucket(name []byte) kvBucket { return boltBucket{t.tx.Bucket(name)} }

type boltBucket struct{ *bolt.Bucket }

func (b boltBucket) Cursor() kvCursor { return b.Bucket.Cursor() }
