package gateway

// Benchmarks of the per-request hot path, piece by piece. They live in
// package gateway because resolve, pickCredential and relayStream are
// unexported.

import (
	"bytes"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

func benchGateway(b *testing.B) (*Gateway, *store.Store, string) {
	b.Helper()
	s, err := store.Open(filepath.Join(b.TempDir(), "ar.db"), make([]byte, store.MasterKeySize), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if _, err := s.CreateAccount("acme", ""); err != nil {
		b.Fatal(err)
	}
	key, _, err := s.CreateAPIKey("acme", "bench")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.PutCredential("acme", providers.OpenAI, "sk-proj-bench0123456789abcdefghij", "sk-proj-…ghij", store.Extras{}); err != nil {
		b.Fatal(err)
	}
	g, err := New(Config{Store: s, Providers: map[string]*ProviderConfig{
		providers.OpenAI: {APIKey: "sk-proj-platform0123456789abcdef", Endpoint: providers.Endpoint{Organization: "org-p"}},
		providers.Azure:  {APIKey: "0123456789abcdef0123456789abcdef", Endpoint: providers.Endpoint{BaseURL: "https://x.openai.azure.com"}, Models: map[string]string{"my-gpt": "deploy-1"}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return g, s, key
}

func BenchmarkAPIKeyLookup(b *testing.B) {
	_, s, key := benchGateway(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.Snapshot().LookupKey(store.HashAPIKey(key)); !ok {
			b.Fatal("key not found")
		}
	}
}

// BenchmarkModelParse: the duplicate-"model" check, gjson's model, resolve.
func BenchmarkModelParse(b *testing.B) {
	g, _, _ := benchGateway(b)
	for _, model := range []string{"gpt-4o-mini", "openai/gpt-4o-mini", "my-gpt", "openai/gpt-oss-120b", "meta-llama/Llama-3.3-70B-Instruct-Turbo"} {
		body := []byte(`{"model":"` + model + `","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi in five words."}],"temperature":0.2,"stream":true}`)
		b.Run(model, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if repeatsModel(body) {
					b.Fatal("repeated model")
				}
				mr := gjson.GetBytes(body, "model")
				if _, ok := g.resolve(mr.Str); !ok {
					b.Fatal("not resolved")
				}
			}
		})
	}
}

func BenchmarkPickCredential(b *testing.B) {
	g, s, _ := benchGateway(b)
	for _, c := range []struct{ name, provider, want string }{
		{"byok", providers.OpenAI, SourceBYOK},
		{"platform", providers.Azure, SourcePlatform},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if cred, ok := g.pickCredential(s.Snapshot(), "acme", c.provider); !ok || cred.source != c.want {
					b.Fatal("wrong credential")
				}
			}
		})
	}
}

func BenchmarkRelayStreamEvent(b *testing.B) {
	event := []byte(`data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}` + "\n\n")
	w := httptest.NewRecorder()
	r := bytes.NewReader(event)
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(event)
		w.Body.Reset()
		relayStream(w, r)
	}
	if !w.Flushed || w.Body.Len() != len(event) {
		b.Fatal("event not relayed and flushed")
	}
}
