package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Errors callers can test for with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrLocked   = errors.New("store is locked")
)

// APIKeyPrefix starts every Agent Router API key, so that leaked keys are easy
// to recognise and scan for.
const APIKeyPrefix = "ar_"

// Options tune Open.
type Options struct {
	// OpenTimeout bounds the wait for bbolt's file lock. Default: 2s.
	OpenTimeout time.Duration
	// LogMaxRecords bounds the request log by count. Default: 100000.
	LogMaxRecords int
	// LogMaxAge bounds the request log by age. Default: 720h.
	LogMaxAge time.Duration
	// LogFlushInterval is how often queued request-log records are written.
	// Default: 250ms.
	LogFlushInterval time.Duration
	// UsageFlushInterval is how often the in-memory usage rollups and
	// "last used" clocks are merged into bbolt; a crash loses at most this
	// much of them. Close (and FlushLog) always merge them. Default: 10s.
	UsageFlushInterval time.Duration
	// UsageRetention bounds the usage rollups by age. Default: 2160h (90
	// days).
	UsageRetention time.Duration
	// OldMasterKeys are earlier master keys that can still open records; new
	// seals always use the current key. Open re-seals every record it finds
	// under an old key with the current one, so after one successful Open an
	// old key can be dropped.
	OldMasterKeys [][]byte
}

// Store is the persistent state: shared records behind the KV seam (one
// bbolt file, or etcd in fleet mode), per-instance records in the local
// bbolt file, and the snapshot the request path reads. It is safe for
// concurrent use. Writes are serialised per backend; reads on the hot path
// go to Snapshot().
type Store struct {
	db *bolt.DB // the local file: request log, usage, clocks (and, single-node, everything)
	// kv holds the shared records: boltKV over db, or the etcd fleet backend.
	kv     kvBackend
	path   string
	sealer *sealer

	// snapMu serialises snapshot changes: the first load and every
	// committed change (snapshot.go).
	snapMu sync.Mutex
	snap   atomic.Pointer[Snapshot]
	// unopenable holds the sealed credentials none of this instance's
	// master keys opens (fleet mode: a master-key rotation in progress).
	unopenable map[credKey]struct{}
	snapStats  snapStats

	// clocks are the in-memory "last used" clocks of keys and credentials,
	// shared by every snapshot and persisted by the log writer (clocks.go).
	clocks clockSet

	log *logWriter

	// prices is the price book's registry, kept by the price_versions
	// bucket's snapshot applier (prices.go).
	prices    *pricing.Registry
	pricesBad atomic.Pointer[error]

	prune sessionPrune // background session pruning (sessions.go)

	// limits is the stored limit sets' union and change signal (limits.go).
	limits limitState

	healthState
}

// Open opens (or creates) the bbolt file at path with mode 0600 and loads
// the snapshot. masterKey seals and opens BYOK credentials.
func Open(path string, masterKey []byte, opts Options) (*Store, error) {
	s, err := openLocal(path, masterKey, opts)
	if err != nil {
		return nil, err
	}
	s.kv = &boltKV{db: s.db}
	err = s.prepare()
	if err == nil {
		s.kv.setApply(s.applyChanges)
		err = s.loadSnapshot(true)
	}
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("loading store %s: %w", path, err)
	}
	s.log = startLogWriter(s, opts)
	return s, nil
}

