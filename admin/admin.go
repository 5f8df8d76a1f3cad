// Package admin is Agent Router's admin API: accounts, API keys, console
// users, BYOK credentials and their tests, providers, the request log,
// usage and the fleet's status, as JSON over net/http. It is HTTP only:
// each handler parses the request, calls the operation it names in package
// ops (which the console and the commands share) and writes the answer.
//
// The routes are one table (routes.go) on an http.ServeMux with method
// patterns; each resource has a file (accounts.go, tenants.go, keys.go,
// users.go, byok.go, providers.go, logs.go, usage.go, fleet.go) beside its
// twin in ops. The lists answer a page when asked (json.go, pageParams). caddymodule mounts the API under /agent_router/ on Caddy's admin
// endpoint; it does not import Caddy. Handlers return an *Error, which the
// mount turns into Caddy's {"error": "..."} body with the right status: an
// unknown route is 404, a known route with the wrong method 405 with Allow.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Prefix is where the admin routes live.
const Prefix = "/agent_router/"

// Error is an admin API failure with its HTTP status. Its message never holds
// key material.
type Error struct {
	Status int
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Err: fmt.Errorf(format, args...)}
}

// API serves the admin routes.
type API struct {
	// Store returns the open store, or nil when Agent Router is not running.
	Store func() *store.Store
	// PlatformKey reports whether a platform key is configured for a
	// provider in the running config.
	PlatformKey func(provider string) bool
	// Egress returns the running config's policy for tenant-chosen base
	// URLs; nil (or a nil result) is the strict default.
	Egress func() *egress.Policy
	// TestCredential makes a cheap authenticated call to a provider with a
	// key (the running gateway's TestCredential). nil: the test route
	// answers 503.
	TestCredential func(ctx context.Context, provider, key string, extras store.Extras) providers.TestResult
	// Profiles lists the routing profiles of the running config, for
	// checking the profile an API key is bound to. nil: no profiles.
	Profiles func() []string
	// Reconcile returns the running config's reconciliation (admin
	// readers, the platform's keys, tolerances). nil, or a nil result:
	// usage readers can be managed, runs and tests answer 503.
	Reconcile func() *ops.Reconciling
	// Limits returns the running process's limiter (budgets and rate
	// limits). nil, or a nil result: limit sets are stored and served
	// without status.
	Limits func() ops.Limiting

	once sync.Once
	mux  *http.ServeMux
}

// handler serves one route with the operations over the running store.
type handler func(w http.ResponseWriter, r *http.Request, o *ops.Ops) error

// call carries one request's operations to its handler, and the handler's
// error back, through the mux.
type call struct {
	ops *ops.Ops
	err error
}

type callKey struct{}

// ServeHTTP dispatches one admin request. It writes the response on success
// and returns an *Error (or another error, a 500) on failure.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	s := a.Store()
	if s == nil {
		return errorf(http.StatusServiceUnavailable, "agent_router is not running: add an agent_router handler to the config")
	}
	u, ok := cleanURL(r.URL)
	if !ok {
		return errorf(http.StatusNotFound, "no such route: %s", r.URL.Path)
	}
	a.once.Do(a.buildMux)
	c := &call{ops: &ops.Ops{Store: s, PlatformKey: a.PlatformKey, Egress: a.Egress, TestCredential: a.TestCredential, Profiles: a.Profiles}}
	if a.Reconcile != nil {
		c.ops.Reconcile = a.Reconcile()
	}
	if a.Limits != nil {
		c.ops.Limits = a.Limits()
	}
	r = r.WithContext(context.WithValue(r.Context(), callKey{}, c))
	r.URL = u
	a.mux.ServeHTTP(w, r)
	return httpError(c.err)
}

// cleanURL checks the path before the mux sees it: under Prefix, no empty,
// "." or ".." segment (the mux would redirect those) and every segment
// unescapes. An escaped slash (%2F) stays inside its segment (the mux
// matches escaped segments and unescapes each once, in r.PathValue).
// Trailing slashes are dropped: /agent_router/accounts/ is the accounts.
func cleanURL(u *url.URL) (*url.URL, bool) {
	escaped := strings.TrimRight(u.EscapedPath(), "/")
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	if len(segs) < 2 || segs[0] != strings.Trim(Prefix, "/") {
		return nil, false
	}
	for _, seg := range segs {
		if p, err := url.PathUnescape(seg); err != nil || p == "" || seg == "." || seg == ".." {
			return nil, false
		}
	}
	path, _ := url.PathUnescape(escaped)
	c := *u
	c.Path, c.RawPath = path, escaped
	return &c, true
}

// buildMux registers the route table: each route under its method, each
// path once more without a method (405 with the path's Allow list), and
// the prefix (404).
func (a *API) buildMux() {
	a.mux = http.NewServeMux()
	allow := map[string][]string{}
	var paths []string
	for _, rt := range routes {
		if allow[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	for _, rt := range routes {
		a.mux.Handle(rt.method+" "+Prefix+rt.path, routeHandler{rt, methodList(allow[rt.path])})
	}
	for _, p := range paths {
		a.mux.Handle(Prefix+p, routeHandler{route{path: p}, methodList(allow[p])})
	}
	a.mux.Handle(Prefix, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		callOf(r).err = errorf(http.StatusNotFound, "no such route: %s", r.URL.Path)
	}))
}

func callOf(r *http.Request) *call { return r.Context().Value(callKey{}).(*call) }

// methodList is the Allow header of a path's methods, in one order.
func methodList(methods []string) string {
	var out []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		for _, have := range methods {
			if have == m {
				out = append(out, m)
			}
		}
	}
	return strings.Join(out, ", ")
}

// routeHandler serves a route, or 405 for a method the path does not take
// (HEAD included: the mux hands a GET route HEAD too).
type routeHandler struct {
	route
	allow string
}

func (h routeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := callOf(r)
	if r.Method != h.method {
		w.Header().Set("Allow", h.allow)
		c.err = errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, h.allow)
		return
	}
	c.err = h.serve(w, r, c.ops)
}

// httpError gives an operation's error its status: its kind, or the
// store's sentinel it wraps; anything else stays a 500.
func httpError(err error) error {
	var ae *Error
	if err == nil || errors.As(err, &ae) {
		return err
	}
	switch ops.KindOf(err) {
	case ops.Invalid:
		return &Error{http.StatusBadRequest, err}
	case ops.NotFound:
		return &Error{http.StatusNotFound, err}
	case ops.Conflict:
		return &Error{http.StatusConflict, err}
	case ops.Unavailable:
		// Fleet mode, etcd unreachable: the write was not saved. Or no
		// gateway runs to test keys with.
		return &Error{http.StatusServiceUnavailable, err}
	}
	return err
}
