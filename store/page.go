package store

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Paged lists: every list of the admin API and the console can ask for one
// page — at most a limit of items after a cursor — and a page costs what
// it returns (accounts, API keys and credentials are read in key order from
// where the cursor points; an account's members are few and sorted in
// memory). A cursor is opaque: the Next of the page before.

// Page limits.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// PageRequest asks for one page of a list.
type PageRequest struct {
	// Limit is the most items to return: DefaultPageLimit when 0 or
	// less, at most MaxPageLimit.
	Limit int
	// Cursor is the Next of the previous page; "" for the first page.
	Cursor string
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T `json:"items"`
	// Next is the cursor of the next page; "" on the last page.
	Next string `json:"next_cursor,omitempty"`
}

// ErrInvalidCursor means a cursor this list did not issue.
var ErrInvalidCursor = fmt.Errorf("%w: the page cursor is not valid for this list (start again without one)", ErrInvalidInput)

func (p PageRequest) limit() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

// Cursors are base64url of a tag byte (which list) and the last item's
// position in it.
const (
	cursorAccounts    = 'a'
	cursorKeys        = 'k'
	cursorCredentials = 'c'
	cursorUsers       = 'u'
)

func encodeCursor(tag byte, pos []byte) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{tag}, pos...))
}

// decodeCursor returns the position of cursor c for list tag; nil for "".
func decodeCursor(tag byte, c string) ([]byte, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != tag || len(b) > 512 {
		return nil, ErrInvalidCursor
	}
	return b[1:], nil
}

// pageAfter walks cursor c from after (nil: from prefix) while keys start
// with prefix, collecting at most limit items with add (which may skip a
// record by returning false); it returns the position of the last item when
// more follow.
func pageAfter(c kvCursor, prefix, after []byte, limit int, add func(k, v []byte) (bool, error)) ([]byte, error) {
	k, v := c.Seek(prefix)
	if after != nil {
		if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
			k, v = c.Next()
		}
	}
	n := 0
	var last []byte
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if n == limit {
			return last, nil
		}
		ok, err := add(k, v)
		if err != nil {
			return nil, err
		}
		if ok {
			n++
			last = bytes.Clone(k)
		}
	}
	return nil, nil
}

// AccountsPage lists accounts by id, one page at a time.
func (s *Store) AccountsPage(p PageRequest) (Page[Account], error) {
	after, err := decodeCursor(cursorAccounts, p.Cursor)
	if err != nil {
		return Page[Account]{}, err
	}
	out := Page[Account]{Items: []Account{}}
	err = s.kv.view(func(tx kvTx) error {
		last, err := pageAfter(tx.Bucket(bucketAccounts).Cursor(), nil, after, p.limit(), func(_, v []byte) (bool, error) {
			var a Account
			if err := json.Unmarshal(v, &a); err != nil {
				return false, err
			}
			out.Items = append(out.Items, a)
			return true, nil
		})
		if last != nil {
			out.Next = encodeCursor(cursorAccounts, last)
		}
		return err
	})
	return out, err
}

// APIKeysPage lists an account's API keys oldest first, one page at a time.
func (s *Store) APIKeysPage(account string, p PageRequest) (Page[APIKey], error) {
	after, err := decodeCursor(cursorKeys, p.Cursor)
	if err != nil {
		return Page[APIKey]{}, err
	}
	prefix := []byte(account + "\x00")
	if after != nil {
		after = append(prefix[:len(prefix):len(prefix)], after...)
	}
	out := Page[APIKey]{Items: []APIKey{}}
	err = s.kv.view(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		keys := tx.Bucket(bucketKeys)
		last, err := pageAfter(tx.Bucket(bucketKeyIndex).Cursor(), prefix, after, p.limit(), func(_, hash []byte) (bool, error) {
			rv := keys.Get(hash)
			if rv == nil {
				return false, nil
			}
			var r keyRecord
			if err := json.Unmarshal(rv, &r); err != nil {
				return false, err
			}
			if r.AccountID != account {
				return false, nil
			}
			out.Items = append(out.Items, s.apiKey(r))
			return true, nil
		})
		if last != nil {
			out.Next = encodeCursor(cursorKeys, last[len(prefix):])
		}
		return err
	})
	return out, err
}

// CredentialsPage lists an account's BYOK credentials by provider, without
// secrets, one page at a time.
func (s *Store) CredentialsPage(account string, p PageRequest) (Page[Credential], error) {
	after, err := decodeCursor(cursorCredentials, p.Cursor)
	if err != nil {
		return Page[Credential]{}, err
	}
	prefix := []byte(account + "\x00")
	if after != nil {
		after = append(prefix[:len(prefix):len(prefix)], after...)
	}
	out := Page[Credential]{Items: []Credential{}}
	err = s.kv.view(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		last, err := pageAfter(tx.Bucket(bucketBYOK).Cursor(), prefix, after, p.limit(), func(k, v []byte) (bool, error) {
			var r sealedRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return false, err
			}
			out.Items = append(out.Items, s.credential(account, string(k[len(prefix):]), r))
			return true, nil
		})
		if last != nil {
			out.Next = encodeCursor(cursorCredentials, last[len(prefix):])
		}
		return err
	})
	return out, err
}

// UsersPage lists an account's memberships oldest first, one page at a
// time. It reads all of the account's memberships (not the store's) and
// the people of the page.
func (s *Store) UsersPage(account string, p PageRequest) (Page[User], error) {
	after, err := decodeCursor(cursorUsers, p.Cursor)
	if err != nil {
		return Page[User]{}, err
	}
	if after != nil && len(after) < 9 {
		return Page[User]{}, ErrInvalidCursor
	}
	out := Page[User]{Items: []User{}}
	err = s.kv.view(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		var recs []userRecord
		prefix := []byte(account + "\x00")
		c := tx.Bucket(bucketUsers).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r userRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			recs = append(recs, r)
		}
		slices.SortStableFunc(recs, func(a, b userRecord) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		i := 0
		if after != nil {
			i, _ = slices.BinarySearchFunc(recs, after, func(r userRecord, pos []byte) int {
				return bytes.Compare(userPos(r), pos)
			})
			if i < len(recs) && bytes.Equal(userPos(recs[i]), after) {
				i++
			}
		}
		end := min(len(recs), i+p.limit())
		for _, r := range recs[i:end] {
			pr, err := getPerson(tx, r.Person)
			if err != nil {
				return err
			}
			out.Items = append(out.Items, r.user(&pr))
		}
		if end < len(recs) {
			out.Next = encodeCursor(cursorUsers, userPos(recs[end-1]))
		}
		return nil
	})
	return out, err
}

// userPos is a membership's position in its account's list: its creation
// time (8 bytes big-endian unix nanoseconds), then its id.
func userPos(r userRecord) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(r.CreatedAt.UnixNano())), r.ID...)
}
