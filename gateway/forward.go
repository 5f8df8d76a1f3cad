package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// HeaderAttempts tells the client how many upstream attempts its request
// took (more than one when a fallback or split moved on).
const HeaderAttempts = "X-Agent-Router-Attempts"

// HeaderOmitted names, comma-separated, what the translation for the
// serving provider left out of the request because the provider has no
// equivalent ("web_search"). Absent when nothing was.
const HeaderOmitted = "X-Agent-Router-Omitted"

// credential is what one upstream attempt is sent with.
type credential struct {
	source   string
	key      string
	endpoint providers.Endpoint
	secret   *store.Secret // BYOK only
	// guarded: the endpoint is the tenant's own base URL, dialed only
	// where the egress policy allows.
	guarded bool
}

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

// pickCredential chooses the credential for one attempt from one snapshot:
// the account's BYOK key for the provider when the pin allows it, else the
// platform key when the pin and the account's policy allow it. A BYOK key
// the provider rejected is not sent again during its cool-down: one request
// per cool-down probes it (ClaimProbe), the others skip it. A skipped lone
// attempt is answered byok_credential_rejected at once, never with a silent
// switch to the platform; a fallback chain moves on.
func (g *Gateway) pickCredential(snap *store.Snapshot, account, provider string, pin routing.Pin, more bool, now time.Time) (credential, string) {
	pc := g.providers[provider]
	if pin != routing.PinPlatform {
		if sec := snap.Credential(account, provider); sec != nil {
			if !now.IsZero() && !sec.ClaimProbe(now, g.cooldown) {
				return credential{}, skipInvalid
			}
			// A base URL of the customer's own is dialed only where the
			// egress policy allows.
			return credential{source: SourceBYOK, key: sec.Key(), endpoint: byokEndpoint(pc, sec.Extras), secret: sec,
				guarded: sec.Extras.BaseURL != ""}, ""
		}
		if pin == routing.PinBYOK {
			return credential{}, skipNoBYOK
		}
	}
	if snap.Policy(account, provider).BYOKOnly {
		return credential{}, skipPolicy
	}
	if pc.APIKey == "" {
		if pin == routing.PinPlatform {
			return credential{}, skipNoPlatform
		}
		return credential{}, skipNoCredential
	}
	return credential{source: SourcePlatform, key: pc.APIKey, endpoint: pc.Endpoint}, ""
}

// failure is the answer to give when no attempt succeeds.
type failure struct {
	status                   int
	typ, code, msg           string
	retryAfter, retryAfterMs string
	// final marks an answer no retry can change: it carries
	// X-Should-Retry: false, which the OpenAI and Anthropic SDKs obey, and,
	// when status is 0, the status the door's clients take as final
	// (finalStatus).
	final bool
	// raw, when set, is the upstream's own error body (scrubbed), relayed
	// as is: a front door's passthrough.
	raw []byte
}

