package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// The sign-in throttle, kept in the store: in fleet mode every instance
// shares it through etcd (N instances do not give N times the guesses), and
// on bbolt it survives a restart.
//
// An attempt is reserved before its password is hashed, so concurrent
// attempts cannot outrun the count: a reservation counts as a failure until
// it is settled, and a success (or an attempt that was never evaluated)
// gives it back. Three limits apply:
//
//   - per client address (IPv6: its /64): MaxAttemptsPerIP failures in
//     ThrottleWindow, the bound on guessing across many emails;
//   - per (address, email) pair: FreeAttemptsPerPair failures, then growing
//     delays (30 s, doubling, at most 15 min) until a success. The delays
//     slow whoever guesses from that address, not the person signing in
//     from another one: nobody can lock an email out by knowing it;
//   - per email, from every address together: MaxAttemptsPerEmail failures
//     in ThrottleWindow, the bound on guessing from many addresses. A pair
//     that signed in successfully in the last 30 days is exempt, so a
//     distributed attack on an email does not keep its owner out of the
//     addresses they use.
//
// Records are keyed by SHA-256 of the address and the email, never the
// values themselves, and are pruned once they no longer matter.

// Throttle limits.
const (
	ThrottleWindow      = 15 * time.Minute
	MaxAttemptsPerIP    = 20
	MaxAttemptsPerEmail = 50
	FreeAttemptsPerPair = 5
	pairFirstDelay      = 30 * time.Second
	pairMaxDelay        = 15 * time.Minute
	// pairMemory: a pair's failures are forgotten this long after the last.
	pairMemory = 24 * time.Hour
	// knownPairFor: a pair that signed in is exempt from the per-email
	// limit for this long.
	knownPairFor = 30 * 24 * time.Hour
)

// ErrThrottled means an attempt was refused before being evaluated; the
// error is a *ThrottleError with the time to wait.
var ErrThrottled = errors.New("too many sign-in attempts")

// ThrottleError is a refused attempt.
type ThrottleError struct {
	// RetryAfter is how long until an attempt may be accepted again.
	RetryAfter time.Duration
}

