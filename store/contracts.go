package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Contract terms on a BYOK credential: what an account negotiated with its
// provider (a discount off the list price, explicit rates, or both), from
// an effective date on. They are kept per (account, provider) beside the
// sealed key, in the byok_contracts bucket, so a rotated key keeps its
// contract; the snapshot holds them compiled (Snapshot.Contract), and a
// BYOK request is priced under the term in force when it started.
//
// Terms are never retroactive: a new term takes effect now or later, and a
// term that is in force (or was) can be neither changed nor removed, since
// requests were priced under it. A term not yet in force can be removed.

// MaxContractTerms bounds the terms kept on one credential.
const MaxContractTerms = 64

// ErrTermInForce refuses removing a contract term that has taken effect.
var ErrTermInForce = errors.New("the contract term has taken effect: requests were priced under it, so it stays")

// contractRecord is a credential's stored contract terms, oldest first.
type contractRecord struct {
	Terms     []pricing.ContractTerm `json:"terms"`
	UpdatedAt time.Time              `json:"updated_at"`
}

func contractKey(account, provider string) []byte { return []byte(account + "\x00" + provider) }

// ContractTerms returns the contract terms of the account's BYOK credential
// for provider, oldest first (none: list prices).
func (s *Store) ContractTerms(account, provider string) ([]pricing.ContractTerm, error) {
	var rec contractRecord
	err := s.kv.view(func(tx kvTx) error {
		if tx.Bucket(bucketAccounts).Get([]byte(account)) == nil {
			return fmt.Errorf("account %q: %w", account, ErrNotFound)
		}
		if v := tx.Bucket(bucketContracts).Get(contractKey(account, provider)); v != nil {
			return json.Unmarshal(v, &rec)
		}
		return nil
	})
	return rec.Terms, err
}

// AddContractTerm adds a term to the contract of the account's BYOK
// credential for provider and returns it as stored. A zero EffectiveFrom
// is now; an earlier one is refused, as is a term the pricing package
// refuses (a negative or over-100 % discount, a malformed rate, a second
// term from the same instant): ErrInvalidInput, with the reason. Without a
// BYOK credential for provider: ErrNotFound.
func (s *Store) AddContractTerm(account, provider string, t pricing.ContractTerm) (pricing.ContractTerm, error) {
	at := now().UTC()
	if t.EffectiveFrom.IsZero() {
		t.EffectiveFrom = at
	}
	t.EffectiveFrom = t.EffectiveFrom.UTC()
	if t.EffectiveFrom.Before(at.Add(-time.Minute)) {
		// A minute of grace for a clock or a form filled in slowly.
		return t, fmt.Errorf("%w: effective_from %s is in the past: a contract term applies to requests that start after it is saved, never to earlier ones",
			ErrInvalidInput, t.EffectiveFrom.Format(time.RFC3339))
	}
	if len(t.Note) > 500 {
		return t, fmt.Errorf("%w: the note is longer than 500 bytes", ErrInvalidInput)
	}
	err := s.update(func(tx kvTx) error {
		if tx.Bucket(bucketBYOK).Get(contractKey(account, provider)) == nil {
			return fmt.Errorf("no BYOK credential for %s in account %q: %w", provider, account, ErrNotFound)
		}
		b := tx.Bucket(bucketContracts)
		var rec contractRecord
		if v := b.Get(contractKey(account, provider)); v != nil {
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
		}
		if len(rec.Terms) >= MaxContractTerms {
			return fmt.Errorf("%w: this credential has %d contract terms, the most it may have", ErrInvalidInput, MaxContractTerms)
		}
		terms := append(slices.Clone(rec.Terms), t)
		if _, err := pricing.NewContract(terms); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidInput, err)
		}
		slices.SortStableFunc(terms, func(a, b pricing.ContractTerm) int { return a.EffectiveFrom.Compare(b.EffectiveFrom) })
		return putJSON(b, contractKey(account, provider), contractRecord{Terms: terms, UpdatedAt: at})
	})
	return t, err
}

// DeleteContractTerm removes the term of the account's contract for
// provider that takes effect at from, if it has not taken effect yet
// (ErrTermInForce otherwise; ErrNotFound when there is no such term).
func (s *Store) DeleteContractTerm(account, provider string, from time.Time) error {
	at := now()
	return s.update(func(tx kvTx) error {
		b := tx.Bucket(bucketContracts)
		var rec contractRecord
		if v := b.Get(contractKey(account, provider)); v != nil {
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
		}
		i := slices.IndexFunc(rec.Terms, func(t pricing.ContractTerm) bool { return t.EffectiveFrom.Equal(from) })
		if i < 0 {
			return fmt.Errorf("no contract term takes effect at %s for %s in account %q: %w", from.UTC().Format(time.RFC3339), provider, account, ErrNotFound)
		}
		if !rec.Terms[i].EffectiveFrom.After(at) {
			return ErrTermInForce
		}
		rec.Terms = slices.Delete(rec.Terms, i, i+1)
		if len(rec.Terms) == 0 {
			return b.Delete(contractKey(account, provider))
		}
		rec.UpdatedAt = at.UTC()
		return putJSON(b, contractKey(account, provider), rec)
	})
}

// applyContract compiles a credential's stored terms into the snapshot. A
// record that does not decode or compile (written by a newer version with
// rules this one lacks) is left out, as policies are: those requests are
// priced at list, and the store still opens.
func (s *Store) applyContract(e *snapEdit, c change) error {
	ck, ok := credKeyOf(c.k)
	if !ok {
		return nil
	}
	i := credShard(ck)
	if c.v == nil {
		remove(e, mapContracts, &e.next.contracts, i, ck)
		return nil
	}
	var rec contractRecord
	contract, err := (*pricing.Contract)(nil), json.Unmarshal(c.v, &rec)
	if err == nil {
		contract, err = pricing.NewContract(rec.Terms)
	}
	if err != nil || len(rec.Terms) == 0 {
		remove(e, mapContracts, &e.next.contracts, i, ck)
		return nil
	}
	mutable(e, mapContracts, &e.next.contracts, i)[ck] = contract
	return nil
}
