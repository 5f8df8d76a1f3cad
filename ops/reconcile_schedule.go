package ops

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Schedule runs the reconciliation of every scope with a usage reader
// (ReconcileAll) on one instance of a fleet, every Interval: the instance
// that holds the store's election "reconcile" (an etcd lease; single-node,
// the one instance). It lives as long as the store, across config
// reloads, and reads the running config at each pass.
type Schedule struct {
	Store *store.Store
	// Current returns the operations of the running config and the
	// interval between passes; nil operations (or no Reconcile) skip the
	// pass: reconciliation is off or no config runs.
	Current func() (*Ops, time.Duration)
	// TTL is the election's lease: how long a dead leader holds the
	// schedule before another instance takes it. Default: 15s.
	TTL time.Duration
	// Leading, when set, is told when this instance starts and stops
	// leading (a metric).
	Leading func(bool)
}

// Run campaigns for the schedule and, while this instance leads, passes
// every interval (with up to 5 % jitter, so a fleet restarted at once does
// not hit the providers' admin APIs on the same second), until ctx ends.
// The first pass comes one interval (at most a minute) after taking the
// lead. A lost lease cancels the pass in progress (a run cancelled midway
// leaves the ledger as it was).
func (sc *Schedule) Run(ctx context.Context) {
	ttl := sc.TTL
	if ttl <= 0 {
		ttl = 15 * time.Second
	}
	sc.Store.Lead(ctx, "reconcile", ttl, func(lctx context.Context) {
		if sc.Leading != nil {
			sc.Leading(true)
			defer sc.Leading(false)
		}
		sc.lead(lctx)
	})
}

// lead passes while ctx lasts. The interval is read again every second
// (a reload may change it, and the first config may not run yet when the
// lead is taken).
func (sc *Schedule) lead(ctx context.Context) {
	led := time.Now()
	var last time.Time // the last pass; zero before the first
	var extra time.Duration
	for {
		o, iv := sc.Current()
		if iv <= 0 {
			iv = time.Hour
		}
		due := led.Add(min(iv, time.Minute))
		if !last.IsZero() {
			due = last.Add(iv + extra)
		}
		if wait := time.Until(due); wait > 0 || o == nil || o.Reconcile == nil {
			if !sleep(ctx, max(min(wait, time.Second), 100*time.Millisecond)) {
				return
			}
			continue
		}
		o.ReconcileAll(ctx)
		last, extra = time.Now(), jitter(iv)
	}
}

// jitter is up to 5 % of d.
func jitter(d time.Duration) time.Duration { return time.Duration(rand.Int64N(int64(d)/20 + 1)) }

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
