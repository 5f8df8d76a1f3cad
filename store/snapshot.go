package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"strings"
	"sync/atomic"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// The snapshot: an immutable view of everything the request path needs,
// replaced (never modified) after each committed write, and read with one
// atomic load, no lock and no allocation.
//
// A write changes it by what it changed. Each of its maps is cut into
// nShards shards by a hash of the key; a change copies the snapshot's
// shard table (a few dozen KB of pointers) and the shards it touches, and
// shares every other shard with the snapshot before it. Only the changed
// records are decoded, and only changed credentials opened. Both backends
// hand the store every committed change to a snapshot bucket (the schema's
// snapshot property) in commit order: bbolt after its commit, the fleet
// backend from its watch, on every instance. A full load, record by record
// through the same appliers, happens only when a store opens.

// shardBits sets the shard count. At 500,000 API keys a key shard holds
// about 500 entries, copied in microseconds.
const (
	shardBits = 10
	nShards   = 1 << shardBits
	shardMask = nShards - 1
)

// shards is one map of the snapshot, cut by key hash.
type shards[K comparable, V any] [nShards]map[K]V

// Snapshot is an immutable view of everything the request path needs. It is
// replaced, never modified, after each committed write.
type Snapshot struct {
	keys     shards[[32]byte, *KeyEntry]
	keyIDs   shards[string, *KeyEntry]
	accounts shards[string, struct{}]
	creds    shards[credKey, *Secret]
	policies shards[credKey, Policy]
	// contracts are BYOK credentials' compiled contract terms.
	contracts shards[credKey, *pricing.Contract]
}

type credKey struct{ account, provider string }

var shardSeed = maphash.MakeSeed()

// hashShard picks the shard of an API key hash (already uniform).
func hashShard(h *[32]byte) int { return (int(h[0]) | int(h[1])<<8) & shardMask }

func strShard(s string) int { return int(maphash.String(shardSeed, s) & shardMask) }

func credShard(ck credKey) int {
	return int((maphash.String(shardSeed, ck.account)*31 ^ maphash.String(shardSeed, ck.provider)) & shardMask)
}

// Snapshot returns the current immutable snapshot.
func (s *Store) Snapshot() *Snapshot { return s.snap.Load() }

// HashAPIKey returns the SHA-256 of a presented API key.
func HashAPIKey(key string) [32]byte {
	// Copy through a stack buffer: []byte(key) would allocate on every
	// request (keys are 46 bytes).
	var buf [96]byte
	if len(key) <= len(buf) {
		return sha256.Sum256(append(buf[:0], key...))
	}
	return sha256.Sum256([]byte(key))
}

// LookupKey finds the API key whose SHA-256 is hash.
func (sn *Snapshot) LookupKey(hash [32]byte) (*KeyEntry, bool) {
	e, ok := sn.keys[hashShard(&hash)][hash]
	return e, ok
}

// KeyByID finds an API key by its id (key_...), for callers that act for an
// account without presenting the key (the console's playground).
func (sn *Snapshot) KeyByID(id string) (*KeyEntry, bool) {
	e, ok := sn.keyIDs[strShard(id)][id]
	return e, ok
}

// HasAccount reports whether the account exists.
func (sn *Snapshot) HasAccount(id string) bool {
	_, ok := sn.accounts[strShard(id)][id]
	return ok
}

// Credential returns the account's BYOK credential for provider, or nil.
func (sn *Snapshot) Credential(account, provider string) *Secret {
	ck := credKey{account, provider}
	return sn.creds[credShard(ck)][ck]
}

// Contract returns the contract terms of the account's BYOK credential for
// provider, compiled, or nil (list prices).
func (sn *Snapshot) Contract(account, provider string) *pricing.Contract {
	ck := credKey{account, provider}
	return sn.contracts[credShard(ck)][ck]
}

// Policy returns the account's policy for provider.
func (sn *Snapshot) Policy(account, provider string) Policy {
	ck := credKey{account, provider}
	return sn.policies[credShard(ck)][ck]
}

// --- building ---

// The snapshot's maps, numbered for snapEdit.copied.
const (
	mapKeys = iota
	mapKeyIDs
	mapAccounts
	mapCreds
	mapPolicies
	mapContracts
	nMaps
)

// snapEdit builds the next snapshot from the current one: a shard is copied
// the first time the edit changes it, and shared otherwise.
type snapEdit struct {
	next   *Snapshot
	copied [nMaps][nShards / 64]uint64
	// limitSets is the stored limit sets' union being edited (limits.go),
	// nil until a change touches it; full says the edit is a full load.
	limitSets map[string]*limits.Set
	full      bool
}

func newEdit(old *Snapshot) *snapEdit {
	next := new(Snapshot)
	if old != nil {
		*next = *old
	}
	return &snapEdit{next: next}
}

