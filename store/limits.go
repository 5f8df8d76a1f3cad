package store

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/agentrouter/caddy-agentrouter/limits"
)

// Budgets and rate limits: each account's limit set (limits.Set filtered
// to the account: budgets, rate limits, spillover, caps) is one JSON
// document in the limit_sets bucket, keyed by the account id — in fleet
// mode <prefix>limit_sets/<account> in etcd, so the store's watch brings
// every instance the change. The bucket is a snapshot bucket: its applier
// keeps the union in memory (LimitSets), copied on change only, and tells
// whoever runs the limiter (caddymodule) through LimitsChanged, so that
// the limiter's Install runs on a change, never per request. A change of
// API keys or accounts is signalled too, for the config's defaults that
// apply to each key or account.
//
// The limiter's own counters (single node) live in the local bucket
// limits, through LimitsKV.

// MaxLimitObjects bounds the budgets plus rate limits one account may have.
const MaxLimitObjects = 256

// limitState is the store's in-memory view of the stored limit sets.
type limitState struct {
	// sets maps an account to its stored set; replaced, never modified
	// (under snapMu).
	sets atomic.Pointer[map[string]*limits.Set]
	// bad is the last stored set that did not parse (left out).
	bad atomic.Pointer[error]
	// Generations of the sets, the API keys and the accounts.
	genSets, genKeys, genAccounts atomic.Uint64
	// notify has a value when a generation moved since the last read.
	notify chan struct{}
}

// LimitsVersion says which state of the limit sets, API keys and accounts
// the snapshot holds; compare two to learn what changed.
type LimitsVersion struct {
	Sets, Keys, Accounts uint64
}

// LimitsVersion returns the current generations.
func (s *Store) LimitsVersion() LimitsVersion {
	return LimitsVersion{s.limits.genSets.Load(), s.limits.genKeys.Load(), s.limits.genAccounts.Load()}
}

// LimitsChanged receives a value after a change of the limit sets, the API
// keys or the accounts reached the snapshot (coalesced: one value for any
// number of changes since it was last read). One reader.
func (s *Store) LimitsChanged() <-chan struct{} { return s.limits.notify }

// LimitSets returns the union of every account's stored set, accounts in
// id order, from memory. The objects are copies the caller may keep.
func (s *Store) LimitSets() limits.Set {
	var out limits.Set
	m := s.limits.sets.Load()
	if m == nil {
		return out
	}
	ids := make([]string, 0, len(*m))
	for id := range *m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		appendSet(&out, (*m)[id])
	}
	return out
}

// LimitSetsError is the error of the last stored set the snapshot left
// out because it did not parse (written by a newer version), or nil.
func (s *Store) LimitSetsError() error {
	if e := s.limits.bad.Load(); e != nil {
		return *e
	}
	return nil
}

func appendSet(dst *limits.Set, src *limits.Set) {
	dst.Budgets = append(dst.Budgets, cloneBudgets(src.Budgets)...)
	dst.RateLimits = append(dst.RateLimits, src.RateLimits...)
	dst.Spillover = append(dst.Spillover, src.Spillover...)
	for _, c := range src.Caps {
		if c.BudgetAmount != nil {
			a := *c.BudgetAmount
			c.BudgetAmount = &a
		}
		dst.Caps = append(dst.Caps, c)
	}
}

func cloneBudgets(bs []limits.Budget) []limits.Budget {
	out := slices.Clone(bs)
	for i := range out {
		out[i].Alerts = slices.Clone(out[i].Alerts)
	}
	return out
}

// LimitSet returns the account's stored limit set (empty when it has
// none); ErrNotFound without such an account.
func (s *Store) LimitSet(account string) (limits.Set, error) {
	var set limits.Set
	err := s.kv.view(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		v := tx.Bucket(bucketLimitSets).Get([]byte(account))
		if v == nil {
			return nil
		}
		var err error
		set, err = limits.ParseSet(v)
		return err
	})
	return set, err
}

// UpdateLimitSet changes the account's stored limit set in one
// transaction: fn edits the set as stored (fn may run more than once in
// fleet mode, so it must only edit the set), then every object must
// belong to the account, the set must normalise (ids unique, owners'
// limits within the caps) and stay within MaxLimitObjects; otherwise
// nothing changes and the error is ErrInvalidInput with the reason. An
// error of fn's own is returned as is. It returns the stored set.
func (s *Store) UpdateLimitSet(account string, fn func(*limits.Set) error) (limits.Set, error) {
	var out limits.Set
	err := s.update(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		b := tx.Bucket(bucketLimitSets)
		var set limits.Set
		if v := b.Get([]byte(account)); v != nil {
			var err error
			if set, err = limits.ParseSet(v); err != nil {
				return fmt.Errorf("the stored limit set of account %q: %w", account, err)
			}
		}
		if err := fn(&set); err != nil {
			return err
		}
		if err := checkOwnSet(account, &set); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
		out = set
		if len(set.Budgets)+len(set.RateLimits)+len(set.Spillover)+len(set.Caps) == 0 {
			if b.Get([]byte(account)) == nil {
				return nil
			}
			return b.Delete([]byte(account))
		}
		return putJSON(b, []byte(account), set)
	})
	if err != nil {
		return limits.Set{}, err
	}
	return out, nil
}