func (g *Gateway) skipFailure(reason, provider, model string) failure {
	switch reason {
	case skipPolicy:
		return failure{status: http.StatusForbidden, typ: typeInvalidRequest, code: CodeBYOKOnlyPolicy,
			msg: fmt.Sprintf("this account's byok_only policy for %s forbids the platform key, and no usable %s key of the account's own is registered", provider, provider)}
	case skipNoBYOK:
		return failure{status: http.StatusBadRequest, typ: typeInvalidRequest, code: CodeNoCredential,
			msg: fmt.Sprintf("no credential for provider %s: the route's target %s needs this account's own %s key, and none is registered", provider, model, provider)}
	case skipNoPlatform:
		return failure{status: http.StatusBadRequest, typ: typeInvalidRequest, code: CodeNoCredential,
			msg: fmt.Sprintf("no credential for provider %s: the route's target %s needs the platform key, and the platform has none configured", provider, model)}
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
// model, picks a credential and calls the provider; a failure the plan
// retries moves to the next attempt, but only before the first byte has
// gone to the client.
func (g *Gateway) serveAttempts(w http.ResponseWriter, r *http.Request, snap *store.Snapshot, c *caller, rec *store.LogRecord, op providers.Operation, body []byte, model string) {
	plan := g.plan(c.routes, model)
	span := trace.SpanFromContext(r.Context())
	defer annotateRequestSpan(span, rec)
	rec.Route = plan.Route
	// A route's timeout bounds the wait for an answer across its attempts
	// (until a provider's response headers arrive), not the length of an
	// answer: a long stream that has begun is never cut by it.
	var deadline time.Time
	if plan.Deadline > 0 {
		deadline = time.Now().Add(plan.Deadline)
	}
	ctx := r.Context()
	includeUsage := gjson.GetBytes(body, "stream_options.include_usage").Bool()
	refs := findRefs(c.door, op, body)
	var last *failure
	skipped := false // last comes from a skip, not an attempt
	tried := 0
	for i, at := range plan.Attempts {
		more := i < len(plan.Attempts)-1
		t, ok := g.resolve(at.Model)
		if !ok { // plain models only: routes are checked at provision
			g.fail(w, c.door, rec, failure{status: http.StatusNotFound, typ: typeInvalidRequest, code: CodeModelNotFound,
				msg: fmt.Sprintf("the model %q is not known to this gateway: use a catalog name, a model declared in the config, an alias or route, or 'provider/model' with one of %s", at.Model, strings.Join(providers.Names, ", "))})
			return
		}
		att := store.Attempt{Provider: t.provider.Name, Model: t.model}
		rec.Provider, rec.UpstreamModel = t.provider.Name, t.model
		skip := func(reason string) {
			att.Skipped = reason
			rec.Attempts = append(rec.Attempts, att)
			// A skip explains the answer only when no attempt got one:
			// the client sees the provider's own failure before a
			// later target's reason for not being tried.
			if last == nil || skipped {
				f := g.skipFailure(reason, t.provider.Name, at.Model)
				last, skipped = &f, true
			}
		}
		if !t.provider.Implemented {
			skip(skipNotImplemented)
			continue
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			skip(skipDeadlineReached)
			break
		}
		now := time.Now()
		cred, reason := g.pickCredential(snap, c.account, t.provider.Name, at.Pin, more, now)
		if reason != "" {
			skip(reason)
			continue
		}
		if refs.hasPrevious && c.door.Native(t.provider, cred.endpoint) {
			// The id goes upstream as is: it must be one of this
			// account's own stored responses (a translated target
			// refuses previous_response_id itself, without a call).
			if id, ok := g.ownsPrevious(c.account, refs); !ok {
				att.CredentialSource, att.Skipped = cred.source, skipResponseNotOwned
				rec.Attempts = append(rec.Attempts, att)
				g.fail(w, c.door, rec, previousResponseFailure(id))
				return
			}
		}
		if refs.foreign != "" && cred.source == SourcePlatform {
			att.CredentialSource, att.Skipped = cred.source, skipReferenceNeedsBYOK
			rec.Attempts = append(rec.Attempts, att)
			if last == nil || skipped {
				f := foreignRefFailure(refs.foreign, t.provider.Name)
				last, skipped = &f, true
			}
			continue
		}
		att.CredentialSource = cred.source
		rec.CredentialSource = cred.source
		rec.CredentialVersion, rec.CredentialFingerprint = 0, ""
		if cred.secret != nil {
			rec.CredentialVersion, rec.CredentialFingerprint = cred.secret.Version, cred.secret.Fingerprint
			cred.secret.Touch(now.UnixNano())
		}
		tried++
		// Under a route's deadline each attempt gets its own cancellation,
		// which the deadline fires until the attempt's headers have
		// arrived. Without one the request's own context serves (the
		// client going away cancels the attempt): no context or timer.
		attemptCtx := ctx
		var deadlineTimer *time.Timer
		if !deadline.IsZero() {
			var cancelAttempt context.CancelFunc
			attemptCtx, cancelAttempt = context.WithCancel(ctx)
			defer cancelAttempt() // plans have a handful of attempts at most
			deadlineTimer = time.AfterFunc(time.Until(deadline), cancelAttempt)
		}
		actx, aspan := startAttemptSpan(attemptCtx, span, t.provider.Name, t.model, cred.source)
		call := &providers.Call{
			Op: op, Endpoint: cred.endpoint, Key: cred.key, Model: t.model, Body: body,
			Stream: rec.Stream, IncludeUsage: includeUsage, DefaultMaxTokens: g.defaultMaxTokens,
			ID: "chatcmpl-" + rec.ID, Created: rec.Time.Unix(),
		}
		if c.door != nil {
			call.Door, call.Header, call.Query, call.ID = c.door, r.Header, r.URL.RawQuery, c.door.IDPrefix+rec.ID
		}
		req, err := t.provider.NewCallRequest(actx, call)
		if err != nil {
			var re *providers.RequestError
			if errors.As(err, &re) {
				// The request cannot be expressed for this provider: the
				// client's to fix, the same on every target.
				att.ErrorClass = providers.ClassBadRequest
				rec.Attempts = append(rec.Attempts, att)
				endAttemptSpan(aspan, span, &att)
				g.fail(w, c.door, rec, failure{status: http.StatusBadRequest, typ: typeInvalidRequest, code: CodeUnsupportedRequest,
					msg: t.provider.Name + ": " + cred.scrub(re.Message)})
				return
			}
			att.ErrorClass = providers.ClassBadRequest
			rec.Attempts = append(rec.Attempts, att)
			endAttemptSpan(aspan, span, &att)
			g.fail(w, c.door, rec, failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamError,
				msg: "could not build the upstream request: " + cred.scrub(err.Error())})
			return
		}
		resp, err := g.upstreams.forURL(req.URL, cred.guarded).RoundTrip(req)
		att.DurationMS = msSince(now)
		if deadlineTimer != nil && !deadlineTimer.Stop() {
			// The route's deadline fired: whatever arrived is too late, and
			// the error is a timeout, not the cancellation it caused.
			if err == nil {
				resp.Body.Close()
			}
			err = context.DeadlineExceeded
		}
		if err != nil {
			if r.Context().Err() != nil { // the client went away
				att.ErrorClass = "client_closed_request"
				rec.Attempts = append(rec.Attempts, att)
				endAttemptSpan(aspan, span, &att)
				rec.Status, rec.ErrorCode = 499, "client_closed_request"
				return
			}
			class := providers.ClassifyTransport(err)
			blocked := egress.IsBlocked(err)
			if blocked {
				// The tenant's base URL leads somewhere the operator did
				// not allow: a configuration error, never an outage to
				// route around.
				class = providers.ClassBadRequest
			}
			att.ErrorClass = class
			rec.Attempts = append(rec.Attempts, att)
			endAttemptSpan(aspan, span, &att)
			if c := g.logger.Check(zap.WarnLevel, "upstream request failed"); c != nil {
				c.Write(zap.String("request_id", rec.ID), zap.String("provider", t.provider.Name),
					zap.String("credential_source", cred.source), zap.String("class", class),
					zap.String("error", cred.scrub(err.Error())))
			}
			f := failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamUnreachable, msg: "could not reach " + t.provider.Name}
			switch {
			case blocked:
				f = failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeBYOKBaseURLBlocked,
					msg: "the base_url registered with this account's " + t.provider.Name + " key leads to an address the gateway may not reach (a private, loopback or link-local address); register a public https endpoint"}
			case class == providers.ClassTimeout:
				f = failure{status: http.StatusGatewayTimeout, typ: typeAPI, code: CodeUpstreamTimeout, msg: t.provider.Name + " did not answer in time"}
			}
			last, skipped = &f, false
			if more && plan.Retryable(class) {
				continue
			}
			break
		}
		if resp.StatusCode >= 400 {
			f, class := g.upstreamFailure(resp, t.provider.Name, cred, rec)
			resp.Body.Close()
			if call.Native && class != providers.ClassAuth && f.raw != nil {
				// The client speaks the provider's own API: it gets the
				// provider's own error body (scrubbed), status and all.
				f.status = resp.StatusCode
			} else {
				f.raw = nil
			}
			att.Status, att.ErrorClass = resp.StatusCode, class
			rec.Attempts = append(rec.Attempts, att)
			endAttemptSpan(aspan, span, &att)
			last, skipped = &f, false
			if more && plan.Retryable(class) {
				continue
			}
			break
		}
		// Success: from here on the answer is this attempt's.
		if cred.secret != nil {
			g.store.MarkValid(cred.secret)
		}
		att.Status = resp.StatusCode
		rec.Attempts = append(rec.Attempts, att)
		h := w.Header()
		h[HeaderProvider] = []string{t.provider.Name}
		h[HeaderCredential] = []string{cred.source}
		h[HeaderAttempts] = []string{strconv.Itoa(tried)}
		if len(call.Omitted) > 0 {
			// What the translation left out is said, never dropped
			// silently: Codex's cache-only web_search on Claude.
			h[HeaderOmitted] = []string{strings.Join(call.Omitted, ", ")}
			rec.Omitted = call.Omitted
		}
		g.relay(w, r.Context(), resp, t.provider, call, &cred, rec)
		resp.Body.Close()
		if n := len(rec.Attempts); n > 0 {
			rec.Attempts[n-1].DurationMS = msSince(now)
			endAttemptSpan(aspan, span, &rec.Attempts[n-1])
		}
		return
	}
	if last == nil { // an empty plan cannot happen; be safe
		last = &failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamError, msg: "no upstream attempt was possible"}
	}
	if tried > 0 {
		w.Header()[HeaderAttempts] = []string{strconv.Itoa(tried)}
	}
	if rec.Provider != "" {
		w.Header()[HeaderProvider] = []string{rec.Provider}
	}
	if rec.CredentialSource != "" {
		w.Header()[HeaderCredential] = []string{rec.CredentialSource}
	}
	g.fail(w, c.door, rec, *last)
}

