package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// BenchmarkScale is issue 24's load: AR_SCALE_ACCOUNTS accounts (default
// 100,000), each with 5 API keys and one BYOK credential, loaded by bulk
// calls into one bbolt store (sub-benchmark bbolt) and into a fleet of 3
// instances on an in-process etcd cluster (fleet), then measured: bulk load
// time, admin write latency on the full store (durable: bbolt fsyncs, etcd
// commits through raft and its WAL), when a rotation is visible on the
// writing instance and on every instance, start-up, memory, and the
// request path's snapshot reads against an almost empty store. It prints
// a table. Heavy (minutes, a few GB): run it once, on purpose:
//
//	AR_SCALE=1 ./xcaddy.sh test -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 60m ./store/
//
// AR_SCALE_ETCD_MEMBERS sets the etcd cluster size (default 3).
func BenchmarkScale(b *testing.B) {
	if os.Getenv("AR_SCALE") == "" {
		b.Skip("set AR_SCALE=1 to run the scale load (heavy)")
	}
	b.Run("bbolt", benchScaleSingle)
	b.Run("fleet", benchScaleFleet)
}

const scaleKeys = 5

func scaleAccounts() int {
	if n, err := strconv.Atoi(os.Getenv("AR_SCALE_ACCOUNTS")); err == nil && n > 0 {
		return n
	}
	return 100000
}

// scaleReport collects rows of the printed table.
type scaleReport struct {
	b    *testing.B
	name string
	rows [][2]string
}

func (r *scaleReport) add(what, value string) {
	r.rows = append(r.rows, [2]string{what, value})
	r.b.Logf("%s: %s", what, value)
}

func (r *scaleReport) print() {
	fmt.Printf("\n| %s | |\n|---|---:|\n", r.name)
	for _, row := range r.rows {
		fmt.Printf("| %s | %s |\n", row[0], row[1])
	}
}

// bulkLoad creates n tenants by CreateTenants calls of at most the store's
// BulkLimit, AR_SCALE_LOADERS of them at a time (default 2), and returns
// one key plaintext of every tenant for lookups.
func bulkLoad(b *testing.B, s *Store, n int) []string {
	loaders := 2
	if v, err := strconv.Atoi(os.Getenv("AR_SCALE_LOADERS")); err == nil && v > 0 {
		loaders = v
	}
	per := s.BulkLimit() / (2 + scaleKeys)
	sample := make([]string, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range loaders {
		wg.Go(func() {
			for from := range next {
				ts, err := s.CreateTenants(tenants("t", from, min(per, n-from), scaleKeys))
				if err != nil {
					b.Errorf("bulk load at %d: %v", from, err)
					continue
				}
				for i, tn := range ts {
					sample[from+i] = tn.Keys[2].Key
				}
			}
		})
	}
	for from := 0; from < n; from += per {
		next <- from
	}
	close(next)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return sample
}

// latencies runs the admin writes of a day at scale, round robin over the
// accounts, n of each kind, and reports p50, p99 and max per kind.
func latencies(b *testing.B, r *scaleReport, s *Store, accounts, n int) {
	rng := rand.New(rand.NewPCG(1, 2))
	acct := func() string { return fmt.Sprintf("t-%05d", rng.IntN(accounts)) }
	var keys []APIKey
	kinds := []struct {
		name string
		fn   func(i int) error
	}{
		{"create an API key", func(int) error {
			_, k, err := s.CreateAPIKey(acct(), "day")
			keys = append(keys, k)
			return err
		}},
		{"rotate a BYOK key", func(i int) error {
			_, err := s.PutCredential(acct(), "openai", "sk-rot-"+strconv.Itoa(i), "m", Extras{})
			return err
		}},
		{"bind a key to a profile", func(i int) error {
			_, err := s.SetAPIKeyProfile(keys[i].AccountID, keys[i].ID, "fast")
			return err
		}},
		{"revoke an API key", func(i int) error { return s.RevokeAPIKey(keys[i].AccountID, keys[i].ID) }},
		{"create an account", func(i int) error { _, err := s.CreateAccount(fmt.Sprintf("day-%05d", i), ""); return err }},
	}
	var all []time.Duration
	for _, k := range kinds {
		ds := make([]time.Duration, n)
		for i := range n {
			t0 := time.Now()
			if err := k.fn(i); err != nil {
				b.Fatalf("%s: %v", k.name, err)
			}
			ds[i] = time.Since(t0)
		}
		all = append(all, ds...)
		r.add("admin write: "+k.name+" p50 / p99 / max", pct(ds))
	}
	r.add(fmt.Sprintf("admin write, all %d: p50 / p99 / max", len(all)), pct(all))
}

// pct formats p50 / p99 / max.
func pct(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("%s / %s / %s", ms(at(0.5)), ms(at(0.99)), ms(s[len(s)-1]))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// lookups times the request path's snapshot reads over keys (ns per
// request: key by hash, account, credential, policy).
func lookups(b *testing.B, s *Store, keys []string) float64 {
	hashes := make([][32]byte, len(keys))
	for i, k := range keys {
		hashes[i] = HashAPIKey(k)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	order := make([]int, 1<<20)
	for i := range order {
		order[i] = rng.IntN(len(hashes))
	}
	sn := s.Snapshot()
	best := 0.0
	for round := 0; round < 3; round++ {
		t0 := time.Now()
		for _, i := range order {
			e, ok := sn.LookupKey(hashes[i])
			if !ok || !sn.HasAccount(e.AccountID) || sn.Credential(e.AccountID, "openai") == nil || sn.Policy(e.AccountID, "openai").BYOKOnly {
				b.Fatal("lookup failed")
			}
		}
		ns := float64(time.Since(t0).Nanoseconds()) / float64(len(order))
		if best == 0 || ns < best {
			best = ns
		}
	}
	return best
}

// memory returns the live heap after a collection and the process's
// anonymous resident memory (RssAnon), in MB.
func memory() (heap, anon float64) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	f, err := os.Open("/proc/self/status")
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				anon = kb / 1024
			}
		}
	}
	return float64(m.HeapInuse) / (1 << 20), anon
}

