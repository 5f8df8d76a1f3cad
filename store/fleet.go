package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Fleet mode: several gateway instances share one etcd prefix.
//
// The shared records live in etcd under <prefix><bucket>/<key>, mirroring the
// bbolt buckets byte for byte (sealed BYOK records stay ciphertext: every
// instance has the same master key, checked against a sealed canary in
// meta/). Each instance keeps a mirror of the whole prefix in memory, built
// from a linearizable read at revision R and kept current by a watch from
// R+1 (require-leader, progress notifications, a watchdog that recreates a
// silent watch, a full reload on compaction); each watch response is applied
// as one snapshot swap, so the request hot path keeps reading an immutable
// snapshot and never waits on etcd. Reads go to the mirror, so they keep
// working while etcd is unreachable. Writes are optimistic transactions:
// what fn read is compared by revision at commit, a conflict retries fn, and
// the write returns once the local snapshot has reached its revision.
//
// The request log, usage rollups and "last used" clocks stay in the
// instance's own bbolt file; the admin API merges them across members
// (members.go).

// DefaultFleetPrefix is the etcd key prefix of the shared records.
const DefaultFleetPrefix = "/agentrouter/v1/"

// localBuckets stay in the instance's bbolt file in fleet mode.
var localBuckets = map[string]bool{"last_used": true, "logs": true, "usage": true, "credential_usage": true}

// SharedBuckets are the buckets that live in etcd in fleet mode (and that
// MigrateToFleet copies): accounts, API-key hashes and ids, sealed BYOK
// records and their versions, credential health, byok_only policies,
// console people, memberships, emails, setup links, sessions and their
// index, the sign-in throttle, and the /v1/responses id owners.
var SharedBuckets = []string{"accounts", "keys", "key_ids", "byok", "byok_versions", "byok_health", "byok_policies",
	"users", "user_emails", "user_tokens", "sessions", "responses", "people", "person_sessions", "signin_throttle",
	"usage_readers", "reconcile_ledger", "reconcile_keys", "reconcile_runs", "reconcile_accepted"}

// bucketMembers holds the lease-bound member registrations (members.go).
var bucketMembers = []byte("members")

// ErrUnavailable means the shared store (etcd) could not be reached or has
// no quorum: reads are served from the last snapshot, writes are refused.
var ErrUnavailable = errors.New("the fleet store (etcd) is unavailable")

// FleetOptions configure OpenFleet.
type FleetOptions struct {
	// Client is the etcd client. The store does not close it.
	Client *clientv3.Client
	// Prefix is the key prefix of the shared records. Default:
	// DefaultFleetPrefix.
	Prefix string
	// InstanceID names this instance under members/. Default: the host
	// name and the process id.
	InstanceID string
	// PeerAddress is where other members reach this instance's peer
	// listener for fleet-wide logs and usage ("" for none).
	PeerAddress string
	// LoadTimeout bounds the first read of the prefix. Default: 5s.
	LoadTimeout time.Duration
	// WriteTimeout bounds one etcd write. Default: 3s.
	WriteTimeout time.Duration
	// SyncTimeout bounds how long a write waits for the local snapshot to
	// reach its revision. Default: 2s.
	SyncTimeout time.Duration
	// WatchdogInterval is how often the watch is asked for a progress
	// notification; a watch silent for three intervals is recreated (a
	// member that lost quorum, or a stuck stream). Default: 1s.
	WatchdogInterval time.Duration
	// NoRegistration skips the member registration (for tools such as
	// the migrate command, which are not gateway instances).
	NoRegistration bool
	// MemberTTL is the lease TTL of the member registration. Default: 10s.
	MemberTTL time.Duration
	// Logger gets a line when etcd becomes unreachable and when it is back
	// (fleethealth.go). Default: none.
	Logger *zap.Logger
}

type mirrorEntry struct {
	v   []byte
	mod int64
}