// prepare brings the shared records up to date before the snapshot is
// loaded: it checks the master key, re-seals records sealed under an old
// one, and migrates older schemas in place (console people, the API-key
// index). Each step is idempotent and, under a backend that bounds its
// transactions (etcd), runs in small batches: several fleet instances may
// run it at once.
func (s *Store) prepare() error {
	if err := s.kv.update(s.checkMasterKey); err != nil {
		return err
	}
	reseal, users, keys := 0, 1000, 10000
	if s.kv.maxOps() > 0 {
		reseal, users, keys = 50, 40, 40
	}
	// Without old master keys there is nothing to re-seal (a record under
	// another key does not open: the snapshot's load says so), and no need
	// to read every sealed record at each start.
	for len(s.sealer.aeads) > 1 {
		var n int
		if err := s.kv.update(func(tx kvTx) (err error) { n, err = s.resealOld(tx, reseal); return err }); err != nil {
			return fmt.Errorf("re-sealing under the current master key: %w", err)
		}
		if reseal == 0 || n < reseal {
			break
		}
	}
	for len(s.sealer.aeads) > 1 {
		var n int
		if err := s.kv.update(func(tx kvTx) (err error) { n, err = s.resealUsageReaders(tx, reseal); return err }); err != nil {
			return fmt.Errorf("re-sealing usage readers under the current master key: %w", err)
		}
		if reseal == 0 || n < reseal {
			break
		}
	}
	if err := s.migrateUsers(users); err != nil {
		return fmt.Errorf("migrating console users: %w", err)
	}
	if err := s.migrateKeyIndex(keys); err != nil {
		return fmt.Errorf("indexing API keys by account: %w", err)
	}
	return nil
}

// openLocal opens the bbolt file, creates its buckets and loads the "last
// used" clocks.
func openLocal(path string, masterKey []byte, opts Options) (*Store, error) {
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = 2 * time.Second
	}
	sl, err := newSealer(masterKey, opts.OldMasterKeys...)
	if err != nil {
		return nil, err
	}
	// The free-page list is not written at every commit (as etcd runs
	// bbolt): the request log is appended and pruned all the time, its
	// list runs to thousands of pages, and rewriting it was a large part
	// of each of the log writer's commits. bbolt rebuilds it by scanning
	// the file when it opens one. The map form makes allocation cheap.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is held by another process (is Caddy already running? use 'caddy reload' to change its config)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %v", path, err)
	}
	// bbolt creates the file with the given mode, but an existing file keeps
	// whatever it had: tighten it.
	_ = os.Chmod(path, 0o600)
	s := &Store{db: db, path: path, sealer: sl, unopenable: make(map[credKey]struct{}), prices: pricing.NewRegistry()}
	s.limits.notify = make(chan struct{}, 1)
	s.prune.last = time.Now() // the first background prune comes pruneEvery after opening
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range schema {
			if !b.inFile() {
				continue
			}
			if _, err := tx.CreateBucketIfNotExists(b.name); err != nil {
				return err
			}
		}
		return s.loadClocks(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("loading store %s: %w", path, err)
	}
	return s, nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// MasterKeyID is the id of the master key new credentials are sealed with.
func (s *Store) MasterKeyID() string { return s.sealer.current }

// PeerKeys returns the keys fleet members authenticate each other with,
// one per master key this store knows, the current one first (copies).
func (s *Store) PeerKeys() []PeerKey {
	out := make([]PeerKey, len(s.sealer.peer))
	for i, k := range s.sealer.peer {
		out[i] = PeerKey{ID: k.ID, Key: append([]byte(nil), k.Key...)}
	}
	return out
}

// Close flushes the request log, usage rollups and "last used" clocks and
// closes the file.
func (s *Store) Close() error {
	s.stopPrune()
	s.log.stop()
	s.healthWG.Wait() // health marks still being written
	s.kv.close()
	return s.db.Close()
}

// --- records ---

// Account is a customer of the gateway: the owner of API keys and BYOK
// credentials.
type Account struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// APIKey describes an Agent Router API key. The key itself is never stored:
// only its SHA-256.
type APIKey struct {
	ID        string `json:"id"`
	AccountID string `json:"account"`
	Name      string `json:"name"`
	Prefix    string `json:"prefix"`
	// Profile names the routing profile the key is bound to ("" for
	// none): its requests resolve model names through that profile's
	// aliases and routes first. The profiles themselves live in the config.
	Profile    string     `json:"profile"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// Extras are the non-secret settings that travel with a BYOK credential.
type Extras struct {
	// BaseURL overrides the provider's base URL (Azure: the resource
	// endpoint; OpenAI: a regional host).
	BaseURL string `json:"base_url,omitempty"`
	// APIVersion is Azure's api-version.
	APIVersion string `json:"api_version,omitempty"`
	// Organization and Project are OpenAI's optional headers.
	Organization string `json:"organization,omitempty"`
	Project      string `json:"project,omitempty"`
}

// Credential describes a stored BYOK credential without its secret.
type Credential struct {
	AccountID   string     `json:"account"`
	Provider    string     `json:"provider"`
	Masked      string     `json:"masked"`
	Fingerprint string     `json:"fingerprint"`
	Version     uint64     `json:"version"`
	Extras      Extras     `json:"extras"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
}