func (g *Gateway) fail(w http.ResponseWriter, door *providers.Door, rec *store.LogRecord, f failure) {
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	if f.retryAfterMs != "" {
		w.Header().Set("Retry-After-Ms", f.retryAfterMs)
	}
	if f.final {
		w.Header()["X-Should-Retry"] = []string{"false"}
		if f.status == 0 {
			f.status = finalStatus(door)
		}
	}
	rec.Status, rec.ErrorCode = f.status, f.code
	if f.raw != nil {
		// A passthrough's upstream error, relayed as the provider worded
		// it (scrubbed): clients such as Claude Code recover by its words.
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h.Del("Content-Length")
		w.WriteHeader(f.status)
		w.Write(f.raw)
		return
	}
	writeDoorError(w, door, f.status, f.typ, f.code, f.msg)
}

// upstreamFailure reads an upstream error answer and decides what the client
// would see, with key material scrubbed. A refused BYOK key becomes
// byok_credential_rejected (byokRejected; and marks the key invalid); a refused platform
// key 502 platform_credential_rejected: neither is mistaken for a bad Agent
// Router key.
func (g *Gateway) upstreamFailure(resp *http.Response, provider string, cred credential, rec *store.LogRecord) (failure, string) {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	class := providers.ClassifyResponse(provider, resp.StatusCode, resp.Header, raw)
	msg := cred.scrub(providers.ErrorMessage(raw))
	f := failure{status: resp.StatusCode, typ: typeForStatus(resp.StatusCode), code: CodeUpstreamError}
	if providers.ValidJSON(raw) {
		f.raw = []byte(cred.scrub(string(raw)))
	}
	// Upstream header values are relayed only in their documented shape:
	// anything else could carry request data (a key) back to the client.
	if v := resp.Header.Get("Retry-After"); validRetryAfter(v) {
		f.retryAfter = v
	}
	if v := resp.Header.Get("Retry-After-Ms"); validRetryAfterMs(v) {
		f.retryAfterMs = v
	}
	if c := gjson.GetBytes(raw, "error.code"); c.Type == gjson.String && validErrorCode(c.Str) && cred.scrub(c.Str) == c.Str {
		f.code = c.Str
	}
	if class == providers.ClassAuth {
		if cred.source == SourceBYOK {
			// The provider's own words ("invalid x-api-key") are left out:
			// agents read them as their own credential failing.
			f = byokRejected(provider, fmt.Sprintf("%s refused it (HTTP %d)", provider, resp.StatusCode))
			g.store.MarkInvalid(cred.secret, time.Now(), fmt.Sprintf("%s answered %d (%s)", provider, resp.StatusCode, class))
		} else {
			f.status, f.typ = http.StatusBadGateway, typeAPI
			f.code = CodePlatformCredentialRejected
			f.msg = fmt.Sprintf("the platform's %s key was rejected by the provider (status %d)", provider, resp.StatusCode)
		}
	} else {
		f.msg = fmt.Sprintf("%s returned %d: %s", provider, resp.StatusCode, msg)
	}
	if c := g.logger.Check(zap.InfoLevel, "upstream error"); c != nil {
		c.Write(zap.String("request_id", rec.ID), zap.String("provider", provider),
			zap.String("credential_source", cred.source), zap.Int("upstream_status", resp.StatusCode),
			zap.String("class", class))
	}
	return f, class
}

