package store

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Member registry: each fleet instance keeps members/<id> alive under a
// lease, with the address of its peer listener, so that any instance can
// read the request logs and usage of all of them (they stay per instance).

// Member is a live fleet instance.
type Member struct {
	ID string `json:"id"`
	// PeerAddress is the host:port where it answers the other members'
	// authenticated reads of its request log and usage ("" if it has
	// none).
	PeerAddress string    `json:"peer_address"`
	StartedAt   time.Time `json:"started_at"`
	// Self is true for the instance that answers.
	Self bool `json:"self,omitempty"`
}

type memberState struct {
	stop   context.CancelFunc
	done   sync.WaitGroup
	record []byte
}

// startMember registers this instance and keeps the registration alive:
// the keepalive channel is drained (etcd-io/etcd#7446), and a lost lease
// (etcd unreachable for longer than the TTL) is re-granted.
func (f *fleetKV) startMember() {
	rec, _ := json.Marshal(Member{ID: f.opts.InstanceID, PeerAddress: f.opts.PeerAddress, StartedAt: now().UTC()})
	f.member.record = rec
	ctx, cancel := context.WithCancel(f.ctx)
	f.member.stop = cancel
	f.member.done.Go(func() {
		key := f.key(string(bucketMembers.name), []byte(f.opts.InstanceID))
		ttl := int64(f.opts.MemberTTL / time.Second)
		for ctx.Err() == nil {
			gctx, gcancel := context.WithTimeout(ctx, f.opts.WriteTimeout)
			lease, err := f.cli.Grant(gctx, max(ttl, 2))
			if err == nil {
				_, err = f.cli.Put(gctx, key, string(rec), clientv3.WithLease(lease.ID))
			}
			gcancel()
			if err != nil {
				f.sleep(time.Second)
				continue
			}
			ka, err := f.cli.KeepAlive(ctx, lease.ID)
			if err != nil {
				f.sleep(time.Second)
				continue
			}
			for range ka {
			}
			if ctx.Err() != nil {
				// Leave the fleet at once rather than at lease expiry.
				rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
				_, _ = f.cli.Revoke(rctx, lease.ID)
				rcancel()
				return
			}
		}
	})
}

func (f *fleetKV) stopMember() {
	if f.member.stop != nil {
		f.member.stop()
		f.member.done.Wait()
	}
}

// Members lists the live instances of the fleet, ordered by id (the store
// itself only, single-node, with an empty id).
func (s *Store) Members() []Member { return s.kv.members() }

func (f *fleetKV) members() []Member {
	f.mu.RLock()
	t := f.published[string(bucketMembers.name)]
	f.mu.RUnlock()
	var out []Member
	if t != nil {
		t.Ascend(func(e mirrorItem) bool {
			var mb Member
			if json.Unmarshal(e.v, &mb) == nil {
				mb.Self = mb.ID == f.opts.InstanceID
				out = append(out, mb)
			}
			return true
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if out == nil {
		out = []Member{}
	}
	return out
}

// InstanceID is this instance's member id ("" single-node).
func (s *Store) InstanceID() string { return s.kv.instanceID() }

func (f *fleetKV) instanceID() string { return f.opts.InstanceID }
