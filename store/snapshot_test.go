package store

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// snapDump is a snapshot in comparable form. Secrets are kept as their
// fingerprint; health as the invalid flag (a throttled re-mark moves its
// time in memory only, by design).
type snapDump struct {
	Accounts []string
	Keys     map[string]string // hex(hash) -> id account profile
	Creds    map[string]string // account/provider -> version fingerprint(key) extras invalid
	Policies map[string]bool
	// Limits is the store's union of the stored limit sets, as JSON
	// (dumpStore fills it; it is the store's, beside the snapshot).
	Limits string
}

// dumpStore is dumpSnapshot of s's snapshot with s's limit sets.
func dumpStore(t *testing.T, s *Store) snapDump {
	t.Helper()
	d := dumpSnapshot(t, s.Snapshot())
	b, err := json.Marshal(s.LimitSets())
	if err != nil {
		t.Fatal(err)
	}
	d.Limits = string(b)
	return d
}

// dumpSnapshot reads every shard, and checks that each entry sits in the
// shard its key hashes to (or lookups would miss it) and that the id index
// points at the same entries as the hash index.
func dumpSnapshot(t *testing.T, sn *Snapshot) snapDump {
	t.Helper()
	d := snapDump{Keys: map[string]string{}, Creds: map[string]string{}, Policies: map[string]bool{}}
	ids := 0
	for i := range nShards {
		for id := range sn.accounts[i] {
			if strShard(id) != i || !sn.HasAccount(id) {
				t.Fatalf("account %q in shard %d, lookup fails", id, i)
			}
			d.Accounts = append(d.Accounts, id)
		}
		for h, e := range sn.keys[i] {
			if hashShard(&h) != i {
				t.Fatalf("key %s in shard %d", e.KeyID, i)
			}
			if got, ok := sn.KeyByID(e.KeyID); !ok || got != e {
				t.Fatalf("key %s: the id index does not point at the entry", e.KeyID)
			}
			d.Keys[hex.EncodeToString(h[:])] = e.KeyID + " " + e.AccountID + " " + e.Profile
		}
		ids += len(sn.keyIDs[i])
		for ck, c := range sn.creds[i] {
			if credShard(ck) != i || sn.Credential(ck.account, ck.provider) != c {
				t.Fatalf("credential %v in shard %d, lookup fails", ck, i)
			}
			_, _, bad := c.Invalid()
			d.Creds[ck.account+"/"+ck.provider] = fmt.Sprintf("v%d %s %s %+v %v", c.Version, c.Fingerprint, Fingerprint(c.Key()), c.Extras, bad)
		}
		for ck, p := range sn.policies[i] {
			if credShard(ck) != i || sn.Policy(ck.account, ck.provider) != p {
				t.Fatalf("policy %v in shard %d, lookup fails", ck, i)
			}
			d.Policies[ck.account+"/"+ck.provider] = p.BYOKOnly
		}
	}
	if ids != len(d.Keys) {
		t.Fatalf("%d key ids for %d keys", ids, len(d.Keys))
	}
	sort.Strings(d.Accounts)
	return d
}

func compareDumps(t *testing.T, what string, got, want snapDump) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	if !reflect.DeepEqual(got.Accounts, want.Accounts) {
		t.Errorf("%s: accounts %v, want %v", what, got.Accounts, want.Accounts)
	}
	for _, m := range []struct {
		name      string
		got, want map[string]string
	}{{"keys", got.Keys, want.Keys}, {"credentials", got.Creds, want.Creds}} {
		for k, v := range m.want {
			if m.got[k] != v {
				t.Errorf("%s: %s %s = %q, want %q", what, m.name, k, m.got[k], v)
			}
		}
		for k, v := range m.got {
			if _, ok := m.want[k]; !ok {
				t.Errorf("%s: %s %s = %q, not in the rebuild", what, m.name, k, v)
			}
		}
	}
	if !reflect.DeepEqual(got.Policies, want.Policies) {
		t.Errorf("%s: policies %v, want %v", what, got.Policies, want.Policies)
	}
	if got.Limits != want.Limits {
		t.Errorf("%s: limit sets %s, want %s", what, got.Limits, want.Limits)
	}
	t.FailNow()
}

