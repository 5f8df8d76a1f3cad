package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/gateway"
)

// TestEndpoints walks the endpoint table from outside: each path's answer
// to its own method and to another, in its door's envelope, and the names
// its request-log record carries.
func TestEndpoints(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	id := e.createResponse(t, keys[0])
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	messages := `{"model":"claude-haiku-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	for _, c := range []struct {
		method, path, body string
		status             int
		endpoint, api      string
		allow              string // on a 405
		anthropic          bool   // Anthropic's envelope
	}{
		{"POST", "/v1/chat/completions", chat, 200, "chat.completions", "chat", "", false},
		{"GET", "/v1/chat/completions", "", 405, "chat.completions", "chat", "POST", false},
		{"POST", "/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`, 200, "embeddings", "embeddings", "", false},
		{"PUT", "/v1/embeddings", "{}", 405, "embeddings", "embeddings", "POST", false},
		{"GET", "/v1/models", "", 200, "models", "", "", false},
		{"DELETE", "/v1/models", "", 405, "models", "", "GET", false},
		{"POST", "/v1/messages", messages, 200, "messages", "messages", "", false},
		{"GET", "/v1/messages", "", 405, "messages", "messages", "POST", true},
		{"POST", "/v1/messages/count_tokens", messages, 200, "messages.count_tokens", "messages", "", false},
		{"GET", "/v1/messages/count_tokens", "", 405, "messages.count_tokens", "messages", "POST", true},
		{"POST", "/v1/responses", `{"model":"gpt-4o-mini","input":"hi"}`, 200, "responses", "responses", "", false},
		{"GET", "/v1/responses", "", 405, "responses", "responses", "POST", false},
		{"GET", "/v1/responses/" + id, "", 200, "responses.get", "responses", "", false},
		{"GET", "/v1/responses/" + id + "/input_items", "", 200, "responses.input_items", "responses", "", false},
		{"PUT", "/v1/responses/" + id, "{}", 405, "responses", "responses", "GET, DELETE", false},
		{"POST", "/v1/responses/" + id + "/input_items", "{}", 405, "responses", "responses", "GET", false},
		{"GET", "/v1/responses/" + id + "/steps", "", 404, "responses", "responses", "", false},
		{"POST", "/v1/responses/" + id + "/cancel", "", 404, "responses", "responses", "", false},
		{"POST", "/v1/responses/compact", "{}", 404, "responses", "responses", "", false},
		{"GET", "/v1/responses/resp_unknown", "", 404, "responses.get", "responses", "", false},
		{"DELETE", "/v1/responses/" + id, "", 200, "responses.delete", "responses", "", false},
	} {
		r := e.do(t, c.method, c.path, keys[0], strings.NewReader(c.body))
		name := c.method + " " + c.path
		if r.status != c.status {
			t.Errorf("%s: %s, want %d", name, r, c.status)
			continue
		}
		if c.status == 405 && r.header.Get("Allow") != c.allow {
			t.Errorf("%s: Allow %q, want %q", name, r.header.Get("Allow"), c.allow)
		}
		if c.status >= 400 {
			if got := gjson.GetBytes(r.body, "type").Str == "error"; got != c.anthropic {
				t.Errorf("%s: Anthropic's envelope %v, want %v: %s", name, got, c.anthropic, r.body)
			}
		}
		if lr := e.record(t, r.id); lr.Endpoint != c.endpoint || lr.API != c.api || lr.Status != c.status {
			t.Errorf("%s: record endpoint %q api %q status %d, want %q %q %d", name, lr.Endpoint, lr.API, lr.Status, c.endpoint, c.api, c.status)
		}
	}
}

// TestUnownedPath: the gateway owns only its endpoints' paths; called for
// another one anyway, it answers 404 in OpenAI's envelope and serves
// nothing.
func TestUnownedPath(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	for _, path := range []string{"/v1/completions", "/v1/chat/completions/x", "/v1/messagesx", "/v1", "/"} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(chatBody("gpt-4o-mini")))
		if e.g.Owns(req) {
			t.Errorf("Owns(%s)", path)
		}
		req.Header.Set("Authorization", "Bearer "+keys[0])
		w := httptest.NewRecorder()
		e.g.ServeHTTP(w, req)
		expectError(t, &reply{status: w.Code, header: w.Header(), body: w.Body.Bytes()}, 404, gateway.CodeNotFound)
	}
	for _, path := range []string{"/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/messages", "/v1/messages/count_tokens", "/v1/responses", "/v1/responses/", "/v1/responses/resp_1/input_items"} {
		if !e.g.Owns(httptest.NewRequest(http.MethodGet, path, nil)) {
			t.Errorf("!Owns(%s)", path)
		}
	}
	e.expectNoUpstream(t)
}