func loadersEnv() string {
	if v := os.Getenv("AR_SCALE_LOADERS"); v != "" {
		return v
	}
	return "2"
}

func records(accounts int) int { return accounts * (2 + scaleKeys) }

func benchScaleSingle(b *testing.B) {
	n := scaleAccounts()
	r := &scaleReport{b: b, name: fmt.Sprintf("single node (bbolt): %d accounts, %d API keys, %d BYOK keys", n, n*scaleKeys, n)}
	path := filepath.Join(b.TempDir(), "ar.db")
	empty, err := Open(filepath.Join(b.TempDir(), "empty.db"), masterKey(1), Options{})
	if err != nil {
		b.Fatal(err)
	}
	emptyKeys := bulkLoad(b, empty, 10)

	s, err := Open(path, masterKey(1), Options{})
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	sample := bulkLoad(b, s, n)
	d := time.Since(t0)
	r.add(fmt.Sprintf("bulk load (CreateTenants, %d accounts a call, %s at a time)", s.BulkLimit()/(2+scaleKeys), loadersEnv()),
		fmt.Sprintf("%.1f s (%.0f records/s)", d.Seconds(), float64(records(n))/d.Seconds()))
	s.Close()

	heap0, anon0 := memory()
	t0 = time.Now()
	s, err = Open(path, masterKey(1), Options{})
	if err != nil {
		b.Fatal(err)
	}
	d = time.Since(t0)
	defer s.Close()
	r.add("start-up (Open)", fmt.Sprintf("%.2f s (%.0f records/s)", d.Seconds(), float64(records(n))/d.Seconds()))
	heap, anon := memory()
	r.add("memory after start-up: Go heap in use / RssAnon (before Open)", fmt.Sprintf("%.0f MB / %.0f MB (%.0f MB / %.0f MB)", heap, anon, heap0, anon0))
	latencies(b, r, s, n, 1000)
	r.add("a rotation visible on the writing instance", "when PutCredential returns (the rotation's latency above)")
	r.add("snapshot reads per request, empty store / full store", fmt.Sprintf("%.0f ns / %.0f ns", lookups(b, empty, emptyKeys), lookups(b, s, sample)))
	empty.Close()
	r.print()
}