// byokRejected is the answer when the account's own key for provider was
// refused (what says how: refused just now, or held back since):
// byok_credential_rejected with X-Should-Retry: false, with the status the
// door's clients do not retry (finalStatus: 400, 424 on the Messages door):
// not 5xx, 408, 409 or 429 (Claude Code retried a 502 eight times over
// 100 s, Codex sent 30 requests in 25 s), and not 401 or 403, which agents
// read as their own credential failing (Claude Code prints "Please run
// /login"). The message says whose key it is and who can fix it, in no
// provider's words.
func byokRejected(provider, what string) failure {
	return failure{typ: typeInvalidRequest, code: CodeBYOKCredentialRejected, final: true,
		msg: fmt.Sprintf("the %s key this account registered with Agent Router (Bring Your Own Key) does not work: %s. "+
			"Your Agent Router API key is fine; an owner of the account must replace the %s key under Settings → Bring Your Own Key in the Agent Router console",
			provider, what, provider)}
}

// validErrorCode keeps a provider's error code only when it looks like one:
// short, of code characters. Anything else could carry request data.
func validErrorCode(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-' || b == '.') {
			return false
		}
	}
	return true
}

// maxResponse bounds a non-streamed answer the gateway reads whole (to
// translate it or read its usage).
const maxResponse = 32 << 20

