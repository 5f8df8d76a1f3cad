package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Fleet mode: several gateway instances share one etcd prefix.
//
// The shared records live in etcd under <prefix><bucket>/<key>, mirroring the
// bbolt buckets byte for byte (sealed BYOK records stay ciphertext: every
// instance has the same master key, checked against a sealed canary in
// meta/). Each instance keeps a mirror of the whole prefix in memory
// (mirror.go: persistent trees), built from a linearizable read at
// revision R, in pages, and kept current by a watch from R+1
// (require-leader, progress notifications, a watchdog that recreates a
// silent watch, a reload on compaction that applies only what differs);
// each watch response changes the mirror and the snapshot by what it holds,
// as one swap, so the request hot path keeps reading an immutable snapshot
// and never waits on etcd. Reads go to the mirror, so they keep
// working while etcd is unreachable. Writes are optimistic transactions:
// what fn read is compared by revision at commit, a conflict retries fn, and
// the write returns once the local snapshot has reached its revision.
//
// The request log, usage rollups and "last used" clocks stay in the
// instance's own bbolt file; the admin API merges them across members
// (members.go).

// DefaultFleetPrefix is the etcd key prefix of the shared records.
const DefaultFleetPrefix = "/agentrouter/v1/"

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
	// LoadTimeout bounds the first read of the prefix: the wait for each
	// of its chunks (etcd streams it). Default: 5s.
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
	// MaxTxnOps is the most operations etcd takes in one transaction
	// (etcd's --max-txn-ops): it bounds one write, a bulk creation
	// (CreateTenants) most of all. Default: 128, etcd's default.
	MaxTxnOps int
}

