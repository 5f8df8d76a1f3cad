package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Console users, one-time setup tokens and sessions.
//
// A user belongs to one account and has a role: owner (manages BYOK keys,
// API keys and members) or member (reads, and uses the playground). Emails
// are unique across the store, so signing in needs no account name.
// Passwords are hashed with argon2id and a per-user salt. Setup tokens and
// session ids are random 256-bit values; only their SHA-256 is stored, so a
// copy of the file does not let anyone sign in.

var (
	bucketUsers    = []byte("users")       // account \x00 user id -> userRecord
	bucketEmails   = []byte("user_emails") // email -> account \x00 user id
	bucketTokens   = []byte("user_tokens") // sha256(token) -> tokenRecord
	bucketSessions = []byte("sessions")    // sha256(session id) -> sessionRecord
)

// Roles.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// MinPasswordLength is the shortest password SetPassword accepts.
const MinPasswordLength = 12

// maxPasswordLength bounds what is hashed (argon2 takes any length; a
// megabyte password is a denial of service, not a password).
const maxPasswordLength = 256

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
)

// User is a console user, without its password hash.
type User struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
	CreatedAt   time.Time `json:"created_at"`
	HasPassword bool      `json:"has_password"`
}

type userRecord struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account"`
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	// Hash is argon2id(password, Salt) with the parameters below; empty
	// until the user sets a password from the setup link.
	Salt    []byte `json:"salt,omitempty"`
	Hash    []byte `json:"hash,omitempty"`
	Time    uint32 `json:"t,omitempty"`
	Memory  uint32 `json:"m,omitempty"`
	Threads uint8  `json:"p,omitempty"`
}

func (r *userRecord) user() User {
	return User{ID: r.ID, AccountID: r.AccountID, Email: r.Email, Role: r.Role, CreatedAt: r.CreatedAt, HasPassword: len(r.Hash) > 0}
}

type tokenRecord struct {
	AccountID string    `json:"account"`
	UserID    string    `json:"user"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Session is a signed-in user's session, as the store holds it.
type Session struct {
	AccountID  string    `json:"account"`
	UserID     string    `json:"user"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

// argon2id parameters: RFC 9106's second recommendation scaled to a small
// server (OWASP's 19 MiB, 2 passes), stored with each hash so they can grow.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

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

func tokenHash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// CreateUser adds a user without a password to account. The user sets one
// through a setup token (IssueSetupToken).
func (s *Store) CreateUser(account, email, role string) (User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return User{}, err
	}
	if !ValidRole(role) {
		return User{}, fmt.Errorf("%w: role must be owner or member", ErrInvalidInput)
	}
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return User{}, err
	}
	rec := userRecord{ID: "usr_" + hex.EncodeToString(idb[:]), AccountID: account, Email: email, Role: role, CreatedAt: now().UTC()}
	err = s.kv.update(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		if tx.Bucket(bucketEmails).Get([]byte(email)) != nil {
			return fmt.Errorf("a user with this email: %w", ErrExists)
		}
		if err := tx.Bucket(bucketEmails).Put([]byte(email), userKey(account, rec.ID)); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketUsers), userKey(account, rec.ID), rec)
	})
	if err != nil {
		return User{}, err
	}
	return rec.user(), nil
}

// Users lists an account's users, oldest first.
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
			out = append(out, r.user())
		}
		return nil
	})
	sortUsers(out)
	return out, err
}

func sortUsers(u []User) {
	for i := 1; i < len(u); i++ {
		for j := i; j > 0 && (u[j].CreatedAt.Before(u[j-1].CreatedAt) || u[j].CreatedAt.Equal(u[j-1].CreatedAt) && u[j].ID < u[j-1].ID); j-- {
			u[j], u[j-1] = u[j-1], u[j]
		}
	}
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

// User returns one of account's users; a user of another account is
// ErrNotFound.
func (s *Store) User(account, id string) (User, error) {
	var u User
	err := s.kv.view(func(tx kvTx) error {
		r, err := getUser(tx, account, id)
		u = r.user()
		return err
	})
	return u, err
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

// SetUserRole changes a user's role. The last owner cannot be demoted.
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
		out = r.user()
		return putJSON(tx.Bucket(bucketUsers), userKey(account, id), r)
	})
	return out, err
}

// DeleteUser removes a user with its sessions and setup tokens. The last
// owner of an account with other users cannot be removed.
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
		if err := tx.Bucket(bucketUsers).Delete(userKey(account, id)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketEmails).Delete([]byte(r.Email)); err != nil {
			return err
		}
		return revokeWhere(tx, func(a, u string) bool { return a == account && u == id })
	})
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

