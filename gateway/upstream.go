package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/providers"
)

// One upstream call: the request goes out, and its outcome comes back in
// the terms every caller needs. The attempts (attempt.go), the stored
// responses (responses.go, through the same attempt) and the key Test
// (keytest.go) all call providers through callUpstream.

// upstreamResult is what one upstream call came to.
type upstreamResult struct {
	// resp is a successful answer (status below 400), its body still to
	// be read and closed by the caller; nil otherwise.
	resp *http.Response
	// status is the provider's HTTP status and header its response
	// headers (a key's rate-limit state is in them, on errors too); 0 and
	// nil when it did not answer.
	status int
	header http.Header
	// class is the failure's error class ("" on success): the provider's
	// rules for an error answer, the transport's for no answer,
	// bad_request for a tenant's base URL the egress policy refused, and
	// codeClientGone when the client went away first.
	class string
	// fail is what the client is told of the failure: scrubbed of the key,
	// and for a native call the provider's own error body and status.
	fail failure
	// detail is the provider's own error message, scrubbed.
	detail string
	// err is the transport's error, unscrubbed: log it with cred.scrub.
	err error
}

// maxErrorBody bounds the part of an upstream error answer the gateway
// reads.
const maxErrorBody = 64 << 10

// callUpstream makes one upstream call with req, built for provider with
// cred, through the transport of its host (a tenant's base URL is dialed
// only where the egress policy allows). The route's deadline, when there is
// one, bounds the wait for the answer's headers: once it has fired, what
// arrived is too late and the failure is a timeout, not the cancellation it
// caused. A transport failure is classified (a blocked base URL is the
// tenant's configuration, never an outage to route around), and is the
// client's own when its context (client) is done. An error answer is read,
// classified by the provider's rules and scrubbed, and for a native call
// (the client speaks the provider's own API) relayed as the provider worded
// it, unless the key was refused. Nothing is logged or stored here: the
// caller knows what the call was for.
func (g *Gateway) callUpstream(client context.Context, req *http.Request, provider string, cred *credential, native bool, deadline headerDeadline) upstreamResult {
	resp, err := g.upstreams.forURL(req.URL, cred.guarded).RoundTrip(req)
	if deadline.expired() {
		if err == nil {
			resp.Body.Close()
		}
		err = context.DeadlineExceeded
	}
	if err != nil {
		return transportFailure(client, err, provider)
	}
	if resp.StatusCode < http.StatusBadRequest {
		return upstreamResult{resp: resp, status: resp.StatusCode, header: resp.Header}
	}
	defer resp.Body.Close()
	return errorAnswer(resp, provider, cred, native)
}

// transportFailure is a call that got no answer.
func transportFailure(client context.Context, err error, provider string) upstreamResult {
	if client.Err() != nil {
		return upstreamResult{class: codeClientGone, err: err}
	}
	res := upstreamResult{class: providers.ClassifyTransport(err), err: err,
		fail: failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamUnreachable, msg: "could not reach " + provider}}
	switch {
	case egress.IsBlocked(err):
		// The tenant's base URL leads somewhere the operator did not
		// allow: a configuration error, never an outage to route around.
		res.class = providers.ClassBadRequest
		res.fail = failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeBYOKBaseURLBlocked,
			msg: "the base_url registered with this account's " + provider + " key leads to an address the gateway may not reach (a private, loopback or link-local address); register a public https endpoint"}
	case res.class == providers.ClassTimeout:
		res.fail = failure{status: http.StatusGatewayTimeout, typ: typeAPI, code: CodeUpstreamTimeout, msg: provider + " did not answer in time"}
	}
	return res
}

// errorAnswer reads an upstream error answer and decides what the client
// would see, with key material scrubbed. A refused BYOK key becomes
// byok_credential_rejected (byokRejected); a refused platform key 502
// platform_credential_rejected: neither is mistaken for a bad Agent Router
// key.
func errorAnswer(resp *http.Response, provider string, cred *credential, native bool) upstreamResult {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	class := providers.ClassifyResponse(provider, resp.StatusCode, resp.Header, raw)
	res := upstreamResult{status: resp.StatusCode, header: resp.Header, class: class, detail: cred.scrub(providers.ErrorMessage(raw))}
	f := failure{status: resp.StatusCode, typ: typeForStatus(resp.StatusCode), code: CodeUpstreamError,
		msg: fmt.Sprintf("%s returned %d: %s", provider, resp.StatusCode, res.detail)}
	if native && providers.ValidJSON(raw) {
		// The client speaks the provider's own API: it gets the provider's
		// own error body (scrubbed), status and all.
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
		} else {
			f.status, f.typ, f.code, f.raw = http.StatusBadGateway, typeAPI, CodePlatformCredentialRejected, nil
			f.msg = fmt.Sprintf("the platform's %s key was rejected by the provider (status %d)", provider, resp.StatusCode)
		}
	}
	res.fail = f
	return res
}

// byokRejected is the answer when the account's own key for provider was
// refused (what says how: refused just now, or held back since):
// byok_credential_rejected with X-Should-Retry: false, with the status the
// door's clients do not retry (door.finalStatus: 400, 424 on the Messages
// door): not 5xx, 408, 409 or 429 (Claude Code retried a 502 eight times
// over 100 s, Codex sent 30 requests in 25 s), and not 401 or 403, which
// agents read as their own credential failing (Claude Code prints "Please
// run /login"). The message says whose key it is and who can fix it, in no
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

// headerDeadline is a route's deadline over one attempt. A route's timeout
// bounds the wait for an answer across its attempts (until a provider's
// response headers arrive), not the length of an answer: a long stream that
// has begun is never cut by it. Under a deadline each attempt gets its own
// cancellation, which the deadline fires until the attempt's headers have
// arrived; without one the request's own context serves (the client going
// away cancels the attempt), and there is no context or timer.
type headerDeadline struct {
	timer  *time.Timer
	cancel context.CancelFunc
}

// withHeaderDeadline returns the attempt's context under the deadline at
// (zero: none). Call release when the attempt is over.
func withHeaderDeadline(ctx context.Context, at time.Time) (context.Context, headerDeadline) {
	if at.IsZero() {
		return ctx, headerDeadline{}
	}
	ctx, cancel := context.WithCancel(ctx)
	return ctx, headerDeadline{timer: time.AfterFunc(time.Until(at), cancel), cancel: cancel}
}

// expired stops the deadline (the answer's headers are in) and reports
// whether it had already fired.
func (d headerDeadline) expired() bool { return d.timer != nil && !d.timer.Stop() }

// release ends the attempt's context.
func (d headerDeadline) release() {
	if d.cancel != nil {
		d.cancel()
	}
}
