package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// An address already in use elsewhere is invited like a new one: the same
// answer, an invited membership, and a link that the person accepts with
// their own password. A person in two accounts signs in once and switches.
func TestInviteExistingPersonAcceptsWithTheirPassword(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	mustAccount(t, s, "globex")
	alice := setupUser(t, s, "acme", "alice@x.io", RoleOwner)

	// globex invites alice (a person with a password) and bob (nobody):
	// the answers differ only in their ids and addresses.
	ua, tokA, _, err := s.InviteUser("globex", "alice@x.io", RoleMember, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ub, tokB, _, err := s.InviteUser("globex", "bob@x.io", RoleMember, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ua.Status != StatusInvited || ub.Status != StatusInvited || ua.HasPassword || ub.HasPassword || ua.Role != ub.Role {
		t.Fatalf("the answers differ: %+v / %+v", ua, ub)
	}
	// The members list of globex says "invited" for both.
	for _, u := range mustUsers(t, s, "globex") {
		if u.Status != StatusInvited {
			t.Fatalf("%s: %s", u.Email, u.Status)
		}
	}
	// Invited: alice's sign-in still lands in acme only.
	if ms, _ := s.Memberships(alice.PersonID); len(ms) != 1 || ms[0].AccountID != "acme" {
		t.Fatalf("memberships before accepting: %+v", ms)
	}

	// Alice's link does not set her password: it checks it.
	if _, err := s.RedeemSetupToken(tokA, "a guess of the inviter"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("the link with another password: %v", err)
	}
	if _, err := s.Authenticate("alice@x.io", "a guess of the inviter"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal("the link changed alice's password")
	}
	sid, _, err := s.CreateSession(alice)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.RedeemSetupToken(tokA, testPassword)
	if err != nil || got.Status != StatusActive || got.AccountID != "globex" {
		t.Fatalf("accepting: %+v %v", got, err)
	}
	// Accepting with her password ends none of her sessions.
	if _, _, err := s.SessionUser(sid, time.Hour, time.Hour); err != nil {
		t.Fatalf("session after accepting: %v", err)
	}
	if _, err := s.RedeemSetupToken(tokA, testPassword); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("the link used twice: %v", err)
	}
	// Bob, a new person, chooses his password with his link.
	if _, err := s.RedeemSetupToken(tokB, "bob's own long password"); err != nil {
		t.Fatal(err)
	}

	// One sign-in, two accounts: the oldest first, then a switch.
	u, err := s.Authenticate("alice@x.io", testPassword)
	if err != nil || u.AccountID != "acme" {
		t.Fatalf("Authenticate: %+v %v", u, err)
	}
	if ms, _ := s.Memberships(u.PersonID); len(ms) != 2 {
		t.Fatalf("memberships: %+v", ms)
	}
	sess, su, err := s.SwitchAccount(sid, "globex")
	if err != nil || sess.AccountID != "globex" || su.Role != RoleMember || su.AccountID != "globex" {
		t.Fatalf("switch: %+v %+v %v", sess, su, err)
	}
	if _, su, err := s.SessionUser(sid, time.Hour, time.Hour); err != nil || su.AccountID != "globex" {
		t.Fatalf("the session after the switch: %+v %v", su, err)
	}
	mustAccount(t, s, "initech")
	if _, _, err := s.SwitchAccount(sid, "initech"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("switch to an account she is not in: %v", err)
	}

	// Removed from globex: the session there ends, her acme membership and
	// password stay.
	if err := s.DeleteUser("globex", su.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionUser(sid, time.Hour, time.Hour); !errors.Is(err, ErrNoSession) {
		t.Fatalf("the globex session after removal: %v", err)
	}
	if u, err := s.Authenticate("alice@x.io", testPassword); err != nil || u.AccountID != "acme" {
		t.Fatalf("alice after leaving globex: %+v %v", u, err)
	}
}

// An inviter who used their own link knows the person's password, but no
// other account can be entered without that account's own link.
func TestSquattedAddressCannotJoinAnotherAccount(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	mustAccount(t, s, "globex")
	setupUser(t, s, "acme", "boss@acme.io", RoleOwner)
	// acme invites carol and redeems the link itself (it holds it).
	_, tok, _, err := s.InviteUser("acme", "carol@x.io", RoleMember, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const squatter = "the acme owner knows this"
	if _, err := s.RedeemSetupToken(tok, squatter); err != nil {
		t.Fatal(err)
	}
	// globex can still invite carol (nothing says the address is taken).
	if _, _, _, err := s.InviteUser("globex", "carol@x.io", RoleOwner, time.Hour); err != nil {
		t.Fatalf("inviting a squatted address: %v", err)
	}
	u, err := s.Authenticate("carol@x.io", squatter)
	if err != nil {
		t.Fatal(err)
	}
	sid, _, _ := s.CreateSession(u)
	if _, _, err := s.SwitchAccount(sid, "globex"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the squatter entered globex without its link: %v", err)
	}
	if ms, _ := s.Memberships(u.PersonID); len(ms) != 1 {
		t.Fatalf("memberships: %+v", ms)
	}
}

func mustUsers(t *testing.T, s *Store, account string) []User {
	t.Helper()
	u, err := s.Users(account)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A person keeps at most MaxSessionsPerPerson sessions: the oldest end.
func TestSessionsCappedPerPerson(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	u := setupUser(t, s, "acme", "o@acme.test", RoleOwner)
	other := setupUser(t, s, "acme", "m@acme.test", RoleMember)
	otherSid, _, _ := s.CreateSession(other)
	var ids []string
	for i := 0; i < MaxSessionsPerPerson+5; i++ {
		id, _, err := s.CreateSession(u)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, id := range ids {
		_, _, err := s.SessionUser(id, time.Hour, time.Hour)
		if alive := err == nil; alive != (i >= 5) {
			t.Errorf("session %d alive = %v", i, alive)
		}
	}
	if _, _, err := s.SessionUser(otherSid, time.Hour, time.Hour); err != nil {
		t.Fatalf("another person's session ended: %v", err)
	}
	var n int
	s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketSessions.name).Stats().KeyN; return nil })
	if n != MaxSessionsPerPerson+1 {
		t.Fatalf("%d sessions stored, want %d", n, MaxSessionsPerPerson+1)
	}
	// Signing out everywhere (a password change) clears the index too.
	if err := s.SetPassword("acme", u.ID, testPassword, "another long password"); err != nil {
		t.Fatal(err)
	}
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketSessions.name).Stats().KeyN
		if tx.Bucket(bucketPersonSessions.name).Get([]byte(u.PersonID)) != nil {
			t.Error("the index of a person without sessions remains")
		}
		return nil
	})
	if n != 1 {
		t.Fatalf("%d sessions after the password change, want 1", n)
	}
}

