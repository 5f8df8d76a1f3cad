package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// The attempts of a request. serveAttempts owns the policy: which target
// comes next, whether a failure moves on, which failure explains the
// answer. attempt makes one attempt, start to end, and records it once: as
// Caddy's reverse proxy has ServeHTTP own the retry loop and
// proxyLoopIteration do one iteration, "so that we could run defer more
// easily".

// Reasons a planned attempt is skipped without a call. They appear in the
// request log's attempts.
const (
	skipNoBYOK          = "no_byok_key"
	skipNoPlatform      = "no_platform_key"
	skipNoCredential    = "no_credential"
	skipPolicy          = "byok_only_policy"
	skipInvalid         = "byok_key_invalid"
	skipNotImplemented  = "provider_not_implemented"
	skipDeadlineReached = "deadline_reached"
	// The request names provider-side objects the gateway cannot
	// attribute to the account, and this attempt would use the platform
	// key (references.go).
	skipReferenceNeedsBYOK = "reference_needs_byok"
	// previous_response_id names a response this account does not own.
	skipResponseNotOwned = "response_not_owned"
)

// upstreamRequest is what an endpoint sends in an attempt and how it relays
// a successful answer: a body through the provider's adapter (chatUpstream,
// relay.go) or a stored response's request (storedUpstream, responses.go).
type upstreamRequest interface {
	// build makes the request for target t with the attempt's credential
	// (x.cred), under ctx.
	build(ctx context.Context, g *Gateway, x *exchange, t target) (*http.Request, error)
	// native reports whether the request built passes the client's own
	// API through to the provider: an error answer then reaches the client
	// as the provider worded it.
	native(x *exchange) bool
	// relay sends a successful answer to the client.
	relay(g *Gateway, x *exchange, t target, resp *http.Response) relayed
}

// relayed is what a relay reports: the usage the provider reported (zero
// when none) and the code the answer ended with ("" when it went out whole).
// priced: the relay has put the cost on the record already (a whole answer,
// before its header, for X-Agent-Router-Cost).
type relayed struct {
	usage  providers.Usage
	code   string
	priced bool
}

// attemptResult is what one attempt came to.
type attemptResult struct {
	// answered: the client has its answer (the provider's, or a failure
	// that ends the request); the loop stops.
	answered bool
	// skipped: the attempt was not made; stop: no later one may be either
	// (the route's deadline passed).
	skipped, stop bool
	// failure is the answer to give when no later attempt serves, and
	// class its error class, which the plan's retry policy reads.
	failure failure
	class   string
	// usage is what the provider reported for an answered attempt, and
	// cost its price (zero for an endpoint that is not metered): what
	// settles the request's budget.
	usage providers.Usage
	cost  pricing.Cost
}

// plan returns the attempts for a requested model: the routing table's plan
// for an alias or route (routes is the caller's profile or the site's),
// else the model itself with the auto pin.
func (g *Gateway) plan(routes *routing.Table, model string) routing.Plan {
	if p, ok := routes.Plan(model, rand.Float64); ok {
		return p
	}
	return routing.Plan{Attempts: []routing.Attempt{{Model: model, Pin: routing.PinAuto}}}
}

// serveAttempts runs the plan for one request: each attempt resolves its
// model and is made by attempt; a failure the plan retries moves to the
// next attempt, but only before the first byte has gone to the client.
func (g *Gateway) serveAttempts(x *exchange, model string) {
	plan := g.plan(x.c.routes, model)
	defer annotateRequestSpan(x.span, x.rec)
	x.rec.Route = plan.Route
	if plan.Deadline > 0 {
		x.deadline = time.Now().Add(plan.Deadline)
	}
	var last attemptResult // the failure that explains the answer so far (none: no code)
	for i, at := range plan.Attempts {
		t, ok := g.resolve(at.Model)
		if !ok { // plain models only: routes are checked at provision
			x.refuse(http.StatusNotFound, CodeModelNotFound, fmt.Sprintf("the model %q is not known to this gateway: use a catalog name, a model declared in the config, an alias or route, or 'provider/model' with one of %s",
				at.Model, strings.Join(providers.Names, ", ")))
			return
		}
		res := g.attempt(x, t, at.Model, at.Pin, chatUpstream{})
		if res.answered {
			return
		}
		// A skip explains the answer only when no attempt got one: the
		// client sees the provider's own failure before a later target's
		// reason for not being tried.
		if !res.skipped || last.failure.code == "" || last.skipped {
			last = res
		}
		if res.stop || !res.skipped && (i == len(plan.Attempts)-1 || !plan.Retryable(res.class)) {
			break
		}
	}
	x.answerFailure(last.failure)
}