// fleetKV is the etcd backend of the KV seam.
type fleetKV struct {
	cli    *clientv3.Client
	prefix string
	local  *bolt.DB
	opts   FleetOptions

	mu      sync.RWMutex
	buckets map[string]map[string]mirrorEntry
	rev     int64 // revision of the mirror

	// snapRev is the revision the snapshot was last rebuilt at; revCh is
	// closed (and replaced) whenever it advances.
	revMu   sync.Mutex
	snapRev int64
	revCh   chan struct{}

	onChange func() error // rebuilds the snapshot from the mirror

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reloads atomic.Int64 // full reloads (start, compaction)
	// quickDownUntil (unix nanoseconds): request-path writes fail at once
	// until then (updateQuick).
	quickDownUntil atomic.Int64
	unopenable     atomic.Int64 // sealed records this instance's keys could not open
	lastErr        atomic.Pointer[string]

	member memberState
	health etcdHealth // etcd's reachability (fleethealth.go)

	// opened caches the credentials the last rebuild opened (only the
	// rebuild, under Store.rebuildMu, touches it).
	opened map[credKey]openedSecret
}

type openedSecret struct {
	kid, nonce, ct string
	key            []byte
}

// open opens a sealed record, from the last rebuild's cache when the record
// is unchanged, and records it in next.
func (f *fleetKV) open(sl *sealer, ck credKey, r *sealedRecord, next map[credKey]openedSecret) ([]byte, error) {
	if o, ok := f.opened[ck]; ok && o.kid == r.MasterKeyID && o.nonce == string(r.Nonce) && o.ct == string(r.Ciphertext) {
		next[ck] = o
		return o.key, nil
	}
	pt, err := sl.open(r.MasterKeyID, ck.account, ck.provider, r.Nonce, r.Ciphertext)
	if err == nil {
		next[ck] = openedSecret{r.MasterKeyID, string(r.Nonce), string(r.Ciphertext), pt}
	}
	return pt, err
}

// snapshotBuckets are the buckets the request-path snapshot is built from;
// a watch burst that touches none of them (sessions, users, members)
// advances the revision without a rebuild.
var snapshotBuckets = map[string]bool{"accounts": true, "keys": true, "byok": true, "byok_health": true, "byok_policies": true}