// legacyFixture is store/testdata/legacy-v1.bbolt, written by the store as
// it was before people existed (commit e473294) with masterKey(9): accounts
// acme and globex; owner@acme.test and owner@globex.test with
// legacyPassword and a session each; member@acme.test invited, with an
// unused setup link (valid for a century); an API key and an OpenAI BYOK
// key for acme.
const (
	legacyPassword   = "correct horse battery staple"
	legacySession    = "NRLg1WyGC3WLC0veXl2bSWnIzCKZ6_Gho3MHONPRRW8" // owner@acme.test
	legacyGSession   = "E5LMk51d_B-Ry3LrlDIYLPLn5HiiL0hPpjG_npuATLQ" // owner@globex.test
	legacyToken      = "M6bnNaSvgmkvo_VlcjAgxafLrjFu9qrsrzmuW2O9X90" // member@acme.test
	legacyAPIKey     = "ar_D3OSeqBHSCOGlvwFz7MtussDqlY2EXQblzXhgEHlZQk"
	legacyOwnerID    = "usr_ed532d45c74a8709"
	legacyMemberID   = "usr_420256dd2640699e"
	legacyBYOKSecret = "sk-proj-LEGACYkey0123456789abcdefghijklmnopqrstuvwxyz"
)

func legacyCopy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "legacy-v1.bbolt"))
	if err != nil {
		t.Fatal(err)
	}
	p := dbPath(t)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkLegacyMigrated checks that everything of the legacy fixture is there