// answerFailure answers a request no attempt served, with the failure that
// explains it and the headers that say how far it got.
func (x *exchange) answerFailure(f failure) {
	if f.code == "" { // an empty plan cannot happen; be safe
		f = failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamError, msg: "no upstream attempt was possible"}
	}
	h := x.w.Header()
	if x.tried > 0 {
		h[HeaderAttempts] = []string{strconv.Itoa(int(x.tried))}
	}
	if x.rec.Provider != "" {
		h[HeaderProvider] = []string{x.rec.Provider}
	}
	if x.rec.CredentialSource != "" {
		h[HeaderCredential] = []string{x.rec.CredentialSource}
	}
	x.fail(f)
}

// attempt makes one attempt at target t (asked is the model as the plan
// named it, for messages): it picks the credential (pin) and checks what may
// skip the attempt, then makes the upstream call and, when it succeeds,
// relays the answer. Whichever way it ends, the attempt is recorded in the
// request log's attempts and its span ends exactly once, in the defer.
func (g *Gateway) attempt(x *exchange, t target, asked string, pin routing.Pin, up upstreamRequest) attemptResult {
	x.rec.Provider, x.rec.UpstreamModel = t.provider.Name, t.model
	att := store.Attempt{Provider: t.provider.Name, Model: t.model}
	span := x.span
	start := time.Now()
	called := false
	defer func() {
		if called {
			att.DurationMS = msSince(start)
		}
		x.rec.Attempts = append(x.rec.Attempts, att)
		endAttemptSpan(span, x.span, &att)
	}()
	if res, ok := g.credentialFor(x, t, asked, pin, start, &att); !ok {
		return res
	}
	// Admission (budgets and rate limits, limits.go): a refused target is
	// skipped like one without a credential; what an admitted one reserved
	// is settled in served, or released here when the attempt ends
	// without an answer (a Release after the Settle does nothing).
	if res, ok := g.admitAttempt(x, t, &att); !ok {
		return res
	}
	defer x.releaseReservation()
	g.useCredential(x, &att, start)
	called = true
	ctx, deadline := withHeaderDeadline(x.r.Context(), x.deadline)
	defer deadline.release()
	ctx, span = startAttemptSpan(ctx, x.span, t.provider.Name, t.model, x.cred.source)
	req, err := up.build(ctx, g, x, t)
	if err != nil {
		att.ErrorClass = providers.ClassBadRequest
		x.fail(buildFailure(t.provider.Name, &x.cred, err))
		return attemptResult{answered: true}
	}
	u := g.callUpstream(x.r.Context(), req, t.provider.Name, &x.cred, up.native(x), deadline)
	// Every answer, error or not, is here with its headers (u.header): a
	// BYOK key's own rate-limit state is read from each (2xx and 429).
	att.Status, att.ErrorClass = u.status, u.class
	if g.providerLimits != nil && x.cred.secret != nil && x.ep.metered && u.header != nil &&
		(u.status < http.StatusMultipleChoices || u.status == http.StatusTooManyRequests) {
		g.providerLimits.Observe(x.cred.secret.Fingerprint, u.status, u.header)
	}
	if u.resp == nil {
		return g.failed(x, t, u)
	}
	defer u.resp.Body.Close()
	return g.served(x, t, up, u.resp, &att)
}

