package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// openFleet opens a fleet-mode store on cli, closed when the test ends.
func openFleet(t *testing.T, cli *clientv3.Client, id string, key []byte) *Store {
	t.Helper()
	s, err := OpenFleet(dbPath(t), key, Options{}, FleetOptions{Client: cli, InstanceID: id, PeerAddress: id + ":7444",
		WatchdogInterval: 500 * time.Millisecond, MemberTTL: 2 * time.Second})
	if err != nil {
		t.Fatalf("OpenFleet(%s): %v", id, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFleetSharesRecordsAndRefusesAnotherMasterKey(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 3)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(1)), "b", masterKey(1))

	mustAccount(t, a, "acme")
	key, k, err := a.CreateAPIKeyWithProfile("acme", "ci", "fast")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutCredential("acme", "openai", canaryKey, "sk-...ylJ", Extras{}); err != nil {
		t.Fatal(err)
	}
	// The writer's own snapshot has the write when the call returns.
	if e, ok := a.Snapshot().LookupKey(HashAPIKey(key)); !ok || e.Profile != "fast" {
		t.Fatalf("writer's snapshot lacks the key: %v %v", e, ok)
	}
	if a.Snapshot().Credential("acme", "openai") == nil {
		t.Fatal("writer's snapshot lacks the credential")
	}
	d := testfix.WaitFor(t, 2*time.Second, "the other instance sees the credential", func() bool {
		c := b.Snapshot().Credential("acme", "openai")
		return c != nil && c.Key() == canaryKey
	})
	t.Logf("propagation to the other instance: %v", d)
	if e, ok := b.Snapshot().LookupKey(HashAPIKey(key)); !ok || e.KeyID != k.ID {
		t.Fatal("other instance lacks the API key")
	}
	if err := b.RevokeAPIKey("acme", k.ID); err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 2*time.Second, "revocation reaches the first instance", func() bool {
		_, ok := a.Snapshot().LookupKey(HashAPIKey(key))
		return !ok
	})

	// Console users and sessions are shared: a session made on a is valid on b.
	u := setupUser(t, a, "acme", "dev@acme.example", RoleOwner)
	sid, _, err := a.CreateSession(User{ID: u.ID, AccountID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 2*time.Second, "session visible on b", func() bool {
		_, _, err := b.SessionUser(sid, time.Hour, time.Hour)
		return err == nil
	})

	// Members register under a lease.
	testfix.WaitFor(t, 3*time.Second, "both members registered", func() bool { return len(a.Members()) == 2 })

	// A third instance with another master key refuses to start.
	_, err = OpenFleet(dbPath(t), masterKey(2), Options{}, FleetOptions{Client: etcdtest.Client(t, c.Endpoint(2)), InstanceID: "c"})
	if !errors.Is(err, ErrWrongMasterKey) || !strings.Contains(err.Error(), "same master key") {
		t.Fatalf("another master key: %v", err)
	}
	t.Logf("another master key: %v", err)

	// The canary: no plaintext provider key in any member's data directory.
	for i := 0; i < c.Size(); i++ {
		filepath.WalkDir(c.DataDir(i), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && rawContains(t, p, canaryFragment) {
				t.Errorf("plaintext key in etcd data file %s", p)
			}
			return nil
		})
	}
}

func TestFleetCompactionPastAWatcherReloads(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 3)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	// b talks to member 2 only; stopping it leaves b's watch behind.
	bcli := etcdtest.Client(t, c.Endpoint(2))
	b := openFleet(t, bcli, "b", masterKey(1))
	mustAccount(t, a, "acme")
	if _, err := a.PutCredential("acme", "openai", "sk-old-1", "", Extras{}); err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 2*time.Second, "b sees v1", func() bool { return b.Snapshot().Credential("acme", "openai") != nil })
	reloads := b.Fleet().Reloads

	c.Stop(2)
	for i := 2; i <= 6; i++ {
		if _, err := a.PutCredential("acme", "openai", fmt.Sprintf("sk-new-%d", i), "", Extras{}); err != nil {
			t.Fatal(err)
		}
	}
	mustAccount(t, a, "globex")
	c.Compact(t, etcdtest.Client(t, c.Endpoint(0)))
	if got := b.Snapshot().Credential("acme", "openai").Key(); got != "sk-old-1" {
		t.Fatalf("b moved without etcd: %s", got)
	}
	if err := c.Restart(2); err != nil {
		t.Fatal(err)
	}
	d := testfix.WaitFor(t, 15*time.Second, "b reloads after the compaction", func() bool {
		cr := b.Snapshot().Credential("acme", "openai")
		return cr != nil && cr.Key() == "sk-new-6" && b.Snapshot().HasAccount("globex")
	})
	if b.Fleet().Reloads <= reloads {
		t.Fatalf("b caught up without a reload: %+v", b.Fleet())
	}
	t.Logf("b caught up %v after its member returned, with a full reload (%+v)", d, b.Fleet())
}

