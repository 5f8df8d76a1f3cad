package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Bulk creation, for platforms that provision tenants: many accounts, each
// with its API keys and BYOK credentials, created in one transaction —
// all of them, or none. One call costs one commit (one fsync single-node,
// one etcd transaction in fleet mode) and one snapshot change.

// MaxBulkRecords bounds one CreateTenants call single-node: accounts, API
// keys and credentials together. In fleet mode the bound is lower, what one
// etcd transaction takes (BulkLimit).
const MaxBulkRecords = 10000

// TenantSpec is one account to create in bulk.
type TenantSpec struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Keys are the API keys to issue for it.
	Keys []KeySpec `json:"keys,omitempty"`
	// Credentials are its BYOK credentials. The store checks their shape
	// only: callers check the provider and the key format first (the admin
	// API's SaveBYOK rules).
	Credentials []CredentialSpec `json:"credentials,omitempty"`
}

// KeySpec is an API key to issue.
type KeySpec struct {
	Name string `json:"name"`
	// Profile binds the key to a routing profile ("" for none).
	Profile string `json:"profile,omitempty"`
}

// CredentialSpec is a BYOK credential to store. Its String form is
// redacted, so logging a spec cannot leak the key.
type CredentialSpec struct {
	Provider string `json:"provider"`
	// Key is the provider key (sealed before it is stored).
	Key string `json:"api_key"`
	// Masked is the caller's display form of the key.
	Masked string `json:"masked"`
	Extras Extras `json:"extras"`
	// BYOKOnly stores the byok_only policy for the provider.
	BYOKOnly bool `json:"byok_only,omitempty"`
}

// String redacts the key.
func (c CredentialSpec) String() string {
	return fmt.Sprintf("credential %s (%s)", c.Provider, Fingerprint(c.Key))
}

// GoString redacts the key in %#v.
func (c CredentialSpec) GoString() string { return c.String() }

// Tenant is a created account with what was created for it.
type Tenant struct {
	Account Account `json:"account"`
	// Keys are the issued API keys, with their plaintext (shown once).
	Keys []CreatedKey `json:"keys"`
	// Credentials describe the stored credentials, without secrets.
	Credentials []Credential `json:"credentials"`
}

// CreatedKey is an issued API key and its plaintext, returned once.
type CreatedKey struct {
	APIKey
	Key string `json:"key"`
}

// bulkOps is how many backend operations a record takes at most: an API key
// is three (record, id, index), a credential two or three (record, version,
// policy), an account one.
const bulkOps = 3

// BulkLimit is the most records (accounts, API keys and credentials
// together) one CreateTenants call may hold on this store: MaxBulkRecords
// single-node; in fleet mode what one etcd transaction takes.
func (s *Store) BulkLimit() int {
	if m := s.kv.maxOps(); m > 0 {
		return min(MaxBulkRecords, m/bulkOps)
	}
	return MaxBulkRecords
}

