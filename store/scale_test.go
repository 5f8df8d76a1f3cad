package store

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// tenants returns n specs of accounts p-0000... with keys API keys and one
// openai credential each.
func tenants(p string, from, n, keys int) []TenantSpec {
	out := make([]TenantSpec, n)
	for i := range out {
		id := fmt.Sprintf("%s-%05d", p, from+i)
		out[i] = TenantSpec{ID: id, Name: "Tenant " + id, Credentials: []CredentialSpec{{Provider: "openai", Key: "sk-" + id, Masked: "sk-...x"}}}
		for j := range keys {
			out[i].Keys = append(out[i].Keys, KeySpec{Name: fmt.Sprintf("k%d", j)})
		}
	}
	return out
}

func mustTenants(t testing.TB, s *Store, specs []TenantSpec) []Tenant {
	t.Helper()
	limit := s.BulkLimit()
	var out []Tenant
	for len(specs) > 0 {
		n, records := 0, 0
		for n < len(specs) && records+1+len(specs[n].Keys)+len(specs[n].Credentials) <= limit {
			records += 1 + len(specs[n].Keys) + len(specs[n].Credentials)
			n++
		}
		got, err := s.CreateTenants(specs[:n])
		if err != nil {
			t.Fatalf("CreateTenants: %v", err)
		}
		out = append(out, got...)
		specs = specs[n:]
	}
	return out
}

// changedShards counts the shards of each map that differ between two
// snapshots (by identity: an unchanged shard is shared).
func changedShards(a, b *Snapshot) map[string]int {
	out := map[string]int{}
	count := func(name string, x, y any) {
		xv, yv := reflect.ValueOf(x), reflect.ValueOf(y)
		for i := range nShards {
			if xv.Index(i).UnsafePointer() != yv.Index(i).UnsafePointer() {
				out[name]++
			}
		}
	}
	count("keys", a.keys, b.keys)
	count("key_ids", a.keyIDs, b.keyIDs)
	count("accounts", a.accounts, b.accounts)
	count("credentials", a.creds, b.creds)
	count("policies", a.policies, b.policies)
	return out
}

// writeCosts runs one key creation and one rotation on w and checks what
// they cost on each of the stores (w, and the fleet instances following it):
// one record decoded, the rotated credential alone opened, and one shard
// per map copied, the rest shared.
func writeCosts(t *testing.T, w *Store, all ...*Store) {
	t.Helper()
	before := make([]*Snapshot, len(all))
	for i, s := range all {
		// Followers first catch up with what the writer wrote before.
		if !s.WaitRevision(w.Fleet().Revision, 5*time.Second) {
			t.Fatalf("%s did not catch up", s.InstanceID())
		}
		s.snapStats.decoded.Store(0)
		s.snapStats.opened.Store(0)
		before[i] = s.Snapshot()
	}
	plain, _, err := w.CreateAPIKey("load-00007", "new")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range all {
		testfix.WaitFor(t, 5*time.Second, "the key reaches "+s.InstanceID(), func() bool { _, ok := s.Snapshot().LookupKey(HashAPIKey(plain)); return ok })
		if d, o := s.snapStats.decoded.Load(), s.snapStats.opened.Load(); d != 1 || o != 0 {
			t.Errorf("%s: creating a key decoded %d records and opened %d credentials, want 1 and 0", s.InstanceID(), d, o)
		}
		want := map[string]int{"keys": 1, "key_ids": 1}
		if got := changedShards(before[i], s.Snapshot()); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: creating a key changed shards %v, want %v (the rest shared)", s.InstanceID(), got, want)
		}
		s.snapStats.decoded.Store(0)
		before[i] = s.Snapshot()
	}
	if _, err := w.PutCredential("load-00003", "openai", "sk-rotated", "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	for i, s := range all {
		testfix.WaitFor(t, 5*time.Second, "the rotation reaches "+s.InstanceID(), func() bool {
			return s.Snapshot().Credential("load-00003", "openai").Key() == "sk-rotated"
		})
		if d, o := s.snapStats.decoded.Load(), s.snapStats.opened.Load(); d != 1 || o != 1 {
			t.Errorf("%s: a rotation decoded %d records and opened %d credentials, want 1 and 1", s.InstanceID(), d, o)
		}
		if got := changedShards(before[i], s.Snapshot()); !reflect.DeepEqual(got, map[string]int{"credentials": 1}) {
			t.Errorf("%s: a rotation changed shards %v, want one credential shard", s.InstanceID(), got)
		}
	}
}

