package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// TestFleetConcurrentOwnerActionsKeepAnOwner: an account with two owners
// and a member; one instance demotes the first owner while another removes
// the second, at the same moment. Each transaction reads the account's
// users (a range) and sees two owners; whichever commits second must notice
// the first's change — a removal included — and retry, so one of the two
// actions is refused and the account keeps an owner. Before the range's
// deletions were guarded, 5 of 20 tries left the account without one.
func TestFleetConcurrentOwnerActionsKeepAnOwner(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 3)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(1)), "b", masterKey(1))
	const tries = 20
	orphaned := 0
	for i := range tries {
		acct := fmt.Sprintf("acme%02d", i)
		mustAccount(t, a, acct)
		o1, err := a.CreateUser(acct, fmt.Sprintf("o1-%d@example.com", i), RoleOwner)
		if err != nil {
			t.Fatal(err)
		}
		o2, err := a.CreateUser(acct, fmt.Sprintf("o2-%d@example.com", i), RoleOwner)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.CreateUser(acct, fmt.Sprintf("m-%d@example.com", i), RoleMember); err != nil {
			t.Fatal(err)
		}
		testfix.WaitFor(t, 2*time.Second, "instance b sees the users", func() bool {
			us, _ := b.Users(acct)
			return len(us) == 3
		})
		var wg sync.WaitGroup
		var demoteErr, removeErr error
		start := make(chan struct{})
		wg.Go(func() { <-start; _, demoteErr = a.SetUserRole(acct, o1.ID, RoleMember) })
		wg.Go(func() { <-start; removeErr = b.DeleteUser(acct, o2.ID) })
		close(start)
		wg.Wait()
		for _, err := range []error{demoteErr, removeErr} {
			if err != nil && !errors.Is(err, ErrLastOwner) {
				t.Fatalf("try %d: %v", i, err)
			}
		}
		if demoteErr == nil && removeErr == nil {
			orphaned++
		}
		// Both instances agree once caught up: at least one owner.
		for _, s := range []*Store{a, b} {
			if err := s.kv.update(func(kvTx) error { return nil }); err != nil { // catch up
				t.Fatal(err)
			}
			owners := 0
			us, _ := s.Users(acct)
			for _, u := range us {
				if u.Role == RoleOwner {
					owners++
				}
			}
			if owners == 0 {
				t.Errorf("try %d: %s has no owner left (demote: %v, remove: %v)", i, acct, demoteErr, removeErr)
			}
		}
	}
	if orphaned > 0 {
		t.Errorf("both actions succeeded in %d of %d tries", orphaned, tries)
	}
}

// TestFleetTransactionGuardsItsReadSet: deterministic. Instance a's
// transaction reads; before it commits, instance b changes what it read —
// deletes a key of a bucket a read as a range, creates a key a read as
// absent, deletes a key a read with Get. Each time a's commit must
// conflict, and its fn run again on the new state.
func TestFleetTransactionGuardsItsReadSet(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "a", masterKey(1))
	b := openFleet(t, etcdtest.Client(t, c.Endpoint(0)), "b", masterKey(1))
	users := bucketUsers
	put := func(s *Store, k string) {
		t.Helper()
		if err := s.kv.update(func(tx kvTx) error { return tx.Bucket(users).Put([]byte(k), []byte("{}")) }); err != nil {
			t.Fatal(err)
		}
	}
	del := func(s *Store, k string) {
		t.Helper()
		if err := s.kv.update(func(tx kvTx) error { return tx.Bucket(users).Delete([]byte(k)) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"race\x00k1", "race\x00k2", "race\x00k3"} {
		put(a, k)
	}
	testfix.WaitFor(t, 2*time.Second, "b sees the keys", func() bool {
		n := 0
		b.kv.view(func(tx kvTx) error { return tx.Bucket(users).ForEach(func(k, _ []byte) error { n++; return nil }) })
		return n == 3
	})

	for _, tc := range []struct {
		name  string
		read  func(tx kvTx) string // what fn decides on
		other func()               // b's change, between a's read and a's commit
		want  string               // what fn decides on the second run
	}{
		{"range, then a deletion", func(tx kvTx) string {
			n := 0
			c := tx.Bucket(users).Cursor()
			for k, _ := c.Seek([]byte("race\x00")); k != nil && string(k[:5]) == "race\x00"; k, _ = c.Next() {
				n++
			}
			return fmt.Sprint(n)
		}, func() { del(b, "race\x00k2") }, "2"},
		{"absent, then created", func(tx kvTx) string {
			return fmt.Sprint(tx.Bucket(users).Get([]byte("race\x00new")) != nil)
		}, func() { put(b, "race\x00new") }, "true"},
		{"present, then deleted", func(tx kvTx) string {
			return fmt.Sprint(tx.Bucket(users).Get([]byte("race\x00k3")) != nil)
		}, func() { del(b, "race\x00k3") }, "false"},
	} {
		runs := 0
		var decided string
		err := a.kv.update(func(tx kvTx) error {
			runs++
			decided = tc.read(tx)
			if runs == 1 {
				tc.other()
			}
			return tx.Bucket(users).Put([]byte("race-decision"), []byte(decided))
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if runs != 2 || decided != tc.want {
			t.Errorf("%s: fn ran %d times and committed %q, want 2 runs committing %q", tc.name, runs, decided, tc.want)
		}
	}
}
