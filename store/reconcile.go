package store

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// What the reconciler keeps (package reconcile, wired by ops): shared
// records, in etcd in fleet mode, since any instance serves the admin API
// and the console. The store keeps them as opaque JSON; ops gives them
// their types.
//
//   - the ledger: one value per (account, provider, UTC day), the day's
//     rows as a gzipped JSON array (a day of one scope is a few hundred
//     rows of repetitive JSON: gzip keeps one run's transaction far below
//     etcd's request limit). A run replaces the days of its window in one
//     transaction: all or nothing.
//   - key notes per (account, provider, credential fingerprint): the masked
//     form the fingerprint had (kept across rotations, so an old key's rows
//     can still be matched) and the provider key id the owner chose for it.
//   - the last run's result per (account, provider), and the calibration
//     proposals the owner accepted.
//
// Account "" is the platform's own contract in every one of them.
var (
	bucketLedger = &bucket{name: []byte("reconcile_ledger"), scope: shared, migrate: true,
		doc: "account \\x00 provider \\x00 day (YYYY-MM-DD) -> the day's ledger rows, a gzipped JSON array"}
	bucketKeyNotes = &bucket{name: []byte("reconcile_keys"), scope: shared, migrate: true,
		doc: "account \\x00 provider \\x00 credential fingerprint -> KeyNote"}
	bucketRuns = &bucket{name: []byte("reconcile_runs"), scope: shared, migrate: true,
		doc: "account \\x00 provider -> the scope's last reconciliation runs (JSON)"}
	bucketAccepted = &bucket{name: []byte("reconcile_accepted"), scope: shared, migrate: true,
		doc: "account \\x00 provider \\x00 proposal id -> an accepted calibration proposal (JSON)"}
)

func scopeKey(account, provider string, rest ...string) []byte {
	k := account + "\x00" + provider
	for _, r := range rest {
		k += "\x00" + r
	}
	return []byte(k)
}

const dayFormat = "2006-01-02"

// maxLedgerDays bounds the days one ledger write may replace (a run covers
// at most 31).
const maxLedgerDays = 62

