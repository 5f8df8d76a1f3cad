package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Fleet transactions: a transaction reads one published view of the mirror
// (mirror.go); a write transaction records what it read and buffers what it
// writes, then commits with etcd comparing the whole read set (optimistic
// concurrency: a conflict runs fn again on the newer view).

func (f *fleetKV) view(fn func(tx kvTx) error) error {
	f.mu.RLock()
	t := &fleetTx{f: f, m: f.published, rev: f.rev}
	f.mu.RUnlock()
	defer t.rollbackLocal()
	return fn(t)
}

var errConflict = errors.New("conflict")

func (f *fleetKV) maxOps() int { return f.opts.MaxTxnOps }

func (f *fleetKV) update(fn func(tx kvTx) error) error {
	if err := f.refuseWhileDown(); err != nil {
		return err
	}
	if err := f.catchUp(f.opts.WriteTimeout); err != nil {
		return err
	}
	return f.updateWithin(fn, f.opts.WriteTimeout, f.opts.SyncTimeout)
}

// catchUp waits until the mirror holds every write the fleet committed
// before the call (one quorum read for etcd's current revision, then the
// watch). A write transaction decides on what it reads from the mirror
// ("account not found"), so without it an admin call that a load balancer
// sends to this instance right after a write on another could act on the
// state before that write.
func (f *fleetKV) catchUp(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(f.ctx), timeout)
	resp, err := f.cli.Get(ctx, f.prefix, clientv3.WithCountOnly())
	cancel()
	f.etcdResult(err)
	if err != nil {
		return fmt.Errorf("%w: the change was not saved (the gateway keeps serving from its last snapshot; retry once etcd is reachable): %v", ErrUnavailable, err)
	}
	if !f.waitRev(resp.Header.Revision, f.opts.SyncTimeout) {
		// Deciding on a mirror known to be behind is the mistake catchUp
		// exists to prevent: refuse rather than answer "not found".
		return fmt.Errorf("%w: the change was not saved: this instance's copy of the fleet's records did not reach etcd's revision %d within %s (retry shortly)", ErrUnavailable, resp.Header.Revision, f.opts.SyncTimeout)
	}
	return nil
}

// quickWindow is how long writes made from the request path fail at once
// after one found etcd unavailable.
const quickWindow = 2 * time.Second

// updateQuick is update for writes made from the request path (response
// ownership, a session's last-seen time): bounded to a second, and failing at once for quickWindow
// after etcd was found unavailable, so that an etcd outage never adds
// seconds to the requests the data plane keeps serving.
func (f *fleetKV) updateQuick(fn func(tx kvTx) error) error {
	if up, _ := f.reachable(); !up || time.Now().UnixNano() < f.quickDownUntil.Load() {
		return fmt.Errorf("%w: skipped (etcd was unreachable moments ago)", ErrUnavailable)
	}
	err := f.updateWithin(fn, min(f.opts.WriteTimeout, time.Second), min(f.opts.SyncTimeout, 500*time.Millisecond))
	if errors.Is(err, ErrUnavailable) {
		f.quickDownUntil.Store(time.Now().Add(quickWindow).UnixNano())
	}
	return err
}

// updateQuick is kv.update for writes made from the request path: in fleet
// mode bounded to a second and failing fast during an etcd outage.
func (s *Store) updateQuick(fn func(tx kvTx) error) error { return s.kv.updateQuick(fn) }

func (f *fleetKV) updateWithin(fn func(tx kvTx) error, writeTimeout, syncTimeout time.Duration) error {
	for attempt := 0; ; attempt++ {
		f.mu.RLock()
		t := &fleetTx{f: f, m: f.published, rev: f.rev, write: true, reads: make(map[string]int64), ranged: make(map[string]bool)}
		f.mu.RUnlock()
		err := fn(t)
		if err != nil {
			t.rollbackLocal()
			return err
		}
		if len(t.writes) == 0 {
			return t.commitLocal()
		}
		rev, err := t.commit(writeTimeout)
		if errors.Is(err, errConflict) && attempt < 20 {
			t.rollbackLocal()
			// Another instance wrote what fn read: catch up and retry.
			f.waitRev(rev, syncTimeout)
			continue
		}
		if errors.Is(err, errConflict) {
			err = errors.New("the change conflicted with concurrent changes on other instances too many times; try again")
		}
		if err != nil {
			t.rollbackLocal()
			return err
		}
		if err := t.commitLocal(); err != nil {
			return err
		}
		f.waitRev(rev, syncTimeout)
		return nil
	}
}

type pendingWrite struct {
	v   []byte
	del bool
}