// rebuildFromFile is a full load of a copy of s's file: a store opened on
// the same records, sharing nothing with s.
func rebuildFromFile(t *testing.T, s *Store, key []byte) snapDump {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := s.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(cp, 0o600) }); err != nil {
		t.Fatal(err)
	}
	fresh, err := Open(cp, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	return dumpStore(t, fresh)
}

// randomWrites applies random writes to the stores of pick (one, or the
// instances of a fleet), as an admin API and a gateway would: accounts,
// keys, credentials, policies, health marks, bulk creations, and writes to
// buckets outside the snapshot in between. Errors the operations may
// legitimately return (an account that does not exist, one that exists)
// are ignored; any other fails the test.
type randomWrites struct {
	t    *testing.T
	rng  *rand.Rand
	keys []APIKey // issued, maybe revoked since
}

var (
	propAccounts  = []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	propProviders = []string{"openai", "anthropic", "gemini"}
	propProfiles  = []string{"", "fast", "cheap"}
)

func (w *randomWrites) pick(xs []string) string { return xs[w.rng.IntN(len(xs))] }

func (w *randomWrites) step(s *Store) {
	t, rng := w.t, w.rng
	account, provider := w.pick(propAccounts), w.pick(propProviders)
	var err error
	switch op := rng.IntN(100); {
	case op < 12:
		_, err = s.CreateAccount(account, "Account "+account)
	case op < 16:
		err = s.DeleteAccount(account)
	case op < 34:
		var k APIKey
		_, k, err = s.CreateAPIKeyWithProfile(account, "k", w.pick(propProfiles))
		if err == nil {
			w.keys = append(w.keys, k)
		}
	case op < 42 && len(w.keys) > 0:
		k := w.keys[rng.IntN(len(w.keys))]
		_, err = s.SetAPIKeyProfile(k.AccountID, k.ID, w.pick(propProfiles))
	case op < 52 && len(w.keys) > 0:
		k := w.keys[rng.IntN(len(w.keys))]
		err = s.RevokeAPIKey(k.AccountID, k.ID)
	case op < 68:
		_, err = s.PutCredential(account, provider, "sk-test-"+strconv.Itoa(rng.IntN(1e9)), "m", Extras{Project: w.pick(propProfiles)})
	case op < 74:
		err = s.DeleteCredential(account, provider)
	case op < 80:
		err = s.SetPolicy(account, provider, Policy{BYOKOnly: rng.IntN(2) == 0})
	case op < 88:
		if c := s.Snapshot().Credential(account, provider); c != nil {
			if rng.IntN(2) == 0 {
				s.MarkInvalid(c, now().Add(-time.Duration(rng.IntN(3))*time.Hour), "401 (auth)")
			} else {
				s.MarkValid(c)
			}
			s.healthWG.Wait()
		}
	case op < 93:
		var specs []TenantSpec
		for i := range rng.IntN(3) + 1 {
			specs = append(specs, TenantSpec{ID: fmt.Sprintf("%s-b%d", account, i), Keys: []KeySpec{{Name: "k"}, {Profile: "fast"}},
				Credentials: []CredentialSpec{{Provider: provider, Key: "sk-bulk-" + strconv.Itoa(rng.IntN(1e9)), BYOKOnly: rng.IntN(2) == 0}}})
		}
		var ts []Tenant
		ts, err = s.CreateTenants(specs)
		for _, tn := range ts {
			for _, k := range tn.Keys {
				w.keys = append(w.keys, k.APIKey)
			}
		}
		if errors.Is(err, ErrExists) {
			err = s.DeleteAccount(specs[0].ID)
		}
	case op < 97:
		// An account's limit set: a budget added, replaced or removed.
		id := fmt.Sprintf("b%d", rng.IntN(3))
		amount := limits.USD(rng.IntN(1000)+1) * 1e9
		drop := rng.IntN(3) == 0
		_, err = s.UpdateLimitSet(account, func(set *limits.Set) error {
			set.Budgets = slices.DeleteFunc(set.Budgets, func(b limits.Budget) bool { return b.ID == id })
			if !drop {
				set.Budgets = append(set.Budgets, limits.Budget{ID: id, Scope: limits.Scope{Kind: limits.ScopeAccount, Account: account},
					Amount: amount, Window: limits.WindowMonth})
			}
			return nil
		})
	default:
		// Outside the snapshot: a console member.
		_, err = s.CreateUser(account, fmt.Sprintf("u%d@example.com", rng.IntN(20)), RoleMember)
	}
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrExists) {
		t.Fatalf("write: %v", err)
	}
}

