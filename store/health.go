package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Credential health: a provider's refusal of an account's BYOK key (401/403)
// marks that key version invalid, with the time and a short reason that holds
// no key material. The mark is in memory at once (the next request sees it)
// and persisted in the background; a success with the key, or a rotation
// (a new version), clears it. While a key is marked, the gateway sends it to
// its provider at most once per interval (ClaimProbe): a revoked key costs
// the provider one request, not one per retry of every client.

type health struct {
	invalidAt atomic.Int64 // unix nanoseconds; 0 when healthy
	reason    atomic.Pointer[string]
	// probeAt is when the key was last let through while marked (unix
	// nanoseconds), in memory only: each instance probes on its own.
	probeAt atomic.Int64
	// pending counts local changes (MarkInvalid, MarkValid) whose write
	// has not started yet: while there is one, the stored mark is older
	// than the memory and is not followed.
	pending atomic.Int32
}

type healthRecord struct {
	Version   uint64    `json:"version"`
	InvalidAt time.Time `json:"invalid_at"`
	Reason    string    `json:"reason"`
}

// healthOf returns the shared health of (account, provider) at version,
// following the stored mark: the one this instance or another wrote, or
// its clearing. A local change not written yet is kept (its write comes
// back through here with the same state). Called when the snapshot
// changes (snapshot.go).
func (s *Store) healthOf(tx kvTx, ck credKey, version uint64) *health {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if s.healths == nil {
		s.healths = make(map[credKey]*versionedHealth)
	}
	var r healthRecord
	marked := false
	if v := tx.Bucket(bucketHealth).Get([]byte(ck.account + "\x00" + ck.provider)); v != nil &&
		json.Unmarshal(v, &r) == nil && r.Version == version && !r.InvalidAt.IsZero() {
		marked = true
	}
	vh, ok := s.healths[ck]
	if !ok || vh.version != version {
		vh = &versionedHealth{version, new(health)}
		s.healths[ck] = vh
	} else if vh.h.pending.Load() > 0 {
		return vh.h
	}
	if marked {
		reason := r.Reason
		vh.h.reason.Store(&reason)
		vh.h.invalidAt.Store(r.InvalidAt.UnixNano())
	} else {
		vh.h.invalidAt.Store(0)
	}
	return vh.h
}

type versionedHealth struct {
	version uint64
	h       *health
}

// healthState holds the store's health bookkeeping (embedded in Store).
type healthState struct {
	healthMu sync.Mutex
	healths  map[credKey]*versionedHealth
	// healthWriteMu serialises persistHealth's read-then-write; Close
	// waits for healthWG.
	healthWriteMu sync.Mutex
	healthWG      sync.WaitGroup
}

// Invalid reports whether the provider rejected this key, since when and
// why.
func (c *Secret) Invalid() (since time.Time, reason string, invalid bool) {
	if c.health == nil {
		return time.Time{}, "", false
	}
	at := c.health.invalidAt.Load()
	if at == 0 {
		return time.Time{}, "", false
	}
	if r := c.health.reason.Load(); r != nil {
		reason = *r
	}
	return time.Unix(0, at).UTC(), reason, true
}

// ClaimProbe reports whether a request may send this credential to its
// provider at now: always while it is healthy; while it is marked invalid,
// once every interval, counted from the later of the last rejection and the
// last probe. Of concurrent callers after an interval, one wins. It costs
// one atomic load for a healthy key.
func (c *Secret) ClaimProbe(now time.Time, every time.Duration) bool {
	if c.health == nil {
		return true
	}
	for {
		at := c.health.invalidAt.Load()
		if at == 0 {
			return true
		}
		p := c.health.probeAt.Load()
		if now.UnixNano()-max(at, p) < int64(every) {
			return false
		}
		if c.health.probeAt.CompareAndSwap(p, now.UnixNano()) {
			return true
		}
	}
}

// MarkInvalid records that the provider rejected the credential. reason
// must hold no key material (callers pass the status and error class).
func (s *Store) MarkInvalid(c *Secret, at time.Time, reason string) {
	if c.health == nil {
		return
	}
	c.health.reason.Store(&reason)
	prev := c.health.invalidAt.Swap(at.UnixNano())
	// A rejected key that keeps being used (a lone target: every request
	// tries it) must not turn into a bbolt write per request: persist the
	// first mark, and refresh it at most once a minute.
	if prev != 0 && at.UnixNano()-prev < int64(time.Minute) {
		return
	}
	c.health.pending.Add(1)
	s.healthWG.Go(func() { s.persistHealth(c) })
}

// MarkValid clears an invalid mark after the key worked. It costs one atomic
// load when the key was healthy.
func (s *Store) MarkValid(c *Secret) {
	if c.health == nil || c.health.invalidAt.Load() == 0 {
		return
	}
	if c.health.invalidAt.Swap(0) != 0 {
		c.health.pending.Add(1)
		s.healthWG.Go(func() { s.persistHealth(c) })
	}
}

// persistHealth writes the credential's health as it is when the write
// happens, not as it was when it was marked: marks made on different
// goroutines may reach here in any order, and the last write (serialised by
// healthWriteMu) always carries the latest state. A credential that was
// rotated or removed in the meantime writes nothing.
func (s *Store) persistHealth(c *Secret) {
	s.healthWriteMu.Lock()
	defer s.healthWriteMu.Unlock()
	// From here the write carries the memory's state: stored marks may be
	// followed again once it is applied.
	c.health.pending.Add(-1)
	if cur := s.Snapshot().Credential(c.AccountID, c.Provider); cur == nil || cur.Version != c.Version {
		return
	}
	r := healthRecord{Version: c.Version}
	if at := c.health.invalidAt.Load(); at != 0 {
		r.InvalidAt = time.Unix(0, at).UTC()
		if reason := c.health.reason.Load(); reason != nil {
			r.Reason = *reason
		}
	}
	_ = s.kv.update(func(tx kvTx) error {
		k := []byte(c.AccountID + "\x00" + c.Provider)
		// Reading the credential makes the fleet backend write only if
		// its revision is still the one that failed: a mark never lands
		// on a key rotated meanwhile on another instance.
		var cur sealedRecord
		if v := tx.Bucket(bucketBYOK).Get(k); v == nil || json.Unmarshal(v, &cur) != nil || cur.Version != c.Version {
			return nil
		}
		b := tx.Bucket(bucketHealth)
		if r.InvalidAt.IsZero() {
			if b.Get(k) == nil {
				return nil
			}
			return b.Delete(k)
		}
		return putJSON(b, k, r)
	})
}

// Policy is an account's rule for one provider.
type Policy struct {
	// BYOKOnly forbids the platform key for this account and provider: its
	// traffic lands on the account's own contract or is refused.
	BYOKOnly bool `json:"byok_only"`
}

// SetPolicy stores the account's policy for provider; it takes effect for
// requests that start after it returns.
func (s *Store) SetPolicy(account, provider string, p Policy) error {
	return s.update(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		k := []byte(account + "\x00" + provider)
		if p == (Policy{}) {
			return tx.Bucket(bucketPolicies).Delete(k)
		}
		return putJSON(tx.Bucket(bucketPolicies), k, p)
	})
}

// CredentialHealth returns the health of the account's credential for
// provider as the snapshot holds it.
func (s *Store) CredentialHealth(account, provider string) (since time.Time, reason string, invalid bool) {
	if c := s.Snapshot().Credential(account, provider); c != nil {
		return c.Invalid()
	}
	return time.Time{}, "", false
}
