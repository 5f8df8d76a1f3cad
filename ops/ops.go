// Package ops holds the operations Agent Router's three doors share — the
// admin API (package admin), the console (package console) and the
// `caddy agent-router` commands (caddymodule) — so each rule is written
// once: which account ids, key names and routing profiles are valid, how a
// BYOK key and its extras are checked before they are sealed, what a BYOK
// slot's status says, how a key test marks the stored key, how an
// invitation and its setup link are made, which request-log and usage
// queries are valid, and how the fleet's members' logs and usage are merged
// (fleet.go; the members are asked over package peer).
//
// It speaks neither HTTP nor Caddy: an operation takes and returns Go
// values (whose JSON tags are the admin API's shapes) and fails with an
// *Error of a Kind — Invalid, NotFound, Conflict, Unavailable — or with
// the store's own error (KindOf classifies both); each door turns that
// into its own answer (a status and {"error": …}, a re-rendered form, an
// exit code).
//
// One file per resource (accounts.go, tenants.go, keys.go, byok.go,
// keytest.go, users.go, logs.go, usage.go, providers.go, fleet.go), each
// beside its admin/ twin: a new resource is a new file here and one there.
// The lists page (page.go).
package ops

import (
	"context"
	"time"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Ops performs the operations on one store, with what they need from the
// running config. A door builds one (per request when the config can
// change under it: the functions are read at call time); the zero values
// of the optional fields are safe.
type Ops struct {
	// Store is the open store. Required.
	Store *store.Store
	// PlatformKey reports whether the running config has a platform key
	// for a provider. nil: none has.
	PlatformKey func(provider string) bool
	// Egress returns the running config's policy for tenant-chosen base
	// URLs. nil, or a nil result: the strict default.
	Egress func() *egress.Policy
	// TestCredential makes a cheap authenticated call to a provider with a
	// key (the running gateway's TestCredential). nil: key tests fail with
	// an Unavailable error.
	TestCredential func(ctx context.Context, provider, key string, extras store.Extras) providers.TestResult
	// Profiles lists the routing profiles of the running config, for the
	// profile an API key is bound to. nil: none.
	Profiles func() []string
	// InviteTTL is how long a setup link works. Default: SetupLinkTTL.
	InviteTTL time.Duration
	// Reconcile is the running config's reconciliation (reconcile.go).
	// nil: usage readers can be listed, saved and removed; runs and tests
	// are Unavailable.
	Reconcile *Reconciling
	// Limits is the running process's limiter (limits.go). nil: limit
	// sets are stored and served, with no status.
	Limits Limiting
}

func (o *Ops) egress() *egress.Policy {
	if o.Egress == nil {
		return nil
	}
	return o.Egress()
}

func (o *Ops) platformKey(provider string) bool {
	return o.PlatformKey != nil && o.PlatformKey(provider)
}

func (o *Ops) profiles() []string {
	if o.Profiles == nil {
		return nil
	}
	return o.Profiles()
}
