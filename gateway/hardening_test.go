package gateway_test

// Hostile input, from clients and from upstreams: none of it may crash,
// panic, bloat or steer the gateway.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/egress/egresstest"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

func nested(depth int, inner string) string {
	return strings.Repeat("[", depth) + inner + strings.Repeat("]", depth)
}

func TestDeepNestingRefused(t *testing.T) {
	e := newEnv(t, options{maxBody: 8 << 20})
	keys, _ := e.account(t, "acme", 1)

	// The body from the report: ~7 MiB of '[' after a valid prefix.
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x":` + strings.Repeat("[", 7<<20)
	start := time.Now()
	r := e.post(t, "/v1/chat/completions", keys[0], body)
	took := time.Since(start)
	expectError(t, r, 400, gateway.CodeInvalidJSON, fmt.Sprintf("deeper than %d levels", providers.MaxJSONDepth))
	if took > 2*time.Second { // a deadlock guard; the cost is measured by BenchmarkJSONDepth
		t.Errorf("the refusal took %v", took)
	}
	// Closed brackets, and objects, are the same.
	for _, inner := range []string{nested(100000, "1"), strings.Repeat(`{"a":`, 50000) + "1" + strings.Repeat("}", 50000)} {
		r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","x":`+inner+`}`)
		expectError(t, r, 400, gateway.CodeInvalidJSON, "deeper than")
	}
	// Brackets inside strings do not count.
	r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"`+strings.Repeat("[{", 5000)+`\"[`+`"}]}`)
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	e.openai.Reset()

	// A real tool schema nesting to the limit is served; one level more
	// is refused before anything goes upstream.
	schema := func(levels int) string { // each level: {"type":"array","items":...}
		return strings.Repeat(`{"type":"array","items":`, levels) + `{"type":"string"}` + strings.Repeat("}", levels)
	}
	// Depth of the body: 1 (body) + 1 (tools) + 1 (tool) + 1 (function) + 1 (parameters object) = 5 + levels.
	ok := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":` + schema(providers.MaxJSONDepth-5) + `}}]}`
	r = e.post(t, "/v1/chat/completions", keys[0], ok)
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	tooDeep := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":` + schema(providers.MaxJSONDepth-4) + `}}]}`
	if n := len(e.openai.Records()); n != 1 {
		t.Fatalf("%d upstream requests, want 1", n)
	}
	r = e.post(t, "/v1/chat/completions", keys[0], tooDeep)
	expectError(t, r, 400, gateway.CodeInvalidJSON, "deeper than")
	if n := len(e.openai.Records()); n != 1 {
		t.Errorf("%d upstream requests after the refusal, want still 1", n)
	}
}

func TestInvalidUTF8Refused(t *testing.T) {
	var observed []string
	e := newEnv(t, options{observe: func(_ *http.Request, rec *store.LogRecord) {
		observed = append(observed, rec.Model, rec.UpstreamModel)
	}})
	keys, _ := e.account(t, "acme", 1)
	for _, body := range []string{
		"{\"model\":\"gpt-4o-mini\xff\",\"messages\":[]}",
		"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xc3\"}]}",
		"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", // a UTF-16 surrogate
		"{\"model\xfe\":\"gpt-4o-mini\"}",
	} {
		r := e.post(t, "/v1/chat/completions", keys[0], body)
		expectError(t, r, 400, gateway.CodeInvalidJSON, "not valid UTF-8")
	}
	e.expectNoUpstream(t)
	for _, s := range observed {
		if !utf8.ValidString(s) {
			t.Errorf("the observer saw an invalid UTF-8 model %q", s)
		}
	}
	// Escaped non-ASCII (and escaped invalid surrogates, which JSON allows
	// and decoders replace) are valid UTF-8 bodies and pass.
	r := e.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"caf\u00e9 \ud800"}]}`)
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
}

// panicFlusher breaks the first Write of a stream's events.
type panicFlusher struct {
	http.ResponseWriter
	panicked bool
}

func (p *panicFlusher) Write(b []byte) (int, error) {
	if !p.panicked {
		p.panicked = true
		panic(fmt.Errorf("broken writer %s", "sk-proj-CANARYpanic"+strings.Repeat("x", 20)))
	}
	return p.ResponseWriter.Write(b)
}

func (p *panicFlusher) Flush() { p.ResponseWriter.(http.Flusher).Flush() }

func TestPanicRecovered(t *testing.T) {
	// A panicking observer (metrics) costs neither the answer nor the record.
	e := newEnv(t, options{observe: func(*http.Request, *store.LogRecord) { panic("label value is not valid UTF-8") }})
	keys, _ := e.account(t, "acme", 1)
	r := e.chat(t, keys[0], "gpt-4o-mini")
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	if rec := e.record(t, r.id); rec.Status != 200 {
		t.Errorf("record %+v", rec)
	}
	if n := e.observed.FilterMessage("recovered from a panic while recording a request's metrics").Len(); n != 1 {
		t.Errorf("%d panic log lines, want 1", n)
	}

	// A panic in the middle of a stream: the client gets an error event,
	// not a dropped connection; the panic's value is not logged.
	e2 := newEnv(t, options{wrap: func(w http.ResponseWriter) http.ResponseWriter { return &panicFlusher{ResponseWriter: w} }})
	keys, _ = e2.account(t, "acme", 1)
	r = e2.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","stream":true,"messages":[]}`)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"code":"internal_error"`)) || bytes.Contains(r.body, []byte("[DONE]")) {
		t.Errorf("stream after a panic: %s", r)
	}
	if rec := e2.record(t, r.id); rec.ErrorCode != gateway.CodeInternal {
		t.Errorf("record %+v", rec)
	}
	logged := e2.observed.FilterMessage("recovered from a panic while serving a request").AllUntimed()
	if len(logged) != 1 {
		t.Fatalf("%d panic log lines, want 1", len(logged))
	}
	if b, _ := json.Marshal(logged[0].ContextMap()); bytes.Contains(b, []byte("CANARY")) {
		t.Errorf("the panic's value reached the log: %s", b)
	}
}

func TestUnresolvedModelsLeaveNoUsageRows(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	for i := 0; i < 1000; i++ {
		r := e.chat(t, keys[0], fmt.Sprintf("invented-model-%d", i))
		if r.status != http.StatusNotFound {
			t.Fatalf("invented name: %v", r)
		}
	}
	// A provider-prefixed name resolves but the provider refuses it: still
	// client data, still no row of its own.
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Status: 404, Body: `{"error":{"message":"The model does not exist","type":"invalid_request_error","code":"model_not_found"}}`}
	})
	for i := 0; i < 20; i++ {
		e.chat(t, keys[0], fmt.Sprintf("openai/invented-%d", i))
	}
	e.openai.SetResponder(nil)
	expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourcePlatform)
	e.waitIdle(t)
	e.s.FlushLog()
	res, err := e.s.Usage(store.UsageQuery{From: time.Now().Add(-time.Hour), GroupBy: []string{store.DimModel}})
	if err != nil {
		t.Fatal(err)
	}
	var models []string
	var requests int64
	for _, g := range res.Totals {
		models = append(models, g.Key[store.DimModel])
		requests += g.Requests
	}
	if len(models) != 2 || requests != 1021 {
		t.Errorf("usage models %q over %d requests, want [- gpt-4o-mini] over 1021", models, requests)
	}
}

func TestUpstreamHostileAnswers(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)

	// A whole answer nested a million deep.
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Body: `{"id":"x","choices":` + strings.Repeat("[", 1<<20)}
	})
	r := e.chat(t, keys[0], "gpt-4o-mini")
	expectError(t, r, 502, gateway.CodeUpstreamError, "could not be read")

	// Stream events nested deep: relayed or refused, never parsed deep.
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Events: []string{`{"id":"c","object":"chat.completion.chunk","choices":[],"usage":` + nested(1<<20, "") + `}`, "[DONE]"}}
	})
	r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","stream":true,"messages":[]}`)
	if r.status != 200 {
		t.Errorf("deep passthrough event: %v", r)
	}
	e.anthropic.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{RawEvents: []string{"event: message_start\ndata: {\"type\":\"message_start\",\"message\":" + nested(1<<20, "") + "}\n\n"}}
	})
	r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"claude-sonnet-4-5","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"code":"upstream_stream_invalid"`)) {
		t.Errorf("deep anthropic event: %.300s", r)
	}

	// An event of 48 MiB: the stream ends with an error event once the
	// event passes 8 MiB.
	e.openai.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"))
		chunk := []byte("data: " + strings.Repeat("x", 1<<20) + "\n")
		for i := 0; i < 48; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		w.Write([]byte("\ndata: [DONE]\n\n"))
	})
	r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","stream":true,"messages":[]}`)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"code":"upstream_event_too_large"`)) || len(r.body) > 1<<20 {
		t.Errorf("48 MiB event: status %d, %d bytes, %.300s", r.status, len(r.body), r.body)
	}
	if rec := e.record(t, r.id); rec.ErrorCode != "upstream_event_too_large" {
		t.Errorf("record error code %q", rec.ErrorCode)
	}
}