// TestWriteCostsWhatItChanges: on a store of 300 accounts, 1,200 keys and
// 300 credentials, a write decodes and opens only what it changed and
// copies one shard of the maps it touches (the snapshot was rebuilt from
// every record on every write before).
func TestWriteCostsWhatItChanges(t *testing.T) {
	s, _ := newStore(t)
	mustTenants(t, s, tenants("load", 0, 300, 4))
	writeCosts(t, s, s)
}

// TestFleetWriteCostsWhatItChanges: the same on the writing instance and on
// the one that follows it through its watch.
func TestFleetWriteCostsWhatItChanges(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, c.Client(t), "a", masterKey(1))
	b := openFleet(t, c.Client(t), "b", masterKey(1))
	mustTenants(t, a, tenants("load", 0, 300, 4))
	writeCosts(t, a, a, b)
}

// TestSnapshotLookupsDoNotAllocate: the request path's reads.
func TestSnapshotLookupsDoNotAllocate(t *testing.T) {
	s, _ := newStore(t)
	ts := mustTenants(t, s, tenants("load", 0, 50, 2))
	s.SetPolicy("load-00001", "openai", Policy{BYOKOnly: true})
	sn := s.Snapshot()
	plain, id := ts[1].Keys[0].Key, ts[1].Keys[0].ID
	hash := HashAPIKey(plain)
	allocs := testing.AllocsPerRun(1000, func() {
		e, ok := sn.LookupKey(HashAPIKey(plain))
		_, ok2 := sn.KeyByID(id)
		c := sn.Credential(e.AccountID, "openai")
		if !ok || !ok2 || c == nil || !sn.HasAccount(e.AccountID) || !sn.Policy(e.AccountID, "openai").BYOKOnly {
			t.Fatal("lookups failed")
		}
		e.Touch(1)
		c.Touch(1)
	})
	if allocs != 0 {
		t.Fatalf("the request path's snapshot reads allocate %v times", allocs)
	}
	_ = hash
}

// BenchmarkSnapshotLookup is the request path's snapshot reads (key by
// hash, account, credential, policy) on an empty-ish and a large store.
func BenchmarkSnapshotLookup(b *testing.B) {
	for _, n := range []int{10, 20000} {
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			s, err := Open(b.TempDir()+"/ar.db", masterKey(1), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ts := mustTenants(b, s, tenants("load", 0, n, 5))
			hashes := make([][32]byte, 0, len(ts))
			for _, tn := range ts {
				hashes = append(hashes, HashAPIKey(tn.Keys[len(tn.Keys)/2].Key))
			}
			sn := s.Snapshot()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				e, ok := sn.LookupKey(hashes[i%len(hashes)])
				if !ok || !sn.HasAccount(e.AccountID) || sn.Credential(e.AccountID, "openai") == nil || sn.Policy(e.AccountID, "openai").BYOKOnly {
					b.Fatal("lookup failed")
				}
			}
		})
	}
}

// eachBackend runs fn on a single-node store and on a fleet instance.
func eachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Run("bbolt", func(t *testing.T) {
		s, _ := newStore(t)
		fn(t, s)
	})
	t.Run("etcd", func(t *testing.T) {
		c := etcdtest.Start(t, 1)
		fn(t, openFleet(t, c.Client(t), "a", masterKey(1)))
	})
}

