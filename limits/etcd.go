package limits

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultEtcdPrefix is where the limits live in etcd, beside (not under)
// the store's /agentrouter/v1/.
const DefaultEtcdPrefix = "/agentrouter/limits/"

// EtcdOptions configures the fleet backend.
type EtcdOptions struct {
	// Prefix of every key. Default DefaultEtcdPrefix.
	Prefix string
	// Instance names this instance, stably across restarts (the store's
	// instance id): a restarted instance finds its settled spend under it.
	Instance string
	// TTL of the lease the held slices are bound to: how long after an
	// instance is lost its slices come back to the fleet. Default 10s.
	TTL time.Duration
}

// Etcd is the fleet Backend. Keys, under Prefix + counter + "/" (a counter
// is "b/<account>/<budget id>/<window>", "r/<account>/<id>/rpm|tpm|conc" or
// "s/<account>/month"; no part may hold a '/'):
//
//	held/<instance>          this instance's unused slice (bound to its lease)
//	used/<slot>/<instance>   what it settled in that slot, with what it had in flight
//	                         (a concurrency counter's are bound to the lease too)
//	claim/<slot>/<what>      an alert already sent for that slot
//
// Slots are zero-padded so a range delete drops a window's past. A grant
// is one transaction: read the counter's keys at revision R, compute what
// is left, and write this instance's share and its new held slice only
// if no key under the counter changed after R (compare-and-swap on the
// prefix's ModRevision); a conflict retries.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
	inst   string
	ttl    int64

	lease  atomic.Int64
	epoch  atomic.Uint64
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// NewEtcd grants this instance's lease and keeps it alive until Close.
func NewEtcd(ctx context.Context, cli *clientv3.Client, o EtcdOptions) (*Etcd, error) {
	if err := checkName("instance", o.Instance); err != nil {
		return nil, fmt.Errorf("limits: %w", err)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultEtcdPrefix
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	e := &Etcd{cli: cli, prefix: o.Prefix, inst: o.Instance, ttl: max(int64(o.TTL/time.Second), 1), done: make(chan struct{})}
	resp, err := cli.Grant(ctx, e.ttl)
	if err != nil {
		return nil, fmt.Errorf("limits: granting the instance lease: %w", err)
	}
	e.lease.Store(int64(resp.ID))
	e.ctx, e.cancel = context.WithCancel(context.Background())
	go e.keepAlive()
	return e, nil
}

// keepAlive keeps the lease; when it is lost (expired while etcd was out
// of reach) the held slices are gone: Epoch moves and a new lease is
// granted for the slices to come.
func (e *Etcd) keepAlive() {
	defer close(e.done)
	for {
		ch, err := e.cli.KeepAlive(e.ctx, clientv3.LeaseID(e.lease.Load()))
		if err == nil {
			for range ch { // drain, or keepalives pile up (etcd-io/etcd#7446)
			}
		}
		if e.ctx.Err() != nil {
			return
		}
		e.epoch.Add(1)
		for {
			resp, err := e.cli.Grant(e.ctx, e.ttl)
			if err == nil {
				e.lease.Store(int64(resp.ID))
				break
			}
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// Close revokes the lease (the held slices return at once) and stops
// keeping it.
func (e *Etcd) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	_, err := e.cli.Revoke(ctx, clientv3.LeaseID(e.lease.Load()))
	e.cancel()
	<-e.done
	return err
}

func (e *Etcd) Exact() bool   { return false }
func (e *Etcd) Epoch() uint64 { return e.epoch.Load() }

func (e *Etcd) base(counter string) string { return e.prefix + counter + "/" }

var errConflict = errors.New("limits: etcd kept changing under the grant; try later")

func (e *Etcd) Load(ctx context.Context, counter string, span Span) (View, error) {
	base := e.base(counter)
	resp, err := e.cli.Get(ctx, base, clientv3.WithPrefix())
	if err != nil {
		return View{}, err
	}
	return e.view(resp.Kvs, base, span), nil
}

func (e *Etcd) Acquire(ctx context.Context, counter string, span Span, limit, need int64, mine Share) (int64, View, error) {
	base := e.base(counter)
	for range 16 {
		resp, err := e.cli.Get(ctx, base, clientv3.WithPrefix())
		if err != nil {
			return 0, View{}, err
		}
		v := e.view(resp.Kvs, base, span)
		left := limit - v.OthersUsed - v.OthersHeld - mine.used() - mine.Held
		grant := sliceOf(left, need, v.Instances)
		held := mine
		held.Held += grant
		tr, err := e.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(base).WithPrefix(), "<", resp.Header.Revision+1)).
			Then(e.writes(base, span, held)...).Commit()
		if err != nil {
			return 0, v, err
		}
		if tr.Succeeded {
			return grant, v, nil
		}
	}
	return 0, View{}, errConflict
}

func (e *Etcd) Report(ctx context.Context, counter string, span Span, mine Share) (View, error) {
	base := e.base(counter)
	ops := append(e.writes(base, span, mine), clientv3.OpGet(base, clientv3.WithPrefix()))
	tr, err := e.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return View{}, err
	}
	get := tr.Responses[len(tr.Responses)-1].GetResponseRange()
	return e.view(get.Kvs, base, span), nil
}