func benchScaleFleet(b *testing.B) {
	n := scaleAccounts()
	members := 3
	if v, err := strconv.Atoi(os.Getenv("AR_SCALE_ETCD_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	const maxOps = 8192
	r := &scaleReport{b: b, name: fmt.Sprintf("fleet: 3 instances, etcd %d members (--max-txn-ops %d): %d accounts, %d API keys, %d BYOK keys", members, maxOps, n, n*scaleKeys, n)}
	c := etcdtest.StartWith(b, members, etcdtest.Limits{MaxTxnOps: maxOps, MaxRequestBytes: 8 << 20, QuotaBackendBytes: 8 << 30, WarningApplyDuration: 10 * time.Second})
	client := func() *clientv3.Client {
		cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
			MaxCallSendMsgSize: 16 << 20, MaxCallRecvMsgSize: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cli.Close() })
		return cli
	}
	open := func(id string) (*Store, time.Duration) {
		t0 := time.Now()
		s, err := OpenFleet(filepath.Join(b.TempDir(), id+".db"), masterKey(1), Options{},
			FleetOptions{Client: client(), InstanceID: id, MaxTxnOps: maxOps, LoadTimeout: time.Minute, WriteTimeout: 30 * time.Second, SyncTimeout: 30 * time.Second})
		if err != nil {
			b.Fatalf("OpenFleet(%s): %v", id, err)
		}
		b.Cleanup(func() { s.Close() })
		return s, time.Since(t0)
	}
	a, _ := open("a")
	t0 := time.Now()
	sample := bulkLoad(b, a, n)
	d := time.Since(t0)
	r.add(fmt.Sprintf("bulk load through one instance (CreateTenants, %d accounts a call, %s at a time)", a.BulkLimit()/(2+scaleKeys), loadersEnv()),
		fmt.Sprintf("%.1f s (%.0f records/s)", d.Seconds(), float64(records(n))/d.Seconds()))

	heap0, _ := memory()
	bi, db := open("b")
	heap1, _ := memory()
	r.add("start-up of an instance on the loaded fleet (OpenFleet)", fmt.Sprintf("%.2f s (%.0f records/s)", db.Seconds(), float64(records(n))/db.Seconds()))
	r.add("memory of one instance: Go heap it added", fmt.Sprintf("%.0f MB", heap1-heap0))
	ci, _ := open("c")
	_, anon := memory()
	r.add("RssAnon of the whole process (etcd members, 3 instances, the test)", fmt.Sprintf("%.0f MB", anon))

	latencies(b, r, a, n, 300)
	rotations(b, r, a, n, 300, a, bi, ci)
	r.add("snapshot reads per request on an instance that did not write", fmt.Sprintf("%.0f ns", lookups(b, ci, sample)))
	r.print()
}

// rotations rotates n credentials on w and times when each instance's
// snapshot holds the new version (woken by the snapshot's revision
// channel, not polled).
func rotations(b *testing.B, r *scaleReport, w *Store, accounts, n int, all ...*Store) {
	writer := make([]time.Duration, n)
	every := make([]time.Duration, n)
	for i := range n {
		acct := fmt.Sprintf("t-%05d", (i*7919)%accounts)
		want := w.Snapshot().Credential(acct, "openai").Version + 1
		var wg sync.WaitGroup
		seen := make([]time.Duration, len(all))
		start := time.Now()
		for j, s := range all {
			wg.Go(func() {
				f := s.kv.(*fleetKV)
				for {
					f.revMu.Lock()
					ch := f.revCh
					f.revMu.Unlock()
					if c := s.Snapshot().Credential(acct, "openai"); c != nil && c.Version >= want {
						seen[j] = time.Since(start)
						return
					}
					select {
					case <-ch:
					case <-time.After(5 * time.Second):
						b.Errorf("rotation %d not visible on %s", i, s.InstanceID())
						return
					}
				}
			})
		}
		if _, err := w.PutCredential(acct, "openai", "sk-rot2-"+strconv.Itoa(i), "m", Extras{}); err != nil {
			b.Fatal(err)
		}
		writer[i] = time.Since(start)
		wg.Wait()
		every[i] = slices.Max(seen)
	}
	r.add("a rotation visible on the writing instance (PutCredential returns) p50 / p99 / max", pct(writer))
	r.add("a rotation visible on every instance p50 / p99 / max", pct(every))
}