func newFleetKV(local *bolt.DB, fo FleetOptions) *fleetKV {
	if fo.Prefix == "" {
		fo.Prefix = DefaultFleetPrefix
	}
	if fo.LoadTimeout <= 0 {
		fo.LoadTimeout = 5 * time.Second
	}
	if fo.WriteTimeout <= 0 {
		fo.WriteTimeout = 3 * time.Second
	}
	if fo.SyncTimeout <= 0 {
		fo.SyncTimeout = 2 * time.Second
	}
	if fo.WatchdogInterval <= 0 {
		fo.WatchdogInterval = time.Second
	}
	if fo.MemberTTL <= 0 {
		fo.MemberTTL = 10 * time.Second
	}
	if fo.InstanceID == "" {
		h, _ := os.Hostname()
		fo.InstanceID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleetKV{cli: fo.Client, prefix: fo.Prefix, local: local, opts: fo, buckets: make(map[string]map[string]mirrorEntry),
		revCh: make(chan struct{}), ctx: ctx, cancel: cancel}
	f.health.init()
	return f
}

// OpenFleet opens a store in fleet mode: the shared records in etcd (see
// FleetOptions), the request log, usage and clocks in the bbolt file at
// path. It fails when etcd cannot be read within LoadTimeout, or when the
// master key differs from the one the fleet's records are sealed under.
func OpenFleet(path string, masterKey []byte, opts Options, fo FleetOptions) (*Store, error) {
	if fo.Client == nil {
		return nil, errors.New("fleet mode needs an etcd client")
	}
	s, err := openLocal(path, masterKey, opts)
	if err != nil {
		return nil, err
	}
	f := newFleetKV(s.db, fo)
	fo = f.opts
	s.kv, s.fleet = f, f
	f.onChange = s.rebuild
	fail := func(err error) (*Store, error) {
		f.cancel()
		f.wg.Wait()
		s.db.Close()
		return nil, err
	}
	if err := f.load(); err != nil {
		return fail(fmt.Errorf("%w: could not read prefix %s within %v (%v): check the endpoints, TLS settings and credentials", ErrUnavailable, f.prefix, fo.LoadTimeout, err))
	}
	// Watch from here on: the writes below wait for the snapshot to reach
	// their revision.
	f.wg.Add(2)
	go f.watch()
	go f.probeLoop()
	if err := s.kv.update(s.checkMasterKey); err != nil {
		return fail(fmt.Errorf("fleet store: %w", err))
	}
	// Re-seal records sealed under an old master key, in small
	// revision-compared transactions (another instance may be doing the
	// same: the compare makes one of them retry and find nothing to do).
	for {
		var n int
		if err := s.kv.update(func(tx kvTx) (err error) { n, err = s.resealOld(tx, 50); return err }); err != nil {
			return fail(fmt.Errorf("fleet store: re-sealing under the current master key: %w", err))
		}
		if n < 50 {
			break
		}
	}
	for {
		var n int
		if err := s.kv.update(func(tx kvTx) (err error) { n, err = s.resealUsageReaders(tx, 50); return err }); err != nil {
			return fail(fmt.Errorf("fleet store: re-sealing usage readers under the current master key: %w", err))
		}
		if n < 50 {
			break
		}
	}
	// Console people (migrate_users.go), in etcd-sized transactions.
	if err := s.migrateUsers(40); err != nil {
		return fail(fmt.Errorf("fleet store: migrating console users: %w", err))
	}
	if err := s.rebuild(); err != nil {
		return fail(fmt.Errorf("fleet store: %w", err))
	}
	if !fo.NoRegistration {
		f.startMember()
	}
	s.log = startLogWriter(s, opts)
	return s, nil
}

// close stops the watch and the member registration.
func (f *fleetKV) close() {
	f.stopMember()
	f.cancel()
	f.wg.Wait()
}

// key is the etcd key of bucket/k.
func (f *fleetKV) key(bucket string, k []byte) string {
	return f.prefix + bucket + "/" + string(k)
}

// split parses an etcd key into bucket and key.
func (f *fleetKV) split(key []byte) (bucket, k string, ok bool) {
	rest, ok := bytes.CutPrefix(key, []byte(f.prefix))
	if !ok {
		return "", "", false
	}
	b, kk, ok := bytes.Cut(rest, []byte("/"))
	return string(b), string(kk), ok
}

// load replaces the mirror with a linearizable read of the prefix and
// rebuilds the snapshot.
func (f *fleetKV) load() error {
	ctx, cancel := context.WithTimeout(f.ctx, f.opts.LoadTimeout)
	defer cancel()
	resp, err := f.cli.Get(ctx, f.prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	m := make(map[string]map[string]mirrorEntry)
	for _, kv := range resp.Kvs {
		b, k, ok := f.split(kv.Key)
		if !ok {
			continue
		}
		if m[b] == nil {
			m[b] = make(map[string]mirrorEntry)
		}
		m[b][k] = mirrorEntry{kv.Value, kv.ModRevision}
	}
	f.mu.Lock()
	f.buckets, f.rev = m, resp.Header.Revision
	f.mu.Unlock()
	f.reloads.Add(1)
	return f.changed(resp.Header.Revision)
}

// changed rebuilds the snapshot and publishes its revision.
func (f *fleetKV) changed(rev int64) error {
	if f.onChange != nil {
		if err := f.onChange(); err != nil {
			msg := err.Error()
			f.lastErr.Store(&msg)
			return err
		}
	}
	f.advance(rev)
	return nil
}

func (f *fleetKV) advance(rev int64) {
	f.revMu.Lock()
	if rev > f.snapRev {
		f.snapRev = rev
		close(f.revCh)
		f.revCh = make(chan struct{})
	}
	f.revMu.Unlock()
}

// waitRev waits until the snapshot has reached rev, at most d.
func (f *fleetKV) waitRev(rev int64, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		f.revMu.Lock()
		cur, ch := f.snapRev, f.revCh
		f.revMu.Unlock()
		if cur >= rev {
			return true
		}
		select {
		case <-ch:
		case <-t.C:
			return false
		case <-f.ctx.Done():
			return false
		}
	}
}

// watch keeps the mirror current until close.
func (f *fleetKV) watch() {
	defer f.wg.Done()
	backoff := 50 * time.Millisecond
	reload := false
	for f.ctx.Err() == nil {
		if reload {
			if err := f.load(); err != nil {
				f.sleepUntilRecovery(backoff)
				backoff = min(backoff*2, 2*time.Second)
				continue
			}
			reload = false
		}
		switch f.watchOnce() {
		case watchCompacted:
			reload = true
			backoff = 50 * time.Millisecond
		case watchBroken:
			f.suspectEtcd()
			f.sleepUntilRecovery(backoff)
			backoff = min(backoff*2, 2*time.Second)
		case watchHealthy:
			backoff = 50 * time.Millisecond
		}
	}
}

func (f *fleetKV) sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-f.ctx.Done():
	}
}