// TestListsPage: every list pages through the same items, in the same
// order, as the unpaged list; a cursor of another list is refused.
func TestListsPage(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		clock := setClock(t, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
		for i := range 23 {
			mustAccount(t, s, fmt.Sprintf("acct-%02d", i))
		}
		for i := range 17 {
			clock.Advance(time.Duration(i%3) * time.Millisecond) // some keys share a time: ids order them
			if _, _, err := s.CreateAPIKey("acct-05", fmt.Sprintf("k%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		mustAccount(t, s, "acct-05b") // a neighbour whose keys must not leak into acct-05's list
		s.CreateAPIKey("acct-05b", "other")
		for _, p := range []string{"openai", "anthropic", "gemini", "mistral", "azure"} {
			if _, err := s.PutCredential("acct-05", p, "sk-"+p, "m", Extras{}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 7 {
			clock.Advance(time.Duration(i%2) * time.Millisecond)
			if _, err := s.CreateUser("acct-05", fmt.Sprintf("p%d@example.com", i), RoleMember); err != nil {
				t.Fatal(err)
			}
		}

		accounts, _ := s.Accounts()
		gotAccounts := readPages(t, 5, func(p PageRequest) (Page[Account], error) { return s.AccountsPage(p) })
		samePages(t, "accounts", gotAccounts, accounts)

		keys, _ := s.APIKeys("acct-05")
		if len(keys) != 17 {
			t.Fatalf("APIKeys: %d keys", len(keys))
		}
		samePages(t, "keys", readPages(t, 4, func(p PageRequest) (Page[APIKey], error) { return s.APIKeysPage("acct-05", p) }), keys)

		creds := readPages(t, 2, func(p PageRequest) (Page[Credential], error) { return s.CredentialsPage("acct-05", p) })
		all, _ := s.Credentials("acct-05")
		if len(creds) != len(all) || creds[0].Provider != "anthropic" || creds[4].Provider != "openai" {
			t.Fatalf("credential pages: %+v", creds)
		}

		users, _ := s.Users("acct-05")
		samePages(t, "users", readPages(t, 3, func(p PageRequest) (Page[User], error) { return s.UsersPage("acct-05", p) }), users)

		// A cursor of the keys list is no cursor of the accounts list.
		p, _ := s.APIKeysPage("acct-05", PageRequest{Limit: 2})
		if _, err := s.AccountsPage(PageRequest{Cursor: p.Next}); !errors.Is(err, ErrInvalidCursor) || !errors.Is(err, ErrInvalidInput) {
			t.Fatalf("foreign cursor: %v", err)
		}
		if _, err := s.UsersPage("acct-05", PageRequest{Cursor: "%%%"}); !errors.Is(err, ErrInvalidCursor) {
			t.Fatalf("garbage cursor: %v", err)
		}
		if _, err := s.APIKeysPage("nobody", PageRequest{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("keys of an unknown account: %v", err)
		}
		// The default limit, and the cap.
		if p, _ := s.AccountsPage(PageRequest{}); len(p.Items) != 24 || p.Next != "" {
			t.Fatalf("default page: %d items, next %q", len(p.Items), p.Next)
		}
		if (PageRequest{Limit: 1e6}).limit() != MaxPageLimit || (PageRequest{}).limit() != DefaultPageLimit {
			t.Fatal("page limits")
		}
	})
}

// readPages reads every page of a list of size-limited pages.
func readPages[T any](t *testing.T, limit int, page func(PageRequest) (Page[T], error)) []T {
	t.Helper()
	var out []T
	cursor := ""
	for n := 0; ; n++ {
		p, err := page(PageRequest{Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Items) > limit || n > 100 {
			t.Fatalf("page of %d items for limit %d (page %d)", len(p.Items), limit, n)
		}
		out = append(out, p.Items...)
		if p.Next == "" {
			return out
		}
		cursor = p.Next
	}
}

func samePages[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: pages give %d items %+v,\nthe list %d %+v", what, len(got), got, len(want), want)
	}
}

// TestCreateTenants: accounts, keys and credentials in one transaction,
// all or none; bounded; usable by the next request; no secret in an error
// or a printed spec.
func TestCreateTenants(t *testing.T) {
	eachBackend(t, func(t *testing.T, s *Store) {
		specs := tenants("bulk", 0, 5, 2)
		specs[2].Credentials[0].Key = canaryKey
		specs[2].Credentials[0].BYOKOnly = true
		ts, err := s.CreateTenants(specs)
		if err != nil {
			t.Fatal(err)
		}
		sn := s.Snapshot()
		for i, tn := range ts {
			if tn.Account.ID != specs[i].ID || len(tn.Keys) != 2 || len(tn.Credentials) != 1 || tn.Credentials[0].Version != 1 {
				t.Fatalf("tenant %d: %+v", i, tn)
			}
			for _, k := range tn.Keys {
				if e, ok := sn.LookupKey(HashAPIKey(k.Key)); !ok || e.AccountID != tn.Account.ID || e.KeyID != k.ID {
					t.Fatalf("bulk key of %s does not authenticate", tn.Account.ID)
				}
			}
			if c := sn.Credential(tn.Account.ID, "openai"); c == nil || c.Key() != specs[i].Credentials[0].Key {
				t.Fatalf("bulk credential of %s missing", tn.Account.ID)
			}
		}
		if !sn.Policy("bulk-00002", "openai").BYOKOnly || sn.Policy("bulk-00001", "openai").BYOKOnly {
			t.Fatal("byok_only policies")
		}
		if keys, _ := s.APIKeys("bulk-00003"); len(keys) != 2 {
			t.Fatalf("bulk keys are not listed: %d", len(keys))
		}

		// All or none: one existing id, and nothing of the call is created.
		again := append(tenants("fresh", 0, 3, 1), specs[4])
		again[1].Credentials[0].Key = canaryKey
		if _, err := s.CreateTenants(again); !errors.Is(err, ErrExists) || strings.Contains(err.Error(), canaryFragment) {
			t.Fatalf("a call with an existing account: %v", err)
		}
		for _, sp := range again[:3] {
			if s.Snapshot().HasAccount(sp.ID) {
				t.Fatalf("%s was created by a call that failed", sp.ID)
			}
		}
		if _, err := s.Account("fresh-00000"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("fresh-00000 is stored: %v", err)
		}

		// Bad input, before anything is written.
		bad := tenants("dup", 0, 2, 0)
		bad[1].ID = bad[0].ID
		for _, c := range []struct {
			specs []TenantSpec
			want  error
		}{
			{nil, ErrInvalidInput},
			{bad, ErrInvalidInput},
			{[]TenantSpec{{ID: "-bad"}}, ErrInvalidInput},
			{[]TenantSpec{{ID: "x", Keys: []KeySpec{{Profile: "no spaces"}}}}, ErrInvalidInput},
			{[]TenantSpec{{ID: "x", Credentials: []CredentialSpec{{Provider: "openai"}}}}, ErrInvalidInput},
			{tenants("big", 0, s.BulkLimit()/4+1, 3), ErrTooLarge},
		} {
			if _, err := s.CreateTenants(c.specs); !errors.Is(err, c.want) {
				t.Errorf("CreateTenants(%d specs): %v, want %v", len(c.specs), err, c.want)
			}
		}
		if out := fmt.Sprintf("%v %+v %#v", specs[2], specs[2], specs[2].Credentials); strings.Contains(out, canaryFragment) {
			t.Fatalf("a printed spec shows the key: %s", out)
		}
	})
}

// TestFleetBulkLimitFollowsEtcd: in fleet mode a bulk call is bounded by
// what one etcd transaction takes, and a call within it reaches the other
// instances in one watch event.
func TestFleetBulkLimitFollowsEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, c.Client(t), "a", masterKey(1))
	b := openFleet(t, c.Client(t), "b", masterKey(1))
	if a.BulkLimit() != 128/3 {
		t.Fatalf("BulkLimit with etcd's default 128 operations: %d", a.BulkLimit())
	}
	if _, err := a.CreateTenants(tenants("big", 0, 8, 5)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("48 records: %v", err)
	}
	ts, err := a.CreateTenants(tenants("ok", 0, 5, 6))
	if err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 5*time.Second, "b has the tenants", func() bool {
		_, ok := b.Snapshot().LookupKey(HashAPIKey(ts[4].Keys[5].Key))
		return ok && b.Snapshot().Credential("ok-00004", "openai") != nil
	})
}

// TestFleetBulkTooLargeForTheClient: a call that etcd's limits allow but
// the client will not send (its 2 MiB default) is ErrTooLarge ("split
// it"), not an outage, and creates nothing.
func TestFleetBulkTooLargeForTheClient(t *testing.T) {
	c := etcdtest.StartWith(t, 1, etcdtest.Limits{MaxTxnOps: 30000, MaxRequestBytes: 8 << 20})
	s, err := OpenFleet(dbPath(t), masterKey(1), Options{}, FleetOptions{Client: c.Client(t), InstanceID: "a", MaxTxnOps: 30000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	_, err = s.CreateTenants(tenants("big", 0, 900, 9)) // 9,900 records: about 3.5 MiB
	if !errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("a call over the client's send limit: %v, want ErrTooLarge", err)
	}
	if st := s.Fleet(); st.EtcdReachable == nil || !*st.EtcdReachable || st.EtcdOutages != 0 {
		t.Errorf("the refusal was taken for an outage: %+v", st)
	}
	if _, err := s.Account("big-00000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the refused call created an account: %v", err)
	}
}

// TestOldFileGetsKeyIndex: a file from before key_index is indexed when it
// opens; its keys are listed, paged and deleted with their account.
func TestOldFileGetsKeyIndex(t *testing.T) {
	s, path := newStore(t)
	mustTenants(t, s, tenants("old", 0, 3, 4))
	plain, _, _ := s.CreateAPIKey("old-00001", "late")
	s.Close()
	// Make it an old file: no index, no marker.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketKeyIndex.name); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta.name).Delete(keyIndexSchemaKey)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s = openStore(t, path, masterKey(1), Options{})
	keys, err := s.APIKeys("old-00001")
	if err != nil || len(keys) != 5 || keys[4].Name != "late" {
		t.Fatalf("keys of an indexed old file: %d %v", len(keys), err)
	}
	if err := s.DeleteAccount("old-00001"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Snapshot().LookupKey(HashAPIKey(plain)); ok {
		t.Fatal("a key of a deleted account still authenticates")
	}
	var left int
	s.db.View(func(tx *bolt.Tx) error { left = tx.Bucket(bucketKeys.name).Stats().KeyN; return nil })
	if left != 8 {
		t.Fatalf("%d keys left, want the other accounts' 8", left)
	}
}

// TestFleetLoadWithoutRangeStream: etcd servers before 3.7 have no
// RangeStream; the bucket-by-bucket read gives the same mirror.
func TestFleetLoadWithoutRangeStream(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, c.Client(t), "a", masterKey(1))
	mustTenants(t, a, tenants("load", 0, 40, 3))
	f := a.kv.(*fleetKV)
	read := func(fn func(func([]*mvccpb.KeyValue)) (int64, error)) (map[string]string, int64) {
		out := map[string]string{}
		rev, err := fn(func(kvs []*mvccpb.KeyValue) {
			for _, kv := range kvs {
				out[string(kv.Key)] = fmt.Sprintf("%s@%d", kv.Value, kv.ModRevision)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return out, rev
	}
	streamed, rev1 := read(f.readStream)
	byBucket, rev2 := read(f.readByBucket)
	if rev1 != rev2 || !reflect.DeepEqual(streamed, byBucket) || len(streamed) < 40*(1+3*3+2) {
		t.Fatalf("stream: %d records at %d; by bucket: %d at %d", len(streamed), rev1, len(byBucket), rev2)
	}
}
