package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Console people, memberships, one-time links.
//
// A person is one identity — an email and a password — with memberships in
// one or more accounts. A membership (called a user in the admin API, which
// keeps its ids) gives the person a role in one account: owner (manages BYOK
// keys, API keys and members) or member (reads, and uses the playground).
// Inviting an address creates an invited membership, and a person for the
// address if there is none, and the same one-time link whatever the
// address's state: the inviter learns nothing about other accounts, and
// nobody can take an address away from another account. The link accepts
// the membership: a person without a password chooses one, a person with
// one proves it. Only the link accepts, never a click in the console: a
// person whose password an inviter of another account set (the inviter holds
// the link) cannot be moved into a third account without that account's
// own link.
//
// Passwords are argon2id (passwords.go). Link tokens and session ids are
// random 256-bit values; only their SHA-256 is stored, so a copy of the
// store does not let anyone in.

// Roles.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// Membership states.
const (
	StatusActive  = "active"
	StatusInvited = "invited" // the link has not been used yet
)

// Errors of the user functions.
var (
	// ErrBadCredentials means the email or the password is wrong; which
	// one is deliberately not said.
	ErrBadCredentials = errors.New("wrong email or password")
	// ErrInvalidToken means a setup token is unknown, used or expired.
	ErrInvalidToken = errors.New("this setup link is invalid, used or expired")
	// ErrNoSession means a session id is unknown, revoked or expired.
	ErrNoSession = errors.New("no such session")
	// ErrInvalidInput wraps a user-readable reason for refusing input.
	ErrInvalidInput = errors.New("invalid input")
	// ErrLastOwner refuses to remove or demote an account's last owner.
	ErrLastOwner = errors.New("an account needs at least one owner")
	// ErrNoMembership means the password was right but the person has no
	// accepted membership in any account (every one is still invited).
	ErrNoMembership = errors.New("you are not a member of any account yet: open the link of an invitation to accept it")
	// ErrWrongPassword means a link for a person who already has a
	// password was used with another password.
	ErrWrongPassword = errors.New("this email already has a password, and this is not it: enter the password you sign in with")
)

