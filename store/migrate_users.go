package store

import (
	"encoding/hex"
	"encoding/json"
	"strings"
)

// Stores written before people existed (schema 1) held one user per email,
// store-wide, with its password in the user record, and sessions naming
// only the user. Opening such a store migrates it in place, in
// transactions of a bounded size (etcd takes 128 operations each), and
// idempotently (an interrupted migration, or two fleet instances migrating
// at once, finish the job): each user becomes a person with the same email
// and password hash and one membership, active if a password was set and
// invited otherwise (its outstanding setup link still works); each session
// is indexed under its person. Setup links keep working (as reset links).
// Nothing is dropped.

// usersSchemaKey in meta holds "2" once the migration is complete.
var usersSchemaKey = []byte("users_schema")

// legacyUser is a schema-1 user record.
type legacyUser struct {
	userRecord
	Salt    []byte `json:"salt,omitempty"`
	Hash    []byte `json:"hash,omitempty"`
	Time    uint32 `json:"t,omitempty"`
	Memory  uint32 `json:"m,omitempty"`
	Threads uint8  `json:"p,omitempty"`
}

// migrateUsers runs the migration to completion, batch records per
// transaction.
func (s *Store) migrateUsers(batch int) error {
	for {
		var done bool
		if err := s.kv.update(func(tx kvTx) (err error) { done, err = migrateUsersStep(tx, batch); return err }); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateUsersStep migrates up to batch users, else up to batch sessions,
// else marks the migration complete.
func migrateUsersStep(tx kvTx, batch int) (done bool, err error) {
	meta := tx.Bucket(bucketMeta)
	if string(meta.Get(usersSchemaKey)) == "2" {
		return true, nil
	}
	var users []legacyUser
	if err := tx.Bucket(bucketUsers).ForEach(func(_, v []byte) error {
		var r legacyUser
		if json.Unmarshal(v, &r) == nil && r.Person == "" {
			users = append(users, r)
		}
		if len(users) >= batch {
			return errStopScan
		}
		return nil
	}); err != nil && err != errStopScan {
		return false, err
	}
	for _, r := range users {
		pid := "psn_" + strings.TrimPrefix(r.ID, "usr_")
		p := personRecord{ID: pid, Email: r.Email, CreatedAt: r.CreatedAt,
			Password:    passwordHash{Salt: r.Salt, Hash: r.Hash, Time: r.Time, Memory: r.Memory, Threads: r.Threads},
			Memberships: []membershipRef{{r.AccountID, r.ID}}}
		m := r.userRecord
		m.Person, m.Invited = pid, len(r.Hash) == 0
		if err := putPerson(tx, &p); err != nil {
			return false, err
		}
		if err := tx.Bucket(bucketEmails).Put([]byte(r.Email), []byte(pid)); err != nil {
			return false, err
		}
		if err := putJSON(tx.Bucket(bucketUsers), userKey(m.AccountID, m.ID), m); err != nil {
			return false, err
		}
	}
	if len(users) > 0 {
		return false, nil
	}

	type legacySession struct {
		h []byte
		s Session
	}
	var sessions []legacySession
	if err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
		var s Session
		if json.Unmarshal(v, &s) != nil || s.PersonID == "" {
			sessions = append(sessions, legacySession{append([]byte(nil), k...), s})
		}
		if len(sessions) >= batch {
			return errStopScan
		}
		return nil
	}); err != nil && err != errStopScan {
		return false, err
	}
	for _, ls := range sessions {
		r, err := getUser(tx, ls.s.AccountID, ls.s.UserID)
		if err != nil {
			// A session of a user that is gone (or unreadable) cannot be
			// used: it would be refused at its next request anyway.
			if err := tx.Bucket(bucketSessions).Delete(ls.h); err != nil {
				return false, err
			}
			continue
		}
		ls.s.PersonID = r.Person
		if err := putJSON(tx.Bucket(bucketSessions), ls.h, ls.s); err != nil {
			return false, err
		}
		idx := getIndex(tx, r.Person)
		hx := hex.EncodeToString(ls.h)
		if !containsRef(idx, hx) {
			idx.Sessions = append(idx.Sessions, sessionRef{Hash: hx, Created: ls.s.CreatedAt})
			sortRefs(idx.Sessions)
		}
		if err := putIndex(tx, r.Person, idx); err != nil {
			return false, err
		}
	}
	if len(sessions) > 0 {
		return false, nil
	}
	return false, meta.Put(usersSchemaKey, []byte("2"))
}

func containsRef(idx sessionIndex, hx string) bool {
	for _, r := range idx.Sessions {
		if r.Hash == hx {
			return true
		}
	}
	return false
}

func sortRefs(r []sessionRef) {
	for i := 1; i < len(r); i++ {
		for j := i; j > 0 && r[j].Created.Before(r[j-1].Created); j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
}
