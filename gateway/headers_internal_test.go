package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// acmeStore is a store in a temporary bbolt file with the account "acme"
// and an API key of it.
func acmeStore(tb testing.TB) (*store.Store, string) {
	tb.Helper()
	s := storetest.Open(tb)
	if _, err := s.CreateAccount("acme", ""); err != nil {
		tb.Fatal(err)
	}
	key, _, err := s.CreateAPIKey("acme", "k")
	if err != nil {
		tb.Fatal(err)
	}
	return s, key
}

// TestServedHeadersFitOneTable: a non-streamed OpenAI answer served with
// the headers OpenAI sends (its request id, its processing time and six
// rate-limit headers) has at most 14 response headers counting the Server
// header Caddy sets before the handler runs: one table of Go's maps. The
// 15th grew the map and doubled net/http's copy of it at WriteHeader on
// every such answer (copyResponseHeaders). A header added to every answer
// must take the place of one, or pay for it here.
func TestServedHeadersFitOneTable(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range map[string]string{
			"X-Request-Id": "req_0123456789abcdef", "Openai-Processing-Ms": "210", "Openai-Version": "2020-10-01",
			"Openai-Organization": "org-x", "X-Ratelimit-Limit-Requests": "10000", "X-Ratelimit-Limit-Tokens": "30000000",
			"X-Ratelimit-Remaining-Requests": "9999", "X-Ratelimit-Remaining-Tokens": "29999980",
			"X-Ratelimit-Reset-Requests": "6ms", "X-Ratelimit-Reset-Tokens": "0s", "Content-Type": "application/json",
		} {
			h[k] = []string{v}
		}
		w.Write([]byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi."},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}`))
	}))
	defer up.Close()
	s, key := acmeStore(t)
	g, err := New(Config{Store: s, Providers: map[string]*ProviderConfig{
		providers.OpenAI: {APIKey: "sk-proj-platform0123456789abcdef", Endpoint: providers.Endpoint{BaseURL: up.URL + "/v1"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	r.Header["Authorization"] = []string{"Bearer " + key}
	w := httptest.NewRecorder()
	w.Header()["Server"] = []string{"Caddy"} // as Caddy's server does before any handler
	g.ServeHTTP(w, r)
	h := w.Result().Header
	if w.Code != http.StatusOK || h.Get(HeaderCost) == "" || h.Get("X-Request-Id") == "" || h.Get("X-Ratelimit-Remaining-Tokens") == "" {
		t.Fatalf("%d %v %s", w.Code, h, w.Body)
	}
	if n := len(h); n > 14 {
		t.Errorf("a served OpenAI answer has %d headers, more than one map table holds (14): %v", n, h)
	}
}