// User is a membership: a person's role in one account, without any
// password material.
type User struct {
	// ID names the membership within its account (the admin API's user id).
	ID        string    `json:"id"`
	AccountID string    `json:"account"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	// Status is "active", or "invited" until the person uses the link.
	Status string `json:"status"`
	// PersonID names the person, the same in every account they are in.
	PersonID string `json:"person"`
	// HasPassword says whether the person has set a password (in any
	// account). The console does not show it for invited memberships: it
	// would tell an inviter that the address is in use elsewhere.
	HasPassword bool `json:"has_password"`
}

// userRecord is a membership as stored.
type userRecord struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	Person    string    `json:"person"`
	Invited   bool      `json:"invited,omitempty"`
}

func (r *userRecord) user(p *personRecord) User {
	u := User{ID: r.ID, AccountID: r.AccountID, Email: r.Email, Role: r.Role, CreatedAt: r.CreatedAt, PersonID: r.Person, Status: StatusActive}
	if r.Invited {
		u.Status = StatusInvited
	}
	if p != nil {
		u.HasPassword = p.Password.set()
	}
	return u
}

// personRecord is a person as stored.
type personRecord struct {
	ID        string       `json:"id"`
	Email     string       `json:"email"`
	CreatedAt time.Time    `json:"created_at"`
	Password  passwordHash `json:"password"`
	// Memberships lists the person's memberships, oldest first.
	Memberships []membershipRef `json:"memberships"`
}

type membershipRef struct {
	Account string `json:"account"`
	User    string `json:"user"`
}

// Token kinds.
const (
	tokenInvite = "invite" // accepts a membership; sets a password only if the person has none
	tokenReset  = "reset"  // from the operator: sets the person's password (and accepts)
)

type tokenRecord struct {
	AccountID string    `json:"account"`
	UserID    string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
	// Kind is tokenInvite or tokenReset; tokens issued before people
	// existed have none and are resets (the admin API issued them).
	Kind string `json:"kind,omitempty"`
}

// NormalizeEmail lowercases and checks an email address.
func NormalizeEmail(email string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(email))
	if len(e) > 254 || !utf8.ValidString(e) {
		return "", fmt.Errorf("%w: the email address is not valid", ErrInvalidInput)
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || !strings.Contains(e, "@") {
		return "", fmt.Errorf("%w: the email address is not valid", ErrInvalidInput)
	}
	return e, nil
}

// ValidRole reports whether role is owner or member.
func ValidRole(role string) bool { return role == RoleOwner || role == RoleMember }

func userKey(account, id string) []byte { return []byte(account + "\x00" + id) }

func randomToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func randomID(prefix string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

func tokenHash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

func getUser(tx kvTx, account, id string) (userRecord, error) {
	var r userRecord
	v := tx.Bucket(bucketUsers).Get(userKey(account, id))
	if v == nil {
		return r, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	err := json.Unmarshal(v, &r)
	return r, err
}

func getPerson(tx kvTx, id string) (personRecord, error) {
	var p personRecord
	v := tx.Bucket(bucketPeople).Get([]byte(id))
	if v == nil {
		return p, fmt.Errorf("person %q: %w", id, ErrNotFound)
	}
	err := json.Unmarshal(v, &p)
	return p, err
}

// personByEmail returns the person with this (normalized) email.
func personByEmail(tx kvTx, email string) (personRecord, bool) {
	id := tx.Bucket(bucketEmails).Get([]byte(email))
	if id == nil {
		return personRecord{}, false
	}
	p, err := getPerson(tx, string(id))
	return p, err == nil
}

func putPerson(tx kvTx, p *personRecord) error {
	return putJSON(tx.Bucket(bucketPeople), []byte(p.ID), p)
}

// CreateUser adds an invited membership of email to account, and a person
// for email if there is none. The person accepts it with a link
// (InviteUser issues one with it; IssueSetupToken a reset link). An email
// already in the account is ErrExists; an email in other accounts is not
// an error, and nothing in the answer says whether it is.
func (s *Store) CreateUser(account, email, role string) (User, error) {
	u, _, _, err := s.invite(account, email, role, 0)
	return u, err
}

// InviteUser adds an invited membership (as CreateUser) and returns the
// link token that accepts it, valid for ttl.
func (s *Store) InviteUser(account, email, role string, ttl time.Duration) (User, string, time.Time, error) {
	if ttl <= 0 {
		return User{}, "", time.Time{}, fmt.Errorf("%w: an invitation needs a validity", ErrInvalidInput)
	}
	return s.invite(account, email, role, ttl)
}

func (s *Store) invite(account, email, role string, ttl time.Duration) (User, string, time.Time, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return User{}, "", time.Time{}, err
	}
	if !ValidRole(role) {
		return User{}, "", time.Time{}, fmt.Errorf("%w: role must be owner or member", ErrInvalidInput)
	}
	uid, err := randomID("usr_")
	if err != nil {
		return User{}, "", time.Time{}, err
	}
	pid, err := randomID("psn_")
	if err != nil {
		return User{}, "", time.Time{}, err
	}
	var token string
	var expires time.Time
	if ttl > 0 {
		if token, err = randomToken(); err != nil {
			return User{}, "", time.Time{}, err
		}
		expires = now().Add(ttl).UTC()
	}
	t := now().UTC()
	var out User
	err = s.kv.update(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		p, found := personByEmail(tx, email)
		if !found {
			p = personRecord{ID: pid, Email: email, CreatedAt: t}
			if err := tx.Bucket(bucketEmails).Put([]byte(email), []byte(pid)); err != nil {
				return err
			}
		}
		if slices.ContainsFunc(p.Memberships, func(m membershipRef) bool { return m.Account == account }) {
			// The inviter sees the account's own members: no leak.
			return fmt.Errorf("%s is already a member of this account: %w", email, ErrExists)
		}
		rec := userRecord{ID: uid, AccountID: account, Email: email, Role: role, CreatedAt: t, Person: p.ID, Invited: true}
		p.Memberships = append(p.Memberships, membershipRef{account, uid})
		if err := putPerson(tx, &p); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketUsers), userKey(account, uid), rec); err != nil {
			return err
		}
		if token != "" {
			if err := putToken(tx, token, tokenRecord{AccountID: account, UserID: uid, ExpiresAt: expires, Kind: tokenInvite}); err != nil {
				return err
			}
		}
		// The answer is the same whether the person is new or not.
		out = rec.user(nil)
		return nil
	})
	if err != nil {
		return User{}, "", time.Time{}, err
	}
	return out, token, expires, nil
}

// Users lists an account's memberships, oldest first.
func (s *Store) Users(account string) ([]User, error) {
	out := []User{}
	err := s.kv.view(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		prefix := []byte(account + "\x00")
		c := tx.Bucket(bucketUsers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r userRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			p, err := getPerson(tx, r.Person)
			if err != nil {
				return err
			}
			out = append(out, r.user(&p))
		}
		return nil
	})
	sortUsers(out)
	return out, err
}

func sortUsers(u []User) {
	slices.SortStableFunc(u, func(a, b User) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// User returns one of account's memberships; one of another account is
// ErrNotFound.
func (s *Store) User(account, id string) (User, error) {
	var u User
	err := s.kv.view(func(tx kvTx) error {
		r, err := getUser(tx, account, id)
		if err != nil {
			return err
		}
		p, err := getPerson(tx, r.Person)
		u = r.user(&p)
		return err
	})
	return u, err
}

// Memberships lists a person's active memberships, oldest first (the
// console's account switcher).
func (s *Store) Memberships(personID string) ([]User, error) {
	var out []User
	err := s.kv.view(func(tx kvTx) error {
		p, err := getPerson(tx, personID)
		if err != nil {
			return err
		}
		for _, m := range p.Memberships {
			r, err := getUser(tx, m.Account, m.User)
			if err == nil && !r.Invited {
				out = append(out, r.user(&p))
			}
		}
		return nil
	})
	return out, err
}

func owners(tx kvTx, account string) int {
	n := 0
	prefix := []byte(account + "\x00")
	c := tx.Bucket(bucketUsers).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var r userRecord
		if json.Unmarshal(v, &r) == nil && r.Role == RoleOwner {
			n++
		}
	}
	return n
}

// SetUserRole changes a membership's role. The last owner cannot be
// demoted.
func (s *Store) SetUserRole(account, id, role string) (User, error) {
	if !ValidRole(role) {
		return User{}, fmt.Errorf("%w: role must be owner or member", ErrInvalidInput)
	}
	var out User
	err := s.kv.update(func(tx kvTx) error {
		r, err := getUser(tx, account, id)
		if err != nil {
			return err
		}
		if r.Role == RoleOwner && role != RoleOwner && owners(tx, account) <= 1 {
			return ErrLastOwner
		}
		r.Role = role
		p, _ := getPerson(tx, r.Person)
		out = r.user(&p)
		return putJSON(tx.Bucket(bucketUsers), userKey(account, id), r)
	})
	return out, err
}

// DeleteUser removes a membership, its setup links and the person's
// sessions in the account; a person left without memberships goes too,
// which frees the email. The last owner of an account with other users
// cannot be removed.
func (s *Store) DeleteUser(account, id string) error {
	return s.kv.update(func(tx kvTx) error {
		r, err := getUser(tx, account, id)
		if err != nil {
			return err
		}
		if r.Role == RoleOwner && owners(tx, account) <= 1 {
			if us, _ := countUsers(tx, account); us > 1 {
				return ErrLastOwner
			}
		}
		if err := removeMembership(tx, r); err != nil {
			return err
		}
		return deleteTokensWhere(tx, func(t tokenRecord) bool { return t.AccountID == account && t.UserID == id })
	})
}

// removeMembership deletes membership r, the person's sessions in its
// account, and the person if it was their last membership.
func removeMembership(tx kvTx, r userRecord) error {
	if err := tx.Bucket(bucketUsers).Delete(userKey(r.AccountID, r.ID)); err != nil {
		return err
	}
	p, err := getPerson(tx, r.Person)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	p.Memberships = slices.DeleteFunc(p.Memberships, func(m membershipRef) bool { return m.Account == r.AccountID && m.User == r.ID })
	if len(p.Memberships) == 0 {
		if err := revokePersonSessions(tx, p.ID, ""); err != nil {
			return err
		}
		if err := tx.Bucket(bucketPeople).Delete([]byte(p.ID)); err != nil {
			return err
		}
		if string(tx.Bucket(bucketEmails).Get([]byte(p.Email))) == p.ID {
			return tx.Bucket(bucketEmails).Delete([]byte(p.Email))
		}
		return nil
	}
	if err := revokePersonSessions(tx, p.ID, r.AccountID); err != nil {
		return err
	}
	return putPerson(tx, &p)
}

func countUsers(tx kvTx, account string) (int, error) {
	n := 0
	prefix := []byte(account + "\x00")
	c := tx.Bucket(bucketUsers).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n, nil
}

// deleteTokensWhere deletes the setup links that match.
func deleteTokensWhere(tx kvTx, match func(tokenRecord) bool) error {
	b := tx.Bucket(bucketTokens)
	var doomed [][]byte
	if err := b.ForEach(func(k, v []byte) error {
		var r tokenRecord
		if json.Unmarshal(v, &r) != nil || match(r) {
			doomed = append(doomed, bytes.Clone(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// deleteAccountUsers removes an account's memberships, with their sessions
// and links, and the people left without any (from DeleteAccount).
func deleteAccountUsers(tx kvTx, account string) error {
	prefix := []byte(account + "\x00")
	var doomed []userRecord
	c := tx.Bucket(bucketUsers).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var r userRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		doomed = append(doomed, r)
	}
	for _, r := range doomed {
		if err := removeMembership(tx, r); err != nil {
			return err
		}
	}
	return deleteTokensWhere(tx, func(t tokenRecord) bool { return t.AccountID == account })
}

// removeAccountMembers removes an account's memberships one transaction
// each (fleet mode, before DeleteAccount's own transaction).
func (s *Store) removeAccountMembers(account string) error {
	users, err := s.Users(account)
	if errors.Is(err, ErrNotFound) {
		return nil // DeleteAccount says so
	}
	if err != nil {
		return err
	}
	for _, u := range users {
		err := s.kv.update(func(tx kvTx) error {
			r, err := getUser(tx, account, u.ID)
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return removeMembership(tx, r)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func putToken(tx kvTx, token string, r tokenRecord) error {
	return putJSON(tx.Bucket(bucketTokens), tokenHash(token), r)
}

// IssueSetupToken returns a one-time reset link token for a membership,
// valid for ttl (the admin API's "forgotten password"): it sets the
// person's password and accepts the membership. Issuing one drops the
// membership's earlier links.
func (s *Store) IssueSetupToken(account, userID string, ttl time.Duration) (token string, expires time.Time, err error) {
	token, err = randomToken()
	if err != nil {
		return "", time.Time{}, err
	}
	expires = now().Add(ttl).UTC()
	err = s.kv.update(func(tx kvTx) error {
		if _, err := getUser(tx, account, userID); err != nil {
			return err
		}
		t := now()
		if err := deleteTokensWhere(tx, func(r tokenRecord) bool {
			return r.AccountID == account && r.UserID == userID || t.After(r.ExpiresAt)
		}); err != nil {
			return err
		}
		return putToken(tx, token, tokenRecord{AccountID: account, UserID: userID, ExpiresAt: expires, Kind: tokenReset})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// linkState is what a link token leads to, read before any hashing.
type linkState struct {
	tok    tokenRecord
	user   userRecord
	person personRecord
	// verify: the person has a password and the link is an invitation,
	// so the password given must be that one.
	verify bool
}

func readLink(tx kvTx, token string) (linkState, error) {
	var st linkState
	v := tx.Bucket(bucketTokens).Get(tokenHash(token))
	if v == nil || json.Unmarshal(v, &st.tok) != nil || !now().Before(st.tok.ExpiresAt) {
		return st, ErrInvalidToken
	}
	var err error
	if st.user, err = getUser(tx, st.tok.AccountID, st.tok.UserID); err != nil {
		return st, ErrInvalidToken
	}
	if st.person, err = getPerson(tx, st.user.Person); err != nil {
		return st, ErrInvalidToken
	}
	st.verify = st.tok.Kind == tokenInvite && st.person.Password.set()
	return st, nil
}

// RedeemGate is called by RedeemSetupTokenGated once the link is known to
// be valid and before any password is hashed, with the person's email and
// whether the password given will be checked against theirs (an invitation
// for a person who has one) rather than set. An error stops the redeem and
// is returned as is (the console reserves a sign-in attempt here).
type RedeemGate func(email string, verify bool) error

// RedeemSetupToken uses a link: it sets the person's password (a new
// person, or a reset link) or checks it (an invitation for a person who
// has one: ErrWrongPassword), accepts the membership and consumes the
// link. Setting a password ends every session of the person.
func (s *Store) RedeemSetupToken(token, password string) (User, error) {
	return s.RedeemSetupTokenGated(token, password, nil)
}

// RedeemSetupTokenGated is RedeemSetupToken with a gate (see RedeemGate).
func (s *Store) RedeemSetupTokenGated(token, password string, gate RedeemGate) (User, error) {
	if err := CheckPasswordRules(password); err != nil {
		return User{}, err
	}
	var st linkState
	if err := s.kv.view(func(tx kvTx) (err error) { st, err = readLink(tx, token); return err }); err != nil {
		return User{}, err
	}
	if gate != nil {
		if err := gate(st.person.Email, st.verify); err != nil {
			return User{}, err
		}
	}
	// Hash outside any transaction.
	var fresh passwordHash
	if st.verify {
		ok, err := st.person.Password.verify(password)
		if err != nil {
			return User{}, err
		}
		if !ok {
			return User{}, ErrWrongPassword
		}
	} else {
		var err error
		if fresh, err = newPasswordHash(password); err != nil {
			return User{}, err
		}
	}
	var out User
	err := s.kv.update(func(tx kvTx) error {
		cur, err := readLink(tx, token)
		if err != nil {
			return err
		}
		if cur.verify != st.verify || !bytes.Equal(cur.person.Password.Hash, st.person.Password.Hash) {
			// The person's password changed meanwhile (another link, a
			// password change): what was checked no longer holds.
			return ErrInvalidToken
		}
		if err := tx.Bucket(bucketTokens).Delete(tokenHash(token)); err != nil {
			return err
		}
		u, p := cur.user, cur.person
		u.Invited = false
		if err := putJSON(tx.Bucket(bucketUsers), userKey(u.AccountID, u.ID), u); err != nil {
			return err
		}
		if !st.verify {
			p.Password = fresh
			if err := putPerson(tx, &p); err != nil {
				return err
			}
			if err := revokePersonSessions(tx, p.ID, ""); err != nil {
				return err
			}
		}
		out = u.user(&p)
		return nil
	})
	return out, err
}

// SetPassword changes the password of the person behind a membership
// after checking the current one, and ends every session of the person.
// Both hashes run outside any transaction.
func (s *Store) SetPassword(account, id, current, password string) error {
	if err := CheckPasswordRules(password); err != nil {
		return err
	}
	var p personRecord
	if err := s.kv.view(func(tx kvTx) error {
		r, err := getUser(tx, account, id)
		if err != nil {
			return err
		}
		p, err = getPerson(tx, r.Person)
		return err
	}); err != nil {
		return err
	}
	ok, err := p.Password.verify(current)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBadCredentials
	}
	fresh, err := newPasswordHash(password)
	if err != nil {
		return err
	}
	return s.kv.update(func(tx kvTx) error {
		r, err := getUser(tx, account, id)
		if err != nil {
			return err
		}
		q, err := getPerson(tx, r.Person)
		if err != nil {
			return err
		}
		if q.ID != p.ID || !bytes.Equal(q.Password.Hash, p.Password.Hash) {
			return ErrBadCredentials // changed meanwhile: the check is stale
		}
		q.Password = fresh
		if err := putPerson(tx, &q); err != nil {
			return err
		}
		return revokePersonSessions(tx, q.ID, "")
	})
}

// Authenticate checks an email and password and returns the person's
// oldest active membership. The error is ErrBadCredentials whichever of the
// two was wrong, and takes as long: an unknown email, or a person without
// a password yet, is checked against a dummy hash. ErrBusy means the
// password was not checked (too many at once); ErrNoMembership that it
// was right but every membership is still invited.
func (s *Store) Authenticate(email, password string) (User, error) {
	email, err := NormalizeEmail(email)
	var p personRecord
	found := false
	if err == nil {
		s.kv.view(func(tx kvTx) error {
			p, found = personByEmail(tx, email)
			return nil
		})
	}
	ok, err := p.Password.verify(password) // the dummy hash when not found
	if err != nil {
		return User{}, err
	}
	if !found || !ok {
		return User{}, ErrBadCredentials
	}
	ms, err := s.Memberships(p.ID)
	if err != nil {
		return User{}, err
	}
	if len(ms) == 0 {
		return User{}, ErrNoMembership
	}
	return ms[0], nil
}