// propertyOps is the number of random writes: modest by default, more with
// AR_PROPERTY_OPS; AR_PROPERTY_SEED replays a run.
func propertyRand(t *testing.T) (*rand.Rand, int) {
	ops := 300
	if v, err := strconv.Atoi(os.Getenv("AR_PROPERTY_OPS")); err == nil && v > 0 {
		ops = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("AR_PROPERTY_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("AR_PROPERTY_SEED=%d AR_PROPERTY_OPS=%d", seed, ops)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), ops
}

// TestSnapshotEqualsRebuild (property): after random writes, the snapshot
// each write changed by what it changed equals a full load of the same
// records by a store that shares nothing with it.
func TestSnapshotEqualsRebuild(t *testing.T) {
	rng, ops := propertyRand(t)
	s, _ := newStore(t)
	w := &randomWrites{t: t, rng: rng}
	for i := 1; i <= ops; i++ {
		w.step(s)
		if i%50 == 0 || i == ops {
			compareDumps(t, fmt.Sprintf("after %d writes", i), dumpStore(t, s), rebuildFromFile(t, s, masterKey(1)))
		}
	}
	if len(dumpSnapshot(t, s.Snapshot()).Keys) == 0 {
		t.Fatal("the random writes left no key: the comparison proves little")
	}
}

// TestFleetSnapshotEqualsRebuild (property): the same on two fleet
// instances writing at random, each following the other's writes through
// its watch; a third instance opened at the end loads everything at once.
func TestFleetSnapshotEqualsRebuild(t *testing.T) {
	rng, ops := propertyRand(t)
	ops = max(ops/3, 1) // etcd round trips
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	a := openFleet(t, cli, "a", masterKey(1))
	b := openFleet(t, cli, "b", masterKey(1))
	w := &randomWrites{t: t, rng: rng}
	check := func(what string) {
		resp, err := cli.Get(t.Context(), "probe")
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Store{a, b} {
			if !s.WaitRevision(resp.Header.Revision, 5*time.Second) {
				t.Fatalf("%s: %s did not reach revision %d", what, s.InstanceID(), resp.Header.Revision)
			}
		}
		fresh, err := OpenFleet(dbPath(t), masterKey(1), Options{}, FleetOptions{Client: cli, InstanceID: "fresh", NoRegistration: true})
		if err != nil {
			t.Fatal(err)
		}
		want := dumpStore(t, fresh)
		fresh.Close()
		compareDumps(t, what+" (a)", dumpStore(t, a), want)
		compareDumps(t, what+" (b)", dumpStore(t, b), want)
	}
	for i := 1; i <= ops; i++ {
		s := a
		if rng.IntN(2) == 0 {
			s = b
		}
		w.step(s)
		if i%25 == 0 || i == ops {
			check(fmt.Sprintf("after %d writes", i))
		}
	}
}