// keyRange is a part of a bucket a cursor read: from its seek key to the
// last key it returned, or to the bucket's end when it ran out.
type keyRange struct {
	bucket   string
	from, to string
	toEnd    bool
}

// fleetTx is a transaction on the mirror view m at revision rev; a write
// transaction records what it read and buffers what it writes.
type fleetTx struct {
	f     *fleetKV
	m     mirror
	rev   int64
	write bool
	// reads: etcd key -> mod revision read (0: absent).
	reads map[string]int64
	// ranged: buckets read as a whole (ForEach); ranges: parts read by
	// cursors.
	ranged map[string]bool
	ranges []*keyRange
	writes map[string]map[string]pendingWrite
	local  *bolt.Tx
}

func (t *fleetTx) Bucket(b *bucket) kvBucket {
	if b.scope == local {
		if t.local == nil {
			lt, err := t.f.local.Begin(t.write)
			if err != nil {
				return errBucket{err}
			}
			t.local = lt
		}
		return boltBucket{Bucket: t.local.Bucket(b.name), b: b}
	}
	return &fleetBucket{t: t, name: string(b.name)}
}

func (t *fleetTx) rollbackLocal() {
	if t.local != nil {
		_ = t.local.Rollback()
		t.local = nil
	}
}

func (t *fleetTx) commitLocal() error {
	if t.local == nil {
		return nil
	}
	lt := t.local
	t.local = nil
	if !t.write {
		return lt.Rollback()
	}
	return lt.Commit()
}

// tombstone is the etcd key of bucket's tombstone: one key per shared
// bucket (bucketTombstones), rewritten by every transaction that deletes
// from that bucket. etcd's range compare sees the keys a range holds now: a
// key deleted since the read is simply absent, so "no key of the range
// changed after rev" holds across a deletion. A transaction that read a
// range therefore also compares its bucket's tombstone (not rewritten after
// rev), which every deletion moves.
func (f *fleetKV) tombstone(bucket string) string {
	return f.key(string(bucketTombstones.name), []byte(bucket))
}

// commitOp is one write of a commit.
type commitOp struct {
	key    string
	bucket string
	op     clientv3.Op
	del    bool
}

// commitOps returns the buffered writes as etcd operations, the records of
// the accounts bucket last (so an account disappears only with its last
// dependants), and whether they only delete.
func (t *fleetTx) commitOps() (ops []commitOp, deletedFrom map[string]bool, deletesOnly bool) {
	f := t.f
	var last []commitOp
	deletesOnly = true
	deletedFrom = make(map[string]bool)
	for b, m := range t.writes {
		for k, w := range m {
			key := f.key(b, []byte(k))
			o := commitOp{key: key, bucket: b, del: w.del}
			if w.del {
				o.op = clientv3.OpDelete(key)
				deletedFrom[b] = true
			} else {
				o.op, deletesOnly = clientv3.OpPut(key, string(w.v)), false
			}
			if b == string(bucketAccounts.name) {
				last = append(last, o)
			} else {
				ops = append(ops, o)
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].key < ops[j].key })
	sort.Slice(last, func(i, j int) bool { return last[i].key < last[j].key })
	return append(ops, last...), deletedFrom, deletesOnly
}

// guards returns the compares that hold what the transaction read: a
// bucket read as a whole, each range a cursor read, each key read with Get.
// When they exceed what one transaction may compare, keys and ranges are
// guarded by their whole buckets instead (coarser, never weaker). tombMod
// holds the tombstones this commit's earlier chunks rewrote, done the keys
// they deleted.
func (t *fleetTx) guards(tombMod map[string]int64, done map[string]bool) []clientv3.Cmp {
	f := t.f
	ranged := make(map[string]bool, len(t.ranged))
	for b := range t.ranged {
		ranged[b] = true
	}
	ranges := t.ranges
	if 2*len(ranged)+2*len(ranges)+len(t.reads) > f.opts.MaxTxnOps {
		for _, r := range ranges {
			ranged[r.bucket] = true
		}
		ranges = nil
		for k := range t.reads {
			if b, _, ok := f.split([]byte(k)); ok {
				ranged[b] = true
			}
		}
	}
	var cmps []clientv3.Cmp
	tombs := make(map[string]bool)
	tomb := func(b string) {
		if tombs[b] {
			return
		}
		tombs[b] = true
		// ... and none was deleted: by another transaction after rev, or
		// by anything but this commit's earlier chunks.
		if mod, ok := tombMod[b]; ok {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(f.tombstone(b)), "=", mod))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(f.tombstone(b)), "<", t.rev+1))
		}
	}
	for b := range ranged {
		// No key of the bucket changed or appeared after rev...
		start := f.key(b, nil)
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(start), "<", t.rev+1).WithRange(clientv3.GetPrefixRangeEnd(start)))
		tomb(b)
	}
	for _, r := range ranges {
		if ranged[r.bucket] {
			continue
		}
		start, end := f.key(r.bucket, []byte(r.from)), f.key(r.bucket, []byte(r.to))+"\x00"
		if r.toEnd {
			end = clientv3.GetPrefixRangeEnd(f.key(r.bucket, nil))
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(start), "<", t.rev+1).WithRange(end))
		tomb(r.bucket)
	}
	for k, mod := range t.reads {
		if done[k] {
			continue
		}
		if b, _, ok := f.split([]byte(k)); ok && ranged[b] {
			continue // guarded with its bucket
		}
		if mod == 0 {
			// Read as absent: it must still be absent.
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", mod))
		}
	}
	return cmps
}