func TestFleetEtcdDownServesSnapshotRefusesWrites(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 3)
	a := openFleet(t, c.Client(t), "a", masterKey(1))
	mustAccount(t, a, "acme")
	if _, err := a.PutCredential("acme", "openai", "sk-before", "", Extras{}); err != nil {
		t.Fatal(err)
	}
	c.StopAll()
	// Reads and the snapshot keep working.
	if a.Snapshot().Credential("acme", "openai").Key() != "sk-before" {
		t.Fatal("snapshot lost")
	}
	if _, err := a.Credentials("acme"); err != nil {
		t.Fatalf("read while etcd is down: %v", err)
	}
	start := time.Now()
	_, err := a.PutCredential("acme", "openai", canaryKey, "", Extras{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write while etcd is down: %v", err)
	}
	if strings.Contains(err.Error(), canaryFragment) {
		t.Fatal("error leaks the key")
	}
	t.Logf("write refused after %v: %v", time.Since(start), err)
	if err := c.RestartAll(); err != nil {
		t.Fatal(err)
	}
	var err2 error
	testfix.WaitFor(t, 20*time.Second, "writes resume", func() bool {
		_, err2 = a.PutCredential("acme", "openai", "sk-after", "", Extras{})
		return err2 == nil
	})
	if a.Snapshot().Credential("acme", "openai").Key() != "sk-after" {
		t.Fatal("write after recovery not in the snapshot")
	}
}

func TestFleetHealthMarkSkipsARotatedKey(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, c.Client(t), "a", masterKey(1))
	b := openFleet(t, c.Client(t), "b", masterKey(1))
	mustAccount(t, a, "acme")
	if _, err := a.PutCredential("acme", "openai", "sk-v1", "", Extras{}); err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 2*time.Second, "b sees v1", func() bool { return b.Snapshot().Credential("acme", "openai") != nil })
	old := b.Snapshot().Credential("acme", "openai")
	// a rotates; b, still holding v1, reports v1 rejected: the mark must
	// not land on v2.
	if _, err := a.PutCredential("acme", "openai", "sk-v2", "", Extras{}); err != nil {
		t.Fatal(err)
	}
	b.persistHealth(old)
	old.health.invalidAt.Store(time.Now().UnixNano())
	b.persistHealth(old)
	testfix.WaitFor(t, 2*time.Second, "b sees v2", func() bool { return b.Snapshot().Credential("acme", "openai").Version == 2 })
	if _, _, bad := a.CredentialHealth("acme", "openai"); bad {
		t.Fatal("a mark for v1 landed on v2")
	}
	// A mark on the current version reaches the other instance.
	cur := b.Snapshot().Credential("acme", "openai")
	b.MarkInvalid(cur, time.Now(), "401 invalid_api_key")
	testfix.WaitFor(t, 2*time.Second, "the mark reaches a", func() bool { _, _, bad := a.CredentialHealth("acme", "openai"); return bad })
}

func TestFleetMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	src, path := newStore(t)
	mustAccount(t, src, "acme")
	key, _, err := src.CreateAPIKey("acme", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.PutCredential("acme", "openai", canaryKey, "", Extras{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 120; i++ {
		mustAccount(t, src, fmt.Sprintf("bulk-%03d", i))
	}
	src.Close()
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	for run := 0; run < 2; run++ {
		n, err := MigrateToFleet(context.Background(), path, masterKey(1), Options{}, FleetOptions{Client: cli, InstanceID: "migrate"}, 50)
		if err != nil {
			t.Fatalf("migrate run %d: %v", run, err)
		}
		t.Logf("migrate run %d copied %d records", run, n)
	}
	f := openFleet(t, cli, "a", masterKey(1))
	if _, ok := f.Snapshot().LookupKey(HashAPIKey(key)); !ok {
		t.Fatal("migrated API key missing")
	}
	if f.Snapshot().Credential("acme", "openai").Key() != canaryKey {
		t.Fatal("migrated credential missing")
	}
	if f.Snapshot().accountCount() != 121 {
		t.Fatalf("accounts: %d", f.Snapshot().accountCount())
	}
	// Another master key cannot migrate into this fleet.
	if _, err := MigrateToFleet(context.Background(), path, masterKey(2), Options{}, FleetOptions{Client: cli}, 50); err == nil {
		t.Fatal("migrate with the wrong key succeeded")
	}
}

func TestFleetMasterKeyRotationAndBigChanges(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	a, err := OpenFleet(dbPath(t), masterKey(1), Options{}, FleetOptions{Client: cli, InstanceID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		id := fmt.Sprintf("acct-%02d", i)
		mustAccount(t, a, id)
		if _, err := a.PutCredential(id, "openai", fmt.Sprintf("sk-rot-%02d", i), "", Extras{}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	// Restarted with the new key and the old one: the re-seal pass (in
	// batches) converts every record.
	b, err := OpenFleet(dbPath(t), masterKey(2), Options{OldMasterKeys: [][]byte{masterKey(1)}}, FleetOptions{Client: cli, InstanceID: "b"})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	// The new key alone opens everything; the old key alone is refused.
	n := openFleet(t, cli, "c", masterKey(2))
	if got := n.Snapshot().Credential("acct-59", "openai"); got == nil || got.Key() != "sk-rot-59" {
		t.Fatal("credential lost in the rotation")
	}
	if st := n.Fleet(); st.Unopenable != 0 {
		t.Fatalf("unopenable after the rotation: %+v", st)
	}
	if _, err := OpenFleet(dbPath(t), masterKey(1), Options{}, FleetOptions{Client: cli, InstanceID: "d"}); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("the retired key: %v", err)
	}

	// More expired sessions than one etcd transaction may delete.
	mustAccount(t, n, "big")
	// (13 people with MaxSessionsPerPerson sessions each).
	for i := 0; i < 13; i++ {
		u := setupUser(t, n, "big", fmt.Sprintf("o%d@big.example", i), RoleOwner)
		for j := 0; j < MaxSessionsPerPerson; j++ {
			if _, _, err := n.CreateSession(User{ID: u.ID, AccountID: "big"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	pruned, err := n.PruneSessions(-time.Second, time.Hour)
	if err != nil || pruned != 130 {
		t.Fatalf("pruned %d: %v", pruned, err)
	}
	// Deleting an account reaches the other instances.
	o := openFleet(t, cli, "e", masterKey(2))
	if err := n.DeleteAccount("acct-00"); err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 2*time.Second, "the deletion reaches e", func() bool {
		return !o.Snapshot().HasAccount("acct-00") && o.Snapshot().Credential("acct-00", "openai") == nil
	})

	// An account with more keys than one etcd transaction can delete.
	var keys []string
	for i := 0; i < 80; i++ {
		k, _, err := n.CreateAPIKey("big", fmt.Sprintf("k%d", i))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := n.DeleteAccount("big"); err != nil {
		t.Fatalf("deleting an account with 80 keys: %v", err)
	}
	testfix.WaitFor(t, 2*time.Second, "every key of the deleted account is refused on e", func() bool {
		for _, k := range keys {
			if _, ok := o.Snapshot().LookupKey(HashAPIKey(k)); ok {
				return false
			}
		}
		return !o.Snapshot().HasAccount("big")
	})
	if users, err := o.Users("big"); err == nil && len(users) > 0 {
		t.Fatalf("users of the deleted account remain: %+v", users)
	}
}

func TestFleetResponseOwnershipShared(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "b", masterKey(1))

	// Created through instance a, retrieved through instance b.
	if err := a.PutResponse("resp_1", ResponseOwner{AccountID: "acme", Provider: "openai", CredentialSource: "byok"}); err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 2*time.Second, "instance b knows the response's owner", func() bool {
		o, err := b.ResponseFor("acme", "resp_1")
		return err == nil && o.Provider == "openai" && o.CredentialSource == "byok"
	})
	if _, err := b.ResponseFor("globex", "resp_1"); !errors.Is(err, ErrResponseNotFound) {
		t.Fatalf("another account: %v", err)
	}
	// Insert-only across instances too: b, which already sees a's record,
	// cannot hand the id to another account.
	if err := b.PutResponse("resp_1", ResponseOwner{AccountID: "globex", Provider: "openai"}); !errors.Is(err, ErrResponseTaken) {
		t.Errorf("another account's put through instance b: %v, want ErrResponseTaken", err)
	}

	// More expired owners than one etcd transaction may delete.
	old := time.Now().Add(-ResponseRetention - time.Hour)
	for i := 0; i < 150; i++ {
		if err := a.PutResponse(fmt.Sprintf("resp_old_%03d", i), ResponseOwner{AccountID: "acme", Provider: "openai", Created: old}); err != nil {
			t.Fatal(err)
		}
	}
	// The log writers may have pruned (an empty bucket) already: make the
	// prune due again.
	if err := b.kv.update(func(tx kvTx) error { return tx.Bucket(bucketResponses).Delete(responsesPrunedKey) }); err != nil {
		t.Fatal(err)
	}
	b.pruneResponses(ResponseRetention)
	testfix.WaitFor(t, 2*time.Second, "the prune reaches instance a", func() bool {
		n := 0
		a.kv.view(func(tx kvTx) error {
			return tx.Bucket(bucketResponses).ForEach(func(k, v []byte) error {
				if k[0] != 0 { // not the prune's bookkeeping
					n++
				}
				return nil
			})
		})
		return n == 1
	})

	if err := b.ForgetResponse("resp_1"); err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 2*time.Second, "instance a forgets the deleted response", func() bool {
		_, err := a.ResponseFor("acme", "resp_1")
		return errors.Is(err, ErrResponseNotFound)
	})
	checkResponseOwnershipInsertOnly(t, b)
}

// TestFleetRequestPathWritesFailFastWhenEtcdIsDown: remembering a
// response's owner (done on the request path) costs at most about a second
// when etcd is down, then nothing for a while.
func TestFleetRequestPathWritesFailFastWhenEtcdIsDown(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, c.Client(t), "a", masterKey(1))
	if err := a.PutResponse("resp_up", ResponseOwner{AccountID: "acme", Provider: "openai", CredentialSource: "byok"}); err != nil {
		t.Fatal(err)
	}
	c.StopAll()
	start := time.Now()
	if err := a.PutResponse("resp_down_1", ResponseOwner{AccountID: "acme", Provider: "openai"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("first write while down: %v", err)
	}
	first := time.Since(start)
	start = time.Now()
	if err := a.PutResponse("resp_down_2", ResponseOwner{AccountID: "acme", Provider: "openai"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second write while down: %v", err)
	}
	second := time.Since(start)
	t.Logf("request-path writes while etcd is down: first %v, next %v", first, second)
	if first > 1500*time.Millisecond || second > 50*time.Millisecond {
		t.Fatalf("too slow: %v, %v", first, second)
	}
	if _, err := a.ResponseFor("acme", "resp_up"); err != nil {
		t.Fatalf("reads while down: %v", err)
	}
}

// An admin write on one instance right after a write on another acts on
// the fleet's state, not on a mirror a watch event behind: a load balancer
// may send the two calls to different instances.
func TestFleetWriteSeesTheOtherInstancesWrite(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 3)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(1)), "b", masterKey(1))
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("acct%02d", i)
		mustAccount(t, a, id)
		if _, _, err := b.CreateAPIKeyWithProfile(id, "ci", ""); err != nil {
			t.Fatalf("key for %s created on the other instance right after the account: %v", id, err)
		}
	}
}

// An instance whose watch cannot deliver (here: its mirror held locked, as
// a stalled watch would leave it) refuses an admin write with
// ErrUnavailable instead of deciding on state it knows is behind — the
// account created on the other instance would otherwise be "not found".
func TestFleetWriteRefusedWhileMirrorIsBehind(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 3)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(1)), "b", masterKey(1))
	fb := b.kv.(*fleetKV)
	fb.mu.Lock()
	locked := true
	defer func() {
		if locked {
			fb.mu.Unlock()
		}
	}()
	mustAccount(t, a, "late")
	done := make(chan error, 1)
	go func() {
		_, _, err := b.CreateAPIKeyWithProfile("late", "ci", "")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not saved") {
			t.Fatalf("write on an instance behind the fleet: %v, want ErrUnavailable", err)
		}
	case <-time.After(fb.opts.SyncTimeout + 10*time.Second):
		t.Fatal("the write neither failed nor finished")
	}
	fb.mu.Unlock()
	locked = false
	if _, _, err := b.CreateAPIKeyWithProfile("late", "ci", ""); err != nil {
		t.Fatalf("after the mirror caught up: %v", err)
	}
}
