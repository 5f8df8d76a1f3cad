package gateway

// Benchmarks of the per-request hot path, piece by piece. They live in
// package gateway because resolve, pickCredential and relayStream are
// unexported.

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

func benchGateway(b *testing.B) (*Gateway, *store.Store, string) {
	g, s, key, _ := benchGatewayProfile(b)
	return g, s, key
}

// benchGatewayProfile also returns a key bound to the routing profile "team",
// which redefines "smart" and adds "team-fast".
func benchGatewayProfile(b *testing.B) (*Gateway, *store.Store, string, string) {
	b.Helper()
	s, key := acmeStore(b)
	teamKey, _, err := s.CreateAPIKeyWithProfile("acme", "bench-team", "team")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.PutCredential("acme", providers.OpenAI, "sk-proj-bench0123456789abcdefghij", "sk-proj-…ghij", store.Extras{}); err != nil {
		b.Fatal(err)
	}
	g, err := New(Config{Store: s, Providers: map[string]*ProviderConfig{
		providers.OpenAI: {APIKey: "sk-proj-platform0123456789abcdef", Endpoint: providers.Endpoint{Organization: "org-p"}},
		providers.Azure:  {APIKey: "0123456789abcdef0123456789abcdef", Endpoint: providers.Endpoint{BaseURL: "https://x.openai.azure.com"}, Models: map[string]string{"my-gpt": "deploy-1"}},
	}, Routing: routing.Config{
		Aliases: map[string]string{"fast": "openai/gpt-4o-mini"},
		Routes: map[string]*routing.Route{
			"smart":  {Targets: []routing.Target{{Model: "gpt-4o", Credential: routing.PinBYOK}, {Model: "gpt-4o", Credential: routing.PinPlatform}}},
			"shared": {Strategy: routing.StrategySplit, Targets: []routing.Target{{Model: "gpt-4o-mini", Credential: routing.PinBYOK, Weight: 70}, {Model: "gpt-4o-mini", Credential: routing.PinPlatform, Weight: 30}}},
		},
	}, Profiles: map[string]routing.Config{
		"team": {
			Aliases: map[string]string{"team-fast": "fast"},
			Routes:  map[string]*routing.Route{"smart": {Targets: []routing.Target{{Model: "gpt-4o-mini", Credential: routing.PinBYOK}, {Model: "gpt-4o", Credential: routing.PinPlatform}}}},
		},
	}})
	if err != nil {
		b.Fatal(err)
	}
	return g, s, key, teamKey
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
				if repeatedMember(body) != "" {
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
				if cred, skip := g.pickCredential(s.Snapshot(), "acme", c.provider, routing.PinAuto, time.Time{}); skip != "" || cred.source != c.want {
					b.Fatal("wrong credential")
				}
			}
		})
	}
}

// BenchmarkRelayStreamEvent relays a 100-event OpenAI-shaped stream through
// the passthrough translator; ns/event is the cost of one relayed event
// (parse, usage check, write, flush).
func BenchmarkRelayStreamEvent(b *testing.B) {
	const events = 100
	event := `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}` + "\n\n"
	finish := `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	stream := []byte(strings.Repeat(event, events-1) + finish + "data: [DONE]\n\n")
	w := httptest.NewRecorder()
	r := bytes.NewReader(stream)
	p := providers.Get(providers.OpenAI)
	call := &providers.Call{Stream: true}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream)
		w.Body.Reset()
		if code := relayEvents(w, context.Background(), r, p.NewStream(call), &credential{}); code != "" {
			b.Fatal(code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
	if !w.Flushed || w.Body.Len() != len(stream) {
		b.Fatalf("stream not relayed whole and flushed: %d of %d bytes", w.Body.Len(), len(stream))
	}
}

// BenchmarkRoutePlan: the plan for a plain model, an alias, a fallback
// route and a split.
func BenchmarkRoutePlan(b *testing.B) {
	g, _, _ := benchGateway(b)
	for _, model := range []string{"gpt-4o", "fast", "smart", "shared"} {
		b.Run(model, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p := g.plan(g.routes, model); len(p.Attempts) == 0 {
					b.Fatal("empty plan")
				}
			}
		})
	}
}

// BenchmarkHotPath is everything the gateway does for a request before the
// upstream call: authenticate, pick the key's routing table (its profile's
// or the site's), read model, plan, resolve, pick the credential. Target
// (issue 6): under 2 µs and at most 5 allocations.
func BenchmarkHotPath(b *testing.B) {
	g, s, key, teamKey := benchGatewayProfile(b)
	for _, c := range []struct{ name, key, model, profile string }{
		{"gpt-4o-mini", key, "gpt-4o-mini", ""},
		{"smart", key, "smart", ""},
		{"profile/smart", teamKey, "smart", "team"},
		{"profile/site-route", teamKey, "shared", "team"},
	} {
		body := []byte(`{"model":"` + c.model + `","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi in five words."}],"temperature":0.2,"stream":true}`)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				snap := s.Snapshot()
				entry, ok := snap.LookupKey(store.HashAPIKey(c.key))
				if !ok || providers.CheckRequestJSON(body) != nil || repeatedMember(body) != "" || findRefs(&openAIDoor, providers.OpChat, body).foreign != "" {
					b.Fatal("auth or body")
				}
				profile, routes := g.keyRoutes(entry)
				if profile != c.profile {
					b.Fatalf("profile %q, want %q", profile, c.profile)
				}
				mr := gjson.GetBytes(body, "model")
				p := g.plan(routes, mr.Str)
				t, ok := g.resolve(p.Attempts[0].Model)
				if !ok {
					b.Fatal("not resolved")
				}
				if _, skip := g.pickCredential(snap, entry.AccountID, t.provider.Name, p.Attempts[0].Pin, time.Time{}); skip != "" {
					b.Fatal(skip)
				}
			}
		})
	}
}

// BenchmarkFindRefs reads the provider-side object references of a body:
// a chat-completions body without any (the hot path: two byte scans), and
// a Codex-sized Responses body (about 64 KiB of history with function
// calls, walked member by member).
func BenchmarkFindRefs(b *testing.B) {
	chat := []byte(`{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi in five words."}],"temperature":0.2,"stream":true}`)
	var items []string
	for i := 0; len(strings.Join(items, ",")) < 64<<10; i++ {
		items = append(items, fmt.Sprintf(`{"role":"user","content":[{"type":"input_text","text":"step %d: read the file and fix the tests, then run them again"}]}`, i),
			fmt.Sprintf(`{"type":"function_call","call_id":"call_%d","name":"shell","arguments":"{\"command\":[\"go\",\"test\",\"./...\"]}"}`, i),
			fmt.Sprintf(`{"type":"function_call_output","call_id":"call_%d","output":"ok  \tgithub.com/x/y\t0.%03ds"}`, i, i))
	}
	responses := []byte(`{"model":"gpt-5-codex","instructions":"You are Codex.","input":[` + strings.Join(items, ",") + `],"tools":[{"type":"function","name":"shell","parameters":{"type":"object"}}],"stream":true,"store":false}`)
	for _, c := range []struct {
		name string
		door *door
		body []byte
	}{{"chat", &openAIDoor, chat}, {"responses-64KiB", &responsesDoor, responses}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if r := findRefs(c.door, providers.OpChat, c.body); r.foreign != "" || r.hasPrevious {
					b.Fatal(r)
				}
			}
		})
	}
}