// sleepUntilRecovery sleeps d, or until an etcd outage ends.
func (f *fleetKV) sleepUntilRecovery(d time.Duration) {
	select {
	case <-time.After(d):
	case <-f.wakeOnRecovery():
	case <-f.ctx.Done():
	}
}

type watchEnd int

const (
	watchHealthy   watchEnd = iota // ended after delivering something: recreate at once
	watchBroken                    // ended without progress: back off
	watchCompacted                 // the revision was compacted: reload
)

// watchOnce runs one watch from the mirror's revision + 1 until it fails,
// goes silent or the store closes.
func (f *fleetKV) watchOnce() watchEnd {
	f.mu.RLock()
	from := f.rev + 1
	f.mu.RUnlock()
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(f.ctx))
	defer cancel()
	wch := f.cli.Watch(ctx, f.prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify())
	tick := time.NewTicker(f.opts.WatchdogInterval)
	defer tick.Stop()
	lastHeard := time.Now()
	progressed := false
	for {
		select {
		case <-f.ctx.Done():
			return watchHealthy
		case <-tick.C:
			if time.Since(lastHeard) > 3*f.opts.WatchdogInterval {
				// Silent: the member may be partitioned, or the stream
				// stuck (etcd-io/etcd#12534). Recreate it.
				return watchBroken
			}
			// Asynchronously: on a hung member the call blocks, and the
			// loop must keep draining the watch meanwhile.
			go func() {
				rctx, rcancel := context.WithTimeout(ctx, f.opts.WatchdogInterval)
				_ = f.cli.RequestProgress(rctx)
				rcancel()
			}()
		case resp, ok := <-wch:
			if !ok {
				if progressed {
					return watchHealthy
				}
				return watchBroken
			}
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				return watchCompacted
			}
			if err := resp.Err(); err != nil {
				msg := err.Error()
				f.lastErr.Store(&msg)
				if progressed {
					return watchHealthy
				}
				return watchBroken
			}
			lastHeard = time.Now()
			progressed = true
			f.etcdOK()
			if resp.IsProgressNotify() {
				// Every event up to the header's revision has been
				// delivered: the snapshot is current at that revision.
				f.mu.Lock()
				if resp.Header.Revision > f.rev {
					f.rev = resp.Header.Revision
				}
				f.mu.Unlock()
				f.advance(resp.Header.Revision)
				continue
			}
			if len(resp.Events) == 0 {
				continue
			}
			f.apply(resp.Events)
		}
	}
}

