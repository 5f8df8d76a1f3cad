package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// rememberResponse records who created a response that passed through the
// Responses door to OpenAI or Azure, so that GET, DELETE and input_items for
// it go to the same provider with the same kind of credential, and only for
// the same account.
func (g *Gateway) rememberResponse(call *providers.Call, provider string, cred *credential, rec *store.LogRecord) {
	if call.Door != providers.ResponsesDoor || !call.Native || call.ResponseID == "" {
		return
	}
	if gjson.GetBytes(call.Body, "store").Type == gjson.False {
		return // the provider keeps nothing to come back for
	}
	err := g.store.PutResponse(call.ResponseID, store.ResponseOwner{AccountID: rec.AccountID, Provider: provider,
		CredentialSource: cred.source, Created: time.Now().UTC()})
	switch {
	case errors.Is(err, store.ErrResponseTaken):
		// The provider (an account's own server behind a BYOK base URL
		// can answer anything) named a response another account owns: it
		// stays the other account's.
		g.logger.Warn("a provider answered with a response id another account owns; ownership kept", zap.String("request_id", rec.ID),
			zap.String("account", rec.AccountID), zap.String("provider", provider), zap.String("credential_source", cred.source))
	case err != nil:
		g.logger.Warn("could not remember a response's owner", zap.String("request_id", rec.ID), zap.Error(err))
	}
}

// serveStoredResponse serves GET /v1/responses/{id}, DELETE
// /v1/responses/{id} and GET /v1/responses/{id}/input_items: the response
// must be one the caller's account created through the gateway (else 404,
// as for an unknown id), and the request goes to the provider that holds it
// with the same kind of credential (the account's own key, or the
// platform's) as the one that created it. The answer is the provider's.
func (g *Gateway) serveStoredResponse(w http.ResponseWriter, r *http.Request, snap *store.Snapshot, c *caller, rec *store.LogRecord) {
	rec.API = "responses"
	door := providers.ResponsesDoor
	fail := func(f failure) { g.fail(w, door, rec, f) }
	rest := strings.TrimPrefix(r.URL.Path, "/v1/responses/")
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case id == "input_tokens" || id == "compact" || sub == "cancel":
		rec.Endpoint = "responses"
		fail(failure{status: http.StatusNotFound, typ: typeInvalidRequest, code: CodeNotFound,
			msg: "/v1/responses/" + rest + " is not served by the gateway (it serves create, retrieve, delete and input_items)"})
		return
	case sub == "" && r.Method == http.MethodGet:
		rec.Endpoint = "responses.get"
	case sub == "" && r.Method == http.MethodDelete:
		rec.Endpoint = "responses.delete"
	case sub == "input_items" && r.Method == http.MethodGet:
		rec.Endpoint = "responses.input_items"
		sub = "/input_items"
	case sub == "" || sub == "input_items":
		rec.Endpoint = "responses"
		allow := "GET, DELETE"
		if sub != "" {
			allow = "GET"
		}
		w.Header()["Allow"] = []string{allow}
		fail(failure{status: http.StatusMethodNotAllowed, typ: typeInvalidRequest, code: CodeMethodNotAllowed,
			msg: "method " + r.Method + " is not allowed here; use " + allow})
		return
	default:
		rec.Endpoint = "responses"
		fail(failure{status: http.StatusNotFound, typ: typeInvalidRequest, code: CodeNotFound,
			msg: "unknown path: the gateway serves /v1/responses/{id} and /v1/responses/{id}/input_items"})
		return
	}
	owner, err := g.store.ResponseFor(c.account, id)
	if err != nil {
		fail(failure{status: http.StatusNotFound, typ: typeInvalidRequest, code: CodeResponseNotFound,
			msg: "no response with id " + strconv.Quote(truncate(id, 64)) + " was created by this account through the gateway"})
		return
	}
	p := providers.Get(owner.Provider)
	if p == nil {
		fail(failure{status: http.StatusNotFound, typ: typeInvalidRequest, code: CodeResponseNotFound, msg: "the provider of this response is no longer served"})
		return
	}
	rec.Provider = p.Name
	pin := routing.PinPlatform
	if owner.CredentialSource == SourceBYOK {
		pin = routing.PinBYOK
	}
	start := time.Now()
	cred, reason := g.pickCredential(snap, c.account, p.Name, pin, false, start)
	if reason != "" {
		fail(g.skipFailure(reason, p.Name, "the stored response"))
		return
	}
	rec.CredentialSource = cred.source
	if cred.secret != nil {
		rec.CredentialVersion, rec.CredentialFingerprint = cred.secret.Version, cred.secret.Fingerprint
	}
	att := store.Attempt{Provider: p.Name, CredentialSource: cred.source}
	req, err := providers.NewResponsesRequest(r.Context(), p, cred.endpoint, cred.key, r.Method, "/"+url.PathEscape(id)+sub, r.URL.RawQuery, nil)
	if err != nil {
		fail(failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamError, msg: "could not build the upstream request: " + cred.scrub(err.Error())})
		return
	}
	resp, err := g.upstreams.forURL(req.URL, cred.guarded).RoundTrip(req)
	att.DurationMS = msSince(start)
	if err != nil {
		att.ErrorClass = providers.ClassifyTransport(err)
		rec.Attempts = append(rec.Attempts, att)
		if r.Context().Err() != nil {
			rec.Status, rec.ErrorCode = 499, "client_closed_request"
			return
		}
		fail(failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamUnreachable, msg: "could not reach " + p.Name})
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	h[HeaderProvider] = []string{p.Name}
	h[HeaderCredential] = []string{cred.source}
	h[HeaderAttempts] = []string{"1"}
	att.Status = resp.StatusCode
	if resp.StatusCode >= 400 {
		f, class := g.upstreamFailure(resp, p.Name, cred, rec)
		att.ErrorClass = class
		rec.Attempts = append(rec.Attempts, att)
		if class != providers.ClassAuth && f.raw != nil {
			f.status = resp.StatusCode
		} else {
			f.raw = nil
		}
		fail(f)
		return
	}
	rec.Attempts = append(rec.Attempts, att)
	if cred.secret != nil {
		g.store.MarkValid(cred.secret)
	}
	if r.Method == http.MethodDelete {
		if err := g.store.ForgetResponse(id); err != nil {
			g.logger.Warn("could not forget a deleted response", zap.String("request_id", rec.ID), zap.Error(err))
		}
	}
	copyResponseHeaders(h, resp.Header)
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	h["Content-Type"] = []string{ct}
	rec.Status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	rec.TTFBMS = msSince(rec.Time)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			if err != io.EOF {
				rec.ErrorCode = "upstream_stream_error"
			}
			return
		}
	}
}
