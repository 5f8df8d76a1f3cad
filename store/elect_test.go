package store

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// runners counts the instances inside fn at once.
type runners struct {
	mu      sync.Mutex
	now     map[string]bool
	most    int
	entries int
}

func (r *runners) fn(id string) func(ctx context.Context) {
	return func(ctx context.Context) {
		r.mu.Lock()
		r.now[id] = true
		r.entries++
		r.most = max(r.most, len(r.now))
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		delete(r.now, id)
		r.mu.Unlock()
	}
}

func (r *runners) current() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for id := range r.now {
		out = append(out, id)
	}
	return out
}

func TestElectionOneRunnerAndAKilledRunnersLeasePassesOn(t *testing.T) {
	c := etcdtest.Start(t, 3)
	ids := []string{"a", "b", "c"}
	clis := make([]*clientv3.Client, 3)
	stores := make([]*Store, 3)
	for i, id := range ids {
		clis[i] = etcdtest.Client(t, c.Endpoint(i))
		stores[i] = openFleet(t, clis[i], id, masterKey(1))
	}
	r := &runners{now: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); stores[i].Lead(ctx, "reconcile", 2*time.Second, r.fn(id)) }()
	}
	defer wg.Wait()

	var leader string
	testfix.WaitFor(t, 10*time.Second, "a leader", func() bool {
		cur := r.current()
		if len(cur) == 1 {
			leader = cur[0]
		}
		return len(cur) == 1
	})
	// It stays the only runner.
	time.Sleep(1500 * time.Millisecond)
	if cur := r.current(); len(cur) != 1 || cur[0] != leader {
		t.Fatalf("runners after a while: %v (leader %s)", cur, leader)
	}
	if got, err := stores[0].Leader(ctx, "reconcile"); err != nil || got != leader {
		t.Fatalf("Leader() = %q, %v; want %q", got, err, leader)
	}

	// Kill the leader: its etcd client goes away without resigning, so
	// its lease must run out before another instance leads.
	li := map[string]int{"a": 0, "b": 1, "c": 2}[leader]
	killed := time.Now()
	clis[li].Close()
	var next string
	d := testfix.WaitFor(t, 15*time.Second, "another leader", func() bool {
		cur := r.current()
		if len(cur) == 1 && cur[0] != leader {
			next = cur[0]
			return true
		}
		return false
	})
	t.Logf("leader %s killed; %s leads after %v", leader, next, time.Since(killed).Round(time.Millisecond))
	if d > 10*time.Second {
		t.Fatalf("handover took %v (lease TTL 2s)", d)
	}
	other := (li + 1) % 3
	if got, err := stores[other].Leader(ctx, "reconcile"); err != nil || got != next {
		t.Fatalf("Leader() after the handover = %q, %v; want %q", got, err, next)
	}
	// A clean stop resigns at once: the third instance leads well within
	// a lease. Stop every campaign, then start the new leader's alone
	// under a context of its own, and the third beside it.
	ni := map[string]int{"a": 0, "b": 1, "c": 2}[next]
	third := 3 - li - ni
	sub, subCancel := context.WithCancel(context.Background())
	defer subCancel()
	stopped := make(chan struct{})
	cancel()
	wg.Wait()
	r.mu.Lock()
	most := r.most
	r.mu.Unlock()
	if most != 1 {
		t.Fatalf("%d instances ran at once", most)
	}
	r2 := &runners{now: map[string]bool{}}
	go func() { stores[ni].Lead(sub, "reconcile", 2*time.Second, r2.fn(ids[ni])); close(stopped) }()
	testfix.WaitFor(t, 10*time.Second, "the next leader again", func() bool { return len(r2.current()) == 1 })
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	done3 := make(chan struct{})
	go func() { stores[third].Lead(ctx3, "reconcile", 2*time.Second, r2.fn(ids[third])); close(done3) }()
	time.Sleep(500 * time.Millisecond)
	if cur := r2.current(); len(cur) != 1 || cur[0] != ids[ni] {
		t.Fatalf("a second candidate ran beside the leader: %v", cur)
	}
	resigned := time.Now()
	subCancel()
	<-stopped
	testfix.WaitFor(t, 1500*time.Millisecond, "the third instance leads after a resignation", func() bool {
		cur := r2.current()
		return len(cur) == 1 && cur[0] == ids[third]
	})
	t.Logf("handover after a clean stop: %v", time.Since(resigned).Round(time.Millisecond))
	cancel3()
	<-done3
}

func TestElectionSingleNodeLeadsAtOnce(t *testing.T) {
	s, _ := newStore(t)
	ran := atomic.Bool{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.Lead(ctx, "reconcile", time.Second, func(context.Context) { ran.Store(true) })
	if !ran.Load() {
		t.Fatal("single node did not lead")
	}
	if id, err := s.Leader(ctx, "reconcile"); err != nil || id != "" {
		t.Fatalf("Leader single-node: %q %v", id, err)
	}
}

// TestFleetReconcileRecordsShared: usage readers, the ledger and the key
// notes are shared records: written on one instance, read on another; the
// admin key is sealed in etcd's files too.
func TestFleetReconcileRecordsShared(t *testing.T) {
	c := etcdtest.Start(t, 3)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(1)), "b", masterKey(1))
	mustAccount(t, a, "acme")
	if _, err := a.PutUsageReader("acme", "openai", adminCanary, "sk-admin-…e4oI"); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	days := map[time.Time][]byte{}
	for d := range 31 {
		days[day.AddDate(0, 0, d)] = []byte(fmt.Sprintf(`[{"day":%d}]`, d))
	}
	if err := a.ReplaceLedgerDays("acme", "openai", day, day.AddDate(0, 0, 31), days); err != nil {
		t.Fatalf("a 31-day ledger write in fleet mode: %v", err)
	}
	testfix.WaitFor(t, 3*time.Second, "b sees the reader and the ledger", func() bool {
		_, key, err := b.OpenUsageReader("acme", "openai")
		got, _ := b.LedgerDays("acme", "openai", day, day.AddDate(0, 0, 31))
		return err == nil && key == adminCanary && len(got) == 31
	})
	for i := 0; i < c.Size(); i++ {
		filepath.WalkDir(c.DataDir(i), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && rawContains(t, p, "ADM1Ncanary") {
				t.Errorf("plaintext admin key in etcd data file %s", p)
			}
			return nil
		})
	}
}
