package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const testPassword = "correct horse battery staple"

func setupUser(t *testing.T, s *Store, account, email, role string) User {
	t.Helper()
	u, err := s.CreateUser(account, email, role)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	tok, _, err := s.IssueSetupToken(account, u.ID, time.Hour)
	if err != nil {
		t.Fatalf("IssueSetupToken: %v", err)
	}
	if u, err = s.RedeemSetupToken(tok, testPassword); err != nil {
		t.Fatalf("RedeemSetupToken: %v", err)
	}
	return u
}

func TestUsersLifecycle(t *testing.T) {
	s, path := newStore(t)
	mustAccount(t, s, "acme")
	mustAccount(t, s, "globex")

	if _, err := s.CreateUser("nope", "a@x.io", RoleOwner); !errors.Is(err, ErrNotFound) {
		t.Fatalf("user for missing account: %v", err)
	}
	for _, bad := range []string{"", "not-an-email", "Name <a@x.io>", strings.Repeat("a", 300) + "@x.io"} {
		if _, err := s.CreateUser("acme", bad, RoleOwner); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("email %q: %v, want ErrInvalidInput", bad, err)
		}
	}
	if _, err := s.CreateUser("acme", "a@x.io", "admin"); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("bad role: %v", err)
	}

	u, err := s.CreateUser("acme", " Alice@Example.COM ", RoleOwner)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "alice@example.com" || u.HasPassword || u.Status != StatusInvited {
		t.Fatalf("user = %+v", u)
	}
	// The same email in another account is another membership of the same
	// person; twice in one account is refused.
	if g, err := s.CreateUser("globex", "alice@example.com", RoleMember); err != nil || g.PersonID != u.PersonID {
		t.Fatalf("the email in another account: %+v %v", g, err)
	}
	if _, err := s.CreateUser("acme", "alice@example.com", RoleMember); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate email in one account: %v", err)
	}
	// No password yet: nobody signs in.
	if _, err := s.Authenticate("alice@example.com", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("auth without password: %v", err)
	}

	tok, exp, err := s.IssueSetupToken("acme", u.ID, time.Hour)
	if err != nil || exp.Before(time.Now()) {
		t.Fatalf("IssueSetupToken: %v %v", exp, err)
	}
	if _, err := s.RedeemSetupToken(tok, "short"); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("short password: %v", err)
	}
	if _, err := s.RedeemSetupToken(tok+"x", testPassword); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := s.RedeemSetupToken(tok, testPassword); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RedeemSetupToken(tok, testPassword); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token used twice: %v", err)
	}
	for _, c := range []struct{ email, pw string }{{"alice@example.com", "wrong password!!"}, {"bob@example.com", testPassword}} {
		if _, err := s.Authenticate(c.email, c.pw); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("Authenticate(%s): %v", c.email, err)
		}
	}
	got, err := s.Authenticate("ALICE@example.com", testPassword)
	if err != nil || got.ID != u.ID || got.AccountID != "acme" {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}

	// Sessions: only a hash is stored; revoke one; revoke all on password change.
	id, _, err := s.CreateSession(got)
	if err != nil {
		t.Fatal(err)
	}
	if _, su, err := s.SessionUser(id, time.Hour, 24*time.Hour); err != nil || su.ID != u.ID {
		t.Fatalf("SessionUser: %+v %v", su, err)
	}
	id2, _, _ := s.CreateSession(got)
	if err := s.RevokeSession(id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionUser(id, time.Hour, 24*time.Hour); !errors.Is(err, ErrNoSession) {
		t.Fatalf("revoked session: %v", err)
	}
	if _, _, err := s.SessionUser(id2, time.Hour, 24*time.Hour); err != nil {
		t.Fatalf("other session: %v", err)
	}
	if err := s.SetPassword("acme", u.ID, "wrong password!!", "another long password"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("SetPassword with wrong current: %v", err)
	}
	if err := s.SetPassword("acme", u.ID, testPassword, "another long password"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionUser(id2, time.Hour, 24*time.Hour); !errors.Is(err, ErrNoSession) {
		t.Fatalf("session after password change: %v", err)
	}

	// Expiry: idle and absolute.
	id3, _, _ := s.CreateSession(got)
	defer func(old func() time.Time) { now = old }(now)
	base := time.Now()
	now = func() time.Time { return base.Add(2 * time.Hour) }
	if _, _, err := s.SessionUser(id3, time.Hour, 24*time.Hour); !errors.Is(err, ErrNoSession) {
		t.Fatalf("idle session: %v", err)
	}
	now = func() time.Time { return base }
	id4, _, _ := s.CreateSession(got)
	for h := 1; h <= 25; h++ {
		hh := h
		now = func() time.Time { return base.Add(time.Duration(hh)*time.Hour - time.Minute) }
		_, _, err = s.SessionUser(id4, 2*time.Hour, 24*time.Hour)
		if hh < 24 && err != nil {
			t.Fatalf("active session at %dh: %v", hh, err)
		}
	}
	if !errors.Is(err, ErrNoSession) {
		t.Fatalf("session past the absolute limit: %v", err)
	}
	now = time.Now

	// Isolation: another account's id is not found.
	if _, err := s.User("globex", u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-account user: %v", err)
	}
	if err := s.DeleteUser("globex", u.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-account delete: %v", err)
	}

	// Roles: the last owner stays.
	m := setupUser(t, s, "acme", "m@example.com", RoleMember)
	if _, err := s.SetUserRole("acme", u.ID, RoleMember); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("demote last owner: %v", err)
	}
	if err := s.DeleteUser("acme", u.ID); !errors.Is(err, ErrLastOwner) {
		t.Fatalf("delete last owner: %v", err)
	}
	if _, err := s.SetUserRole("acme", m.ID, RoleOwner); err != nil {
		t.Fatal(err)
	}
	mid, _, _ := s.CreateSession(m)
	if err := s.DeleteUser("acme", m.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SessionUser(mid, time.Hour, 24*time.Hour); !errors.Is(err, ErrNoSession) {
		t.Fatalf("session of a removed user: %v", err)
	}
	if _, err := s.CreateUser("acme", "m@example.com", RoleMember); err != nil {
		t.Fatalf("email reusable after removal: %v", err)
	}
	users, _ := s.Users("acme")
	if len(users) != 2 {
		t.Fatalf("users = %+v", users)
	}

	// Deleting the account drops its users.
	if err := s.DeleteAccount("acme"); err != nil {
		t.Fatal(err)
	}
	mustAccount(t, s, "acme")
	if users, _ := s.Users("acme"); len(users) != 0 {
		t.Fatalf("users survive account deletion: %+v", users)
	}
	s.Close()
	for _, secret := range []string{testPassword, tok, id, id2} {
		if rawContains(t, path, secret) {
			t.Errorf("the store file holds a secret in plaintext (%d chars)", len(secret))
		}
	}
}

func TestPruneSessions(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	u := setupUser(t, s, "acme", "o@acme.test", RoleOwner)
	old, _, _ := s.CreateSession(u)
	u2, _ := s.CreateUser("acme", "m@acme.test", RoleMember)
	s.IssueSetupToken("acme", u2.ID, time.Hour)
	defer func(o func() time.Time) { now = o }(now)
	base := time.Now()
	now = func() time.Time { return base.Add(2 * time.Hour) }
	fresh, _, _ := s.CreateSession(u)
	n, err := s.PruneSessions(time.Hour, 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if _, _, err := s.SessionUser(old, 3*time.Hour, 24*time.Hour); !errors.Is(err, ErrNoSession) {
		t.Fatal("the idle session survived")
	}
	if _, _, err := s.SessionUser(fresh, time.Hour, 24*time.Hour); err != nil {
		t.Fatalf("the fresh session went: %v", err)
	}
	var tokens int
	s.db.View(func(tx *bolt.Tx) error { tokens = tx.Bucket(bucketTokens.name).Stats().KeyN; return nil })
	if tokens != 0 {
		t.Fatalf("%d expired tokens left", tokens)
	}
}