func TestUpstreamErrorCodesAndAccountIDs(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)

	// Anthropic's mid-stream error.type becomes a code only in a code's
	// shape: a key or markup there is replaced.
	for _, typ := range []string{`sk-ant-api03-CANARYtype` + randAlnum(30), `<script>alert(1)</script>`, strings.Repeat("a", 100)} {
		typ := typ
		e.anthropic.SetResponder(func(providertest.Record) providertest.Response {
			b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": "boom"}})
			return providertest.Response{RawEvents: []string{"event: error\ndata: " + string(b) + "\n\n"}}
		})
		r := e.post(t, "/v1/chat/completions", keys[0], `{"model":"claude-sonnet-4-5","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		if !bytes.Contains(r.body, []byte(`"code":"upstream_stream_error"`)) || bytes.Contains(r.body, []byte(typ)) {
			t.Errorf("error.type %.20q: %s", typ, r.body)
		}
		if rec := e.record(t, r.id); rec.ErrorCode != "upstream_stream_error" {
			t.Errorf("error.type %.20q: record error code %q", typ, rec.ErrorCode)
		}
	}
	// A well-formed one is kept.
	e.anthropic.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{RawEvents: []string{"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"}}
	})
	r := e.post(t, "/v1/chat/completions", keys[0], `{"model":"claude-sonnet-4-5","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if !bytes.Contains(r.body, []byte(`"code":"overloaded_error"`)) {
		t.Errorf("overloaded_error: %s", r.body)
	}

	// OpenAI's 429 names the organization: a tenant served by the platform
	// key never learns the platform's; a BYOK tenant sees its own.
	const platformOrg = "org-PlAtFoRm0123456789abcdEF"
	msg := "Rate limit reached for gpt-4o-mini in organization " + platformOrg + " (project org-platform, proj_ABCDEFGHIJKLMNOPQRSTUVWX) on tokens per min (TPM): Limit 200000."
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		b, _ := json.Marshal(map[string]any{"error": map[string]string{"message": msg, "type": "tokens", "code": "rate_limit_exceeded"}})
		return providertest.Response{Status: 429, Body: string(b)}
	})
	r = e.chat(t, keys[0], "gpt-4o-mini")
	d := expectError(t, r, 429, "rate_limit_exceeded", "Rate limit reached", "Limit 200000")
	for _, id := range []string{platformOrg, "org-platform", "proj_ABCDEFGHIJKLMNOPQRSTUVWX"} {
		if strings.Contains(d.Message, id) {
			t.Errorf("platform-served 429 names %s: %q", id, d.Message)
		}
	}
	e.putCred(t, "acme", providers.OpenAI, canaryOpenAI("org"), store.Extras{})
	r = e.chat(t, keys[0], "gpt-4o-mini")
	if d := expectError(t, r, 429, "rate_limit_exceeded"); !strings.Contains(d.Message, platformOrg) {
		t.Errorf("BYOK-served 429 lost the account's own organization: %q", d.Message)
	}
}