// checkOwnSet checks a set stored under account: every object its own,
// within MaxLimitObjects, normalised as a whole.
func checkOwnSet(account string, set *limits.Set) error {
	if n := len(set.Budgets) + len(set.RateLimits); n > MaxLimitObjects {
		return fmt.Errorf("account %q would have %d budgets and rate limits; at most %d", account, n, MaxLimitObjects)
	}
	for _, b := range set.Budgets {
		if b.Account != account {
			return fmt.Errorf("budget %q names account %q, not %q", b.ID, b.Account, account)
		}
	}
	for _, r := range set.RateLimits {
		if r.Account != account {
			return fmt.Errorf("rate limit %q names account %q, not %q", r.ID, r.Account, account)
		}
	}
	for _, sp := range set.Spillover {
		if sp.Account != account {
			return fmt.Errorf("the spillover names account %q, not %q", sp.Account, account)
		}
	}
	for _, c := range set.Caps {
		if c.Account != account {
			return fmt.Errorf("the caps name account %q, not %q", c.Account, account)
		}
	}
	return set.Normalize()
}

// applyLimitSet follows a stored set into the edit's copy of the union
// (copied once per edit). A record that does not parse is left out (the
// account then has no stored limits on this instance) and remembered for
// LimitSetsError.
func (s *Store) applyLimitSet(e *snapEdit, c change) {
	account := string(c.k)
	var set *limits.Set
	if c.v != nil {
		parsed, err := limits.ParseSet(c.v)
		if err == nil {
			err = checkOwnSet(account, &parsed)
		}
		if err != nil {
			err = fmt.Errorf("the stored limit set of account %q is left out: %w", account, err)
			s.limits.bad.Store(&err)
		} else {
			set = &parsed
		}
	}
	if e.limitSets == nil {
		e.limitSets = map[string]*limits.Set{}
		if old := s.limits.sets.Load(); old != nil && !e.full {
			e.limitSets = maps.Clone(*old)
		}
	}
	if set == nil {
		delete(e.limitSets, account)
	} else {
		e.limitSets[account] = set
	}
}

// swapLimitSets publishes the edit's union, if it changed one.
func (s *Store) swapLimitSets(e *snapEdit) {
	if e.limitSets != nil {
		m := e.limitSets
		s.limits.sets.Store(&m)
	} else if e.full {
		s.limits.sets.Store(&map[string]*limits.Set{})
	}
}

// limitsNoticed bumps the generations the changes touch and signals.
func (s *Store) limitsNoticed(changes []change) {
	var sets, keys, accounts bool
	for _, c := range changes {
		switch c.b {
		case bucketLimitSets:
			sets = true
		case bucketKeys:
			keys = true
		case bucketAccounts:
			accounts = true
		}
	}
	if sets {
		s.limits.genSets.Add(1)
	}
	if keys {
		s.limits.genKeys.Add(1)
	}
	if accounts {
		s.limits.genAccounts.Add(1)
	}
	if sets || keys || accounts {
		select {
		case s.limits.notify <- struct{}{}:
		default:
		}
	}
}

// EachKey calls fn for every API key of the snapshot (any order).
func (sn *Snapshot) EachKey(fn func(*KeyEntry)) {
	for _, m := range sn.keyIDs {
		for _, e := range m {
			fn(e)
		}
	}
}

// EachAccount calls fn for every account id of the snapshot (any order).
func (sn *Snapshot) EachAccount(fn func(id string)) {
	for _, m := range sn.accounts {
		for id := range m {
			fn(id)
		}
	}
}

// LimitsKV returns the single-node limiter's storage (limits.NewLocal):
// the local bucket limits of the store's bbolt file. Get and Scan read in
// a read transaction; Apply writes in db.Batch, so that the flushes of
// many counters share a commit.
func (s *Store) LimitsKV() limits.KV { return limitsKV{db: s.db} }

type limitsKV struct{ db *bolt.DB }

func (k limitsKV) Get(key string) ([]byte, error) {
	var out []byte
	err := k.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketLimits.name).Get([]byte(key)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	return out, err
}

func (k limitsKV) Scan(prefix string, fn func(key string, value []byte) error) error {
	return k.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLimits.name).Cursor()
		p := []byte(prefix)
		for key, v := c.Seek(p); key != nil && bytes.HasPrefix(key, p); key, v = c.Next() {
			if err := fn(string(key), bytes.Clone(v)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (k limitsKV) Apply(writes map[string][]byte) error {
	return k.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLimits.name)
		for key, v := range writes {
			var err error
			if v == nil {
				err = b.Delete([]byte(key))
			} else {
				err = b.Put([]byte(key), v)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}