// fleetKV is the etcd backend of the KV seam.
type fleetKV struct {
	cli    *clientv3.Client
	prefix string
	local  *bolt.DB
	opts   FleetOptions

	mu        sync.RWMutex
	published mirror // the published mirror (mirror.go)
	rev       int64  // its revision

	// applyMu serialises changes to the mirror: w is the writer's private
	// trees, apply the store's snapshot applier (kv.go).
	applyMu sync.Mutex
	w       *mirrorWriter
	apply   applyFunc

	// snapRev is the revision the snapshot last reached; revCh is closed
	// (and replaced) whenever it advances.
	revMu   sync.Mutex
	snapRev int64
	revCh   chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reloads atomic.Int64 // full reloads (start, compaction)
	// quickDownUntil (unix nanoseconds): request-path writes fail at once
	// until then (updateQuick).
	quickDownUntil atomic.Int64
	lastErr        atomic.Pointer[string]

	member memberState
	health etcdHealth // etcd's reachability (fleethealth.go)
}

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
	if fo.MaxTxnOps <= 0 {
		fo.MaxTxnOps = 128
	}
	if fo.InstanceID == "" {
		h, _ := os.Hostname()
		fo.InstanceID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleetKV{cli: fo.Client, prefix: fo.Prefix, local: local, opts: fo, published: mirror{}, w: newMirrorWriter(),
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
	s.kv = f
	fail := func(err error) (*Store, error) {
		f.cancel()
		f.wg.Wait()
		s.db.Close()
		return nil, err
	}
	if err := f.load(); err != nil {
		return fail(fmt.Errorf("%w: could not read prefix %s within %v (%v): check the endpoints, TLS settings and credentials", ErrUnavailable, f.prefix, fo.LoadTimeout, err))
	}
	// Watch from here on: the writes below wait for the mirror to reach
	// their revision.
	f.wg.Add(2)
	go f.watch()
	go f.probeLoop()
	if err := s.kv.update(s.checkCanary); err != nil {
		return fail(fmt.Errorf("fleet store: %w", err))
	}
	// Re-sealing and migrations run in small revision-compared
	// transactions (another instance may be doing the same: the compare
	// makes one of them retry and find nothing to do).
	if err := s.prepare(); err != nil {
		return fail(fmt.Errorf("fleet store: %w", err))
	}
	f.setApply(s.applyChanges)
	if err := s.loadSnapshot(false); err != nil {
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

// load replaces the mirror with a linearizable read of the prefix at one
// revision, and applies what changed to the snapshot (at start there is no
// snapshot yet: the store loads it from the mirror).
func (f *fleetKV) load() error {
	w := newMirrorWriter()
	put := func(kvs []*mvccpb.KeyValue) {
		for _, kv := range kvs {
			if b, k, ok := f.split(kv.Key); ok {
				w.put(b, k, nonNil(kv.Value), kv.ModRevision)
			}
		}
	}
	rev, err := f.readStream(put)
	if status.Code(err) == codes.Unimplemented {
		rev, err = f.readByBucket(put)
	}
	if err != nil {
		return err
	}
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	f.mu.RLock()
	old := f.published
	f.mu.RUnlock()
	next := w.publish(nil)
	var changes []change
	for _, b := range schema {
		// At start nothing follows the mirror yet: the store loads its
		// snapshot from it. A reload passes on what differs.
		if b.snapshot && f.apply != nil {
			name := string(b.name)
			diffTrees(old[name], next[name], func(k string, v []byte) {
				changes = append(changes, change{b: b, k: []byte(k), v: v})
			})
		}
	}
	f.mu.Lock()
	f.w, f.published, f.rev = w, next, rev
	f.mu.Unlock()
	f.reloads.Add(1)
	f.changed(next, rev, changes)
	return nil
}

// readStream reads the prefix with etcd's RangeStream (3.7 and later): the
// server sends it in chunks at one revision, without counting the whole
// range for each (a Range with a limit does: paging 1.8 million records
// cost seconds of etcd CPU). Each chunk must arrive within LoadTimeout.
func (f *fleetKV) readStream(put func([]*mvccpb.KeyValue)) (int64, error) {
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	idle := time.AfterFunc(f.opts.LoadTimeout, cancel)
	defer idle.Stop()
	stream, err := f.cli.GetStream(ctx, f.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	var rev int64
	for resp := range stream {
		if err := resp.Err(); err != nil {
			return 0, err
		}
		idle.Reset(f.opts.LoadTimeout)
		put(resp.Kvs)
		if resp.Header != nil {
			rev = resp.Header.Revision
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if rev == 0 {
		return 0, errors.New("the range stream ended without a revision")
	}
	return rev, nil
}

// readByBucket reads the prefix bucket by bucket at one revision (servers
// before RangeStream): one Get per bucket, without a limit, so that etcd
// counts each range once.
func (f *fleetKV) readByBucket(put func([]*mvccpb.KeyValue)) (int64, error) {
	var rev int64
	for _, b := range schema {
		if b.scope == local {
			continue
		}
		start := f.key(string(b.name), nil)
		opts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(start))}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		ctx, cancel := context.WithTimeout(f.ctx, f.opts.LoadTimeout)
		resp, err := f.cli.Get(ctx, start, opts...)
		cancel()
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		put(resp.Kvs)
	}
	return rev, nil
}

// changed applies changes to the snapshot and publishes the revision.
func (f *fleetKV) changed(m mirror, rev int64, changes []change) {
	if len(changes) > 0 && f.apply != nil {
		if err := f.apply(&fleetTx{f: f, m: m, rev: rev}, changes); err != nil {
			msg := err.Error()
			f.lastErr.Store(&msg)
		}
	}
	f.advance(rev)
}

func (f *fleetKV) setApply(fn applyFunc) {
	f.applyMu.Lock()
	f.apply = fn
	f.applyMu.Unlock()
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
			f.applyEvents(resp.Events)
		}
	}
}

// applyEvents applies one watch response's events to the mirror (the
// trees' copy-on-write keeps views in flight intact) and its changes to
// snapshot buckets to the snapshot, as one swap.
func (f *fleetKV) applyEvents(events []*clientv3.Event) {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	var rev int64
	var changes []change
	for _, ev := range events {
		rev = max(rev, ev.Kv.ModRevision)
		b, k, ok := f.split(ev.Kv.Key)
		if !ok {
			continue
		}
		var v []byte
		if ev.Type == clientv3.EventTypeDelete {
			f.w.del(b, k)
		} else {
			v = nonNil(ev.Kv.Value)
			f.w.put(b, k, v, ev.Kv.ModRevision)
		}
		if bk := bucketsByName[b]; bk != nil && bk.snapshot {
			changes = append(changes, change{b: bk, k: []byte(k), v: v})
		}
	}
	f.mu.Lock()
	next := f.w.publish(f.published)
	f.published = next
	if rev > f.rev {
		f.rev = rev
	}
	rev = f.rev
	f.mu.Unlock()
	f.changed(next, rev, changes)
}

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
	st := s.kv.status()
	if st.Enabled {
		s.snapMu.Lock()
		st.Unopenable = int64(len(s.unopenable))
		s.snapMu.Unlock()
	}
	return st
}

func (f *fleetKV) status() FleetStatus {
	st := FleetStatus{Enabled: true, Prefix: f.prefix, InstanceID: f.opts.InstanceID, Reloads: f.reloads.Load()}
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
func (s *Store) WaitRevision(rev int64, d time.Duration) bool { return s.kv.waitRev(rev, d) }

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