type keyRecord struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	Profile   string    `json:"profile,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

type sealedRecord struct {
	MasterKeyID string    `json:"kid"`
	Nonce       []byte    `json:"nonce"`
	Ciphertext  []byte    `json:"ciphertext"`
	Masked      string    `json:"masked"`
	Fingerprint string    `json:"fingerprint"`
	Version     uint64    `json:"version"`
	Extras      Extras    `json:"extras"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// --- snapshot entries ---

// KeyEntry is an authenticated API key.
type KeyEntry struct {
	KeyID     string
	AccountID string
	// Profile is the routing profile the key is bound to, "" for none.
	Profile  string
	lastUsed *clock
}

// Touch records that the key was used at t (nanoseconds since the epoch).
func (k *KeyEntry) Touch(unixNano int64) { storeMax(&k.lastUsed.Int64, unixNano) }

// Secret is an opened BYOK credential. Its key is unexported and its String
// form is redacted, so printing or JSON-encoding a Secret cannot leak it.
type Secret struct {
	AccountID   string
	Provider    string
	Version     uint64
	Fingerprint string
	Extras      Extras
	key         string
	lastUsed    *clock
	health      *health
}

// Key returns the plaintext provider key, for the auth header only.
func (c *Secret) Key() string { return c.key }

// Touch records that the credential was used.
func (c *Secret) Touch(unixNano int64) { storeMax(&c.lastUsed.Int64, unixNano) }

// String redacts the secret. It has a value receiver so that a Secret
// printed by value (or inside a struct that holds one by value) is redacted
// too: fmt would otherwise print the unexported key field.
func (c Secret) String() string {
	return fmt.Sprintf("byok credential %s/%s v%d (%s)", c.AccountID, c.Provider, c.Version, c.Fingerprint)
}

// GoString redacts the secret in %#v.
func (c Secret) GoString() string { return c.String() }

// ErrWrongMasterKey means the store was set up under another master key.
var ErrWrongMasterKey = errors.New("wrong master key")

// checkMasterKey compares the configured master keys with the one the store
// was last sealed under (recorded in meta), so a wrong key is refused at
// once, even before any credential exists, instead of sealing new
// credentials under a key the old ones do not open with.
func (s *Store) checkMasterKey(tx kvTx) error {
	meta := tx.Bucket(bucketMeta)
	recorded := meta.Get([]byte("master_key_id"))
	if recorded != nil {
		if _, ok := s.sealer.aeads[string(recorded)]; !ok {
			return fmt.Errorf("%w: the store was sealed under master key id %s, but the configured key has id %s", ErrWrongMasterKey, recorded, s.sealer.current)
		}
	}
	if string(recorded) == s.sealer.current {
		return nil // no write: in fleet mode every instance opening would touch etcd
	}
	return meta.Put([]byte("master_key_id"), []byte(s.sealer.current))
}

// resealOld re-seals, under the current master key, every credential sealed
// under one of OldMasterKeys, so that master-key rotation completes and the
// old key can be retired. The provider key is unchanged, so its version is
// too. A record no configured key opens fails the whole transaction. max > 0
// re-seals at most max records (the fleet backend batches the pass so that
// each etcd transaction stays small); it returns how many it re-sealed.
func (s *Store) resealOld(tx kvTx, max int) (int, error) {
	return resealBucket(s, tx, bucketBYOK, max, func(provider string) string { return provider },
		func(r *sealedRecord) (*string, *[]byte, *[]byte) { return &r.MasterKeyID, &r.Nonce, &r.Ciphertext })
}

