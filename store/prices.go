package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// The price book's versions: every change of the effective book is a new
// immutable version (pricing.Version), kept forever in the price_versions
// bucket, shared like the accounts (etcd in fleet mode), so that every
// instance prices with the same version ids. The bucket holds each version
// under its 8-byte big-endian sequence number, and "head", the current
// version's id.
//
// Publishing is one write transaction that reads head and writes the next
// version over it: in fleet mode etcd compares what the transaction read,
// so of two instances publishing at once one wins and the other runs again
// on top of the winner's version (a compare-and-swap on head; one writer at
// a time, none lost). Every instance follows every committed version in
// order through the snapshot applier, which keeps the store's registry: a
// request takes Prices().Current() when it starts.

var priceHead = []byte("head")

func priceKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Prices returns the registry of the price book's versions, which follows
// the price_versions bucket (on every fleet instance). It has no version
// until the first PublishPrices.
func (s *Store) Prices() *pricing.Registry { return s.prices }

// PublishPrices makes t the price book: a new version when its prices
// differ from the current version's (and false with the current version
// otherwise), stored, and current on this instance when PublishPrices
// returns (on the fleet's other instances once their watch delivers it). A
// table that fails its checks changes nothing.
func (s *Store) PublishPrices(t *pricing.Table) (*pricing.Version, bool, error) {
	if err := t.Check(); err != nil {
		return nil, false, err
	}
	var next *pricing.Version
	var changed bool
	err := s.update(func(tx kvTx) error {
		b := tx.Bucket(bucketPrices)
		parent, err := s.headVersion(b)
		if err != nil {
			return err
		}
		next, changed, err = pricing.NextVersion(parent, t, now())
		if err != nil || !changed {
			return err
		}
		if err := putJSON(b, priceKey(next.Seq), next.Record()); err != nil {
			return err
		}
		return b.Put(priceHead, []byte(next.ID))
	})
	if err != nil {
		return nil, false, fmt.Errorf("publishing the price book: %w", err)
	}
	if v, ok := s.prices.Get(next.ID); ok {
		return v, changed, nil
	}
	return nil, false, fmt.Errorf("publishing the price book: version %s was stored but not followed (%v)", next.ID, s.pricesErr())
}

// headVersion returns the stored current version: the registry's copy, or
// (when the registry has not followed it) the stored record, verified.
func (s *Store) headVersion(b kvBucket) (*pricing.Version, error) {
	head := b.Get(priceHead)
	if head == nil {
		return nil, nil
	}
	id := string(head)
	if v, ok := s.prices.Get(id); ok {
		return v, nil
	}
	seqStr, _, _ := strings.Cut(id, "-")
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("the stored current price version %q is not a version id", id)
	}
	raw := b.Get(priceKey(seq))
	var rec pricing.Record
	if raw == nil || json.Unmarshal(raw, &rec) != nil || rec.ID != id {
		return nil, fmt.Errorf("the stored current price version %s is missing or unreadable", id)
	}
	return pricing.FromRecord(rec)
}

// PriceVersions returns every stored version's record, oldest first.
func (s *Store) PriceVersions() ([]pricing.Record, error) {
	var out []pricing.Record
	err := s.kv.view(func(tx kvTx) error {
		return tx.Bucket(bucketPrices).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			var rec pricing.Record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("price version %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

// applyPriceVersion follows a stored version into the registry. A record
// that does not verify or does not follow is left out (the registry stays
// at the last good version) and remembered: PublishPrices then fails with
// it rather than chain a new version onto a broken one.
func (s *Store) applyPriceVersion(c change) error {
	if len(c.k) != 8 || c.v == nil {
		return nil
	}
	var rec pricing.Record
	err := json.Unmarshal(c.v, &rec)
	if err == nil {
		_, err = s.prices.Follow(rec)
	}
	if err != nil {
		s.pricesBad.Store(&err)
	}
	return nil
}

func (s *Store) pricesErr() error {
	if e := s.pricesBad.Load(); e != nil {
		return *e
	}
	return nil
}
