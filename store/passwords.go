package store

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/agentrouter/caddy-agentrouter/store/internal/argon2id"
)

// Passwords: argon2id with a per-person salt, computed through one
// process-wide limiter.
//
// Each argon2id evaluation takes 19 MiB for about 40 ms of CPU. Without a
// bound, N concurrent sign-ins take N × 19 MiB (200 took a process from 72 MB
// to 3.9 GB), so every hash — sign-in, setup, password change, and the dummy
// hash of an unknown email — waits for one of a few slots (about one per CPU:
// more would not finish sooner), a few callers may queue briefly, and the
// rest are refused at once with ErrBusy, which callers answer with 503 and
// Retry-After. No hash ever runs inside a write transaction.

// MinPasswordLength is the shortest password SetPassword accepts.
const MinPasswordLength = 12

// maxPasswordLength bounds what is hashed (argon2 takes any length; a
// megabyte password is a denial of service, not a password).
const maxPasswordLength = 256

// argon2id parameters: RFC 9106's second recommendation scaled to a small
// server (OWASP's 19 MiB, 2 passes), stored with each hash so they can grow.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// ErrBusy means every password-hashing slot is taken and the queue is
// full: the attempt was not evaluated. Callers answer 503 with Retry-After
// (the console) and must not count it as a failed attempt.
var ErrBusy = errors.New("too many sign-ins are being checked right now; try again in a moment")

// argonKey derives an argon2id hash: x/crypto's argon2.IDKey with its
// memory pooled (internal/argon2id), so that a burst of sign-ins costs the
// slots' memory and leaves no garbage to double the heap. Tests wrap it to
// count or hold evaluations.
var argonKey = argon2id.IDKey

// HashSlots is how many password hashes run at once in this process: the
// number of CPUs the Go runtime uses, at most 8 (each takes 19 MiB).
var HashSlots = min(max(runtime.GOMAXPROCS(0), 1), 8)

// hashLimiter bounds concurrent argon2id evaluations: slots run, at most
// maxWait callers wait (each at most wait), the rest get ErrBusy.
type hashLimiter struct {
	slots   chan struct{}
	waiting atomic.Int64
	maxWait int64
	wait    time.Duration
}

func newHashLimiter(slots, maxWait int, wait time.Duration) *hashLimiter {
	return &hashLimiter{slots: make(chan struct{}, slots), maxWait: int64(maxWait), wait: wait}
}

// hashes is the process-wide limiter: a queue of eight callers per slot,
// each waiting at most two seconds (a hash takes about 40 ms).
var hashes = newHashLimiter(HashSlots, 8*HashSlots, 2*time.Second)

// run runs fn in a slot, or returns ErrBusy.
func (l *hashLimiter) run(fn func()) error {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.waiting.Add(1) > l.maxWait {
			l.waiting.Add(-1)
			return ErrBusy
		}
		t := time.NewTimer(l.wait)
		select {
		case l.slots <- struct{}{}:
			t.Stop()
			l.waiting.Add(-1)
		case <-t.C:
			l.waiting.Add(-1)
			return ErrBusy
		}
	}
	defer func() { <-l.slots }()
	fn()
	return nil
}

// passwordHash is an argon2id hash with its parameters.
type passwordHash struct {
	// Hash is argon2id(password, Salt) with the parameters below; empty
	// until a password is set.
	Salt    []byte `json:"salt,omitempty"`
	Hash    []byte `json:"hash,omitempty"`
	Time    uint32 `json:"t,omitempty"`
	Memory  uint32 `json:"m,omitempty"`
	Threads uint8  `json:"p,omitempty"`
}

func (p *passwordHash) set() bool { return len(p.Hash) > 0 }

// newPasswordHash hashes password with a fresh salt, in a slot.
func newPasswordHash(password string) (passwordHash, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return passwordHash{}, err
	}
	p := passwordHash{Salt: salt, Time: argonTime, Memory: argonMemory, Threads: argonThreads}
	err := hashes.run(func() { p.Hash = argonKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen) })
	return p, err
}

// verify reports whether password matches, evaluating it in a slot. A
// missing or malformed hash is checked against the dummy hash instead, so
// that it takes as long as a wrong password.
func (p *passwordHash) verify(password string) (bool, error) {
	target := p
	if !p.set() || p.Time == 0 || p.Memory == 0 || p.Threads == 0 || p.Memory > 4*argonMemory || p.Time > 8 {
		target = &dummyHash
	}
	if len(password) > maxPasswordLength {
		// Never matches (no such password can be set), but takes as long.
		target, password = &dummyHash, password[:maxPasswordLength]
	}
	var h []byte
	if err := hashes.run(func() {
		h = argonKey([]byte(password), target.Salt, target.Time, target.Memory, target.Threads, uint32(len(target.Hash)))
	}); err != nil {
		return false, err
	}
	return target == p && subtle.ConstantTimeCompare(h, p.Hash) == 1, nil
}

// dummyHash is evaluated when an email is unknown or its person has no
// password yet, so that neither answers sooner than a wrong password.
var dummyHash = func() passwordHash {
	salt := make([]byte, 16)
	rand.Read(salt)
	return passwordHash{Salt: salt, Time: argonTime, Memory: argonMemory, Threads: argonThreads,
		Hash: argon2id.IDKey([]byte("not a password of anyone, ever"), salt, argonTime, argonMemory, argonThreads, argonKeyLen)}
}()

// CheckPasswordRules reports why password cannot be used, or nil.
func CheckPasswordRules(password string) error {
	switch n := utf8.RuneCountInString(password); {
	case n < MinPasswordLength:
		return fmt.Errorf("%w: the password needs at least %d characters", ErrInvalidInput, MinPasswordLength)
	case len(password) > maxPasswordLength:
		return fmt.Errorf("%w: the password is longer than %d bytes", ErrInvalidInput, maxPasswordLength)
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: the password is not valid text", ErrInvalidInput)
	}
	return nil
}