// revokeWhere deletes the sessions and setup tokens whose (account, user)
// match.
func revokeWhere(tx kvTx, match func(account, user string) bool) error {
	for _, name := range [][]byte{bucketSessions, bucketTokens} {
		b := tx.Bucket(name)
		var doomed [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			var r struct {
				AccountID string `json:"account"`
				UserID    string `json:"user"`
			}
			if json.Unmarshal(v, &r) != nil || match(r.AccountID, r.UserID) {
				doomed = append(doomed, append([]byte(nil), k...))
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
	}
	return nil
}

// deleteAccountUsers removes an account's users, sessions and tokens (from
// DeleteAccount).
func deleteAccountUsers(tx kvTx, account string) error {
	prefix := []byte(account + "\x00")
	users := tx.Bucket(bucketUsers)
	var doomed [][]byte
	c := users.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var r userRecord
		if json.Unmarshal(v, &r) == nil {
			if err := tx.Bucket(bucketEmails).Delete([]byte(r.Email)); err != nil {
				return err
			}
		}
		doomed = append(doomed, append([]byte(nil), k...))
	}
	for _, k := range doomed {
		if err := users.Delete(k); err != nil {
			return err
		}
	}
	return revokeWhere(tx, func(a, _ string) bool { return a == account })
}

// IssueSetupToken returns a one-time token with which the user sets a
// password, valid for ttl. Issuing one drops the user's earlier tokens.
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
		b := tx.Bucket(bucketTokens)
		var doomed [][]byte
		b.ForEach(func(k, v []byte) error {
			var r tokenRecord
			if json.Unmarshal(v, &r) != nil || r.AccountID == account && r.UserID == userID || now().After(r.ExpiresAt) {
				doomed = append(doomed, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return putJSON(b, tokenHash(token), tokenRecord{AccountID: account, UserID: userID, ExpiresAt: expires})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// CheckPasswordRules reports why password cannot be used, or nil.
func CheckPasswordRules(password string) error {
	switch n := utf8.RuneCountInString(password); {
	case n < MinPasswordLength:
		return fmt.Errorf("%w: the password needs at least %d characters", ErrInvalidInput, MinPasswordLength)
	case len(password) > maxPasswordLength:
		return fmt.Errorf("%w: the password is longer than %d bytes", ErrInvalidInput, maxPasswordLength)
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: the password is not valid text", ErrInvalidInput)
	}
	return nil
}

func hashPassword(r *userRecord, password string) error {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	r.Salt, r.Time, r.Memory, r.Threads = salt, argonTime, argonMemory, argonThreads
	r.Hash = argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return nil
}

// RedeemSetupToken sets the password of the token's user and consumes the
// token. Every session of the user is revoked.
func (s *Store) RedeemSetupToken(token, password string) (User, error) {
	if err := CheckPasswordRules(password); err != nil {
		return User{}, err
	}
	var out User
	err := s.kv.update(func(tx kvTx) error {
		b := tx.Bucket(bucketTokens)
		v := b.Get(tokenHash(token))
		var t tokenRecord
		if v == nil || json.Unmarshal(v, &t) != nil || !now().Before(t.ExpiresAt) {
			return ErrInvalidToken
		}
		if err := b.Delete(tokenHash(token)); err != nil {
			return err
		}
		r, err := getUser(tx, t.AccountID, t.UserID)
		if err != nil {
			return ErrInvalidToken
		}
		if err := hashPassword(&r, password); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketUsers), userKey(r.AccountID, r.ID), r); err != nil {
			return err
		}
		out = r.user()
		return revokeWhere(tx, func(a, u string) bool { return a == r.AccountID && u == r.ID })
	})
	if errors.Is(err, ErrInvalidToken) {
		// Keep a failed redeem's tx from leaving a half state: nothing was
		// written (the tx rolled back), so the token is still there if it
		// was valid but the user vanished; it is useless either way.
		return User{}, ErrInvalidToken
	}
	return out, err
}

// SetPassword changes a user's password after checking the current one, and
// revokes every session of the user.
func (s *Store) SetPassword(account, id, current, password string) error {
	if err := CheckPasswordRules(password); err != nil {
		return err
	}
	return s.kv.update(func(tx kvTx) error {
		r, err := getUser(tx, account, id)
		if err != nil {
			return err
		}
		if !r.verify(current) {
			return ErrBadCredentials
		}
		if err := hashPassword(&r, password); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bucketUsers), userKey(account, id), r); err != nil {
			return err
		}
		return revokeWhere(tx, func(a, u string) bool { return a == account && u == id })
	})
}

func (r *userRecord) verify(password string) bool {
	if len(r.Hash) == 0 || r.Time == 0 || r.Memory == 0 || r.Threads == 0 || len(password) > maxPasswordLength {
		return false
	}
	h := argon2.IDKey([]byte(password), r.Salt, r.Time, r.Memory, r.Threads, uint32(len(r.Hash)))
	return subtle.ConstantTimeCompare(h, r.Hash) == 1
}

// errStopScan ends a ForEach early.
var errStopScan = errors.New("stop")

// dummyUser is hashed against when an email is unknown, so that an unknown
// email takes as long as a wrong password.
var dummyUser = func() userRecord {
	r := userRecord{}
	hashPassword(&r, "not a password of anyone, ever")
	return r
}()

// Authenticate checks an email and password and returns the user. The error
// is ErrBadCredentials whichever of the two was wrong.
func (s *Store) Authenticate(email, password string) (User, error) {
	email, err := NormalizeEmail(email)
	var r userRecord
	found := false
	if err == nil {
		s.kv.view(func(tx kvTx) error {
			ref := tx.Bucket(bucketEmails).Get([]byte(email))
			if ref == nil {
				return nil
			}
			if v := tx.Bucket(bucketUsers).Get(ref); v != nil && json.Unmarshal(v, &r) == nil {
				found = true
			}
			return nil
		})
	}
	if !found {
		dummyUser.verify(password)
		return User{}, ErrBadCredentials
	}
	if !r.verify(password) {
		return User{}, ErrBadCredentials
	}
	return r.user(), nil
}

// CreateSession starts a session for u and returns its id (the cookie
// value; only its SHA-256 is stored).
func (s *Store) CreateSession(u User) (id string, sess Session, err error) {
	id, err = randomToken()
	if err != nil {
		return "", Session{}, err
	}
	t := now().UTC()
	sess = Session{AccountID: u.AccountID, UserID: u.ID, CreatedAt: t, LastSeenAt: t}
	err = s.kv.update(func(tx kvTx) error {
		if _, err := getUser(tx, u.AccountID, u.ID); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketSessions), tokenHash(id), sess)
	})
	if err != nil {
		return "", Session{}, err
	}
	return id, sess, nil
}

