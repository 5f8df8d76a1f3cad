package store

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Elections: work that one instance of a fleet must do alone (the hourly
// reconciliation reads the providers' admin APIs, which rate-limit) runs
// on the instance that holds an etcd election under <prefix>elections/<name>,
// bound to a lease. A leader that stops cleanly resigns at once; one that
// dies (or is cut off from etcd) loses the lease when its TTL runs out,
// and the next candidate takes over. Single-node, the one instance leads.

// MinElectionTTL is the shortest lease an election takes.
const MinElectionTTL = time.Second

// fleetBackend is the etcd backend, nil single-node.
func (s *Store) fleetBackend() *fleetKV {
	f, _ := s.kv.(*fleetKV)
	return f
}

// Lead runs fn while this instance leads the election called name, and
// returns when ctx ends. fn's context ends when leadership is lost (the
// lease expired, etcd was unreachable for longer than ttl) or ctx ends;
// after fn returns, the instance resigns and campaigns again. Single-node,
// fn runs once, with ctx. ttl is rounded up to whole seconds (etcd's
// lease unit), at least MinElectionTTL.
func (s *Store) Lead(ctx context.Context, name string, ttl time.Duration, fn func(ctx context.Context)) {
	f := s.fleetBackend()
	if f == nil {
		fn(ctx)
		return
	}
	secs := int((max(ttl, MinElectionTTL) + time.Second - 1) / time.Second)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if f.leadOnce(ctx, name, secs, fn) {
			backoff = 100 * time.Millisecond
			continue
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// leadOnce campaigns once and, when elected, runs fn; it reports whether
// it led.
func (f *fleetKV) leadOnce(ctx context.Context, name string, secs int, fn func(ctx context.Context)) bool {
	sess, err := concurrency.NewSession(f.cli, concurrency.WithTTL(secs), concurrency.WithContext(ctx))
	if err != nil {
		return false
	}
	el := concurrency.NewElection(sess, f.electionKey(name))
	campaigned := make(chan error, 1)
	go func() { campaigned <- el.Campaign(ctx, f.opts.InstanceID) }()
	select {
	case err = <-campaigned:
	case <-ctx.Done():
		// A cancelled Campaign resigns on the client's own context, which
		// with etcd out of reach blocks until the client is closed — after
		// the caller (a store closing) is done waiting for this. Leave it
		// and the session's revocation behind: they end with the client,
		// and the lease expires on its own.
		go func() { <-campaigned; sess.Close() }()
		return false
	}
	defer sess.Close() // revokes the lease (a no-op once it expired)
	if err != nil {
		return false
	}
	// Campaign returns when the candidates before this one are gone; the
	// lease may have expired meanwhile (an etcd outage while waiting):
	// lead only if this instance's key is the leader's.
	if !f.isLeader(ctx, el, sess) {
		return false
	}
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-sess.Done(): // the lease is gone: another instance may lead now
			cancel()
		case <-lctx.Done():
		}
	}()
	fn(lctx)
	cancel()
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = el.Resign(rctx)
	rcancel()
	return true
}

func (f *fleetKV) isLeader(ctx context.Context, el *concurrency.Election, sess *concurrency.Session) bool {
	select {
	case <-sess.Done():
		return false
	default:
	}
	qctx, cancel := context.WithTimeout(ctx, f.opts.WriteTimeout)
	defer cancel()
	resp, err := el.Leader(qctx)
	return err == nil && len(resp.Kvs) > 0 && string(resp.Kvs[0].Key) == el.Key()
}

func (f *fleetKV) electionKey(name string) string { return f.prefix + "elections/" + name }

// ErrNoLeader means no instance leads the election.
var ErrNoLeader = errors.New("no instance leads")

// Leader returns the instance id of the election's leader: "" single-node
// (this instance), ErrNoLeader when none leads, ErrUnavailable when etcd
// does not answer.
func (s *Store) Leader(ctx context.Context, name string) (string, error) {
	f := s.fleetBackend()
	if f == nil {
		return "", nil
	}
	qctx, cancel := context.WithTimeout(ctx, f.opts.WriteTimeout)
	defer cancel()
	// The leader is the oldest candidate's key (concurrency.Election's
	// rule): the lowest create revision under the election's prefix.
	resp, err := f.cli.Get(qctx, f.electionKey(name)+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return "", errors.Join(ErrUnavailable, err)
	}
	if len(resp.Kvs) == 0 {
		return "", ErrNoLeader
	}
	return string(resp.Kvs[0].Value), nil
}
