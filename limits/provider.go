package limits

import (
	"sync"
	"sync/atomic"
	"time"
)

// Tracker follows each BYOK credential's own limits at its provider, from
// the rate-limit headers of every answer, and blocks a credential whose
// provider says nothing remains until the provider's reset: a caller
// skips it (a route with a fallback moves on) or answers 429 with
// limit_source provider and Retry-After — no request is sent just to be
// refused. Credentials are named by an opaque id (the store's fingerprint
// of the key, so a rotated key starts afresh). Safe for concurrent use.
type Tracker struct {
	now     func() time.Time
	mu      sync.RWMutex
	m       map[string]*credState
	sweepAt int
}

// credState is one credential's last known limits. Fields are atomics:
// Check reads them without the tracker's lock.
type credState struct {
	blockedUntil atomic.Int64 // unix nano; 0 when not blocked
	seen         atomic.Int64 // unix nano of the last answer observed
	reqLimit     atomic.Int64
	reqLeft      atomic.Int64
	reqReset     atomic.Int64 // unix nano
	tokLimit     atomic.Int64
	tokLeft      atomic.Int64
	tokReset     atomic.Int64
}

// NewTracker returns an empty tracker; now is its clock (nil: time.Now).
func NewTracker(now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{now: now, m: map[string]*credState{}, sweepAt: 1024}
}

// Observe reads an answer's headers for credential cred (status is the
// answer's HTTP status). The credential is blocked until the latest reset
// of any dimension with nothing remaining, or, on a 429, for Retry-After
// (at least a second). It allocates only the first
// time it sees a credential.
func (t *Tracker) Observe(cred string, status int, h Header) {
	now := t.now()
	p := ParseProviderLimits(h, now)
	var until time.Time
	for _, d := range [4]*Dim{&p.Requests, &p.Tokens, &p.InputTokens, &p.OutputTokens} {
		if d.Set && d.Remaining <= 0 && d.Reset.After(until) {
			until = d.Reset
		}
	}
	if status == 429 {
		// The provider refused: block for its Retry-After, at least a
		// second (the wait a 429 of ours names too).
		until = later(until, now.Add(max(p.RetryAfter, time.Second)))
	}
	if until.After(now.Add(maxBlock)) {
		until = now.Add(maxBlock)
	}
	if !p.Requests.Set && !p.Tokens.Set && !until.After(now) {
		return // nothing to remember
	}
	s := t.state(cred, now)
	s.seen.Store(now.UnixNano())
	if p.Requests.Set {
		s.reqLimit.Store(p.Requests.Limit)
		s.reqLeft.Store(p.Requests.Remaining)
		s.reqReset.Store(unixNano(p.Requests.Reset))
	}
	if p.Tokens.Set {
		s.tokLimit.Store(p.Tokens.Limit)
		s.tokLeft.Store(p.Tokens.Remaining)
		s.tokReset.Store(unixNano(p.Tokens.Reset))
	}
	if until.After(now) {
		u := until.UnixNano()
		for {
			old := s.blockedUntil.Load()
			if old >= u || s.blockedUntil.CompareAndSwap(old, u) {
				break
			}
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// state returns cred's state, creating it (and now and then sweeping
// credentials neither blocked nor seen for an hour, so removed keys do
// not pile up).
func (t *Tracker) state(cred string, now time.Time) *credState {
	t.mu.RLock()
	s := t.m[cred]
	t.mu.RUnlock()
	if s != nil {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s = t.m[cred]; s != nil {
		return s
	}
	if len(t.m) >= t.sweepAt {
		n := now.UnixNano()
		for k, v := range t.m {
			if v.blockedUntil.Load() < n && n-v.seen.Load() > int64(time.Hour) {
				delete(t.m, k)
			}
		}
		t.sweepAt = max(1024, 2*len(t.m))
	}
	s = &credState{}
	t.m[cred] = s
	return s
}

// Check says whether cred may be sent a request now: Allowed, or
// RateLimited with Source provider, RetryAfter until the provider's
// reset, and the provider's last known requests and tokens. It does not
// allocate.
func (t *Tracker) Check(cred string) Decision {
	t.mu.RLock()
	s := t.m[cred]
	t.mu.RUnlock()
	var d Decision
	if s == nil {
		return d
	}
	now := t.now()
	until := s.blockedUntil.Load()
	if until <= now.UnixNano() {
		return d
	}
	d.Outcome, d.Source, d.Kind = RateLimited, SourceProvider, KindProvider
	d.ResetAt = time.Unix(0, until)
	d.RetryAfter = ceilSecond(d.ResetAt.Sub(now))
	fill := func(info *RateInfo, limit, left, reset int64) {
		if limit > 0 || left > 0 || reset > 0 {
			*info = RateInfo{Set: true, Limit: limit, Remaining: left}
			if reset > now.UnixNano() {
				info.Reset = time.Duration(reset - now.UnixNano())
			}
		}
	}
	fill(&d.Requests, s.reqLimit.Load(), s.reqLeft.Load(), s.reqReset.Load())
	fill(&d.Tokens, s.tokLimit.Load(), s.tokLeft.Load(), s.tokReset.Load())
	return d
}

// Forget drops what is known of cred (its key was removed or rotated).
func (t *Tracker) Forget(cred string) {
	t.mu.Lock()
	delete(t.m, cred)
	t.mu.Unlock()
}