func (e *Etcd) Claim(ctx context.Context, counter string, slot int64, what string) (bool, error) {
	k := e.base(counter) + "claim/" + slotKey(slot) + "/" + what
	tr, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, e.inst)).Commit()
	if err != nil {
		return false, err
	}
	return tr.Succeeded, nil
}

// writes are the operations that store this instance's share: its slots,
// its held slice (deleted at 0), and the deletion of every instance's
// slots and claims older than the span.
func (e *Etcd) writes(base string, span Span, mine Share) []clientv3.Op {
	lease := clientv3.LeaseID(e.lease.Load())
	var ops []clientv3.Op
	for _, u := range mine.Used {
		if u.Slot < span.From {
			continue
		}
		k := base + "used/" + slotKey(u.Slot) + "/" + e.inst
		if span.Ephemeral {
			ops = append(ops, clientv3.OpPut(k, strconv.FormatInt(u.Used, 10), clientv3.WithLease(lease)))
		} else {
			ops = append(ops, clientv3.OpPut(k, strconv.FormatInt(u.Used, 10)))
		}
	}
	if span.Ephemeral && len(mine.Used) == 0 {
		ops = append(ops, clientv3.OpDelete(base+"used/"+slotKey(0)+"/"+e.inst))
	}
	if mine.Held > 0 {
		ops = append(ops, clientv3.OpPut(base+"held/"+e.inst, strconv.FormatInt(mine.Held, 10), clientv3.WithLease(lease)))
	} else {
		ops = append(ops, clientv3.OpDelete(base+"held/"+e.inst))
	}
	if !span.Ephemeral && span.From > 0 {
		ops = append(ops,
			clientv3.OpDelete(base+"used/", clientv3.WithRange(base+"used/"+slotKey(span.From))),
			clientv3.OpDelete(base+"claim/", clientv3.WithRange(base+"claim/"+slotKey(span.From))))
	}
	return ops
}

// view reads a counter's keys: the others' spend in the span and their
// held slices, this instance's own slots, how many instances take part.
func (e *Etcd) view(kvs []*mvccpb.KeyValue, base string, span Span) View {
	v := View{}
	seen := map[string]bool{e.inst: true}
	for _, kv := range kvs {
		k := string(kv.Key)[len(base):]
		n, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			continue // a claim, or a value this version does not write
		}
		switch {
		case strings.HasPrefix(k, "held/"):
			if inst := k[len("held/"):]; inst != e.inst {
				v.OthersHeld += n
				seen[inst] = true
			}
		case strings.HasPrefix(k, "used/"):
			slotStr, inst, ok := strings.Cut(k[len("used/"):], "/")
			slot, err := strconv.ParseInt(slotStr, 10, 64)
			if !ok || err != nil || slot < span.From {
				continue
			}
			if inst == e.inst {
				v.Mine = append(v.Mine, SlotUsed{slot, n})
			} else {
				v.OthersUsed += n
				seen[inst] = true
			}
		}
	}
	v.Instances = len(seen)
	return v
}
