package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// The stored-response requests (GET, DELETE, input_items of
// /v1/responses/{id}) make their upstream call through the same attempt as
// every other request: the same answers for a blocked base URL and a
// timeout, the same attempt span, the same credential clock.

// TestStoredResponseBlockedBaseURL: a stored response whose account's own
// key has a base URL the egress policy refuses is answered 502
// byok_base_url_blocked, as a create would be, and nothing is dialed.
func TestStoredResponseBlockedBaseURL(t *testing.T) {
	e := newEnv(t, options{egress: &egress.Policy{AllowHTTP: true}}) // loopback refused
	keys, _ := e.account(t, "acme", 1)
	e.putCred(t, "acme", providers.OpenAI, canaryOpenAI("blk"), store.Extras{BaseURL: e.openai.BaseURL()})
	if err := e.s.PutResponse("resp_blocked", store.ResponseOwner{AccountID: "acme", Provider: providers.OpenAI, CredentialSource: gateway.SourceBYOK}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ method, path string }{
		{http.MethodGet, "/v1/responses/resp_blocked"},
		{http.MethodDelete, "/v1/responses/resp_blocked"},
		{http.MethodGet, "/v1/responses/resp_blocked/input_items"},
	} {
		r := e.do(t, m.method, m.path, keys[0], nil)
		expectError(t, r, http.StatusBadGateway, gateway.CodeBYOKBaseURLBlocked, "public https endpoint")
		lr := e.record(t, r.id)
		if lr.Status != http.StatusBadGateway || lr.ErrorCode != gateway.CodeBYOKBaseURLBlocked ||
			len(lr.Attempts) != 1 || lr.Attempts[0].ErrorClass != providers.ClassBadRequest {
			t.Errorf("%s %s: record %+v", m.method, m.path, lr)
		}
	}
	e.expectNoUpstream(t)
}

// TestStoredResponseTimeout: a provider that does not answer a stored
// response's GET in time is a 504 upstream_timeout, as for a create.
func TestStoredResponseTimeout(t *testing.T) {
	e := newEnv(t, options{headerTimeout: 200 * time.Millisecond})
	keys, _ := e.account(t, "acme", 1)
	id := e.createResponse(t, keys[0])
	e.openai.handle(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(bounded):
		}
	})
	r := e.do(t, http.MethodGet, "/v1/responses/"+id, keys[0], nil)
	expectError(t, r, http.StatusGatewayTimeout, gateway.CodeUpstreamTimeout, "openai did not answer in time")
	if lr := e.record(t, r.id); lr.Status != http.StatusGatewayTimeout || lr.ErrorCode != gateway.CodeUpstreamTimeout ||
		len(lr.Attempts) != 1 || lr.Attempts[0].ErrorClass != providers.ClassTimeout {
		t.Errorf("record %+v", lr)
	}
}

// TestStoredResponseAttemptSpan: under a recording span, a stored
// response's upstream call is an attempt span, child of the request span,
// and the request span carries the credential source.
func TestStoredResponseAttemptSpan(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	id := e.createResponse(t, keys[0])
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	defer tp.Shutdown(context.Background())

	ctx, parent := tp.Tracer("caddy").Start(context.Background(), "handler")
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/v1/responses/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+keys[0])
	w := httptest.NewRecorder()
	e.g.ServeHTTP(w, req)
	parent.End()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var handler, attempt sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		switch s.Name() {
		case "handler":
			handler = s
		case "agent_router.attempt":
			attempt = s
		}
	}
	if handler == nil || attempt == nil {
		t.Fatalf("spans: %v", sr.Ended())
	}
	if attempt.Parent().SpanID() != handler.SpanContext().SpanID() {
		t.Error("the attempt span is not a child of the request span")
	}
	has := func(s sdktrace.ReadOnlySpan, k attribute.Key, want attribute.Value) bool {
		for _, kv := range s.Attributes() {
			if kv.Key == k {
				return kv.Value == want
			}
		}
		return false
	}
	if !has(attempt, "http.response.status_code", attribute.IntValue(200)) || !has(attempt, "agent_router.credential_source", attribute.StringValue("platform")) {
		t.Errorf("attempt span attributes: %v", attempt.Attributes())
	}
	if !has(handler, "agent_router.credential_source", attribute.StringValue("platform")) || !has(handler, "gen_ai.system", attribute.StringValue("openai")) {
		t.Errorf("request span attributes: %v", handler.Attributes())
	}
}

// TestStoredResponseCredentialClock: a stored response served with the
// account's own key moves that key's "last used" clock, as any request
// with it does.
func TestStoredResponseCredentialClock(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	e.putCred(t, "acme", providers.OpenAI, canaryOpenAI("clk"), store.Extras{})
	id := e.createResponse(t, keys[0])
	lastUsed := func() time.Time {
		t.Helper()
		creds, err := e.s.Credentials("acme")
		if err != nil || creds[providers.OpenAI].LastUsedAt == nil {
			t.Fatalf("credential %+v, %v", creds[providers.OpenAI], err)
		}
		return *creds[providers.OpenAI].LastUsedAt
	}
	created := lastUsed()
	for _, m := range []struct{ method, path string }{
		{http.MethodGet, "/v1/responses/" + id},
		{http.MethodGet, "/v1/responses/" + id + "/input_items"},
		{http.MethodDelete, "/v1/responses/" + id},
	} {
		r := e.do(t, m.method, m.path, keys[0], nil)
		if r.status != http.StatusOK || r.header.Get(gateway.HeaderCredential) != gateway.SourceBYOK {
			t.Fatalf("%s %s: %s", m.method, m.path, r)
		}
		if used := lastUsed(); !used.After(created) {
			t.Errorf("%s %s: last used %v, not after %v", m.method, m.path, used, created)
		} else {
			created = used
		}
	}
}
