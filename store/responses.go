package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"
)

// Response ownership: OpenAI keeps a created response (store defaults to
// true) and serves it again at GET/DELETE /v1/responses/{id} and
// …/{id}/input_items. The gateway remembers who created each response that
// passed through it, so such a request goes to the same provider with the
// same kind of credential, and an account can never read or delete another
// account's response: an id it does not own is answered 404, exactly like
// an unknown one.
//
// One bucket, read and written only here through the KV seam (so in fleet
// mode it is shared through etcd like the other account records: any
// instance can serve a retrieve), pruned by the log writer with the other
// retention work.

// ResponseRetention is how long a response's ownership is remembered:
// OpenAI keeps stored responses for 30 days.
const ResponseRetention = 30 * 24 * time.Hour

// maxResponseIDLen bounds the ids remembered and looked up.
const maxResponseIDLen = 256

// responsesPrunedKey holds when the bucket was last pruned (8 bytes, unix
// seconds): pruning walks the whole bucket, so it runs at most once per
// responsesPruneEvery, however often the log writer asks. No response id
// starts with a NUL byte.
var responsesPrunedKey = []byte("\x00pruned")

const responsesPruneEvery = time.Hour

// ResponseOwner says who created a stored response, and where.
type ResponseOwner struct {
	AccountID string `json:"account"`
	// Provider is the provider that holds the response ("openai",
	// "azure") and CredentialSource the kind of credential that created it
	// ("byok" or "platform"), which later requests for it use again.
	Provider         string    `json:"provider"`
	CredentialSource string    `json:"credential_source"`
	Created          time.Time `json:"created"`
}

// ErrResponseNotFound is returned for a response id that is unknown, too
// old, or owned by another account.
var ErrResponseNotFound = errors.New("no such response")

// ErrResponseTaken is returned by PutResponse for an id another account
// already owns.
var ErrResponseTaken = errors.New("the response id is already owned by another account")

// PutResponse remembers that owner created the response id. Ownership is
// insert-only: the id is the provider's answer, and a provider can be an
// account's own server (a BYOK base URL) answering with any id it likes, so
// an id another account owns (and whose retention has not run out) is never
// taken over (ErrResponseTaken); the same account remembering it again
// keeps the first record.
func (s *Store) PutResponse(id string, owner ResponseOwner) error {
	if id == "" || len(id) > maxResponseIDLen || id[0] == 0 {
		return errors.New("response id must be 1 to 256 bytes, not starting with NUL")
	}
	if owner.Created.IsZero() {
		owner.Created = now().UTC()
	}
	buf, err := json.Marshal(owner)
	if err != nil {
		return err
	}
	return s.updateQuick(func(tx kvTx) error {
		b := tx.Bucket(bucketResponses)
		if v := b.Get([]byte(id)); v != nil {
			var o ResponseOwner
			if json.Unmarshal(v, &o) == nil && now().Sub(o.Created) <= ResponseRetention {
				if o.AccountID != owner.AccountID {
					return ErrResponseTaken
				}
				return nil
			}
		}
		return b.Put([]byte(id), buf)
	})
}

// ResponseFor returns the owner of response id when it is account's, and
// ErrResponseNotFound otherwise (unknown, expired, or another account's).
func (s *Store) ResponseFor(account, id string) (ResponseOwner, error) {
	var o ResponseOwner
	if id == "" || len(id) > maxResponseIDLen || id[0] == 0 {
		return o, ErrResponseNotFound
	}
	err := s.kv.view(func(tx kvTx) error {
		v := tx.Bucket(bucketResponses).Get([]byte(id))
		if v == nil {
			return ErrResponseNotFound
		}
		return json.Unmarshal(v, &o)
	})
	if err != nil {
		return ResponseOwner{}, err
	}
	if o.AccountID != account || now().Sub(o.Created) > ResponseRetention {
		return ResponseOwner{}, ErrResponseNotFound
	}
	return o, nil
}

// ForgetResponse drops response id (after its owner deleted it).
func (s *Store) ForgetResponse(id string) error {
	if id == "" || id[0] == 0 {
		return nil
	}
	return s.kv.update(func(tx kvTx) error {
		return tx.Bucket(bucketResponses).Delete([]byte(id))
	})
}

// pruneResponses forgets responses older than retention, at most once per
// responsesPruneEvery, in batches small enough for one etcd transaction in
// fleet mode.
func (s *Store) pruneResponses(retention time.Duration) {
	t := now()
	cutoff := t.Add(-retention)
	due := false
	var doomed [][]byte
	_ = s.kv.view(func(tx kvTx) error {
		b := tx.Bucket(bucketResponses)
		last := b.Get(responsesPrunedKey)
		due = len(last) != 8 || t.Sub(time.Unix(int64(binary.BigEndian.Uint64(last)), 0)) >= responsesPruneEvery
		if !due {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) > 0 && k[0] == 0 {
				return nil // bookkeeping
			}
			var o ResponseOwner
			if json.Unmarshal(v, &o) != nil || o.Created.Before(cutoff) {
				doomed = append(doomed, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if !due {
		return
	}
	for len(doomed) > 0 {
		n := min(len(doomed), 100)
		batch := doomed[:n]
		doomed = doomed[n:]
		err := s.kv.update(func(tx kvTx) error {
			b := tx.Bucket(bucketResponses)
			for _, k := range batch {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return
		}
	}
	_ = s.kv.update(func(tx kvTx) error {
		return tx.Bucket(bucketResponses).Put(responsesPrunedKey, binary.BigEndian.AppendUint64(nil, uint64(t.Unix())))
	})
}
