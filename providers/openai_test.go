package providers

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func oaiUpstreamBody(t *testing.T, provider string, c *Call) []byte {
	t.Helper()
	if c.Endpoint.BaseURL == "" {
		c.Endpoint.BaseURL = "https://example.test"
	}
	if c.Key == "" {
		c.Key = "sk-proj-" + "0123456789abcdefghij"
	}
	req, err := Get(provider).NewCallRequest(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(req.Body)
	if !json.Valid(b) {
		t.Fatalf("%s: invalid JSON upstream: %s", provider, b)
	}
	return b
}

func TestOpenAIAsksForStreamUsage(t *testing.T) {
	cases := []struct {
		name, body   string
		stream, incl bool
		want         string // stream_options upstream ("" = absent)
	}{
		{"stream without options", `{"model":"gpt-4o","stream":true}`, true, false, `{"include_usage":true}`},
		{"stream with other options", `{"model":"gpt-4o","stream":true,"stream_options":{"x":1}}`, true, false, `{"include_usage":true,"x":1}`},
		{"stream with include_usage false", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false}}`, true, false, `{"include_usage":true}`},
		{"client asked", `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`, true, true, `{"include_usage":true}`},
		{"not streamed", `{"model":"gpt-4o"}`, false, false, ``},
	}
	for _, provider := range []string{OpenAI, Azure} {
		for _, c := range cases {
			b := oaiUpstreamBody(t, provider, &Call{Op: OpChat, Model: "gpt-4o", Body: []byte(c.body), Stream: c.stream, IncludeUsage: c.incl})
			got := gjson.GetBytes(b, "stream_options")
			if c.want == "" {
				if got.Exists() {
					t.Errorf("%s %s: stream_options added: %s", provider, c.name, b)
				}
				continue
			}
			var g, w any
			json.Unmarshal([]byte(got.Raw), &g)
			json.Unmarshal([]byte(c.want), &w)
			if gs, _ := json.Marshal(g); string(gs) != oaiJSON(w) {
				t.Errorf("%s %s: stream_options = %s, want %s", provider, c.name, got.Raw, c.want)
			}
		}
	}
	// Providers whose support is unverified are not asked.
	for _, provider := range []string{Mistral, Together, Perplexity} {
		b := oaiUpstreamBody(t, provider, &Call{Op: OpChat, Model: "m", Body: []byte(`{"model":"m","stream":true}`), Stream: true})
		if gjson.GetBytes(b, "stream_options").Exists() {
			t.Errorf("%s: stream_options added: %s", provider, b)
		}
	}
}

func oaiJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestOpenAIMaxCompletionTokens(t *testing.T) {
	for model, renamed := range map[string]bool{"o1": true, "o3-mini": true, "o4-mini": true, "gpt-5": true, "gpt-5-mini": true, "gpt-4o": false, "gpt-4.1": false, "omni-x": false} {
		b := oaiUpstreamBody(t, OpenAI, &Call{Op: OpChat, Model: model, Body: []byte(`{"model":"` + model + `","max_tokens":50}`)})
		if got := gjson.GetBytes(b, "max_completion_tokens").Int() == 50 && !gjson.GetBytes(b, "max_tokens").Exists(); got != renamed {
			t.Errorf("%s: renamed=%v: %s", model, got, b)
		}
	}
	// Both given: the client's max_completion_tokens wins.
	b := oaiUpstreamBody(t, OpenAI, &Call{Op: OpChat, Model: "o3", Body: []byte(`{"model":"o3","max_tokens":50,"max_completion_tokens":70}`)})
	if gjson.GetBytes(b, "max_completion_tokens").Int() != 70 || gjson.GetBytes(b, "max_tokens").Exists() {
		t.Errorf("both: %s", b)
	}
}

func TestMistralToolCallIDs(t *testing.T) {
	body := `{"model":"mistral-large-latest","max_completion_tokens":9,"messages":[
		{"role":"user","content":"weather?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123XYZ_long","type":"function","function":{"name":"w","arguments":"{}"}},{"id":"a1b2C3d4E","type":"function","function":{"name":"x","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"call_abc123XYZ_long","content":"sunny"},
		{"role":"tool","tool_call_id":"a1b2C3d4E","content":"ok"}]}`
	b := oaiUpstreamBody(t, Mistral, &Call{Op: OpChat, Model: "mistral-large-latest", Body: []byte(body)})
	first := gjson.GetBytes(b, "messages.1.tool_calls.0.id").String()
	if !validMistralID(first) || first != gjson.GetBytes(b, "messages.2.tool_call_id").String() {
		t.Fatalf("ids not rewritten consistently: %s", b)
	}
	if gjson.GetBytes(b, "messages.1.tool_calls.1.id").String() != "a1b2C3d4E" || gjson.GetBytes(b, "messages.3.tool_call_id").String() != "a1b2C3d4E" {
		t.Errorf("a valid id was changed: %s", b)
	}
	if again := oaiUpstreamBody(t, Mistral, &Call{Op: OpChat, Model: "mistral-large-latest", Body: []byte(body)}); gjson.GetBytes(again, "messages.1.tool_calls.0.id").String() != first {
		t.Error("the mapping is not stable across requests")
	}
	if gjson.GetBytes(b, "max_tokens").Int() != 9 || gjson.GetBytes(b, "max_completion_tokens").Exists() {
		t.Errorf("max_completion_tokens not renamed for mistral: %s", b)
	}
	if gjson.GetBytes(b, "messages.0.content").String() != "weather?" || gjson.GetBytes(b, "messages.2.content").String() != "sunny" {
		t.Errorf("content changed: %s", b)
	}
	// Bodies without tool calls are forwarded untouched.
	plain := `{"model":"mistral-small-latest","messages":[{"role":"user","content":"hi"}]}`
	if got := oaiUpstreamBody(t, Mistral, &Call{Op: OpChat, Model: "mistral-small-latest", Body: []byte(plain)}); string(got) != plain {
		t.Errorf("plain body changed: %s", got)
	}
}

func TestPassthroughStream(t *testing.T) {
	events := []string{
		`{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5,"prompt_tokens_details":{"cached_tokens":1}}}`,
		`[DONE]`,
	}
	for _, incl := range []bool{false, true} {
		tr := Get(OpenAI).NewStream(&Call{Stream: true, IncludeUsage: incl})
		var out []byte
		for _, e := range events {
			var err error
			if out, err = tr.Event(out, Event{Data: []byte(e)}); err != nil {
				t.Fatal(err)
			}
		}
		out, err := tr.End(out)
		if err != nil {
			t.Fatal(err)
		}
		hasUsage := gjson.GetBytes(out, "usage").Exists() || oaiContains(out, `"usage"`)
		if hasUsage != incl {
			t.Errorf("include_usage=%v: usage chunk relayed=%v:\n%s", incl, hasUsage, out)
		}
		if u := tr.Usage(); u.PromptTokens != 3 || u.CompletionTokens != 2 || u.TotalTokens != 5 || u.CachedTokens != 1 {
			t.Errorf("usage = %+v", u)
		}
		if !oaiContains(out, "data: [DONE]\n\n") {
			t.Errorf("no [DONE]: %s", out)
		}
	}
	// Perplexity-style: no [DONE] but a finish_reason: [DONE] is added.
	tr := Get(Perplexity).NewStream(&Call{Stream: true})
	out, _ := tr.Event(nil, Event{Data: []byte(events[2])})
	if out, err := tr.End(out); err != nil || !oaiContains(out, "[DONE]") {
		t.Errorf("perplexity end: %v %s", err, out)
	}
	// Cut short: neither [DONE] nor a finish_reason.
	tr = Get(OpenAI).NewStream(&Call{Stream: true})
	tr.Event(nil, Event{Data: []byte(events[1])})
	if _, err := tr.End(nil); err == nil {
		t.Error("a stream cut short ended normally")
	}
	// An error inside the stream.
	tr = Get(OpenAI).NewStream(&Call{Stream: true})
	if _, err := tr.Event(nil, Event{Data: []byte(`{"error":{"message":"overloaded","type":"server_error"}}`)}); err == nil {
		t.Error("an in-stream error passed as data")
	}
}

func oaiContains(b []byte, s string) bool { return len(s) == 0 || oaiIndex(b, s) >= 0 }

func oaiIndex(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

func TestPassthroughDropsUnaskedUsageOnFinishChunk(t *testing.T) {
	finish := `{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`
	for _, incl := range []bool{false, true} {
		tr := Get(Mistral).NewStream(&Call{Stream: true, IncludeUsage: incl})
		out, err := tr.Event(nil, Event{Data: []byte(finish)})
		if err != nil {
			t.Fatal(err)
		}
		if got := oaiContains(out, `"usage"`); got != incl {
			t.Errorf("include_usage=%v: usage relayed=%v: %s", incl, got, out)
		}
		if !oaiContains(out, `"finish_reason":"stop"`) || tr.Usage().TotalTokens != 5 {
			t.Errorf("include_usage=%v: finish chunk or metering lost: %s %+v", incl, out, tr.Usage())
		}
	}
}

// FuzzPassthroughStream feeds arbitrary event data through the OpenAI-shaped
// stream translator: it must never panic, every event it emits must be a
// "data: <JSON object or [DONE]>" block, and usage is never negative.
func FuzzPassthroughStream(f *testing.F) {
	f.Add(`{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`, `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, false)
	f.Add(`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`, `[DONE]`, true)
	f.Add(`{"error":{"message":"x"}}`, ``, false)
	f.Fuzz(func(t *testing.T, a, b string, incl bool) {
		if strings.ContainsRune(a+b, '\r') {
			return // the SSE reader ends lines at CR: event data never holds one
		}
		tr := Get(Mistral).NewStream(&Call{Stream: true, IncludeUsage: incl})
		var out []byte
		for _, d := range []string{a, b} {
			var err error
			if out, err = tr.Event(out, Event{Data: []byte(d)}); err != nil {
				return
			}
		}
		out, _ = tr.End(out)
		// Read the output back as a client would: every payload must come
		// back as it went in (or be [DONE]).
		sr := NewSSEReader(strings.NewReader(string(out)))
		for {
			ev, err := sr.Next()
			if err != nil {
				break
			}
			if d := string(ev.Data); d != "[DONE]" && d != a && d != b && !gjson.Valid(d) {
				t.Fatalf("relayed payload %q is neither an input nor JSON", d)
			}
		}
		for _, line := range strings.Split(string(out), "\n") {
			if line != "" && !strings.HasPrefix(line, "data: ") {
				t.Fatalf("not a data line: %q in %q", line, out)
			}
		}
	})
}

func TestRegionRefusalIsNotAKeyProblem(t *testing.T) {
	body := []byte(`{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","type":"request_forbidden"}}`)
	if c := ClassifyResponse(OpenAI, 403, nil, body); c != ClassBadRequest {
		t.Errorf("region refusal classed %q", c)
	}
	if c := ClassifyResponse(OpenAI, 403, nil, []byte(`{"error":{"message":"forbidden"}}`)); c != ClassAuth {
		t.Errorf("plain 403 classed %q", c)
	}
}