// commit writes the buffered changes if nothing fn read changed since rev:
// the whole read set is compared, absent and deleted keys included (see
// guards).
//
// A change of more records than one etcd transaction takes (MaxTxnOps) is
// committed in chunks when it only deletes (deleting an account with many
// keys, pruning): every chunk carries the compares of what fn read and has
// not been deleted yet, and the records of the accounts bucket go last, so
// an account disappears only with its last dependants; a conflict in a
// later chunk retries fn, which then deletes what is left. A chunk's own
// tombstone writes are expected by the next chunk's compares.
func (t *fleetTx) commit(timeout time.Duration) (int64, error) {
	f := t.f
	ops, deletedFrom, deletesOnly := t.commitOps()
	// Each chunk leaves room for the tombstones of the buckets it deletes
	// from.
	chunkOps := f.opts.MaxTxnOps - len(deletedFrom)
	if len(ops) > chunkOps && !deletesOnly {
		return 0, fmt.Errorf("%w: a change of %d records is too large for one etcd transaction (limit %d operations: etcd's --max-txn-ops, FleetOptions.MaxTxnOps)", ErrTooLarge, len(ops)+len(deletedFrom), f.opts.MaxTxnOps)
	}
	tombMod := make(map[string]int64) // tombstones this commit rewrote, at the revision it did
	done := make(map[string]bool)     // deleted by an earlier chunk
	var rev int64
	for len(ops) > 0 {
		n := min(len(ops), chunkOps)
		chunk := ops[:n]
		ops = ops[n:]
		cmps := t.guards(tombMod, done)
		then := make([]clientv3.Op, 0, len(chunk)+len(deletedFrom))
		bumped := make(map[string]bool)
		for _, o := range chunk {
			then = append(then, o.op)
			if o.del && !bumped[o.bucket] {
				bumped[o.bucket] = true
				then = append(then, clientv3.OpPut(f.tombstone(o.bucket), ""))
			}
		}
		ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(f.ctx), timeout)
		resp, err := f.cli.Txn(ctx).If(cmps...).Then(then...).Commit()
		cancel()
		f.etcdResult(err)
		if tooLarge(err) {
			return 0, fmt.Errorf("%w: etcd refused the change as too large for one transaction (%v): split it", ErrTooLarge, err)
		}
		if err != nil {
			return 0, fmt.Errorf("%w: the change was not saved (the gateway keeps serving from its last snapshot; retry once etcd is reachable): %v", ErrUnavailable, err)
		}
		rev = resp.Header.Revision
		if !resp.Succeeded {
			return rev, errConflict
		}
		for _, o := range chunk {
			done[o.key] = true
		}
		for b := range bumped {
			tombMod[b] = rev
		}
	}
	return rev, nil
}

// tooLarge says whether a transaction was refused for its size: by etcd
// (--max-txn-ops, --max-request-bytes), or by the client before sending it
// (gRPC's "trying to send message larger than max": its MaxCallSendMsgSize,
// 2 MiB by default). Neither is an outage.
func tooLarge(err error) bool {
	if errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge) {
		return true
	}
	return status.Code(err) == codes.ResourceExhausted && strings.Contains(err.Error(), "message larger than max")
}

// ErrTooLarge means one change holds more records than one transaction of
// the backend takes (etcd: --max-txn-ops, --max-request-bytes): split it.
var ErrTooLarge = errors.New("the change is too large for one transaction")

type kvItem struct{ k, v []byte }

type fleetBucket struct {
	t    *fleetTx
	name string
}

func (b *fleetBucket) Get(k []byte) []byte {
	if w, ok := b.t.writes[b.name][string(k)]; ok {
		if w.del {
			return nil
		}
		return w.v
	}
	e, ok := b.t.m.get(b.name, string(k))
	if b.t.write {
		b.t.reads[b.t.f.key(b.name, k)] = e.mod
	}
	if !ok {
		return nil
	}
	return e.v
}