// apply applies one watch response's events to the mirror (copy-on-write per
// bucket, so views in flight keep theirs) and swaps the snapshot once.
func (f *fleetKV) apply(events []*clientv3.Event) {
	f.mu.Lock()
	copied := make(map[string]bool)
	nb := make(map[string]map[string]mirrorEntry, len(f.buckets))
	for b, m := range f.buckets {
		nb[b] = m
	}
	var rev int64
	rebuild := false
	for _, ev := range events {
		b, k, ok := f.split(ev.Kv.Key)
		rev = max(rev, ev.Kv.ModRevision)
		if !ok {
			continue
		}
		rebuild = rebuild || snapshotBuckets[b]
		if !copied[b] {
			m := make(map[string]mirrorEntry, len(nb[b])+1)
			for kk, e := range nb[b] {
				m[kk] = e
			}
			nb[b], copied[b] = m, true
		}
		if ev.Type == clientv3.EventTypeDelete {
			delete(nb[b], k)
		} else {
			nb[b][k] = mirrorEntry{ev.Kv.Value, ev.Kv.ModRevision}
		}
	}
	f.buckets = nb
	if rev > f.rev {
		f.rev = rev
	}
	rev = f.rev
	f.mu.Unlock()
	if !rebuild {
		f.advance(rev)
		return
	}
	_ = f.changed(rev)
}

// --- transactions ---

func (f *fleetKV) view(fn func(tx kvTx) error) error {
	f.mu.RLock()
	t := &fleetTx{f: f, buckets: f.buckets, rev: f.rev}
	f.mu.RUnlock()
	defer t.rollbackLocal()
	return fn(t)
}

var errConflict = errors.New("conflict")

// maxTxnOps is etcd's default limit of operations per transaction.
const maxTxnOps = 128

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
func (s *Store) updateQuick(fn func(tx kvTx) error) error {
	if s.fleet == nil {
		return s.kv.update(fn)
	}
	return s.fleet.updateQuick(fn)
}

