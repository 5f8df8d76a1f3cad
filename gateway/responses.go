package gateway

import (
	"context"
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
// platform's) as the one that created it, in one attempt like any other
// (attempt: the same answers to a failure, the same span, the same
// credential clock). The answer is the provider's.
func (g *Gateway) serveStoredResponse(x *exchange) {
	up := &x.stored
	if !up.read(x) {
		return
	}
	owner, err := g.store.ResponseFor(x.c.account, up.id)
	if err != nil {
		x.refuse(http.StatusNotFound, CodeResponseNotFound,
			"no response with id "+strconv.Quote(truncate(up.id, 64))+" was created by this account through the gateway")
		return
	}
	p := providers.Get(owner.Provider)
	if p == nil {
		x.refuse(http.StatusNotFound, CodeResponseNotFound, "the provider of this response is no longer served")
		return
	}
	pin := routing.PinPlatform
	if owner.CredentialSource == SourceBYOK {
		pin = routing.PinBYOK
	}
	defer annotateRequestSpan(x.span, x.rec)
	if res := g.attempt(x, target{provider: p}, "the stored response", pin, up); !res.answered {
		x.answerFailure(res.failure)
	}
}

// storedUpstream is the upstream request for a stored response: the
// client's method on the response (sub "") or on its input items, passed
// through.
type storedUpstream struct {
	id, sub string
}

// storedRoutes are what the gateway serves of a stored response: the part
// of the path below /v1/responses/{id}, the method, and the request log's
// endpoint.
var storedRoutes = [...]struct{ sub, method, name string }{
	{"", http.MethodGet, "responses.get"},
	{"", http.MethodDelete, "responses.delete"},
	{"input_items", http.MethodGet, "responses.input_items"},
}

// read reads which stored response the request is for and what it does
// with it, and names the request-log endpoint after it. A path or method
// the gateway does not serve is answered here, and read returns false.
func (s *storedUpstream) read(x *exchange) bool {
	rest := strings.TrimPrefix(x.r.URL.Path, "/v1/responses/")
	id, sub, _ := strings.Cut(rest, "/")
	if id == "input_tokens" || id == "compact" || sub == "cancel" {
		x.refuse(http.StatusNotFound, CodeNotFound,
			"/v1/responses/"+rest+" is not served by the gateway (it serves create, retrieve, delete and input_items)")
		return false
	}
	var allow []string
	for _, rt := range storedRoutes {
		if rt.sub != sub {
			continue
		}
		if rt.method == x.r.Method {
			x.rec.Endpoint, s.id, s.sub = rt.name, id, sub
			return true
		}
		allow = append(allow, rt.method)
	}
	if allow == nil {
		x.refuse(http.StatusNotFound, CodeNotFound, "unknown path: the gateway serves /v1/responses/{id} and /v1/responses/{id}/input_items")
		return false
	}
	methods := strings.Join(allow, ", ")
	x.w.Header()["Allow"] = []string{methods}
	x.refuse(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method "+x.r.Method+" is not allowed here; use "+methods)
	return false
}

func (s *storedUpstream) build(ctx context.Context, _ *Gateway, x *exchange, t target) (*http.Request, error) {
	path := "/" + url.PathEscape(s.id)
	if s.sub != "" {
		path += "/" + s.sub
	}
	return providers.NewResponsesRequest(ctx, t.provider, x.cred.endpoint, x.cred.key, x.r.Method, path, x.r.URL.RawQuery, nil)
}

// native: the client speaks the Responses API, as the provider does.
func (s *storedUpstream) native(*exchange) bool { return true }

// relay copies the provider's answer as it comes, flushing as it reads. A
// deleted response is forgotten.
func (s *storedUpstream) relay(g *Gateway, x *exchange, _ target, resp *http.Response) relayed {
	if x.r.Method == http.MethodDelete {
		if err := g.store.ForgetResponse(s.id); err != nil {
			g.logger.Warn("could not forget a deleted response", zap.String("request_id", x.rec.ID), zap.Error(err))
		}
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	x.w.Header()["Content-Type"] = []string{ct}
	x.writeHeader(resp.StatusCode)
	rc := http.NewResponseController(x.w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := x.w.Write(buf[:n]); werr != nil {
				return relayed{code: codeClientGone}
			}
			rc.Flush()
		}
		if err != nil {
			if err != io.EOF {
				return relayed{code: "upstream_stream_error"}
			}
			return relayed{}
		}
	}
}