// resealBucket is the re-sealing pass over one bucket of sealed records
// (BYOK keys, usage readers) keyed account\x00provider: every record R
// under an old master key is opened and sealed again under the current
// one, at most max when max > 0. slot gives the additional data's
// provider half; blob the record's sealed fields.
func resealBucket[R any](s *Store, tx kvTx, bucket *bucket, max int, slot func(provider string) string, blob func(*R) (kid *string, nonce, ciphertext *[]byte)) (int, error) {
	b := tx.Bucket(bucket)
	type update struct{ k, v []byte }
	var updates []update
	errEnough := errors.New("enough")
	err := b.ForEach(func(k, v []byte) error {
		if max > 0 && len(updates) >= max {
			return errEnough
		}
		account, provider, ok := bytes.Cut(k, []byte{0})
		if !ok {
			return nil
		}
		var r R
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		kid, nonce, ciphertext := blob(&r)
		if *kid == s.sealer.current {
			return nil
		}
		sl := slot(string(provider))
		pt, err := s.sealer.open(*kid, string(account), sl, *nonce, *ciphertext)
		if err != nil {
			return err
		}
		*kid, *nonce, *ciphertext, err = s.sealer.seal(string(account), sl, pt)
		clear(pt)
		if err != nil {
			return err
		}
		buf, err := json.Marshal(&r)
		if err != nil {
			return err
		}
		updates = append(updates, update{append([]byte(nil), k...), buf})
		return nil
	})
	if err != nil && err != errEnough {
		return 0, err
	}
	for _, u := range updates {
		if err := b.Put(u.k, u.v); err != nil {
			return 0, err
		}
	}
	return len(updates), nil
}

// update commits fn; the snapshot holds the change when it returns, so it is
// visible to every request that starts after.
func (s *Store) update(fn func(tx kvTx) error) error { return s.kv.update(fn) }

// --- accounts ---

var accountIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidateAccountID reports whether id can name an account.
func ValidateAccountID(id string) error {
	if !accountIDPattern.MatchString(id) {
		return errors.New("account id must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// CreateAccount stores a new account.
func (s *Store) CreateAccount(id, name string) (Account, error) {
	if err := ValidateAccountID(id); err != nil {
		return Account{}, err
	}
	a := Account{ID: id, Name: name, CreatedAt: now().UTC()}
	err := s.update(func(tx kvTx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get([]byte(id)) != nil {
			return fmt.Errorf("account %q: %w", id, ErrExists)
		}
		return putJSON(b, []byte(id), a)
	})
	return a, err
}

// Account returns one account.
func (s *Store) Account(id string) (Account, error) {
	var a Account
	err := s.kv.view(func(tx kvTx) error {
		v := tx.Bucket(bucketAccounts).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("account %q: %w", id, ErrNotFound)
		}
		return json.Unmarshal(v, &a)
	})
	return a, err
}

// Accounts lists every account, ordered by id.
func (s *Store) Accounts() ([]Account, error) {
	out := []Account{}
	err := s.kv.view(func(tx kvTx) error {
		return tx.Bucket(bucketAccounts).ForEach(func(_, v []byte) error {
			var a Account
			if err := json.Unmarshal(v, &a); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	return out, err
}

// DeleteAccount removes an account with its API keys and BYOK credentials,
// with immediate effect. Its request-log records stay until retention drops
// them. It costs what the account holds, not what the store holds: the
// account's keys are found through key_index.
func (s *Store) DeleteAccount(id string) error {
	if s.kv.maxOps() > 0 {
		// Members who are in other accounts too are rewritten, not only
		// deleted, which one bounded transaction (etcd) cannot do for a
		// large account: remove the memberships one transaction each
		// first. (Deletes alone are committed in chunks.)
		if err := s.removeAccountMembers(id); err != nil {
			return err
		}
	}
	return s.update(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(id)) == nil {
			return fmt.Errorf("account %q: %w", id, ErrNotFound)
		}
		if err := tx.Bucket(bucketAccounts).Delete([]byte(id)); err != nil {
			return err
		}
		prefix := []byte(id + "\x00")
		clocks, err := deleteAccountKeys(tx, prefix)
		if err != nil {
			return err
		}
		byok := tx.Bucket(bucketBYOK)
		var doomed [][]byte
		c := byok.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			doomed = append(doomed, append([]byte(nil), k...))
			clocks = append(clocks, credClockID(id, string(k[len(prefix):])))
		}
		for _, k := range doomed {
			if err := byok.Delete(k); err != nil {
				return err
			}
		}
		for _, b := range []*bucket{bucketHealth, bucketPolicies, bucketContracts} {
			if err := deletePrefix(tx.Bucket(b), prefix); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketLimitSets).Get([]byte(id)) != nil {
			if err := tx.Bucket(bucketLimitSets).Delete([]byte(id)); err != nil {
				return err
			}
		}
		if err := deleteAccountUsers(tx, id); err != nil {
			return err
		}
		if err := deleteAccountReconcile(tx, prefix); err != nil {
			return err
		}
		return s.forgetClocks(tx, clocks...)
	})
}

// deleteAccountKeys deletes the API keys key_index lists under prefix
// (account \x00), and returns their clock ids.
func deleteAccountKeys(tx kvTx, prefix []byte) ([]string, error) {
	idx, keys, ids := tx.Bucket(bucketKeyIndex), tx.Bucket(bucketKeys), tx.Bucket(bucketKeyIDs)
	type entry struct{ ik, hash []byte }
	var doomed []entry
	c := idx.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		doomed = append(doomed, entry{bytes.Clone(k), bytes.Clone(v)})
	}
	var clocks []string
	for _, d := range doomed {
		if err := idx.Delete(d.ik); err != nil {
			return nil, err
		}
		v := keys.Get(d.hash)
		if v == nil {
			continue
		}
		var r keyRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, err
		}
		if r.AccountID+"\x00" != string(prefix) {
			continue // not this account's (an index entry gone stale): keep the key
		}
		if err := keys.Delete(d.hash); err != nil {
			return nil, err
		}
		if err := ids.Delete([]byte(r.ID)); err != nil {
			return nil, err
		}
		clocks = append(clocks, keyClockID(r.ID))
	}
	return clocks, nil
}

// --- API keys ---

// CreateAPIKey issues a new API key for an account and returns its plaintext
// (shown once) and its description. The key carries 256 bits of randomness.
func (s *Store) CreateAPIKey(account, name string) (plaintext string, k APIKey, err error) {
	return s.CreateAPIKeyWithProfile(account, name, "")
}

// CreateAPIKeyWithProfile is CreateAPIKey for a key bound to a routing
// profile ("" for none). The store does not know which profiles the config
// declares: callers check the name (admin does, against the running config).
func (s *Store) CreateAPIKeyWithProfile(account, name, profile string) (plaintext string, k APIKey, err error) {
	if err := ValidateProfileName(profile); err != nil {
		return "", APIKey{}, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", APIKey{}, err
	}
	plaintext = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", APIKey{}, err
	}
	rec := keyRecord{
		ID: "key_" + hex.EncodeToString(idb[:]), AccountID: account, Name: name,
		Prefix: plaintext[:len(APIKeyPrefix)+6], Profile: profile, CreatedAt: now().UTC(),
	}
	hash := HashAPIKey(plaintext)
	err = s.update(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		return putKey(tx, hash, rec)
	})
	if err != nil {
		return "", APIKey{}, err
	}
	return plaintext, s.apiKey(rec), nil
}

func (s *Store) apiKey(r keyRecord) APIKey {
	return APIKey{ID: r.ID, AccountID: r.AccountID, Name: r.Name, Prefix: r.Prefix, Profile: r.Profile,
		CreatedAt: r.CreatedAt, LastUsedAt: s.lastUsedAt(keyClockID(r.ID))}
}