// SessionUser returns the live session with this id and its user. A session
// idle for longer than idle, or older than absolute, is deleted and
// ErrNoSession returned. LastSeenAt is refreshed at most once a minute, so
// browsing is not a write per page.
func (s *Store) SessionUser(id string, idle, absolute time.Duration) (Session, User, error) {
	if id == "" || len(id) > 100 {
		return Session{}, User{}, ErrNoSession
	}
	h := tokenHash(id)
	var sess Session
	var u User
	var expired, stale bool
	err := s.kv.view(func(tx kvTx) error {
		v := tx.Bucket(bucketSessions).Get(h)
		if v == nil || json.Unmarshal(v, &sess) != nil {
			return ErrNoSession
		}
		t := now()
		if t.Sub(sess.LastSeenAt) > idle || t.Sub(sess.CreatedAt) > absolute {
			expired = true
			return ErrNoSession
		}
		r, err := getUser(tx, sess.AccountID, sess.UserID)
		if err != nil {
			expired = true
			return ErrNoSession
		}
		u = r.user()
		stale = t.Sub(sess.LastSeenAt) > time.Minute
		return nil
	})
	if expired {
		_ = s.updateQuick(func(tx kvTx) error { return tx.Bucket(bucketSessions).Delete(h) })
	}
	if err != nil {
		return Session{}, User{}, err
	}
	if stale {
		sess.LastSeenAt = now().UTC()
		_ = s.updateQuick(func(tx kvTx) error {
			if tx.Bucket(bucketSessions).Get(h) == nil {
				return nil // revoked meanwhile
			}
			return putJSON(tx.Bucket(bucketSessions), h, sess)
		})
	}
	return sess, u, nil
}

// RevokeSession deletes one session (sign-out).
func (s *Store) RevokeSession(id string) error {
	return s.kv.update(func(tx kvTx) error { return tx.Bucket(bucketSessions).Delete(tokenHash(id)) })
}

// RevokeUserSessions deletes every session of a user.
func (s *Store) RevokeUserSessions(account, userID string) error {
	return s.kv.update(func(tx kvTx) error {
		return revokeWhere(tx, func(a, u string) bool { return a == account && u == userID })
	})
}

// PruneSessions deletes the sessions idle for longer than idle or older than
// absolute (sessions whose browser never came back), and the expired setup
// tokens. It returns how many sessions went.
func (s *Store) PruneSessions(idle, absolute time.Duration) (int, error) {
	if s.fleet == nil {
		return s.pruneSessions(idle, absolute, 0)
	}
	// Fleet mode: in etcd-sized transactions.
	total := 0
	for {
		n, err := s.pruneSessions(idle, absolute, 50)
		total += n
		if err != nil || n < 50 {
			return total, err
		}
	}
}

// pruneSessions deletes at most max (0: all) sessions and as many tokens.
func (s *Store) pruneSessions(idle, absolute time.Duration, max int) (int, error) {
	n := 0
	err := s.kv.update(func(tx kvTx) error {
		t := now()
		for _, name := range [][]byte{bucketSessions, bucketTokens} {
			b := tx.Bucket(name)
			var doomed [][]byte
			b.ForEach(func(k, v []byte) error {
				var r struct {
					CreatedAt  time.Time `json:"created_at"`
					LastSeenAt time.Time `json:"last_seen_at"`
					ExpiresAt  time.Time `json:"expires_at"`
				}
				if json.Unmarshal(v, &r) != nil ||
					!r.ExpiresAt.IsZero() && !t.Before(r.ExpiresAt) ||
					r.ExpiresAt.IsZero() && (t.Sub(r.LastSeenAt) > idle || t.Sub(r.CreatedAt) > absolute) {
					doomed = append(doomed, append([]byte(nil), k...))
				}
				if max > 0 && len(doomed) >= max {
					return errStopScan
				}
				return nil
			})
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			if bytes.Equal(name, bucketSessions) {
				n = len(doomed)
			}
		}
		return nil
	})
	return n, err
}