// presize makes the shards of a full load's maps the size bucket b will
// fill them to, when the backend knows it (the fleet mirror does), so that
// they do not grow step by step.
func (e *snapEdit) presize(b *bucket, bk kvBucket) {
	n := 0
	if l, ok := bk.(interface{ Len() int }); ok {
		n = l.Len()/nShards + 1
	}
	if n <= 1 {
		return
	}
	n += n / 8
	switch b {
	case bucketKeys:
		presizeShards(e, mapKeys, &e.next.keys, n)
		presizeShards(e, mapKeyIDs, &e.next.keyIDs, n)
	case bucketAccounts:
		presizeShards(e, mapAccounts, &e.next.accounts, n)
	case bucketBYOK:
		presizeShards(e, mapCreds, &e.next.creds, n)
	case bucketPolicies:
		presizeShards(e, mapPolicies, &e.next.policies, n)
	}
}

func presizeShards[K comparable, V any](e *snapEdit, m int, set *shards[K, V], n int) {
	for i := range set {
		if set[i] == nil {
			set[i] = make(map[K]V, n)
			e.copied[m][i>>6] |= 1 << (i & 63)
		}
	}
}

// mutable returns shard i of set (map number m), copied if this edit has not
// copied it yet.
func mutable[K comparable, V any](e *snapEdit, m int, set *shards[K, V], i int) map[K]V {
	w, bit := i>>6, uint64(1)<<(i&63)
	if e.copied[m][w]&bit == 0 {
		e.copied[m][w] |= bit
		if set[i] == nil {
			set[i] = make(map[K]V)
		} else {
			set[i] = maps.Clone(set[i])
		}
	}
	return set[i]
}

// remove deletes k from shard i, copying the shard only if k is there.
func remove[K comparable, V any](e *snapEdit, m int, set *shards[K, V], i int, k K) {
	if _, ok := set[i][k]; ok {
		delete(mutable(e, m, set, i), k)
	}
}

// snapStats count the records snapshot changes decoded and the credentials
// they opened (a write should cost what it changed: the tests check it).
type snapStats struct {
	decoded, opened atomic.Int64
}

// errUnopenable marks a sealed record none of this instance's master keys
// opens.
var errUnopenable = errors.New("no configured master key opens this credential")