// credentialFor picks the attempt's credential into x.cred and checks what
// may skip the attempt before any call: a provider not implemented, the
// route's deadline passed, no usable credential, a reference the account
// may not use with it. ok is false when the attempt ends here (res says
// how).
func (g *Gateway) credentialFor(x *exchange, t target, asked string, pin routing.Pin, now time.Time, att *store.Attempt) (res attemptResult, ok bool) {
	name := t.provider.Name
	if !t.provider.Implemented {
		return skip(att, skipNotImplemented, g.skipFailure(skipNotImplemented, name, asked)), false
	}
	if !x.deadline.IsZero() && !now.Before(x.deadline) {
		return skip(att, skipDeadlineReached, g.skipFailure(skipDeadlineReached, name, asked)), false
	}
	cred, reason := g.pickCredential(x.snap, x.c.account, name, pin, now)
	if reason != "" {
		return skip(att, reason, g.skipFailure(reason, name, asked)), false
	}
	att.CredentialSource = cred.source
	if x.refs.hasPrevious && x.ep.door.wire.Native(t.provider, cred.endpoint) {
		// The id goes upstream as is: it must be one of this account's own
		// stored responses (a translated target refuses
		// previous_response_id itself, without a call).
		if id, ok := g.ownsPrevious(x.c.account, x.refs); !ok {
			att.Skipped = skipResponseNotOwned
			x.fail(previousResponseFailure(id))
			return attemptResult{answered: true}, false
		}
	}
	if x.refs.foreign != "" && cred.source == SourcePlatform {
		return skip(att, skipReferenceNeedsBYOK, foreignRefFailure(x.refs.foreign, name)), false
	}
	x.cred = cred
	return attemptResult{}, true
}

// skip records that an attempt was not made, and why; f explains it.
func skip(att *store.Attempt, reason string, f failure) attemptResult {
	att.Skipped = reason
	return attemptResult{skipped: true, stop: reason == skipDeadlineReached, failure: f}
}

// useCredential records the credential the attempt is made with: in the
// request log, and on the BYOK key's "last used" clock.
func (g *Gateway) useCredential(x *exchange, att *store.Attempt, now time.Time) {
	rec, cred := x.rec, &x.cred
	att.CredentialSource, rec.CredentialSource = cred.source, cred.source
	rec.CredentialVersion, rec.CredentialFingerprint = 0, ""
	if cred.secret != nil {
		rec.CredentialVersion, rec.CredentialFingerprint = cred.secret.Version, cred.secret.Fingerprint
		cred.secret.Touch(now.UnixNano())
	}
	x.tried++
}

// buildFailure is the answer when the request could not be built for the
// provider: a request the provider cannot express is the client's to fix,
// the same on every target.
func buildFailure(provider string, cred *credential, err error) failure {
	var re *providers.RequestError
	if errors.As(err, &re) {
		return failure{status: http.StatusBadRequest, typ: typeInvalidRequest, code: CodeUnsupportedRequest,
			msg: provider + ": " + cred.scrub(re.Message)}
	}
	return failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamError,
		msg: "could not build the upstream request: " + cred.scrub(err.Error())}
}

// failed takes an upstream call that did not succeed: the client going away
// ends the request; a refused BYOK key is marked invalid (its cool-down
// starts); the failure is logged and returned for the plan to judge.
func (g *Gateway) failed(x *exchange, t target, u upstreamResult) attemptResult {
	if u.class == codeClientGone {
		x.rec.Status, x.rec.ErrorCode = 499, codeClientGone
		return attemptResult{answered: true}
	}
	name, cred := t.provider.Name, &x.cred
	if u.status == 0 {
		if c := g.logger.Check(zap.WarnLevel, "upstream request failed"); c != nil {
			c.Write(zap.String("request_id", x.rec.ID), zap.String("provider", name),
				zap.String("credential_source", cred.source), zap.String("class", u.class),
				zap.String("error", cred.scrub(u.err.Error())))
		}
		return attemptResult{failure: u.fail, class: u.class}
	}
	if u.class == providers.ClassAuth && cred.secret != nil {
		g.store.MarkInvalid(cred.secret, time.Now(), fmt.Sprintf("%s answered %d (%s)", name, u.status, u.class))
	}
	if c := g.logger.Check(zap.InfoLevel, "upstream error"); c != nil {
		c.Write(zap.String("request_id", x.rec.ID), zap.String("provider", name),
			zap.String("credential_source", cred.source), zap.Int("upstream_status", u.status),
			zap.String("class", u.class))
	}
	return attemptResult{failure: u.fail, class: u.class}
}