func (f *fleetKV) updateWithin(fn func(tx kvTx) error, writeTimeout, syncTimeout time.Duration) error {
	for attempt := 0; ; attempt++ {
		f.mu.RLock()
		t := &fleetTx{f: f, buckets: f.buckets, rev: f.rev, write: true, reads: make(map[string]int64), ranged: make(map[string]bool)}
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

// fleetTx is a transaction on the mirror at revision rev; a write
// transaction records what it read and buffers what it writes.
type fleetTx struct {
	f       *fleetKV
	buckets map[string]map[string]mirrorEntry
	rev     int64
	write   bool
	reads   map[string]int64 // etcd key -> mod revision read (0: absent)
	ranged  map[string]bool  // buckets read as a whole
	writes  map[string]map[string]pendingWrite
	nwrites int
	local   *bolt.Tx
}

func (t *fleetTx) Bucket(name []byte) kvBucket {
	if localBuckets[string(name)] {
		if t.local == nil {
			lt, err := t.f.local.Begin(t.write)
			if err != nil {
				return errBucket{err}
			}
			t.local = lt
		}
		return boltBucket{t.local.Bucket(name)}
	}
	return &fleetBucket{t: t, name: string(name)}
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

// tombstonesBucket holds one key per shared bucket, <prefix>tombstones/<bucket>,
// rewritten by every transaction that deletes from that bucket. etcd's
// range compare sees the keys a range holds now: a key deleted since the
// read is simply absent, so "no key of the bucket changed after rev" holds
// across a deletion. A transaction that read a bucket as a range therefore
// also compares the bucket's tombstone (not rewritten after rev), which
// every deletion moves.
const tombstonesBucket = "tombstones"

// tombstone is the etcd key of bucket's tombstone.
func (f *fleetKV) tombstone(bucket string) string {
	return f.key(tombstonesBucket, []byte(bucket))
}

// commit writes the buffered changes if nothing fn read changed since rev:
// the whole read set is compared, absent and deleted keys included. A key
// read with Get compares its mod revision (0 for a key that was absent,
// which etcd compares as absent); a bucket read as a range (ForEach, a
// cursor) compares that no key in it has a mod revision after rev (changed
// or created) and that its tombstone was not rewritten after rev (nothing
// deleted). When the keys read one by one exceed what one transaction may
// compare, their buckets are guarded as ranges instead (coarser, never
// weaker).
//
// A change of more records than one etcd transaction takes (128 operations
// by default) is committed in chunks when it only deletes (deleting an
// account with many keys, pruning): every chunk carries the compares of
// what fn read and has not been deleted yet, and the records of the
// accounts bucket go last, so an account disappears only with its last
// dependants; a conflict in a later chunk retries fn, which then deletes
// what is left. A chunk's own tombstone writes are expected by the next
// chunk's compares.
func (t *fleetTx) commit(timeout time.Duration) (int64, error) {
	f := t.f
	type op struct {
		key    string
		bucket string
		op     clientv3.Op
		del    bool
	}
	var ops, last []op
	deletesOnly := true
	deletedFrom := make(map[string]bool)
	for b, m := range t.writes {
		for k, w := range m {
			key := f.key(b, []byte(k))
			o := op{key: key, bucket: b, del: w.del}
			if w.del {
				o.op = clientv3.OpDelete(key)
				deletedFrom[b] = true
			} else {
				o.op, deletesOnly = clientv3.OpPut(key, string(w.v)), false
			}
			if b == string(bucketAccounts) {
				last = append(last, o)
			} else {
				ops = append(ops, o)
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].key < ops[j].key })
	ops = append(ops, last...)
	// Each chunk leaves room for the tombstones of the buckets it deletes
	// from.
	chunkOps := maxTxnOps - len(deletedFrom)
	if len(ops) > chunkOps && !deletesOnly {
		return 0, fmt.Errorf("a change of %d records is too large for one etcd transaction (limit %d)", len(ops)+len(deletedFrom), maxTxnOps)
	}
	ranged := make(map[string]bool, len(t.ranged))
	for b := range t.ranged {
		ranged[b] = true
	}
	if 2*len(ranged)+len(t.reads) > maxTxnOps {
		for k := range t.reads {
			if b, _, ok := f.split([]byte(k)); ok {
				ranged[b] = true
			}
		}
	}
	tombMod := make(map[string]int64) // tombstones this commit rewrote, at the revision it did
	done := make(map[string]bool)     // deleted by an earlier chunk
	var rev int64
	for len(ops) > 0 {
		n := min(len(ops), chunkOps)
		chunk := ops[:n]
		ops = ops[n:]
		var cmps []clientv3.Cmp
		for b := range ranged {
			// No key of the bucket changed or appeared after rev...
			start := f.key(b, nil)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(start), "<", t.rev+1).WithRange(clientv3.GetPrefixRangeEnd(start)))
			// ... and none was deleted: by another transaction after rev,
			// or by anything but this commit's earlier chunks.
			if mod, ok := tombMod[b]; ok {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(f.tombstone(b)), "=", mod))
			} else {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(f.tombstone(b)), "<", t.rev+1))
			}
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
	e, ok := b.t.buckets[b.name][string(k)]
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
	return b.put(k, pendingWrite{v: append([]byte(nil), v...)})
}

func (b *fleetBucket) Delete(k []byte) error { return b.put(k, pendingWrite{del: true}) }

// items returns the bucket's records in key order, with this transaction's
// writes applied.
func (b *fleetBucket) items() []kvItem {
	if b.t.write {
		b.t.ranged[b.name] = true
	}
	base := b.t.buckets[b.name]
	ws := b.t.writes[b.name]
	out := make([]kvItem, 0, len(base)+len(ws))
	for k, e := range base {
		if _, ok := ws[k]; !ok {
			out = append(out, kvItem{[]byte(k), e.v})
		}
	}
	for k, w := range ws {
		if !w.del {
			out = append(out, kvItem{[]byte(k), w.v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].k, out[j].k) < 0 })
	return out
}