// relay sends a successful answer to the client: a stream event by event
// through the provider's translator, or a whole body translated once.
func (g *Gateway) relay(w http.ResponseWriter, clientCtx context.Context, resp *http.Response, p *providers.Provider, call *providers.Call, cred *credential, rec *store.LogRecord) {
	h := w.Header()
	copyResponseHeaders(h, resp.Header)
	var u providers.Usage
	if isEventStream(resp.Header) {
		h["Content-Type"] = []string{"text/event-stream"}
		h["Cache-Control"] = []string{"no-cache"}
		h["X-Accel-Buffering"] = []string{"no"}
		h.Del("Content-Length")
		rec.Status = resp.StatusCode
		w.WriteHeader(resp.StatusCode)
		rec.TTFBMS = msSince(rec.Time)
		tr := p.NewStream(call)
		code := relayEvents(w, clientCtx, resp.Body, tr, cred)
		if f, ok := tr.(providers.StreamFailer); ok && code == "" {
			// The provider's own failure event went to the client as sent;
			// its code is recorded in the shape of a code, as endWith does.
			if code = f.FailureCode(); code != "" && (!validErrorCode(code) || cred.scrub(code) != code) {
				code = "upstream_stream_error"
			}
		}
		if code != "" {
			rec.ErrorCode = code
			if n := len(rec.Attempts); n > 0 && code != "client_closed_request" {
				rec.Attempts[n-1].ErrorClass = providers.ClassServer
			}
		}
		u = tr.Usage()
		g.rememberResponse(call, p.Name, cred, rec)
	} else {
		rb := acquireAnswerBuf(resp.ContentLength)
		defer releaseAnswerBuf(rb)
		raw, err := readAnswer(rb, resp.Body)
		var out []byte
		if err == nil {
			out, u, err = p.TranslateResponse(call, raw)
		}
		if err == nil {
			g.rememberResponse(call, p.Name, cred, rec)
		}
		if err != nil {
			if clientCtx.Err() != nil {
				rec.Status, rec.ErrorCode = 499, "client_closed_request"
				return
			}
			g.fail(w, call.Door, rec, failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamError,
				msg: "the answer from " + p.Name + " could not be read: " + cred.scrub(err.Error())})
			return
		}
		h["Content-Type"] = []string{"application/json"}
		if len(out) >= autoContentLength {
			h["Content-Length"] = []string{strconv.Itoa(len(out))}
		}
		rec.Status = resp.StatusCode
		w.WriteHeader(resp.StatusCode)
		rec.TTFBMS = msSince(rec.Time)
		w.Write(out)
	}
	rec.PromptTokens, rec.CompletionTokens, rec.TotalTokens = u.PromptTokens, u.CompletionTokens, u.TotalTokens
	rec.CachedTokens, rec.ReasoningTokens, rec.UsageRaw = u.CachedTokens, u.ReasoningTokens, u.Raw
}

