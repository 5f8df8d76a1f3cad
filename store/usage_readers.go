package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Usage-reader credentials: an organisation admin key per (account,
// provider), which reads the provider's own usage and cost records of the
// account's keys (package reconcile), and one per provider for the
// platform's own contract (account ""). Sealed exactly as BYOK keys are
// (AES-256-GCM under the master key), with additional data that names the
// slot as a usage reader, so a BYOK blob copied into a reader slot — or
// back — does not open. Never in the snapshot the request path reads: only
// a reconciliation run and the Test button open one (OpenUsageReader).

var bucketUsageReaders = &bucket{name: []byte("usage_readers"), scope: shared, migrate: true,
	doc: "account \\x00 provider -> readerRecord: a sealed usage-reader (admin) key; account \"\" is the platform's"}

// UsageReader describes a stored usage-reader key without its secret.
type UsageReader struct {
	// AccountID is the account, "" for the platform's own contract.
	AccountID   string    `json:"account"`
	Provider    string    `json:"provider"`
	Masked      string    `json:"masked"`
	Fingerprint string    `json:"fingerprint"`
	Version     uint64    `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

type readerRecord struct {
	MasterKeyID string    `json:"kid"`
	Nonce       []byte    `json:"nonce"`
	Ciphertext  []byte    `json:"ciphertext"`
	Masked      string    `json:"masked"`
	Fingerprint string    `json:"fingerprint"`
	Version     uint64    `json:"version"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// readerSlot is the provider half of a reader's additional data: the
// account and provider, and that it is a usage reader, not a BYOK key.
func readerSlot(provider string) string { return provider + "\x00usage_reader" }

func readerID(account, provider string) []byte { return []byte(account + "\x00" + provider) }

func (r readerRecord) describe(account, provider string) UsageReader {
	return UsageReader{AccountID: account, Provider: provider, Masked: r.Masked, Fingerprint: r.Fingerprint,
		Version: r.Version, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

// PutUsageReader seals key as the usage reader of (account, provider),
// replacing any earlier one; account "" is the platform's. masked is the
// caller's display form of the key. The caller checks the key's shape.
func (s *Store) PutUsageReader(account, provider, key, masked string) (UsageReader, error) {
	if provider == "" || key == "" {
		return UsageReader{}, fmt.Errorf("%w: a usage reader needs a provider and a key", ErrInvalidInput)
	}
	var out readerRecord
	err := s.update(func(tx kvTx) error {
		if account != "" && tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		b := tx.Bucket(bucketUsageReaders)
		id := readerID(account, provider)
		t := now().UTC()
		out = readerRecord{Masked: masked, Fingerprint: Fingerprint(key), Version: 1, CreatedAt: t, UpdatedAt: t}
		if old := b.Get(id); old != nil {
			var prev readerRecord
			if json.Unmarshal(old, &prev) == nil {
				out.Version, out.CreatedAt = prev.Version+1, prev.CreatedAt
			}
		}
		var err error
		out.MasterKeyID, out.Nonce, out.Ciphertext, err = s.sealer.seal(account, readerSlot(provider), []byte(key))
		if err != nil {
			return err
		}
		return putJSON(b, id, out)
	})
	if err != nil {
		return UsageReader{}, err
	}
	return out.describe(account, provider), nil
}

// UsageReader describes the usage reader of (account, provider); ErrNotFound
// when there is none.
func (s *Store) UsageReader(account, provider string) (UsageReader, error) {
	var out UsageReader
	err := s.kv.view(func(tx kvTx) error {
		r, err := getReader(tx, account, provider)
		out = r.describe(account, provider)
		return err
	})
	return out, err
}

func getReader(tx kvTx, account, provider string) (readerRecord, error) {
	var r readerRecord
	v := tx.Bucket(bucketUsageReaders).Get(readerID(account, provider))
	if v == nil {
		if account == "" {
			return r, fmt.Errorf("platform %s usage reader: %w", provider, ErrNotFound)
		}
		return r, fmt.Errorf("%s usage reader of account %q: %w", provider, account, ErrNotFound)
	}
	return r, json.Unmarshal(v, &r)
}

// UsageReaders lists the usage readers of an account ("" for the
// platform's) by provider.
func (s *Store) UsageReaders(account string) (map[string]UsageReader, error) {
	out := map[string]UsageReader{}
	err := s.kv.view(func(tx kvTx) error {
		if account != "" && tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		prefix := []byte(account + "\x00")
		c := tx.Bucket(bucketUsageReaders).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			provider := string(k[len(prefix):])
			var r readerRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out[provider] = r.describe(account, provider)
		}
		return nil
	})
	return out, err
}

// AllUsageReaders lists every usage reader (the platform's first, then by
// account and provider): the scopes a reconciliation run covers.
func (s *Store) AllUsageReaders() ([]UsageReader, error) {
	var out []UsageReader
	err := s.kv.view(func(tx kvTx) error {
		return tx.Bucket(bucketUsageReaders).ForEach(func(k, v []byte) error {
			account, provider, ok := bytes.Cut(k, []byte{0})
			if !ok {
				return nil
			}
			var r readerRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r.describe(string(account), string(provider)))
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].AccountID != out[j].AccountID {
			return out[i].AccountID < out[j].AccountID
		}
		return out[i].Provider < out[j].Provider
	})
	return out, err
}

// OpenUsageReader opens the sealed key of (account, provider), for one
// reconciliation run or one test: the caller hands it to the provider's
// admin client and drops it. It is the only way out of the store for the
// key.
func (s *Store) OpenUsageReader(account, provider string) (UsageReader, string, error) {
	var r readerRecord
	err := s.kv.view(func(tx kvTx) (err error) {
		r, err = getReader(tx, account, provider)
		return err
	})
	if err != nil {
		return UsageReader{}, "", err
	}
	pt, err := s.sealer.open(r.MasterKeyID, account, readerSlot(provider), r.Nonce, r.Ciphertext)
	if err != nil {
		return UsageReader{}, "", fmt.Errorf("opening the %s usage reader: %w", provider, errSealedReader)
	}
	key := string(pt)
	clear(pt)
	return r.describe(account, provider), key, nil
}

// errSealedReader hides the sealer's words (which name the slot's additional
// data) behind one reason.
var errSealedReader = errors.New("it does not open under the configured master keys")

// DeleteUsageReader removes the usage reader of (account, provider).
func (s *Store) DeleteUsageReader(account, provider string) error {
	return s.update(func(tx kvTx) error {
		if _, err := getReader(tx, account, provider); err != nil {
			return err
		}
		return tx.Bucket(bucketUsageReaders).Delete(readerID(account, provider))
	})
}

// resealUsageReaders re-seals under the current master key every usage
// reader sealed under an old one (resealOld's twin), at most max when max
// > 0; it returns how many it re-sealed.
func (s *Store) resealUsageReaders(tx kvTx, max int) (int, error) {
	return resealBucket(s, tx, bucketUsageReaders, max, readerSlot,
		func(r *readerRecord) (*string, *[]byte, *[]byte) { return &r.MasterKeyID, &r.Nonce, &r.Ciphertext })
}