// and works after the migration.
func checkLegacyMigrated(t *testing.T, s *Store) {
	t.Helper()
	long := 100 * 365 * 24 * time.Hour
	users := mustUsers(t, s, "acme")
	if len(users) != 2 {
		t.Fatalf("acme users: %+v", users)
	}
	for _, u := range users {
		want := map[string]string{legacyOwnerID: StatusActive, legacyMemberID: StatusInvited}[u.ID]
		if u.Status != want || u.PersonID == "" {
			t.Errorf("%s: %+v, want %s", u.Email, u, want)
		}
	}
	u, err := s.Authenticate("owner@acme.test", legacyPassword)
	if err != nil || u.ID != legacyOwnerID || u.Role != RoleOwner {
		t.Fatalf("the legacy owner signs in: %+v %v", u, err)
	}
	if _, err := s.Authenticate("owner@globex.test", legacyPassword); err != nil {
		t.Fatalf("the globex owner: %v", err)
	}
	if _, su, err := s.SessionUser(legacySession, long, long); err != nil || su.ID != legacyOwnerID {
		t.Fatalf("the legacy session: %+v %v", su, err)
	}
	// The migrated session is indexed: a password change ends it.
	if _, ok := s.Snapshot().LookupKey(HashAPIKey(legacyAPIKey)); !ok {
		t.Fatal("the legacy API key is gone")
	}
	if c := s.Snapshot().Credential("acme", "openai"); c == nil || c.Key() != legacyBYOKSecret {
		t.Fatal("the legacy BYOK key does not open")
	}
	m, err := s.RedeemSetupToken(legacyToken, "the member's new password")
	if err != nil || m.ID != legacyMemberID || m.Status != StatusActive {
		t.Fatalf("the legacy setup link: %+v %v", m, err)
	}
	if err := s.SetPassword("acme", legacyOwnerID, legacyPassword, "a new owner password"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionUser(legacySession, long, long); !errors.Is(err, ErrNoSession) {
		t.Fatalf("the legacy session after a password change: %v", err)
	}
	if _, _, err := s.SessionUser(legacyGSession, long, long); err != nil {
		t.Fatalf("the other person's legacy session: %v", err)
	}
}

// A store file written before people existed opens, migrated in place,
// with nothing lost; opening it again changes nothing.
func TestLegacyStoreMigratesInPlace(t *testing.T) {
	p := legacyCopy(t)
	s := openStore(t, p, masterKey(9), Options{})
	var schema string
	s.db.View(func(tx *bolt.Tx) error { schema = string(tx.Bucket(bucketMeta.name).Get(usersSchemaKey)); return nil })
	if schema != "2" {
		t.Fatalf("schema %q after opening", schema)
	}
	// Every user record now names its person and carries no hash.
	s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers.name).ForEach(func(k, v []byte) error {
			var r legacyUser
			json.Unmarshal(v, &r)
			if r.Person == "" || len(r.Hash) != 0 {
				t.Errorf("user record %q not migrated: %s", k, v)
			}
			return nil
		})
	})
	checkLegacyMigrated(t, s)
	s.Close()
	s = openStore(t, p, masterKey(9), Options{})
	if u, err := s.Authenticate("owner@acme.test", "a new owner password"); err != nil || u.ID != legacyOwnerID {
		t.Fatalf("after reopening: %+v %v", u, err)
	}
	for _, secret := range []string{legacyPassword, legacySession, legacyToken} {
		if rawContains(t, p, secret) {
			t.Errorf("the migrated file holds a secret in plaintext (%d chars)", len(secret))
		}
	}
}

// Fleet mode: legacy records in etcd (as a fleet running the old code left
// them) are migrated by the first instances to open, two at once here.
func TestFleetLegacyUsersMigrate(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	src, err := bolt.Open(legacyCopy(t), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range SharedBuckets {
		src.View(func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(name))
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				if _, err := cli.Put(context.Background(), DefaultFleetPrefix+name+"/"+string(k), string(v)); err != nil {
					t.Fatal(err)
				}
				n++
				return nil
			})
		})
	}
	src.Close()
	t.Logf("%d legacy records put into etcd", n)
	stores := make([]*Store, 2)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := OpenFleet(dbPath(t), masterKey(9), Options{}, FleetOptions{Client: etcdtest.Client(t, c.Endpoint(0)), InstanceID: fmt.Sprint("m", i), NoRegistration: true})
			if err != nil {
				t.Errorf("OpenFleet %d: %v", i, err)
				return
			}
			t.Cleanup(func() { s.Close() })
			stores[i] = s
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkLegacyMigrated(t, stores[0])
	// The other instance agrees (the member's link was used on the first).
	testfix.WaitFor(t, 2*time.Second, "the migration seen on the second instance", func() bool {
		u, err := stores[1].User("acme", legacyMemberID)
		return err == nil && u.Status == StatusActive
	})
}

// Fleet mode: deleting an account whose members are in other accounts too
// (their people are rewritten, not deleted) works past one etcd
// transaction's 128 operations, and leaves them their other account.
func TestFleetDeleteAccountWithSharedMembers(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 1)
	s := openFleet(t, c.Client(t), "a", masterKey(1))
	mustAccount(t, s, "big")
	mustAccount(t, s, "other")
	var people []User
	for i := 0; i < 20; i++ { // 8 operations each: 160
		email := fmt.Sprintf("p%d@x.io", i)
		u := setupUser(t, s, "other", email, RoleOwner)
		_, tok, _, err := s.InviteUser("big", email, RoleMember, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.RedeemSetupToken(tok, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 5; j++ {
			s.CreateSession(m)
			s.CreateSession(u)
		}
		people = append(people, u)
	}
	if err := s.DeleteAccount("big"); err != nil {
		t.Fatalf("deleting an account of 20 members who are in another account too: %v", err)
	}
	for _, u := range people {
		ms, err := s.Memberships(u.PersonID)
		if err != nil || len(ms) != 1 || ms[0].AccountID != "other" {
			t.Fatalf("%s after the deletion: %+v %v", u.Email, ms, err)
		}
	}
}
