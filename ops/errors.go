package ops

import (
	"errors"
	"fmt"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Kind says what went wrong with an operation, for a door to answer in its
// own terms (the admin API: 400, 404, 409, 503; the console: the form with
// the reason).
type Kind int

const (
	// Internal is anything unexpected: the door logs it and says little.
	Internal Kind = iota
	// Invalid input: the message says what to fix.
	Invalid
	// NotFound: no such account, key, user, provider or record.
	NotFound
	// Conflict: it exists already, or the change would leave the account
	// without an owner.
	Conflict
	// Unavailable: what the operation needs is not there right now (the
	// fleet's etcd, a running gateway to test keys with); nothing was
	// saved.
	Unavailable
)

// Error is an operation's refusal. Its message says why, in words a
// caller can act on, and never holds key material.
type Error struct {
	Kind Kind
	Err  error
	// is, when set, is a sentinel the error also matches (errors.Is).
	is error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel this error stands for.
func (e *Error) Is(target error) bool { return e.is != nil && target == e.is }

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// ErrNoStoredKey is a test of an account's stored key when it has none for
// the provider.
var ErrNoStoredKey = errors.New("no key is registered for this provider")

// KindOf classifies an operation's error: an *Error's own kind, else the
// store's sentinels (not found, exists, invalid input or query, last
// owner, unavailable), else Internal.
func KindOf(err error) Kind {
	var e *Error
	switch {
	case err == nil:
		return Internal
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, store.ErrNotFound):
		return NotFound
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrLastOwner):
		return Conflict
	case errors.Is(err, store.ErrInvalidQuery), errors.Is(err, store.ErrInvalidProfile), errors.Is(err, store.ErrInvalidInput):
		return Invalid
	case errors.Is(err, store.ErrUnavailable):
		return Unavailable
	}
	return Internal
}

// clip shortens a caller-supplied value quoted in an error message.
func clip(v string) string {
	if len(v) > 64 {
		return v[:64] + "…"
	}
	return v
}