// ValidateProfileName checks the shape of a routing profile name: 1 to 64
// letters, digits, '.', '_' or '-', starting with a letter or digit. ""
// (no profile) is valid.
func ValidateProfileName(name string) error {
	if name == "" {
		return nil
	}
	if len(name) > 64 {
		return fmt.Errorf("profile name is longer than 64 characters: %w", ErrInvalidProfile)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("profile name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit: %w", name, ErrInvalidProfile)
		}
	}
	return nil
}

// ErrInvalidProfile means a routing profile name is malformed.
var ErrInvalidProfile = errors.New("invalid profile name")

// SetAPIKeyProfile binds an account's API key to a routing profile, or
// unbinds it with "". Requests that start after it returns use the new
// binding.
func (s *Store) SetAPIKeyProfile(account, keyID, profile string) (APIKey, error) {
	if err := ValidateProfileName(profile); err != nil {
		return APIKey{}, err
	}
	var rec keyRecord
	err := s.update(func(tx kvTx) error {
		hash := tx.Bucket(bucketKeyIDs).Get([]byte(keyID))
		if hash == nil {
			return fmt.Errorf("api key %q: %w", keyID, ErrNotFound)
		}
		keys := tx.Bucket(bucketKeys)
		if err := json.Unmarshal(keys.Get(hash), &rec); err != nil {
			return err
		}
		if rec.AccountID != account {
			return fmt.Errorf("api key %q: %w", keyID, ErrNotFound)
		}
		rec.Profile = profile
		return putJSON(keys, append([]byte(nil), hash...), rec)
	})
	if err != nil {
		return APIKey{}, err
	}
	return s.apiKey(rec), nil
}

// putKey stores a new API key: its record, its id and its index entry.
func putKey(tx kvTx, hash [32]byte, rec keyRecord) error {
	if err := tx.Bucket(bucketKeyIDs).Put([]byte(rec.ID), hash[:]); err != nil {
		return err
	}
	if err := tx.Bucket(bucketKeyIndex).Put(keyIndexKey(rec.AccountID, rec.CreatedAt, rec.ID), hash[:]); err != nil {
		return err
	}
	return putJSON(tx.Bucket(bucketKeys), hash[:], rec)
}

// keyIndexKey is an API key's key_index key: account \x00, its creation
// time (8 bytes big-endian unix nanoseconds), its id. An account's keys sort
// oldest first.
func keyIndexKey(account string, created time.Time, id string) []byte {
	k := make([]byte, 0, len(account)+1+8+len(id))
	k = append(append(k, account...), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(created.UnixNano()))
	return append(k, id...)
}

// APIKeys lists an account's API keys, oldest first.
func (s *Store) APIKeys(account string) ([]APIKey, error) {
	out := []APIKey{}
	err := s.kv.view(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		return s.eachKey(tx, account, func(r keyRecord) {
			out = append(out, s.apiKey(r))
		})
	})
	return out, err
}

// eachKey calls fn with the account's API keys, oldest first.
func (s *Store) eachKey(tx kvTx, account string, fn func(r keyRecord)) error {
	prefix := []byte(account + "\x00")
	keys := tx.Bucket(bucketKeys)
	c := tx.Bucket(bucketKeyIndex).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		rv := keys.Get(v)
		if rv == nil {
			continue
		}
		var r keyRecord
		if err := json.Unmarshal(rv, &r); err != nil {
			return err
		}
		if r.AccountID == account {
			fn(r)
		}
	}
	return nil
}

// RevokeAPIKey deletes an account's API key; requests that start after it
// returns are refused.
func (s *Store) RevokeAPIKey(account, keyID string) error {
	return s.update(func(tx kvTx) error {
		ids := tx.Bucket(bucketKeyIDs)
		hash := ids.Get([]byte(keyID))
		if hash == nil {
			return fmt.Errorf("api key %q: %w", keyID, ErrNotFound)
		}
		var r keyRecord
		if err := json.Unmarshal(tx.Bucket(bucketKeys).Get(hash), &r); err != nil {
			return err
		}
		if r.AccountID != account {
			return fmt.Errorf("api key %q: %w", keyID, ErrNotFound)
		}
		if err := tx.Bucket(bucketKeys).Delete(hash); err != nil {
			return err
		}
		if err := tx.Bucket(bucketKeyIndex).Delete(keyIndexKey(r.AccountID, r.CreatedAt, r.ID)); err != nil {
			return err
		}
		if err := ids.Delete([]byte(keyID)); err != nil {
			return err
		}
		return s.forgetClocks(tx, keyClockID(keyID))
	})
}