// autoContentLength is the answer size from which relay sets
// Content-Length itself. A smaller answer is written whole before the
// handler returns, into the server's response buffer (2 KiB in net/http
// for HTTP/1.1, 4 KiB for HTTP/2), and the server then sends the exact
// Content-Length on its own without a header-map entry: with the
// provider's rate-limit headers relayed, that one entry more made the
// response header map outgrow its table (and the copy net/http takes of
// it at WriteHeader double) on every small answer.
const autoContentLength = 2 << 10

// answerBufs pools the buffers whole answers are read into: a response
// read with io.ReadAll grows a fresh buffer (several copies) per request,
// which was the gateway's largest allocation on non-streamed requests.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// maxPooledAnswerBuf is the largest answer buffer returned to the pool.
const maxPooledAnswerBuf = 256 << 10

// maxAnswerPresize bounds what an announced Content-Length reserves before
// the bytes arrive: a provider (or a tenant's base URL) claiming 30 MB
// and sending nothing must not cost 30 MB; a larger answer grows as read.
const maxAnswerPresize = 1 << 20

// acquireAnswerBuf returns a pooled buffer with room for an answer of
// size bytes (and one more, so reading it whole needs no growth to see
// EOF) when the provider announced it.
func acquireAnswerBuf(size int64) *[]byte {
	bp := answerBufs.Get().(*[]byte)
	if size > 0 && size < maxAnswerPresize && int64(cap(*bp)) <= size {
		*bp = make([]byte, 0, size+1)
	}
	return bp
}

func releaseAnswerBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledAnswerBuf {
		*bp = (*bp)[:0]
		answerBufs.Put(bp)
	}
}

// readAnswer reads body whole into *bp, at most maxResponse bytes.
func readAnswer(bp *[]byte, body io.Reader) ([]byte, error) {
	b := (*bp)[:0]
	for {
		if len(b) > maxResponse {
			return nil, fmt.Errorf("the answer is larger than %d bytes", maxResponse)
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):min(cap(b), maxResponse+1)])
		b = b[:len(b)+n]
		*bp = b
		if err != nil {
			if errors.Is(err, io.EOF) {
				return b, nil
			}
			return b, err
		}
	}
}

// maxPooledEventBuf is the largest event buffer returned to the pool.
const maxPooledEventBuf = 64 << 10

// errClientGone is what a streamRelay's Read returns once writing to the
// client has failed: the relay stops reading from the provider.
var errClientGone = errors.New("the client connection is gone")

