package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// benchUpstream answers every request with fixed bytes, so the whole-request
// benchmarks measure the gateway (and net/http), not a fake's bookkeeping:
// a chat completion, a stream of five chunks and a usage chunk, or a
// stored response.
func benchUpstream(b *testing.B) *httptest.Server {
	b.Helper()
	answer := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there, in five words."},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}`)
	chunk := `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" hi"},"finish_reason":null}]}` + "\n\n"
	stream := []byte(strings.Repeat(chunk, 5) +
		`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16}}` + "\n\ndata: [DONE]\n\n")
	stored := []byte(`{"id":"resp_bench","object":"response","status":"completed","model":"gpt-4o-mini","output":[]}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodGet:
			w.Header()["Content-Type"] = []string{"application/json"}
			w.Write(stored)
		case bytes.Contains(body, []byte(`"stream":true`)):
			w.Header()["Content-Type"] = []string{"text/event-stream"}
			w.Write(stream)
		default:
			w.Header()["Content-Type"] = []string{"application/json"}
			w.Write(answer)
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkServeHTTP is one whole request through ServeHTTP to a provider
// on loopback: authenticate, read, plan, credential, the upstream call,
// relay and record. allocs/op counts the process (the loopback upstream's
// server too, which is the same for every version of the gateway).
func BenchmarkServeHTTP(b *testing.B) {
	up := benchUpstream(b)
	s, key := acmeStore(b)
	if err := s.PutResponse("resp_bench", store.ResponseOwner{AccountID: "acme", Provider: providers.OpenAI, CredentialSource: SourcePlatform}); err != nil {
		b.Fatal(err)
	}
	// The same gateway three times: without limits; with a limiter whose
	// policy gives the account a budget ("/budget"); and one with a
	// budget and a rate limit (requests, tokens and requests in flight,
	// "/limits"), whose state goes out in the rate-limit headers. None
	// refuses.
	acct := limits.Scope{Kind: limits.ScopeAccount, Account: "acme"}
	month := limits.Budget{ID: "month", Scope: acct, Amount: limits.MustUSD("1000000"), Window: limits.WindowMonth}
	limiters := map[string]limits.Set{
		"/budget": {Budgets: []limits.Budget{month}},
		"/limits": {Budgets: []limits.Budget{month}, RateLimits: []limits.RateLimit{{ID: "rl", Scope: acct, RPM: 1 << 40, TPM: 1 << 40, Concurrent: 1 << 20}}},
	}
	gateways := map[string]*Gateway{}
	for _, name := range []string{"", "/budget", "/limits"} {
		cfg := Config{Store: s, Providers: map[string]*ProviderConfig{
			providers.OpenAI: {APIKey: "sk-proj-platform0123456789abcdef", Endpoint: providers.Endpoint{BaseURL: up.URL + "/v1"}},
		}}
		if name != "" {
			lim, err := limits.New(limits.Config{Backend: limits.NewLocal(limits.NewMapKV())})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { lim.Close() })
			if err := lim.Install(limiters[name]); err != nil {
				b.Fatal(err)
			}
			cfg.Limits = lim
		}
		g, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(g.Close)
		gateways[name] = g
	}
	for _, c := range []struct {
		name, method, path, body string
	}{
		{"chat", http.MethodPost, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi in five words."}]}`},
		{"chat-stream", http.MethodPost, "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hi in five words."}]}`},
		{"responses.get", http.MethodGet, "/v1/responses/resp_bench", ""},
		{"chat/budget", http.MethodPost, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi in five words."}]}`},
		{"chat/limits", http.MethodPost, "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi in five words."}]}`},
		{"chat-stream/limits", http.MethodPost, "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hi in five words."}]}`},
	} {
		g := gateways[""]
		if i := strings.IndexByte(c.name, '/'); i >= 0 && !strings.HasPrefix(c.name, "responses") {
			g = gateways[c.name[i:]]
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
				r.Header["Authorization"] = []string{"Bearer " + key}
				w := httptest.NewRecorder()
				g.ServeHTTP(w, r)
				if w.Code != http.StatusOK || strings.Contains(c.name, "stream") != strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
					b.Fatalf("%d %s %s", w.Code, w.Header().Get("Content-Type"), w.Body)
				}
			}
		})
	}
}
