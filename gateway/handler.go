package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// ServeHTTP serves a request for which Owns returned true: it
// authenticates the Agent Router API key (Authorization: Bearer, or
// x-api-key where Anthropic's clients send it), then serves the endpoint of
// the path for the key's account. A request without a valid key is answered
// 401 in the door's envelope and not logged; a path Owns refuses, 404.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := newRequestID(start)
	w.Header()[HeaderRequestID] = []string{id}
	ep := endpointFor(r.URL.Path)
	if ep == nil {
		openAIDoor.writeError(w, http.StatusNotFound, typeInvalidRequest, CodeNotFound, "unknown path: the gateway does not serve "+truncate(r.URL.Path, 64))
		return
	}
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok && ep.xAPIKey {
		token = strings.TrimSpace(r.Header.Get("X-Api-Key"))
		ok = token != ""
	}
	if !ok {
		ep.door.writeError(w, http.StatusUnauthorized, typeInvalidRequest, CodeMissingAPIKey,
			"missing Agent Router API key: send it as "+ep.door.keyHint)
		return
	}
	snap := g.store.Snapshot()
	entry, ok := snap.LookupKey(store.HashAPIKey(token))
	if !ok {
		ep.door.writeError(w, http.StatusUnauthorized, typeInvalidRequest, CodeInvalidAPIKey,
			"invalid Agent Router API key: it is unknown or has been revoked")
		return
	}
	entry.Touch(start.UnixNano())
	c := caller{account: entry.AccountID, keyID: entry.KeyID}
	c.profile, c.routes = g.keyRoutes(entry)
	g.serve(w, r, snap, &c, ep, start, id)
}

// AccountRequest says on whose behalf ServeAccount serves a request.
type AccountRequest struct {
	// AccountID is the account the request is made for and billed to. The
	// caller has authorized it (the console: the session's account).
	AccountID string
	// KeyID optionally names one of the account's API keys (key_...): the
	// request-log record is attributed to it and, unless Profile is set,
	// its routing profile applies. The key itself is neither needed nor
	// exposed.
	KeyID string
	// Profile optionally names a routing profile of the running config to
	// resolve the model through; it overrides the key's. An unknown name is
	// refused (400 profile_not_found).
	Profile string
	// Source is recorded in the request log, e.g. "console" (at most 32
	// bytes are kept).
	Source string
}

// ServeAccount serves a chat-completions request (the body in r, streamed
// or not) for an account without an Agent Router API key, through the same
// path as API traffic: routing plan, BYOK-or-platform credential, attempts,
// relay, request log (with acc.Source), usage and metrics. The answer is
// OpenAI's, with the same X-Agent-Router-* headers. An unknown account or a
// key of another account is answered 404 (account_not_found /
// api_key_not_found) and not logged, like a refused API key.
func (g *Gateway) ServeAccount(w http.ResponseWriter, r *http.Request, acc AccountRequest) {
	start := time.Now()
	id := newRequestID(start)
	w.Header()[HeaderRequestID] = []string{id}
	snap := g.store.Snapshot()
	refuse := func(status int, code, msg string) { openAIDoor.writeError(w, status, typeInvalidRequest, code, msg) }
	if acc.AccountID == "" || !snap.HasAccount(acc.AccountID) {
		refuse(http.StatusNotFound, CodeAccountNotFound, "no such account")
		return
	}
	c := caller{account: acc.AccountID, source: truncate(acc.Source, 32), routes: g.routes}
	if acc.KeyID != "" {
		entry, ok := snap.KeyByID(acc.KeyID)
		if !ok || entry.AccountID != acc.AccountID {
			refuse(http.StatusNotFound, CodeAPIKeyNotFound, "no such API key in this account")
			return
		}
		c.keyID = entry.KeyID
		c.profile, c.routes = g.keyRoutes(entry)
	}
	if acc.Profile != "" {
		t, ok := g.profiles[acc.Profile]
		if !ok {
			refuse(http.StatusBadRequest, CodeProfileNotFound, fmt.Sprintf("no routing profile %q in the running config (profiles: %s)",
				truncate(acc.Profile, 64), strings.Join(g.profileNames, ", ")))
			return
		}
		c.profile, c.routes = acc.Profile, t
	}
	g.serve(w, r, snap, &c, chatCompletions, start, id)
}

// caller is who a request is served for, once authenticated.
type caller struct {
	account, keyID string
	// source is "" for API traffic, "console" for the playground.
	source string
	// profile is the routing profile applied ("" for none) and routes the
	// compiled table to plan with: the profile's (which includes the
	// site's aliases and routes) or the site's.
	profile string
	routes  *routing.Table
}

// keyRoutes returns the routing table for a key: its profile's, or the
// site's when it has none or names one the running config lacks (a reload
// removed it). The latter is logged once per key and profile, and the key
// keeps working. A map lookup: no allocation, no store read.
func (g *Gateway) keyRoutes(e *store.KeyEntry) (string, *routing.Table) {
	if e.Profile == "" {
		return "", g.routes
	}
	if t, ok := g.profiles[e.Profile]; ok {
		return e.Profile, t
	}
	if _, warned := g.missingProfiles.LoadOrStore(e.KeyID+"\x00"+e.Profile, struct{}{}); !warned {
		g.logger.Warn("api key is bound to a routing profile the running config does not have; serving it with the site's aliases and routes",
			zap.String("key_id", e.KeyID), zap.String("account", e.AccountID), zap.String("profile", e.Profile),
			zap.Strings("profiles", g.profileNames))
	}
	return "", g.routes
}