// ReplaceLedgerDays makes days the ledger of (account, provider) for every
// UTC day in [from, to): a day in the range without an entry in days is
// emptied. days maps a UTC midnight to that day's rows (JSON). It is one
// transaction.
func (s *Store) ReplaceLedgerDays(account, provider string, from, to time.Time, days map[time.Time][]byte) error {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	n := int(to.Sub(from) / (24 * time.Hour))
	if n <= 0 || n > maxLedgerDays {
		return fmt.Errorf("%w: a ledger write covers 1 to %d days, not %d", ErrInvalidInput, maxLedgerDays, n)
	}
	enc := make(map[string][]byte, len(days))
	for d, rows := range days {
		d = d.UTC()
		if !d.Equal(d.Truncate(24*time.Hour)) || d.Before(from) || !d.Before(to) {
			return fmt.Errorf("%w: ledger day %s is not a UTC day in the window", ErrInvalidInput, d.Format(time.RFC3339))
		}
		z, err := gzipBytes(rows)
		if err != nil {
			return err
		}
		enc[d.Format(dayFormat)] = z
	}
	return s.update(func(tx kvTx) error {
		b := tx.Bucket(bucketLedger)
		for d := from; d.Before(to); d = d.Add(24 * time.Hour) {
			day := d.Format(dayFormat)
			k := scopeKey(account, provider, day)
			if v, ok := enc[day]; ok {
				if err := b.Put(k, v); err != nil {
					return err
				}
			} else if b.Get(k) != nil {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// LedgerDays returns the ledger of (account, provider) for the UTC days in
// [from, to), day by day in order (JSON arrays).
func (s *Store) LedgerDays(account, provider string, from, to time.Time) ([][]byte, error) {
	lo := scopeKey(account, provider, from.UTC().Format(dayFormat))
	hi := scopeKey(account, provider, to.UTC().Format(dayFormat))
	var zs [][]byte
	err := s.kv.view(func(tx kvTx) error {
		c := tx.Bucket(bucketLedger).Cursor()
		for k, v := c.Seek(lo); k != nil && bytes.Compare(k, hi) < 0; k, v = c.Next() {
			zs = append(zs, append([]byte(nil), v...))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(zs))
	for _, z := range zs {
		b, err := gunzipBytes(z)
		if err != nil {
			return nil, fmt.Errorf("reading the reconciliation ledger: %v", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// PruneLedger deletes ledger days before cutoff, and every day of a scope
// whose account no longer exists, at most max entries (one transaction);
// it returns how many it deleted.
func (s *Store) PruneLedger(cutoff time.Time, max int) (int, error) {
	day := cutoff.UTC().Format(dayFormat)
	n := 0
	err := s.update(func(tx kvTx) error {
		n = 0
		accounts := tx.Bucket(bucketAccounts)
		b := tx.Bucket(bucketLedger)
		var doomed [][]byte
		err := b.ForEach(func(k, _ []byte) error {
			if len(doomed) >= max {
				return errEnoughPruned
			}
			parts := bytes.Split(k, []byte{0})
			if len(parts) != 3 {
				return nil
			}
			gone := len(parts[0]) > 0 && accounts.Get(parts[0]) == nil
			if gone || string(parts[2]) < day {
				doomed = append(doomed, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil && err != errEnoughPruned {
			return err
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	return n, err
}

var errEnoughPruned = fmt.Errorf("enough")

// KeyNote is what the reconciler remembers of one credential fingerprint.
type KeyNote struct {
	// Masked is the masked form the key had (the store keeps only the
	// current key's; a rotated key's rows still need theirs).
	Masked string `json:"masked,omitempty"`
	// ChosenKeyID is the provider key id the owner chose for the
	// fingerprint, when matching was theirs to decide.
	ChosenKeyID string    `json:"chosen_key_id,omitempty"`
	ChosenAt    time.Time `json:"chosen_at,omitzero"`
	// SeenAt is when a run last saw the fingerprint as a current key.
	SeenAt time.Time `json:"seen_at,omitzero"`
}

// KeyNotes returns the notes of (account, provider) by fingerprint.
func (s *Store) KeyNotes(account, provider string) (map[string]KeyNote, error) {
	out := map[string]KeyNote{}
	prefix := scopeKey(account, provider, "")
	err := s.kv.view(func(tx kvTx) error {
		c := tx.Bucket(bucketKeyNotes).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var n KeyNote
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
			out[string(k[len(prefix):])] = n
		}
		return nil
	})
	return out, err
}

// UpdateKeyNote changes the note of one fingerprint with fn (which gets the
// current note, zero when none); a note left empty is deleted.
func (s *Store) UpdateKeyNote(account, provider, fingerprint string, fn func(*KeyNote) error) (KeyNote, error) {
	var n KeyNote
	err := s.update(func(tx kvTx) error {
		if account != "" && tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		b := tx.Bucket(bucketKeyNotes)
		k := scopeKey(account, provider, fingerprint)
		n = KeyNote{}
		if v := b.Get(k); v != nil {
			if err := json.Unmarshal(v, &n); err != nil {
				return err
			}
		}
		if err := fn(&n); err != nil {
			return err
		}
		if n == (KeyNote{}) {
			if b.Get(k) == nil {
				return nil
			}
			return b.Delete(k)
		}
		return putJSON(b, k, n)
	})
	return n, err
}

// PutReconcileRun keeps the last run's result of (account, provider).
func (s *Store) PutReconcileRun(account, provider string, result []byte) error {
	return s.update(func(tx kvTx) error {
		if account != "" && tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		return tx.Bucket(bucketRuns).Put(scopeKey(account, provider), append([]byte(nil), result...))
	})
}

// ReconcileRuns returns the last run's result of each of an account's
// providers ("" for the platform's).
func (s *Store) ReconcileRuns(account string) (map[string][]byte, error) {
	out := map[string][]byte{}
	prefix := []byte(account + "\x00")
	err := s.kv.view(func(tx kvTx) error {
		c := tx.Bucket(bucketRuns).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out[string(k[len(prefix):])] = append([]byte(nil), v...)
		}
		return nil
	})
	return out, err
}

// PutAcceptedProposal keeps a calibration proposal the owner accepted,
// under its id; ErrExists when it was accepted already.
func (s *Store) PutAcceptedProposal(account, provider, id string, proposal []byte) error {
	return s.update(func(tx kvTx) error {
		if account != "" && tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		b := tx.Bucket(bucketAccepted)
		k := scopeKey(account, provider, id)
		if b.Get(k) != nil {
			return fmt.Errorf("proposal %s: %w", id, ErrExists)
		}
		return b.Put(k, append([]byte(nil), proposal...))
	})
}

// AcceptedProposals returns the accepted proposals of (account, provider)
// by id, in id order.
func (s *Store) AcceptedProposals(account, provider string) ([][]byte, error) {
	var out [][]byte
	prefix := scopeKey(account, provider, "")
	err := s.kv.view(func(tx kvTx) error {
		c := tx.Bucket(bucketAccepted).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out = append(out, append([]byte(nil), v...))
		}
		return nil
	})
	return out, err
}

// deleteAccountReconcile drops an account's usage readers, key notes, last
// runs and accepted proposals in the account's deletion (a handful of
// records: the ledger's days, which can be hundreds, are pruned apart, by
// PruneLedger).
func deleteAccountReconcile(tx kvTx, prefix []byte) error {
	for _, b := range []*bucket{bucketUsageReaders, bucketKeyNotes, bucketRuns, bucketAccepted} {
		if err := deletePrefix(tx.Bucket(b), prefix); err != nil {
			return err
		}
	}
	return nil
}

// gzipWriters are reused: a writer holds about a megabyte of tables, and
// a 31-day run writes a day at a time.
var gzipWriters = sync.Pool{New: func() any { w, _ := gzip.NewWriterLevel(nil, gzip.BestCompression); return w }}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxLedgerDay bounds one day's rows once unzipped.
const maxLedgerDay = 256 << 20

func gunzipBytes(z []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(zr, maxLedgerDay+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxLedgerDay {
		return nil, fmt.Errorf("a ledger day is larger than %d bytes", maxLedgerDay)
	}
	return b, nil
}

// ReconcileRun is one scope's last run, as PutReconcileRun kept it.
type ReconcileRun struct {
	Account, Provider string
	Result            []byte
}

// AllReconcileRuns returns every scope's last run (the platform's first,
// then by account and provider).
func (s *Store) AllReconcileRuns() ([]ReconcileRun, error) {
	var out []ReconcileRun
	err := s.kv.view(func(tx kvTx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			if account, provider, ok := bytes.Cut(k, []byte{0}); ok {
				out = append(out, ReconcileRun{string(account), string(provider), append([]byte(nil), v...)})
			}
			return nil
		})
	})
	return out, err
}
