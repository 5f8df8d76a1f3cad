package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// etcd reachability, as one instance sees it.
//
// An etcd call that fails for want of etcd (a write's read or commit timing
// out, or a probe after the watch went silent) starts an outage: logged
// once, shown by Fleet() and the etcd_reachable metric, counted. While it
// lasts, admin writes are refused at once (they would otherwise wait out
// their timeout one after the other behind the store's write lock: an
// outage of seconds left writes unavailable for seconds more), and a
// prober asks etcd every probeInterval, waking the gRPC connection's
// reconnect backoff each time, so the first answer ends the outage and
// wakes the watch: writes recover within about a second of etcd being
// ready.

// probeInterval is how often a down instance asks etcd whether it is back.
const probeInterval = 250 * time.Millisecond

// etcdHealth is the fleet backend's view of etcd's reachability.
type etcdHealth struct {
	mu      sync.Mutex
	down    bool
	since   time.Time // start of the current outage
	lastErr string
	refused int64 // writes refused during the current outage

	outages atomic.Int64 // outages since the store opened
	// suspect asks the prober to check etcd now (the watch went silent).
	suspect chan struct{}
	// back is closed (and replaced) when an outage ends: it wakes the
	// watch from its backoff.
	back chan struct{}
}

func (h *etcdHealth) init() {
	h.suspect = make(chan struct{}, 1)
	h.back = make(chan struct{})
}

// reachable reports whether etcd is reachable, and since when it is not.
func (f *fleetKV) reachable() (bool, time.Time) {
	f.health.mu.Lock()
	defer f.health.mu.Unlock()
	return !f.health.down, f.health.since
}

// etcdFailed records an etcd call that failed for want of etcd; the first
// after a success starts an outage.
func (f *fleetKV) etcdFailed(err error) {
	h := &f.health
	h.mu.Lock()
	if h.down {
		h.lastErr = err.Error()
		h.mu.Unlock()
		return
	}
	// Said (logged, counted) before it is seen: whoever reads the status
	// as down finds the line and the count.
	h.outages.Add(1)
	f.logger().Warn("fleet store: etcd is unreachable; requests are served from the last snapshot, admin writes are refused until it is back",
		zap.String("prefix", f.prefix), zap.String("error", err.Error()))
	h.down, h.since, h.lastErr, h.refused = true, time.Now(), err.Error(), 0
	h.mu.Unlock()
}

// etcdResult records the outcome of an etcd call: a success ends an
// outage, a failure for want of etcd (not a refusal, such as a permission
// error, nor this store closing) starts one.
func (f *fleetKV) etcdResult(err error) {
	switch {
	case err == nil:
		f.etcdOK()
	case f.ctx.Err() == nil && unreachable(err):
		f.etcdFailed(err)
	}
}

// unreachable says whether err means etcd could not answer: a timeout
// (the client waits for a connection until its deadline), an unavailable
// connection, or no leader.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) || errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) ||
		errors.Is(err, rpctypes.ErrLeaderChanged) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// etcdOK records an etcd call that succeeded; it ends an outage.
func (f *fleetKV) etcdOK() {
	h := &f.health
	h.mu.Lock()
	if !h.down {
		h.mu.Unlock()
		return
	}
	lasted, refused := time.Since(h.since), h.refused
	f.logger().Info("fleet store: etcd is reachable again",
		zap.String("prefix", f.prefix), zap.Duration("outage", lasted.Round(time.Millisecond)), zap.Int64("writes_refused", refused))
	h.down = false
	close(h.back)
	h.back = make(chan struct{})
	h.mu.Unlock()
}

// refuseWhileDown fails an admin write at once during an outage.
func (f *fleetKV) refuseWhileDown() error {
	h := &f.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		return nil
	}
	h.refused++
	return fmt.Errorf("%w: the change was not saved: etcd has been unreachable since %s (%s); the gateway keeps serving from its last snapshot: retry once etcd is back",
		ErrUnavailable, h.since.UTC().Format(time.RFC3339), h.lastErr)
}

// suspectEtcd asks the prober to check etcd now.
func (f *fleetKV) suspectEtcd() {
	select {
	case f.health.suspect <- struct{}{}:
	default:
	}
}

// wakeOnRecovery is closed when the current outage ends.
func (f *fleetKV) wakeOnRecovery() <-chan struct{} {
	f.health.mu.Lock()
	defer f.health.mu.Unlock()
	return f.health.back
}

// probeLoop checks etcd when asked to (suspectEtcd), and every
// probeInterval during an outage.
func (f *fleetKV) probeLoop() {
	defer f.wg.Done()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-f.health.suspect:
		case <-tick.C:
			if up, _ := f.reachable(); up {
				continue
			}
		}
		f.probe()
	}
}

// probe asks etcd for one key's count (a quorum read, cheap); a member
// without a leader fails it.
func (f *fleetKV) probe() {
	if up, _ := f.reachable(); !up {
		// gRPC waits longer and longer between reconnects (up to two
		// minutes): ask it to try now.
		if cc := f.cli.ActiveConnection(); cc != nil {
			cc.ResetConnectBackoff()
		}
	}
	// Quick checks during an outage (back to back when they time out: a
	// probe that started just before etcd came back costs at most this
	// much); a suspicion gets a write's patience before it declares one.
	timeout := f.opts.WriteTimeout
	if up, _ := f.reachable(); !up {
		timeout = min(timeout, probeInterval)
	}
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(f.ctx), timeout)
	_, err := f.cli.Get(ctx, f.prefix+"meta/", clientv3.WithCountOnly())
	cancel()
	f.etcdResult(err)
}

func (f *fleetKV) logger() *zap.Logger {
	if f.opts.Logger == nil {
		return zap.NewNop()
	}
	return f.opts.Logger
}