// TestBYOKBaseURLGuardedAtDial: a BYOK base URL whose name resolves to an
// internal address (saved before the check existed, or rebound after it)
// is refused when the connection is made: 502 byok_base_url_blocked, no
// fallback, and nothing reaches the address.
func TestBYOKBaseURLGuardedAtDial(t *testing.T) {
	dns := egresstest.NewDNS(t, nil)
	pol := &egress.Policy{AllowHTTP: true, Resolver: dns.Resolver()}
	e := newEnv(t, options{egress: pol, routing: routing.Config{Routes: map[string]*routing.Route{
		"chain": {Targets: []routing.Target{{Model: "gpt-4o-mini", Credential: routing.PinBYOK}, {Model: "gpt-4o-mini", Credential: routing.PinPlatform}}},
	}}})
	keys, _ := e.account(t, "acme", 1)
	u, _ := url.Parse(e.openai.BaseURL())
	_, port, _ := net.SplitHostPort(u.Host)
	dns.Set("rebind.example.com", netip.MustParseAddr("127.0.0.1"))
	for _, base := range []string{
		"http://rebind.example.com:" + port + "/v1",
		"http://127.0.0.1:" + port + "/v1",
		"http://[::ffff:127.0.0.1]:" + port + "/v1",
	} {
		e.putCred(t, "acme", providers.OpenAI, canaryOpenAI("ssrf"), store.Extras{BaseURL: base})
		for _, model := range []string{"gpt-4o-mini", "chain"} {
			r := e.chat(t, keys[0], model)
			expectError(t, r, 502, gateway.CodeBYOKBaseURLBlocked, "public https endpoint")
			if r.header.Get(gateway.HeaderAttempts) != "1" {
				t.Errorf("%s via %s: %s attempts, want 1 (never retried)", base, model, r.header.Get(gateway.HeaderAttempts))
			}
		}
	}
	e.expectNoUpstream(t)

	// Once the name resolves to a public address, the guard lets it
	// through (the connection then fails: nothing listens there).
	dns.Set("rebind.example.com", netip.MustParseAddr("192.0.2.1"))
	e.putCred(t, "acme", providers.OpenAI, canaryOpenAI("ssrf"), store.Extras{BaseURL: "http://rebind.example.com:" + port + "/v1"})
	r := e.chat(t, keys[0], "gpt-4o-mini")
	expectError(t, r, 502, gateway.CodeBYOKBaseURLBlocked) // 192.0.2.0/24 is documentation space, refused too
	dns.Set("rebind.example.com", netip.MustParseAddr("127.0.0.1"))

	// The platform's own base URL (operator config) is trusted: the
	// platform target serves on loopback.
	e.s.DeleteCredential("acme", providers.OpenAI)
	expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourcePlatform)
}