func (e *ThrottleError) Error() string {
	return fmt.Sprintf("%v: retry in %v", ErrThrottled, e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrThrottled) true.
func (e *ThrottleError) Is(target error) bool { return target == ErrThrottled }

// SignInAttempt is a reserved attempt, to be settled once.
type SignInAttempt struct {
	ip, email, pair string // record keys; email and pair are "" for an address-only attempt
	at              int64
}

// Outcome is how a reserved attempt ended.
type Outcome int

const (
	// AttemptFailed: the password (or link) was wrong. It stays counted.
	AttemptFailed Outcome = iota
	// AttemptSucceeded: the counts are given back and the pair is
	// remembered as known.
	AttemptSucceeded
	// AttemptNotEvaluated: nothing was checked (ErrBusy, an outage): the
	// counts are given back.
	AttemptNotEvaluated
)

type windowRecord struct {
	T []int64 `json:"t"` // unix nanoseconds of the counted attempts, oldest first
}

type pairRecord struct {
	Fails int   `json:"f"`
	Last  int64 `json:"l"`           // the last failure (or reservation)
	OK    int64 `json:"k,omitempty"` // the last success
}

func throttleKey(kind string, parts ...string) []byte {
	h := sha256.New()
	h.Write([]byte("agent-router signin throttle\x00" + kind))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return []byte(kind + ":" + hex.EncodeToString(h.Sum(nil)[:16]))
}

// throttleAddr is the unit an address is counted in: an IPv4 address, or
// the /64 of an IPv6 one (a single host usually holds a whole /64).
func throttleAddr(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

func getJSON(b kvBucket, k []byte, v any) {
	if raw := b.Get(k); raw != nil {
		_ = json.Unmarshal(raw, v)
	}
}

func (w *windowRecord) prune(at int64) {
	i := 0
	for i < len(w.T) && at-w.T[i] >= int64(ThrottleWindow) {
		i++
	}
	w.T = w.T[i:]
}

func (w *windowRecord) retry(at int64) time.Duration {
	return time.Duration(w.T[0] + int64(ThrottleWindow) - at)
}

func (w *windowRecord) remove(at int64) {
	if i := slices.Index(w.T, at); i >= 0 {
		w.T = slices.Delete(w.T, i, i+1)
	}
}

func putWindow(b kvBucket, k []byte, w windowRecord) error {
	if len(w.T) == 0 {
		return b.Delete(k)
	}
	return putJSON(b, k, w)
}

func pairDelay(fails int) time.Duration {
	if fails < FreeAttemptsPerPair {
		return 0
	}
	d := pairFirstDelay
	for i := FreeAttemptsPerPair; i < fails && d < pairMaxDelay; i++ {
		d *= 2
	}
	return min(d, pairMaxDelay)
}

// ReserveAttempt reserves a sign-in attempt from address ip for email at
// time at, before any password is hashed, or refuses it with a
// *ThrottleError. An empty email reserves against the address only (a
// setup link that turned out invalid). Settle the attempt once it is
// decided.
func (s *Store) ReserveAttempt(ip, email string, at time.Time) (*SignInAttempt, error) {
	addr := throttleAddr(ip)
	a := &SignInAttempt{ip: string(throttleKey("i", addr)), at: at.UnixNano()}
	if email != "" {
		a.email = string(throttleKey("e", email))
		a.pair = string(throttleKey("p", addr, email))
	}
	t := a.at
	err := s.kv.update(func(tx kvTx) error {
		b := tx.Bucket(bucketThrottle)
		var ipw windowRecord
		getJSON(b, []byte(a.ip), &ipw)
		ipw.prune(t)
		if len(ipw.T) >= MaxAttemptsPerIP {
			return &ThrottleError{ipw.retry(t)}
		}
		if email != "" {
			var p pairRecord
			getJSON(b, []byte(a.pair), &p)
			if t-p.Last > int64(pairMemory) {
				p.Fails = 0
			}
			if wait := int64(pairDelay(p.Fails)); wait > 0 && t < p.Last+wait {
				return &ThrottleError{time.Duration(p.Last + wait - t)}
			}
			var ew windowRecord
			getJSON(b, []byte(a.email), &ew)
			ew.prune(t)
			known := p.OK != 0 && t-p.OK < int64(knownPairFor)
			if !known && len(ew.T) >= MaxAttemptsPerEmail {
				return &ThrottleError{ew.retry(t)}
			}
			p.Fails++
			p.Last = max(p.Last, t)
			ew.T = append(ew.T, t)
			if err := putJSON(b, []byte(a.pair), p); err != nil {
				return err
			}
			if err := putWindow(b, []byte(a.email), ew); err != nil {
				return err
			}
		}
		ipw.T = append(ipw.T, t)
		return putWindow(b, []byte(a.ip), ipw)
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// SettleAttempt records how a reserved attempt ended. A failure was
// counted at reservation and costs no write here.
func (s *Store) SettleAttempt(a *SignInAttempt, o Outcome) error {
	if a == nil || o == AttemptFailed {
		return nil
	}
	return s.kv.update(func(tx kvTx) error {
		b := tx.Bucket(bucketThrottle)
		for _, k := range []string{a.ip, a.email} {
			if k == "" {
				continue
			}
			var w windowRecord
			getJSON(b, []byte(k), &w)
			w.remove(a.at)
			if err := putWindow(b, []byte(k), w); err != nil {
				return err
			}
		}
		if a.pair == "" {
			return nil
		}
		var p pairRecord
		getJSON(b, []byte(a.pair), &p)
		if o == AttemptSucceeded {
			p.Fails, p.OK = 0, a.at
		} else if p.Fails > 0 {
			p.Fails--
		}
		if p.Fails == 0 && p.OK == 0 {
			return b.Delete([]byte(a.pair))
		}
		return putJSON(b, []byte(a.pair), p)
	})
}

// PruneThrottle deletes the throttle records that no longer limit
// anything, in small write transactions, and returns how many went.
func (s *Store) PruneThrottle() (int, error) {
	t := now().UnixNano()
	stale := func(k, v []byte) bool {
		if bytes.HasPrefix(k, []byte("p:")) {
			var p pairRecord
			return json.Unmarshal(v, &p) != nil || t-p.Last > int64(pairMemory) && t-p.OK > int64(knownPairFor)
		}
		var w windowRecord
		if json.Unmarshal(v, &w) != nil {
			return true
		}
		w.prune(t)
		return len(w.T) == 0
	}
	var doomed [][]byte
	err := s.kv.view(func(tx kvTx) error {
		return tx.Bucket(bucketThrottle).ForEach(func(k, v []byte) error {
			if stale(k, v) {
				doomed = append(doomed, bytes.Clone(k))
			}
			if len(doomed) >= pruneScanMax {
				return errStopScan
			}
			return nil
		})
	})
	if err != nil && err != errStopScan {
		return 0, err
	}
	n := 0
	for len(doomed) > 0 {
		c := min(len(doomed), 100)
		chunk := doomed[:c]
		doomed = doomed[c:]
		if err := s.kv.update(func(tx kvTx) error {
			b := tx.Bucket(bucketThrottle)
			for _, k := range chunk {
				if v := b.Get(k); v != nil && stale(k, v) {
					if err := b.Delete(k); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			return n, err
		}
		n += c
	}
	return n, nil
}