// CreateTenants creates the accounts of specs with their API keys and
// credentials in one transaction: all of them, or none (an account id that
// exists is ErrExists, and nothing is created). Requests that start after
// it returns see all of them. More than BulkLimit records is ErrTooLarge.
func (s *Store) CreateTenants(specs []TenantSpec) ([]Tenant, error) {
	if err := s.checkTenants(specs); err != nil {
		return nil, err
	}
	t := now().UTC()
	// Keys are drawn outside the transaction (the fleet backend may run
	// it again on a conflict: it keeps them).
	out := make([]Tenant, len(specs))
	keys := make([][]bulkKey, len(specs))
	for i, sp := range specs {
		out[i].Account = Account{ID: sp.ID, Name: sp.Name, CreatedAt: t}
		for _, ks := range sp.Keys {
			bk, err := newBulkKey(sp.ID, ks, t)
			if err != nil {
				return nil, err
			}
			keys[i] = append(keys[i], bk)
		}
	}
	err := s.update(func(tx kvTx) error {
		for i, sp := range specs {
			accounts := tx.Bucket(bucketAccounts)
			if accounts.Get([]byte(sp.ID)) != nil {
				return fmt.Errorf("account %q: %w", sp.ID, ErrExists)
			}
			if err := putJSON(accounts, []byte(sp.ID), out[i].Account); err != nil {
				return err
			}
			for _, bk := range keys[i] {
				if err := putKey(tx, bk.hash, bk.rec); err != nil {
					return err
				}
			}
			creds, err := s.putBulkCredentials(tx, sp, t)
			if err != nil {
				return err
			}
			out[i].Credentials = creds
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Keys = make([]CreatedKey, len(keys[i]))
		for j, bk := range keys[i] {
			out[i].Keys[j] = CreatedKey{APIKey: s.apiKey(bk.rec), Key: bk.plaintext}
		}
	}
	return out, nil
}

// checkTenants checks specs before anything is drawn or written.
func (s *Store) checkTenants(specs []TenantSpec) error {
	if len(specs) == 0 {
		return fmt.Errorf("%w: no accounts to create", ErrInvalidInput)
	}
	records := 0
	seen := make(map[string]bool, len(specs))
	for _, sp := range specs {
		if err := ValidateAccountID(sp.ID); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
		if seen[sp.ID] {
			return fmt.Errorf("%w: account %q appears twice", ErrInvalidInput, sp.ID)
		}
		seen[sp.ID] = true
		for _, k := range sp.Keys {
			if err := ValidateProfileName(k.Profile); err != nil {
				return fmt.Errorf("%w: account %q: %v", ErrInvalidInput, sp.ID, err)
			}
		}
		providers := make(map[string]bool, len(sp.Credentials))
		for _, c := range sp.Credentials {
			if c.Provider == "" || len(c.Provider) > 64 || strings.ContainsRune(c.Provider, 0) || c.Key == "" {
				return fmt.Errorf("%w: account %q: a credential needs a provider and a key", ErrInvalidInput, sp.ID)
			}
			if providers[c.Provider] {
				return fmt.Errorf("%w: account %q has two %s credentials", ErrInvalidInput, sp.ID, c.Provider)
			}
			providers[c.Provider] = true
		}
		records += 1 + len(sp.Keys) + len(sp.Credentials)
	}
	if limit := s.BulkLimit(); records > limit {
		return fmt.Errorf("%w: %d records (accounts, keys and credentials) in one call; this store takes at most %d: split the call", ErrTooLarge, records, limit)
	}
	return nil
}

type bulkKey struct {
	plaintext string
	hash      [32]byte
	rec       keyRecord
}

func newBulkKey(account string, ks KeySpec, t time.Time) (bulkKey, error) {
	var raw [32]byte
	var idb [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return bulkKey{}, err
	}
	if _, err := rand.Read(idb[:]); err != nil {
		return bulkKey{}, err
	}
	plaintext := APIKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	return bulkKey{plaintext: plaintext, hash: HashAPIKey(plaintext), rec: keyRecord{
		ID: "key_" + hex.EncodeToString(idb[:]), AccountID: account, Name: ks.Name,
		Prefix: plaintext[:len(APIKeyPrefix)+6], Profile: ks.Profile, CreatedAt: t,
	}}, nil
}

// putBulkCredentials seals and stores sp's credentials (and policies).
func (s *Store) putBulkCredentials(tx kvTx, sp TenantSpec, t time.Time) ([]Credential, error) {
	out := make([]Credential, 0, len(sp.Credentials))
	for _, c := range sp.Credentials {
		id := []byte(sp.ID + "\x00" + c.Provider)
		// A deleted account's credentials leave their version behind: a
		// re-created one continues from it.
		vb := tx.Bucket(bucketVersions)
		var version uint64 = 1
		if v := vb.Get(id); len(v) == 8 {
			version = binary.BigEndian.Uint64(v) + 1
		}
		if err := vb.Put(id, binary.BigEndian.AppendUint64(nil, version)); err != nil {
			return nil, err
		}
		kid, nonce, ct, err := s.sealer.seal(sp.ID, c.Provider, []byte(c.Key))
		if err != nil {
			return nil, err
		}
		r := sealedRecord{MasterKeyID: kid, Nonce: nonce, Ciphertext: ct, Masked: c.Masked,
			Fingerprint: Fingerprint(c.Key), Version: version, Extras: c.Extras, CreatedAt: t, UpdatedAt: t}
		if err := putJSON(tx.Bucket(bucketBYOK), id, r); err != nil {
			return nil, err
		}
		if c.BYOKOnly {
			if err := putJSON(tx.Bucket(bucketPolicies), id, Policy{BYOKOnly: true}); err != nil {
				return nil, err
			}
		}
		out = append(out, Credential{AccountID: sp.ID, Provider: c.Provider, Masked: r.Masked, Fingerprint: r.Fingerprint,
			Version: r.Version, Extras: r.Extras, CreatedAt: t, UpdatedAt: t})
	}
	return out, nil
}