// --- BYOK credentials ---

// Fingerprint identifies a provider key without revealing it: "fp_" and the
// first 12 hex digits of its SHA-256.
func Fingerprint(key string) string {
	h := sha256.Sum256([]byte(key))
	return "fp_" + hex.EncodeToString(h[:6])
}

// PutCredential seals key under the master key and stores it as the account's
// credential for provider, replacing (rotating) any earlier one. It returns
// after the write is committed and the snapshot swapped. masked is the
// caller's display form of the key.
func (s *Store) PutCredential(account, provider, key, masked string, extras Extras) (Credential, error) {
	var out sealedRecord
	err := s.update(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		id := []byte(account + "\x00" + provider)
		vb := tx.Bucket(bucketVersions)
		var version uint64 = 1
		if v := vb.Get(id); len(v) == 8 {
			version = binary.BigEndian.Uint64(v) + 1
		}
		var vbuf [8]byte
		binary.BigEndian.PutUint64(vbuf[:], version)
		if err := vb.Put(id, vbuf[:]); err != nil {
			return err
		}
		t := now().UTC()
		created := t
		if old := tx.Bucket(bucketBYOK).Get(id); old != nil {
			var prev sealedRecord
			if json.Unmarshal(old, &prev) == nil {
				created = prev.CreatedAt
			}
		}
		kid, nonce, ct, err := s.sealer.seal(account, provider, []byte(key))
		if err != nil {
			return err
		}
		out = sealedRecord{
			MasterKeyID: kid, Nonce: nonce, Ciphertext: ct, Masked: masked,
			Fingerprint: Fingerprint(key), Version: version, Extras: extras,
			CreatedAt: created, UpdatedAt: t,
		}
		return putJSON(tx.Bucket(bucketBYOK), id, out)
	})
	if err != nil {
		return Credential{}, err
	}
	return s.credential(account, provider, out), nil
}

func (s *Store) credential(account, provider string, r sealedRecord) Credential {
	return Credential{
		AccountID: account, Provider: provider, Masked: r.Masked, Fingerprint: r.Fingerprint,
		Version: r.Version, Extras: r.Extras, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		LastUsedAt: s.lastUsedAt(credClockID(account, provider)),
	}
}

// Credentials returns the account's BYOK credentials by provider, without
// secrets.
func (s *Store) Credentials(account string) (map[string]Credential, error) {
	out := make(map[string]Credential)
	err := s.kv.view(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		prefix := []byte(account + "\x00")
		c := tx.Bucket(bucketBYOK).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r sealedRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			provider := string(k[len(prefix):])
			out[provider] = s.credential(account, provider, r)
		}
		return nil
	})
	return out, err
}

// DeleteCredential removes the account's credential for provider; the next
// request uses the platform key.
func (s *Store) DeleteCredential(account, provider string) error {
	return s.update(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		id := []byte(account + "\x00" + provider)
		if tx.Bucket(bucketBYOK).Get(id) == nil {
			return fmt.Errorf("%s credential for account %q: %w", provider, account, ErrNotFound)
		}
		if err := tx.Bucket(bucketBYOK).Delete(id); err != nil {
			return err
		}
		if err := tx.Bucket(bucketHealth).Delete(id); err != nil {
			return err
		}
		return s.forgetClocks(tx, credClockID(account, provider))
	})
}

// --- helpers ---

// deletePrefix deletes every key of b that starts with prefix.
func deletePrefix(b kvBucket, prefix []byte) error {
	var doomed [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		doomed = append(doomed, append([]byte(nil), k...))
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// now is the store's clock; tests may replace it.
var now = time.Now

func putJSON(b interface{ Put(k, v []byte) error }, k []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, buf)
}
