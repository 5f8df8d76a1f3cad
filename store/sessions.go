package store

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Console sessions.
//
// A session belongs to a person and is in one of their accounts at a time
// (the account switcher moves it). Sessions are indexed by person
// (person_sessions: one small record per person listing their sessions), so
// that signing in, signing out everywhere and removing a member touch only
// that person's sessions, never the whole bucket: a person keeps at most
// MaxSessionsPerPerson, and a new sign-in past that ends the oldest.
// Sessions whose browser never came back are pruned in the background, in
// small write transactions (PruneSessionsInBackground).

// MaxSessionsPerPerson bounds a person's live sessions.
const MaxSessionsPerPerson = 10

// Session is a signed-in person's session, as the store holds it.
type Session struct {
	// AccountID and UserID are the account the session is in and the
	// person's membership there.
	AccountID  string    `json:"account"`
	UserID     string    `json:"user"`
	PersonID   string    `json:"person,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

// sessionIndex lists a person's sessions, oldest first.
type sessionIndex struct {
	Sessions []sessionRef `json:"sessions"`
}

type sessionRef struct {
	Hash    string    `json:"h"` // hex of the session id's SHA-256
	Created time.Time `json:"c"`
}

func getIndex(tx kvTx, person string) sessionIndex {
	var idx sessionIndex
	if v := tx.Bucket(bucketPersonSessions).Get([]byte(person)); v != nil {
		_ = json.Unmarshal(v, &idx)
	}
	return idx
}

func putIndex(tx kvTx, person string, idx sessionIndex) error {
	if len(idx.Sessions) == 0 {
		return tx.Bucket(bucketPersonSessions).Delete([]byte(person))
	}
	return putJSON(tx.Bucket(bucketPersonSessions), []byte(person), idx)
}

func getSession(tx kvTx, h []byte) (Session, bool) {
	var s Session
	v := tx.Bucket(bucketSessions).Get(h)
	if v == nil || json.Unmarshal(v, &s) != nil {
		return s, false
	}
	return s, true
}

// sessionPerson returns the person of a session (sessions written before
// people existed name only the membership).
func sessionPerson(tx kvTx, s Session) string {
	if s.PersonID != "" {
		return s.PersonID
	}
	r, err := getUser(tx, s.AccountID, s.UserID)
	if err != nil {
		return ""
	}
	return r.Person
}

// deleteSession deletes the session with hash h and its index entry.
func deleteSession(tx kvTx, h []byte, person string) error {
	if err := tx.Bucket(bucketSessions).Delete(h); err != nil {
		return err
	}
	if person == "" {
		return nil
	}
	idx := getIndex(tx, person)
	hx := hex.EncodeToString(h)
	n := len(idx.Sessions)
	idx.Sessions = slices.DeleteFunc(idx.Sessions, func(r sessionRef) bool { return r.Hash == hx })
	if len(idx.Sessions) == n {
		return nil
	}
	return putIndex(tx, person, idx)
}

// revokePersonSessions deletes the person's sessions in account ("" for
// all of them).
func revokePersonSessions(tx kvTx, person, account string) error {
	idx := getIndex(tx, person)
	keep := idx.Sessions[:0]
	for _, ref := range idx.Sessions {
		h, err := hex.DecodeString(ref.Hash)
		if err != nil {
			continue
		}
		s, ok := getSession(tx, h)
		if ok && account != "" && s.AccountID != account {
			keep = append(keep, ref)
			continue
		}
		if err := tx.Bucket(bucketSessions).Delete(h); err != nil {
			return err
		}
	}
	idx.Sessions = keep
	return putIndex(tx, person, idx)
}

// CreateSession starts a session in the account of membership u (which
// must be active) and returns its id (the cookie value; only its SHA-256
// is stored). Past MaxSessionsPerPerson, the person's oldest sessions end.
func (s *Store) CreateSession(u User) (id string, sess Session, err error) {
	id, err = randomToken()
	if err != nil {
		return "", Session{}, err
	}
	h := tokenHash(id)
	t := now().UTC()
	err = s.kv.update(func(tx kvTx) error {
		r, err := getUser(tx, u.AccountID, u.ID)
		if err != nil {
			return err
		}
		if r.Invited {
			return fmt.Errorf("%w: the membership is not accepted yet", ErrNoMembership)
		}
		sess = Session{AccountID: r.AccountID, UserID: r.ID, PersonID: r.Person, CreatedAt: t, LastSeenAt: t}
		idx := getIndex(tx, r.Person)
		live := idx.Sessions[:0]
		for _, ref := range idx.Sessions {
			if hb, err := hex.DecodeString(ref.Hash); err == nil && tx.Bucket(bucketSessions).Get(hb) != nil {
				live = append(live, ref)
			}
		}
		for len(live) >= MaxSessionsPerPerson {
			hb, _ := hex.DecodeString(live[0].Hash)
			if err := tx.Bucket(bucketSessions).Delete(hb); err != nil {
				return err
			}
			live = live[1:]
		}
		idx.Sessions = append(live, sessionRef{Hash: hex.EncodeToString(h), Created: t})
		if err := putJSON(tx.Bucket(bucketSessions), h, sess); err != nil {
			return err
		}
		return putIndex(tx, r.Person, idx)
	})
	if err != nil {
		return "", Session{}, err
	}
	return id, sess, nil
}

// SessionUser returns the live session with this id and its membership. A
// session idle for longer than idle, or older than absolute, is deleted and
// ErrNoSession returned, as is one whose membership is gone. LastSeenAt is
// refreshed at most once a minute, so browsing is not a write per page.
func (s *Store) SessionUser(id string, idle, absolute time.Duration) (Session, User, error) {
	if id == "" || len(id) > 100 {
		return Session{}, User{}, ErrNoSession
	}
	h := tokenHash(id)
	var sess Session
	var u User
	var expired, stale bool
	var person string
	err := s.kv.view(func(tx kvTx) error {
		var ok bool
		if sess, ok = getSession(tx, h); !ok {
			return ErrNoSession
		}
		person = sessionPerson(tx, sess)
		t := now()
		if t.Sub(sess.LastSeenAt) > idle || t.Sub(sess.CreatedAt) > absolute {
			expired = true
			return ErrNoSession
		}
		r, err := getUser(tx, sess.AccountID, sess.UserID)
		if err != nil || r.Invited || r.Person != person {
			expired = true
			return ErrNoSession
		}
		p, err := getPerson(tx, r.Person)
		if err != nil {
			expired = true
			return ErrNoSession
		}
		u = r.user(&p)
		sess.PersonID = person
		stale = t.Sub(sess.LastSeenAt) > time.Minute
		return nil
	})
	if expired {
		_ = s.updateQuick(func(tx kvTx) error { return deleteSession(tx, h, person) })
	}
	if err != nil {
		return Session{}, User{}, err
	}
	if stale {
		sess.LastSeenAt = now().UTC()
		_ = s.updateQuick(func(tx kvTx) error {
			cur, ok := getSession(tx, h)
			if !ok || cur.AccountID != sess.AccountID {
				return nil // revoked or switched meanwhile
			}
			cur.LastSeenAt = sess.LastSeenAt
			return putJSON(tx.Bucket(bucketSessions), h, cur)
		})
	}
	return sess, u, nil
}

// SwitchAccount moves a session to another account of its person, who must
// have an active membership there (else ErrNotFound, as for an id of
// another account).
func (s *Store) SwitchAccount(id, account string) (Session, User, error) {
	h := tokenHash(id)
	var sess Session
	var u User
	err := s.kv.update(func(tx kvTx) error {
		var ok bool
		if sess, ok = getSession(tx, h); !ok {
			return ErrNoSession
		}
		person := sessionPerson(tx, sess)
		p, err := getPerson(tx, person)
		if err != nil {
			return ErrNoSession
		}
		for _, m := range p.Memberships {
			if m.Account != account {
				continue
			}
			r, err := getUser(tx, m.Account, m.User)
			if err != nil || r.Invited {
				break
			}
			sess.AccountID, sess.UserID, sess.PersonID = r.AccountID, r.ID, person
			u = r.user(&p)
			return putJSON(tx.Bucket(bucketSessions), h, sess)
		}
		return fmt.Errorf("account %q: %w", account, ErrNotFound)
	})
	return sess, u, err
}

// RevokeSession deletes one session (sign-out).
func (s *Store) RevokeSession(id string) error {
	h := tokenHash(id)
	return s.kv.update(func(tx kvTx) error {
		sess, ok := getSession(tx, h)
		if !ok {
			return nil
		}
		return deleteSession(tx, h, sessionPerson(tx, sess))
	})
}

// sessionPrune runs PruneSessionsInBackground at most once at a time and
// once per pruneEvery.
type sessionPrune struct {
	mu      sync.Mutex
	running bool
	last    time.Time
	wg      sync.WaitGroup
	closed  bool
}

// pruneEvery is how often a background prune may start.
const pruneEvery = 10 * time.Minute

// PruneSessionsInBackground starts PruneSessions (and PruneThrottle) in the
// background unless one is running or one started (or the store opened)
// less than ten minutes ago, and returns at once: a sign-in never waits for
// it. Close waits for it to end.
func (s *Store) PruneSessionsInBackground(idle, absolute time.Duration) {
	p := &s.prune
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running || p.closed || time.Since(p.last) < pruneEvery {
		return
	}
	p.running, p.last = true, time.Now()
	p.wg.Go(func() {
		defer func() {
			p.mu.Lock()
			p.running = false
			p.mu.Unlock()
		}()
		_, _ = s.PruneSessions(idle, absolute)
		_, _ = s.PruneThrottle()
	})
}

func (s *Store) stopPrune() {
	s.prune.mu.Lock()
	s.prune.closed = true
	s.prune.mu.Unlock()
	s.prune.wg.Wait()
}

// pruneScanMax bounds the doomed records one read pass collects.
const pruneScanMax = 10000

// PruneSessions deletes the sessions idle for longer than idle or older than
// absolute (sessions whose browser never came back), and the expired setup
// links, and returns how many sessions went. It finds them in read
// transactions and deletes them in small write transactions, each checking
// again that what it deletes is still expired, so writers never wait
// behind a scan of every session.
func (s *Store) PruneSessions(idle, absolute time.Duration) (int, error) {
	batch := 200
	if m := s.kv.maxOps(); m > 0 {
		// Each may rewrite a person's index too, and each write is
		// compared: 40 within etcd's default 128 operations.
		batch = max(1, min(batch, m/3-2))
	}
	total := 0
	for {
		sessions, tokens, err := s.findExpired(idle, absolute)
		if err != nil {
			return total, err
		}
		full := len(sessions) >= pruneScanMax || len(tokens) >= pruneScanMax
		for len(sessions) > 0 || len(tokens) > 0 {
			n := min(batch, len(sessions))
			chunk := sessions[:n]
			sessions = sessions[n:]
			m := min(batch-n, len(tokens))
			tchunk := tokens[:m]
			tokens = tokens[m:]
			var deleted int
			err := s.kv.update(func(tx kvTx) error {
				deleted = 0
				t := now()
				for _, h := range chunk {
					v := tx.Bucket(bucketSessions).Get(h)
					if v == nil {
						continue
					}
					var sess Session
					if json.Unmarshal(v, &sess) == nil && !sessionExpired(sess, t, idle, absolute) {
						continue // used again since the scan
					}
					if err := deleteSession(tx, h, sessionPerson(tx, sess)); err != nil {
						return err
					}
					deleted++
				}
				for _, h := range tchunk {
					var r tokenRecord
					v := tx.Bucket(bucketTokens).Get(h)
					if v != nil && (json.Unmarshal(v, &r) != nil || !t.Before(r.ExpiresAt)) {
						if err := tx.Bucket(bucketTokens).Delete(h); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				return total, err
			}
			total += deleted
		}
		if !full {
			return total, nil
		}
	}
}

func sessionExpired(sess Session, t time.Time, idle, absolute time.Duration) bool {
	return t.Sub(sess.LastSeenAt) > idle || t.Sub(sess.CreatedAt) > absolute
}

// findExpired collects (in a read transaction) up to pruneScanMax expired
// sessions and setup links.
func (s *Store) findExpired(idle, absolute time.Duration) (sessions, tokens [][]byte, err error) {
	err = s.kv.view(func(tx kvTx) error {
		t := now()
		if err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			var r Session
			if json.Unmarshal(v, &r) != nil || sessionExpired(r, t, idle, absolute) {
				sessions = append(sessions, bytes.Clone(k))
			}
			if len(sessions) >= pruneScanMax {
				return errStopScan
			}
			return nil
		}); err != nil && err != errStopScan {
			return err
		}
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var r tokenRecord
			if json.Unmarshal(v, &r) != nil || !t.Before(r.ExpiresAt) {
				tokens = append(tokens, bytes.Clone(k))
			}
			if len(tokens) >= pruneScanMax {
				return errStopScan
			}
			return nil
		})
	})
	if err == errStopScan {
		err = nil
	}
	return sessions, tokens, err
}

// errStopScan ends a ForEach early.
var errStopScan = errors.New("stop")