// exchange is one authenticated request being served: what its endpoint,
// its attempts and the relay share. Its record is the request-log entry,
// written once when the request ends (finish).
type exchange struct {
	w    http.ResponseWriter
	r    *http.Request
	snap *store.Snapshot
	c    caller
	ep   *endpoint
	rec  *store.LogRecord
	// span is the request's span (Caddy's tracing directive puts it in the
	// context; a no-op without tracing): attempts are its children.
	span trace.Span

	// The attempts' state (forward: the request's body and what was read
	// from it; every endpoint: how many attempts reached a provider).
	body []byte
	// maxTokens is the request's own output bound (readRequest).
	maxTokens int64
	refs      objectRefs
	// deadline is the route's deadline for answers' headers (zero: none).
	deadline     time.Time
	tried        int32
	includeUsage bool
	// The current attempt's credential and call through the provider's
	// adapter: kept here so that a request allocates them once, with the
	// exchange.
	cred credential
	call providers.Call
	// stored is a stored response's request (responses.go).
	stored storedUpstream
	// prices is the price book's version the request is priced with: the
	// current one when it started (cost.go).
	prices *pricing.Version
	// hdr holds the values of the headers formatted from numbers
	// (X-Agent-Router-Cost, the rate-limit headers).
	hdr headerValues
	// lim is the request's admission to budgets and rate limits
	// (limits.go): nil while no limit applies.
	lim *limitState
}

// serve runs the endpoint for an authenticated caller, and writes the
// request's one request-log record when it ends, however it ends.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, snap *store.Snapshot, c *caller, ep *endpoint, start time.Time, id string) {
	x := &exchange{w: w, r: r, snap: snap, c: *c, ep: ep, span: trace.SpanFromContext(r.Context()),
		rec: &store.LogRecord{ID: id, Time: start.UTC(), AccountID: c.account, KeyID: c.keyID, Profile: c.profile, Source: c.source,
			Endpoint: ep.name, API: ep.api},
		prices: g.prices.Current()}
	defer func() { g.finish(x, start, recover()) }()
	if ep.method != "" && r.Method != ep.method {
		w.Header()["Allow"] = []string{ep.method}
		x.refuse(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path+"; use "+ep.method)
		return
	}
	ep.serve(g, x)
}

// writeHeader sends the provider's status for a successful answer, and
// records it with the time to the first byte.
func (x *exchange) writeHeader(status int) {
	x.rec.Status = status
	x.w.WriteHeader(status)
	x.rec.TTFBMS = msSince(x.rec.Time)
}

// finish is the one place a request's record is completed and handed on,
// once, however the request ended (a panic is answered here): its latency,
// the observer (metrics, access-log fields), then the request log. The
// record is read-only from here on. Usage, and with it a request's cost,
// is on the record by now: the attempt that served wrote it (served).
func (g *Gateway) finish(x *exchange, start time.Time, panicked any) {
	if panicked != nil {
		g.recovered(x, panicked)
	}
	x.releaseLimits()
	x.rec.LatencyMS = msSince(start)
	if g.observe != nil {
		g.safeObserve(x.r, x.rec)
	}
	g.store.Record(x.rec)
}

// recovered answers a request whose handling panicked: a 500 in the door's
// envelope when nothing was sent yet, an error event when a stream had
// begun. The panic is logged once with its type and stack, never its value
// (which could hold request data or key material).
func (g *Gateway) recovered(x *exchange, v any) {
	rec := x.rec
	g.logger.Error("recovered from a panic while serving a request",
		zap.String("request_id", rec.ID), zap.String("panic_type", fmt.Sprintf("%T", v)), zap.StackSkip("stack", 3))
	rec.ErrorCode = CodeInternal
	switch {
	case rec.Status == 0:
		rec.Status = http.StatusInternalServerError
		x.ep.door.writeError(x.w, rec.Status, typeAPI, CodeInternal, "the gateway failed while serving this request; it has been logged as "+rec.ID)
	case rec.Stream && rec.Status < 300:
		x.w.Write(x.ep.door.errorEvent(nil, typeAPI, CodeInternal, "the gateway failed during the stream"))
		http.NewResponseController(x.w).Flush()
	}
}

// safeObserve runs the observer (metrics, access-log fields) so that a
// failure there cannot take the request or the process with it.
func (g *Gateway) safeObserve(r *http.Request, rec *store.LogRecord) {
	defer func() {
		if v := recover(); v != nil {
			g.logger.Error("recovered from a panic while recording a request's metrics",
				zap.String("request_id", rec.ID), zap.String("panic_type", fmt.Sprintf("%T", v)), zap.StackSkip("stack", 2))
		}
	}()
	g.observe(r, rec)
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// request ids: 16 hex digits of the start time in nanoseconds and 8 of a
// process-wide counter, so they sort by time and never repeat in a process.
var reqCounter atomic.Uint32

func newRequestID(t time.Time) string {
	const hexd = "0123456789abcdef"
	var b [24]byte
	ns, c := uint64(t.UnixNano()), reqCounter.Add(1)
	for i := 15; i >= 0; i-- {
		b[i] = hexd[ns&0xf]
		ns >>= 4
	}
	for i := 23; i >= 16; i-- {
		b[i] = hexd[c&0xf]
		c >>= 4
	}
	return string(b[:])
}