// TestRepeatedMembersCannotHideUsage: a body that names stream_options (or
// stream, or model) twice is refused: providers' decoders read the last
// copy and the gateway the first, so it could otherwise keep the provider
// from sending the usage the gateway meters by.
func TestRepeatedMembersCannotHideUsage(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	for _, body := range []string{
		`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":false}}`,
		`{"model":"gpt-4o-mini","stream":false,"messages":[],"stream":true}`,
		`{"model":"gpt-4o-mini","stream":true,"\u0073tream_options":{"include_usage":true},"stream_options":{"include_usage":false}}`,
		// A budget's reservation reads the output bound: a small first
		// copy would reserve little for the large one the provider reads.
		`{"model":"gpt-4o-mini","max_tokens":1,"messages":[{"role":"user","content":"hi"}],"max_tokens":100000}`,
		`{"model":"gpt-4o-mini","max_completion_tokens":1,"max_completion_tokens":100000,"messages":[]}`,
		`{"model":"gpt-4o-mini","max_output_tokens":1,"max_\u006futput_tokens":100000,"input":"hi"}`,
	} {
		r := e.post(t, "/v1/chat/completions", keys[0], body)
		expectError(t, r, 400, gateway.CodeInvalidJSON, "more than once")
	}
	e.expectNoUpstream(t)
	// The edits providers make remove every copy of what they set, too.
	if got := string(providers.SetField([]byte(`{"a":1,"stream_options":{},"stream_options":{"include_usage":false}}`), "stream_options", []byte(`{"include_usage":true}`))); strings.Count(got, "stream_options") != 1 || !strings.Contains(got, `"stream_options":{"include_usage":true}`) {
		t.Errorf("SetField left %s", got)
	}
}