// served relays a successful answer: from here on the answer is this
// attempt's. The usage the provider reported goes on the record here, in
// one place for every endpoint, stream or not, and is priced (cost.go): a
// stream cut mid-way is priced with the usage it reported before the cut,
// an answer without usage is unpriced. A reservation is settled here.
func (g *Gateway) served(x *exchange, t target, up upstreamRequest, resp *http.Response, att *store.Attempt) attemptResult {
	if x.cred.secret != nil {
		g.store.MarkValid(x.cred.secret)
	}
	h := x.w.Header()
	h[HeaderProvider] = []string{t.provider.Name}
	h[HeaderCredential] = []string{x.cred.source}
	h[HeaderAttempts] = []string{strconv.Itoa(int(x.tried))}
	copyResponseHeaders(h, resp.Header)
	if x.lim != nil {
		x.setRateHeaders(h, &x.lim.d, true)
	}
	out := up.relay(g, x, t, resp)
	if out.code != "" {
		x.rec.ErrorCode = out.code
		if out.code != codeClientGone {
			att.ErrorClass = providers.ClassServer
		}
	}
	u := out.usage
	rec := x.rec
	rec.PromptTokens, rec.CompletionTokens, rec.TotalTokens = u.PromptTokens, u.CompletionTokens, u.TotalTokens
	rec.CachedTokens, rec.ReasoningTokens, rec.UsageRaw = u.CachedTokens, u.ReasoningTokens, u.Raw
	cost := rec.Cost
	if !out.priced {
		cost = g.priceAttempt(x, &u)
	}
	x.settleAttempt(&cost, rec.Stream && out.code != "")
	return attemptResult{answered: true, usage: u, cost: cost}
}

// skipFailure is the answer a skipped attempt gives when nothing later
// serves: asked is the model as the plan named it.
func (g *Gateway) skipFailure(reason, provider, asked string) failure {
	switch reason {
	case skipPolicy:
		return failure{status: http.StatusForbidden, typ: typeInvalidRequest, code: CodeBYOKOnlyPolicy,
			msg: fmt.Sprintf("this account's byok_only policy for %s forbids the platform key, and no usable %s key of the account's own is registered", provider, provider)}
	case skipNoBYOK:
		return failure{status: http.StatusBadRequest, typ: typeInvalidRequest, code: CodeNoCredential,
			msg: fmt.Sprintf("no credential for provider %s: the route's target %s needs this account's own %s key, and none is registered", provider, asked, provider)}
	case skipNoPlatform:
		return failure{status: http.StatusBadRequest, typ: typeInvalidRequest, code: CodeNoCredential,
			msg: fmt.Sprintf("no credential for provider %s: the route's target %s needs the platform key, and the platform has none configured", provider, asked)}
	case skipNotImplemented:
		return failure{status: http.StatusNotImplemented, typ: typeInvalidRequest, code: CodeProviderNotImplemented,
			msg: fmt.Sprintf("provider %s is not implemented yet in this version of Agent Router", provider)}
	case skipDeadlineReached:
		return failure{status: http.StatusGatewayTimeout, typ: typeAPI, code: CodeUpstreamTimeout,
			msg: "the route's deadline passed before a provider answered"}
	case skipInvalid:
		return byokRejected(provider, fmt.Sprintf("%s refused it recently; the gateway holds it back (it tries it again at most once every %s, or at once when it is replaced)", provider, g.cooldown))
	default:
		return failure{status: http.StatusBadRequest, typ: typeInvalidRequest, code: CodeNoCredential,
			msg: fmt.Sprintf("no credential for provider %s: this account has no %s key registered and the platform has none configured", provider, provider)}
	}
}