func (b *fleetBucket) ForEach(fn func(k, v []byte) error) error {
	for _, it := range b.items() {
		if err := fn(it.k, it.v); err != nil {
			return err
		}
	}
	return nil
}

func (b *fleetBucket) Cursor() kvCursor { return &sliceCursor{items: b.items(), i: -1} }

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

// --- status ---

// FleetStatus describes the fleet backend of a store.
type FleetStatus struct {
	Enabled    bool   `json:"enabled"`
	Prefix     string `json:"prefix,omitempty"`
	InstanceID string `json:"instance,omitempty"`
	// Revision is the etcd revision the snapshot was built at.
	Revision int64 `json:"revision,omitempty"`
	// Reloads counts full reads of the prefix (start and compaction).
	Reloads int64 `json:"reloads,omitempty"`
	// Unopenable counts sealed credentials this instance's master keys
	// could not open (a master-key rotation in progress).
	Unopenable int64  `json:"unopenable,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	// EtcdReachable says whether etcd answers this instance (fleethealth.go);
	// while it does not, EtcdUnreachableSince says since when.
	// EtcdOutages counts the outages since the instance started.
	EtcdReachable        *bool      `json:"etcd_reachable,omitempty"`
	EtcdUnreachableSince *time.Time `json:"etcd_unreachable_since,omitempty"`
	EtcdOutages          int64      `json:"etcd_outages,omitempty"`
}

// Fleet reports the store's fleet status; Enabled is false single-node.
func (s *Store) Fleet() FleetStatus {
	f := s.fleet
	if f == nil {
		return FleetStatus{}
	}
	st := FleetStatus{Enabled: true, Prefix: f.prefix, InstanceID: f.opts.InstanceID,
		Reloads: f.reloads.Load(), Unopenable: f.unopenable.Load()}
	f.revMu.Lock()
	st.Revision = f.snapRev
	f.revMu.Unlock()
	if e := f.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	up, since := f.reachable()
	st.EtcdReachable, st.EtcdOutages = &up, f.health.outages.Load()
	if !up {
		since = since.UTC()
		st.EtcdUnreachableSince = &since
	}
	return st
}

// WaitRevision waits until the snapshot reached etcd revision rev, at most
// d, and reports whether it did. Single-node it returns true.
func (s *Store) WaitRevision(rev int64, d time.Duration) bool {
	if s.fleet == nil {
		return true
	}
	return s.fleet.waitRev(rev, d)
}

// fleetCanary is the sealed check value in meta/: an instance whose master
// keys cannot open it refuses to start.
var fleetCanary = []byte("canary")

type canaryRecord struct {
	MasterKeyID string `json:"kid"`
	Nonce       []byte `json:"nonce"`
	Ciphertext  []byte `json:"ciphertext"`
}

// checkCanary opens (or, in a new fleet, creates) the sealed canary, and
// re-seals it under the current key after a master-key rotation.
func (s *Store) checkCanary(tx kvTx) error {
	meta := tx.Bucket(bucketMeta)
	const account, provider = "\x00fleet", "canary"
	if v := meta.Get(fleetCanary); v != nil {
		var r canaryRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%w: the fleet's sealed check value is corrupt: %v", ErrWrongMasterKey, err)
		}
		pt, err := s.sealer.open(r.MasterKeyID, account, provider, r.Nonce, r.Ciphertext)
		if err != nil {
			return fmt.Errorf("%w: this instance's master key (id %s) cannot open the fleet's sealed check value (sealed under key id %s): every instance of a fleet needs the same master key", ErrWrongMasterKey, s.sealer.current, r.MasterKeyID)
		}
		clear(pt)
		if r.MasterKeyID == s.sealer.current {
			return nil
		}
	}
	kid, nonce, ct, err := s.sealer.seal(account, provider, []byte("agent_router fleet canary"))
	if err != nil {
		return err
	}
	return putJSON(meta, fleetCanary, canaryRecord{kid, nonce, ct})
}