func (b *fleetBucket) put(k []byte, w pendingWrite) error {
	if !b.t.write {
		return errors.New("write in a read-only transaction")
	}
	if b.t.writes == nil {
		b.t.writes = make(map[string]map[string]pendingWrite)
	}
	if b.t.writes[b.name] == nil {
		b.t.writes[b.name] = make(map[string]pendingWrite)
	}
	b.t.writes[b.name][string(k)] = w
	return nil
}

func (b *fleetBucket) Put(k, v []byte) error {
	return b.put(k, pendingWrite{v: append([]byte{}, v...)})
}

func (b *fleetBucket) Delete(k []byte) error { return b.put(k, pendingWrite{del: true}) }

// Len is the number of records in the view (without this transaction's
// writes): a size hint.
func (b *fleetBucket) Len() int {
	if t := b.t.m[b.name]; t != nil {
		return t.Len()
	}
	return 0
}

func (b *fleetBucket) ForEach(fn func(k, v []byte) error) error {
	if b.t.write {
		b.t.ranged[b.name] = true
	}
	c := b.cursor(false)
	for k, v := c.Seek(nil); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (b *fleetBucket) Cursor() kvCursor { return b.cursor(b.t.write) }

func (b *fleetBucket) cursor(record bool) *fleetCursor {
	c := &fleetCursor{b: b, ts: treeStream{t: b.t.m[b.name]}, record: record}
	for k, w := range b.t.writes[b.name] {
		c.pend = append(c.pend, pendingKV{k, w})
	}
	sort.Slice(c.pend, func(i, j int) bool { return c.pend[i].k < c.pend[j].k })
	return c
}

type pendingKV struct {
	k string
	w pendingWrite
}

// fleetCursor walks a bucket of the view merged with the transaction's
// own writes; in a write transaction it records the range it read.
type fleetCursor struct {
	b      *fleetBucket
	ts     treeStream
	pend   []pendingKV
	pi     int
	record bool
	rng    *keyRange
}

func (c *fleetCursor) Seek(seek []byte) ([]byte, []byte) {
	from := string(seek)
	c.ts.seek(from)
	c.pi = sort.Search(len(c.pend), func(i int) bool { return c.pend[i].k >= from })
	if c.record {
		c.rng = &keyRange{bucket: c.b.name, from: from}
		c.b.t.ranges = append(c.b.t.ranges, c.rng)
	}
	return c.next()
}

func (c *fleetCursor) Next() ([]byte, []byte) { return c.next() }

func (c *fleetCursor) next() ([]byte, []byte) {
	k, v, ok := c.merged()
	if c.rng != nil {
		if ok {
			c.rng.to = k
		} else {
			c.rng.toEnd = true
		}
	}
	if !ok {
		return nil, nil
	}
	return []byte(k), v
}

// merged returns the next key of the view and the pending writes together.
func (c *fleetCursor) merged() (string, []byte, bool) {
	for {
		it, tok := c.ts.peek()
		var p *pendingKV
		if c.pi < len(c.pend) {
			p = &c.pend[c.pi]
		}
		if !tok && p == nil {
			return "", nil, false
		}
		if p != nil && (!tok || p.k <= it.k) {
			if tok && p.k == it.k {
				c.ts.advance()
			}
			c.pi++
			if p.w.del {
				continue
			}
			return p.k, p.w.v, true
		}
		c.ts.advance()
		return it.k, it.v, true
	}
}

// sliceCursor walks a fixed list of items.
type sliceCursor struct {
	items []kvItem
	i     int
}

func (c *sliceCursor) at() ([]byte, []byte) {
	if c.i < 0 || c.i >= len(c.items) {
		return nil, nil
	}
	return c.items[c.i].k, c.items[c.i].v
}

func (c *sliceCursor) Seek(seek []byte) ([]byte, []byte) {
	c.i = sort.Search(len(c.items), func(i int) bool { return bytes.Compare(c.items[i].k, seek) >= 0 })
	return c.at()
}

func (c *sliceCursor) Next() ([]byte, []byte) {
	if c.i < len(c.items) {
		c.i++
	}
	return c.at()
}

// errBucket is a bucket whose transaction could not start.
type errBucket struct{ err error }

func (e errBucket) Get([]byte) []byte                     { return nil }
func (e errBucket) Put(_, _ []byte) error                 { return e.err }
func (e errBucket) Delete([]byte) error                   { return e.err }
func (e errBucket) ForEach(func(k, v []byte) error) error { return e.err }
func (e errBucket) Cursor() kvCursor                      { return &sliceCursor{} }