// loadSnapshot builds the snapshot from every record of the snapshot
// buckets and swaps it in. strict fails on a credential no configured key
// opens (single-node: the file is this store's own); otherwise such a
// credential is left out and counted (fleet: another instance may have
// sealed it under a key this one does not have yet).
func (s *Store) loadSnapshot(strict bool) error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	e := newEdit(nil)
	e.full = true
	clear(s.unopenable)
	err := s.kv.view(func(tx kvTx) error {
		for _, b := range schema {
			if !b.snapshot {
				continue
			}
			bk := tx.Bucket(b)
			e.presize(b, bk)
			err := bk.ForEach(func(k, v []byte) error {
				err := s.applyOne(e, tx, change{b: b, k: k, v: v})
				if errors.Is(err, errUnopenable) && !strict {
					return nil
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.snap.Store(e.next)
	s.swapLimitSets(e)
	s.limitsNoticed([]change{{b: bucketLimitSets}, {b: bucketKeys}, {b: bucketAccounts}})
	return nil
}

// applyChanges applies committed changes to the snapshot and swaps it in.
// Every change is applied even when one fails (a record that does not
// decode is left out of the snapshot, as absent); the first error is
// returned. Before the first load it does nothing: the load reads the
// committed state.
func (s *Store) applyChanges(tx kvTx, changes []change) error {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	old := s.snap.Load()
	if old == nil {
		return nil
	}
	e := newEdit(old)
	var first error
	for _, c := range changes {
		if err := s.applyOne(e, tx, c); err != nil && first == nil && !errors.Is(err, errUnopenable) {
			first = err
		}
	}
	s.snap.Store(e.next)
	s.swapLimitSets(e)
	s.limitsNoticed(changes)
	return first
}

// applyOne applies one record of a snapshot bucket (c.v nil: deleted).
func (s *Store) applyOne(e *snapEdit, tx kvTx, c change) error {
	switch c.b {
	case bucketAccounts:
		id := string(c.k)
		if c.v == nil {
			remove(e, mapAccounts, &e.next.accounts, strShard(id), id)
		} else {
			mutable(e, mapAccounts, &e.next.accounts, strShard(id))[id] = struct{}{}
		}
		return nil
	case bucketKeys:
		return s.applyKey(e, c)
	case bucketBYOK:
		return s.applyCredential(e, tx, c)
	case bucketHealth:
		return s.applyHealth(e, tx, c)
	case bucketPolicies:
		return s.applyPolicy(e, c)
	case bucketContracts:
		return s.applyContract(e, c)
	case bucketPrices:
		return s.applyPriceVersion(c)
	case bucketLimitSets:
		s.applyLimitSet(e, c)
		return nil
	}
	return fmt.Errorf("bucket %s is marked as a snapshot bucket but has no applier", c.b)
}

func (s *Store) applyKey(e *snapEdit, c change) error {
	if len(c.k) != 32 {
		return nil
	}
	var h [32]byte
	copy(h[:], c.k)
	i := hashShard(&h)
	if old := e.next.keys[i][h]; old != nil {
		j := strShard(old.KeyID)
		if e.next.keyIDs[j][old.KeyID] == old {
			delete(mutable(e, mapKeyIDs, &e.next.keyIDs, j), old.KeyID)
		}
		delete(mutable(e, mapKeys, &e.next.keys, i), h)
		if c.v == nil {
			s.dropClock(keyClockID(old.KeyID), old.lastUsed)
		}
	}
	if c.v == nil {
		return nil
	}
	s.snapStats.decoded.Add(1)
	id, account, profile, err := keyEntryFields(c.v)
	if err != nil {
		return fmt.Errorf("api key record: %w", err)
	}
	ent := &KeyEntry{KeyID: id, AccountID: account, Profile: profile, lastUsed: s.clock(keyClockID(id))}
	mutable(e, mapKeys, &e.next.keys, i)[h] = ent
	mutable(e, mapKeyIDs, &e.next.keyIDs, strShard(id))[id] = ent
	return nil
}

// keyEntryFields reads the three fields of a keyRecord the snapshot holds,
// in one pass and without decoding the rest (a third of encoding/json's
// time: API keys are most of the records a start-up reads).
func keyEntryFields(v []byte) (id, account, profile string, err error) {
	if !gjson.ValidBytes(v) {
		return "", "", "", errors.New("not valid JSON")
	}
	r := gjson.ParseBytes(v)
	if !r.IsObject() {
		return "", "", "", errors.New("not a JSON object")
	}
	r.ForEach(func(k, v gjson.Result) bool {
		if v.Type != gjson.String {
			return true
		}
		switch k.Str {
		case "id":
			id = strings.Clone(v.Str)
		case "account":
			account = strings.Clone(v.Str)
		case "profile":
			profile = strings.Clone(v.Str)
		}
		return true
	})
	if id == "" || account == "" {
		return "", "", "", errors.New("no id or account")
	}
	return id, account, profile, nil
}

// credKeyOf parses account \x00 provider.
func credKeyOf(k []byte) (credKey, bool) {
	account, provider, ok := bytes.Cut(k, []byte{0})
	return credKey{string(account), string(provider)}, ok
}

func (s *Store) applyCredential(e *snapEdit, tx kvTx, c change) error {
	ck, ok := credKeyOf(c.k)
	if !ok {
		return nil
	}
	i := credShard(ck)
	if c.v == nil {
		if old := e.next.creds[i][ck]; old != nil {
			s.dropClock(credClockID(ck.account, ck.provider), old.lastUsed)
		}
		remove(e, mapCreds, &e.next.creds, i, ck)
		delete(s.unopenable, ck)
		return nil
	}
	var r sealedRecord
	s.snapStats.decoded.Add(1)
	if err := json.Unmarshal(c.v, &r); err != nil {
		remove(e, mapCreds, &e.next.creds, i, ck)
		return fmt.Errorf("credential record %s/%s: %w", ck.account, ck.provider, err)
	}
	s.snapStats.opened.Add(1)
	pt, err := s.sealer.open(r.MasterKeyID, ck.account, ck.provider, r.Nonce, r.Ciphertext)
	if err != nil {
		remove(e, mapCreds, &e.next.creds, i, ck)
		s.unopenable[ck] = struct{}{}
		return fmt.Errorf("%w (%s/%s, key id %s): %v", errUnopenable, ck.account, ck.provider, r.MasterKeyID, err)
	}
	delete(s.unopenable, ck)
	sec := &Secret{
		AccountID: ck.account, Provider: ck.provider, Version: r.Version,
		Fingerprint: r.Fingerprint, Extras: r.Extras, key: string(pt),
		lastUsed: s.clock(credClockID(ck.account, ck.provider)),
		health:   s.healthOf(tx, ck, r.Version),
	}
	clear(pt)
	mutable(e, mapCreds, &e.next.creds, i)[ck] = sec
	return nil
}

// applyHealth follows a health mark written (or cleared) by this or another
// instance onto the credential it concerns.
func (s *Store) applyHealth(e *snapEdit, tx kvTx, c change) error {
	ck, ok := credKeyOf(c.k)
	if !ok {
		return nil
	}
	i := credShard(ck)
	cur := e.next.creds[i][ck]
	if cur == nil {
		return nil
	}
	if h := s.healthOf(tx, ck, cur.Version); h != cur.health {
		cp := *cur
		cp.health = h
		mutable(e, mapCreds, &e.next.creds, i)[ck] = &cp
	}
	return nil
}

func (s *Store) applyPolicy(e *snapEdit, c change) error {
	ck, ok := credKeyOf(c.k)
	if !ok {
		return nil
	}
	i := credShard(ck)
	var p Policy
	if c.v == nil || json.Unmarshal(c.v, &p) != nil || p == (Policy{}) {
		remove(e, mapPolicies, &e.next.policies, i, ck)
		return nil
	}
	mutable(e, mapPolicies, &e.next.policies, i)[ck] = p
	return nil
}

// accountCount is the number of accounts the snapshot holds.
func (sn *Snapshot) accountCount() int {
	n := 0
	for _, m := range sn.accounts {
		n += len(m)
	}
	return n
}