// streamRelay is the state of one relayed stream, pooled: the translated
// events not yet written, and the upstream body it reads through.
//
// Flushing follows the upstream's own batching, as Caddy's reverse_proxy
// does by writing what one read returned: events translated from bytes
// already read are collected in out and written and flushed together, in
// one Write and one Flush, just before the relay would wait for the
// provider again (Read) — never later, so no event is held back while the
// gateway waits, and never per event when the provider sent several in one
// segment (each Write and Flush costs a deadline update and a syscall).
type streamRelay struct {
	body io.Reader
	w    http.ResponseWriter
	rc   *http.ResponseController
	out  []byte
	werr error
}

var streamRelays = sync.Pool{New: func() any { return &streamRelay{out: make([]byte, 0, 4<<10)} }}

// Read writes and flushes what is pending, then reads from the provider.
func (s *streamRelay) Read(p []byte) (int, error) {
	if len(s.out) > 0 && !s.send() {
		return 0, errClientGone
	}
	return s.body.Read(p)
}

// send writes and flushes the pending events; false when the client is
// gone.
func (s *streamRelay) send() bool {
	if s.werr != nil {
		return false
	}
	if len(s.out) > 0 {
		_, s.werr = s.w.Write(s.out)
		s.out = s.out[:0]
	}
	if s.werr == nil {
		s.werr = s.rc.Flush()
	}
	return s.werr == nil
}

// relayEvents reads the upstream event stream, translates each event and
// writes it (see streamRelay for when), and returns the error code the
// stream ended with ("" when it completed).
func relayEvents(w http.ResponseWriter, clientCtx context.Context, body io.Reader, tr providers.StreamTranslator, cred *credential) string {
	if k, ok := tr.(providers.Keepaliver); ok {
		kw := startKeepalive(w, k.KeepaliveEvent())
		defer kw.stop()
		w = kw
	}
	s := streamRelays.Get().(*streamRelay)
	s.body, s.w, s.rc, s.out, s.werr = body, w, http.NewResponseController(w), s.out[:0], nil
	sr := providers.AcquireSSEReader(s)
	defer func() {
		sr.Release()
		s.body, s.w, s.rc, s.werr = nil, nil, nil, nil
		// A buffer grown by one big event is left to the collector, not
		// kept for every later stream.
		if cap(s.out) <= maxPooledEventBuf {
			streamRelays.Put(s)
		}
	}()
	endWith := func(code, msg string) string {
		// A translator's code may come from the provider (Anthropic's
		// error.type): it is relayed only in the shape of a code.
		if !validErrorCode(code) || cred.scrub(code) != code {
			code = "upstream_stream_error"
		}
		if ee, ok := tr.(providers.ErrorEventer); ok {
			s.out = ee.ErrorEvent(s.out, code, cred.scrub(msg))
		} else {
			s.out = providers.ErrorEvent(s.out, typeAPI, code, cred.scrub(msg))
		}
		s.send()
		return code
	}
	for {
		ev, err := sr.Next()
		if err != nil {
			if errors.Is(err, errClientGone) || clientCtx.Err() != nil {
				return "client_closed_request"
			}
			if errors.Is(err, providers.ErrEventTooLarge) {
				return endWith("upstream_event_too_large", fmt.Sprintf("the provider sent a stream event larger than %d bytes", providers.MaxSSEEvent))
			}
			if !errors.Is(err, io.EOF) {
				return endWith("upstream_stream_error", "the connection to the provider broke during the stream")
			}
			var serr error
			s.out, serr = tr.End(s.out)
			var se *providers.StreamError
			if errors.As(serr, &se) {
				return endWith(se.Code, se.Message)
			}
			if !s.send() {
				return "client_closed_request"
			}
			return ""
		}
		var serr error
		s.out, serr = tr.Event(s.out, ev)
		if serr != nil {
			var se *providers.StreamError
			if !errors.As(serr, &se) {
				se = &providers.StreamError{Code: "upstream_stream_error", Message: serr.Error()}
			}
			return endWith(se.Code, se.Message)
		}
	}
}

// checkModel explains a routing target that resolves to no provider.
func (g *Gateway) checkModel(model string) error {
	return providers.CheckModel(model, func(m string) bool { _, ok := g.declared[m]; return ok })
}
