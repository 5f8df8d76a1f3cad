package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/tidwall/gjson"
)

func antCall() *Call {
	return &Call{Op: OpChat, Key: reqTestKey, Model: "claude-sonnet-4-5-20250929", ID: "chatcmpl-test", Created: 1700000000}
}

// --- request build ---

func TestAnthropicRequestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Call)
	}{
		{"basic", nil},
		{"defaults", func(c *Call) { c.Stream, c.IncludeUsage = true, true }},
		{"sampling", func(c *Call) { c.DefaultMaxTokens = 8192; c.Endpoint.BaseURL = "https://anthropic.example.com/v1/" }},
		{"tools", nil},
		{"tool_roundtrip", nil},
		{"images", nil},
		{"merge", func(c *Call) { c.Endpoint.BaseURL = "https://anthropic.example.com/proxy" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := antCall()
			c.Body = fixture(t, "anthropic/request_"+tc.name+".json")
			if tc.edit != nil {
				tc.edit(c)
			}
			req, err := Get(Anthropic).NewCallRequest(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			snap, body := requestSnapshot(t, req)
			assertKeyOnlyIn(t, req, "X-Api-Key")
			if strings.Contains(body, "Kq3ZUNIQUE") {
				t.Error("the key is in the body")
			}
			if req.Header.Get("Authorization") != "" {
				t.Error("Authorization header set")
			}
			golden(t, "anthropic/request_"+tc.name+".want.json", snap, true)
		})
	}
}

func TestAnthropicToolChoice(t *testing.T) {
	tools := `"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`
	for _, tc := range []struct{ extra, want string }{
		{``, ``},
		{`,"tool_choice":null`, ``},
		{`,"tool_choice":"auto"`, `{"type":"auto"}`},
		{`,"tool_choice":"none"`, `{"type":"none"}`},
		{`,"tool_choice":"required"`, `{"type":"any"}`},
		{`,"tool_choice":{"type":"function","function":{"name":"f"}}`, `{"type":"tool","name":"f"}`},
		{`,"parallel_tool_calls":false`, `{"type":"auto","disable_parallel_tool_use":true}`},
		{`,"parallel_tool_calls":true`, ``},
		{`,"tool_choice":"required","parallel_tool_calls":false`, `{"type":"any","disable_parallel_tool_use":true}`},
		{`,"tool_choice":"none","parallel_tool_calls":false`, `{"type":"none"}`},
	} {
		c := antCall()
		c.Body = []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],` + tools + tc.extra + `}`)
		b, err := anthropicRequestBody(c)
		if err != nil {
			t.Errorf("%s: %v", tc.extra, err)
			continue
		}
		if got := gjson.GetBytes(b, "tool_choice").Raw; got != tc.want {
			t.Errorf("%s: tool_choice = %s, want %s", tc.extra, got, tc.want)
		}
		if s := gjson.GetBytes(b, "tools.0.input_schema").Raw; s != `{"type":"object"}` {
			t.Errorf("%s: input_schema = %s", tc.extra, s)
		}
	}
}

// max_tokens is the client's, at most the model's maximum; without one,
// the model's maximum bounded by the operator's default_max_tokens; for a
// model the catalog does not know, the bound or 4096.
func TestAnthropicMaxTokens(t *testing.T) {
	for _, tc := range []struct {
		model string
		extra string
		def   int
		want  int64
	}{
		{"claude-sonnet-4-5-20250929", ``, 0, 64000},
		{"claude-sonnet-4-5", ``, 2048, 2048},
		{"claude-3-haiku-20240307", ``, 8192, 4096},
		{"claude-opus-4-1", ``, 0, 32000},
		{"claude-unknown-9", ``, 0, 4096},
		{"claude-unknown-9", ``, 2048, 2048},
		{"claude-sonnet-4-5", `,"max_tokens":10`, 2048, 10},
		{"claude-sonnet-4-5", `,"max_completion_tokens":20,"max_tokens":10`, 0, 20},
		{"claude-sonnet-4-5", `,"max_tokens":null`, 300, 300},
		{"claude-sonnet-4-5", `,"max_tokens":128000`, 0, 64000},
		{"claude-3-5-haiku-latest", `,"max_tokens":32000`, 0, 8192},
		{"claude-unknown-9", `,"max_tokens":128000`, 0, 128000},
	} {
		c := antCall()
		c.Model = tc.model
		c.DefaultMaxTokens = tc.def
		c.Body = []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]` + tc.extra + `}`)
		b, err := anthropicRequestBody(c)
		if err != nil {
			t.Fatalf("%s: %v", tc.extra, err)
		}
		if got := gjson.GetBytes(b, "max_tokens").Int(); got != tc.want {
			t.Errorf("%s %s (default %d): max_tokens = %d, want %d", tc.model, tc.extra, tc.def, got, tc.want)
		}
	}
}

func TestAnthropicRequestErrors(t *testing.T) {
	msg := func(m string) string { return `{"model":"m","messages":[` + m + `]}` }
	user := `{"role":"user","content":"hi"}`
	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `{"model":`, "invalid chat completions request"},
		{"n>1", `{"model":"m","n":2,"messages":[` + user + `]}`, "n must be 1"},
		{"max_tokens 0", `{"model":"m","max_tokens":0,"messages":[` + user + `]}`, "max_tokens must be at least 1"},
		{"no messages", `{"model":"m","messages":[]}`, "at least one user or assistant message"},
		{"only system", msg(`{"role":"system","content":"be nice"}`), "at least one user or assistant message"},
		{"function role", msg(`{"role":"function","name":"f","content":"x"}`), `role "function" is not supported`},
		{"image in system", msg(`{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},` + user), "may contain only text"},
		{"audio part", msg(`{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}`), `"input_audio" is not supported`},
		{"ftp image", msg(`{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}`), "must be http(s)"},
		{"data URL not base64", msg(`{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}`), "data:<media type>;base64"},
		{"bad image_url", msg(`{"role":"user","content":[{"type":"image_url","image_url":5}]}`), "image_url"},
		{"content number", msg(`{"role":"user","content":5}`), "string or an array of parts"},
		{"invalid tool arguments", msg(user + `,{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}`), "messages[1].tool_calls[0]: function.arguments must be a JSON object"},
		{"array tool arguments", msg(user + `,{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"[1]"}}]}`), "must be a JSON object"},
		{"tool call without id", msg(user + `,{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}`), "id is required"},
		{"tool call without name", msg(user + `,{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"arguments":"{}"}}]}`), "function.name is required"},
		{"tool result without id", msg(user + `,{"role":"tool","content":"x"}`), "need a tool_call_id"},
		{"assistant image", msg(user + `,{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x"}}]}`), "assistant content part"},
		{"tool_choice unknown", `{"model":"m","messages":[` + user + `],"tool_choice":"sometimes"}`, "unsupported tool_choice"},
		{"tool_choice object", `{"model":"m","messages":[` + user + `],"tool_choice":{"type":"allowed_tools"}}`, "unsupported tool_choice"},
		{"custom tool", `{"model":"m","messages":[` + user + `],"tools":[{"type":"custom","custom":{"name":"x"}}]}`, "only function tools"},
		{"tool without name", `{"model":"m","messages":[` + user + `],"tools":[{"type":"function","function":{}}]}`, "function.name is required"},
		{"tool schema not object", `{"model":"m","messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f","parameters":"x"}}]}`, "JSON schema object"},
	} {
		c := antCall()
		c.Body = []byte(tc.body)
		req, err := Get(Anthropic).NewCallRequest(context.Background(), c)
		var re *RequestError
		if req != nil || !errors.As(err, &re) {
			t.Errorf("%s: got %v, %v; want a *RequestError", tc.name, req, err)
			continue
		}
		if !strings.Contains(re.Message, tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.name, re.Message, tc.want)
		}
		if strings.Contains(re.Message, "Kq3ZUNIQUE") {
			t.Errorf("%s: the error leaks the key", tc.name)
		}
	}

	c := antCall()
	c.Op, c.Body = OpEmbeddings, []byte(`{"model":"m","input":"x"}`)
	var re *RequestError
	if _, err := Get(Anthropic).NewCallRequest(context.Background(), c); !errors.As(err, &re) {
		t.Errorf("embeddings: %v, want a *RequestError", err)
	}
}

// The default base URL, and the key only in x-api-key.
func TestAnthropicRequestDefaultEndpoint(t *testing.T) {
	c := antCall()
	c.Body = []byte(`{"model":"alias","messages":[{"role":"user","content":"hi"}]}`)
	req, err := Get(Anthropic).NewCallRequest(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.URL.String(); got != "https://api.anthropic.com/v1/messages" {
		t.Errorf("URL = %s", got)
	}
	if req.Header.Get("X-Api-Key") != reqTestKey || req.Header.Get("Anthropic-Version") != "2023-06-01" {
		t.Errorf("headers = %v", req.Header)
	}
	assertKeyOnlyIn(t, req, "X-Api-Key")
	if b := readReqBody(t, req); gjson.Get(b, "model").String() != c.Model || gjson.Get(b, "stream").Exists() {
		t.Errorf("body = %s", b)
	}
}

// --- response translation ---

func antUsageJSON(u Usage) json.RawMessage {
	b, _ := json.Marshal(u)
	return b
}

func TestAnthropicResponseGolden(t *testing.T) {
	for _, name := range []string{"text", "tool_use", "tool_only", "max_tokens", "refusal", "stop_sequence"} {
		t.Run(name, func(t *testing.T) {
			out, u, err := Get(Anthropic).TranslateResponse(antCall(), fixture(t, "anthropic/response_"+name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(map[string]any{"completion": json.RawMessage(out), "usage": antUsageJSON(u)})
			golden(t, "anthropic/response_"+name+".want.json", got, true)
		})
	}
}

func TestAnthropicResponseErrors(t *testing.T) {
	for _, body := range []string{``, `{"type":"message"`, `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`} {
		if out, _, err := Get(Anthropic).TranslateResponse(antCall(), []byte(body)); err == nil {
			t.Errorf("%q: got %s, want an error", body, out)
		}
	}
	// No model in the answer: the call's.
	out, _, err := Get(Anthropic).TranslateResponse(antCall(), []byte(`{"content":[{"type":"text","text":"x"}]}`))
	if err != nil || gjson.GetBytes(out, "model").String() != antCall().Model || gjson.GetBytes(out, "choices.0.finish_reason").String() != "stop" {
		t.Errorf("got %s, %v", out, err)
	}
}

// Garbled counts never meter negative or overflowing usage.
func TestAnthropicUsageBounds(t *testing.T) {
	u := anthropicUsage(gjson.Parse(`{"input_tokens":-5,"cache_read_input_tokens":1e30,"cache_creation_input_tokens":"7","output_tokens":9223372036854775807}`))
	if u.PromptTokens != antMaxTokenCount || u.CachedTokens != antMaxTokenCount || u.CompletionTokens != antMaxTokenCount || u.TotalTokens != 2*antMaxTokenCount {
		t.Errorf("usage %+v", u)
	}
	if u := anthropicUsage(gjson.Parse(`[1]`)); u.Reported() || u.Raw != nil {
		t.Errorf("usage of a non-object %+v", u)
	}
}

func TestAnthropicFinishReasons(t *testing.T) {
	for stop, want := range map[string]string{
		"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "": "stop", "something_new": "stop",
		"max_tokens": "length", "model_context_window_exceeded": "length",
		"tool_use": "tool_calls", "refusal": "content_filter",
	} {
		if got := anthropicFinish(stop); got != want {
			t.Errorf("anthropicFinish(%q) = %q, want %q", stop, got, want)
		}
		body := fmt.Sprintf(`{"model":"m","content":[{"type":"text","text":"x"}],"stop_reason":%q}`, stop)
		out, _, err := Get(Anthropic).TranslateResponse(antCall(), []byte(body))
		if err != nil || gjson.GetBytes(out, "choices.0.finish_reason").String() != want {
			t.Errorf("%q: %s, %v", stop, out, err)
		}
	}
}

// --- stream translation ---

// runAnthropicStream feeds data, an upstream event stream, through the
// translator the way the gateway does, and returns what the client gets;
// err is an error of the SSE reader, or of a translator error that is not a
// *StreamError.
func runAnthropicStream(c *Call, data []byte) (out []byte, serr *StreamError, u Usage, err error) {
	tr := Get(Anthropic).NewStream(c)
	out, err = feedStream(tr, bytes.NewReader(data), nil)
	switch {
	case err == nil, errors.As(err, &serr):
		return out, serr, tr.Usage(), nil
	case errors.Is(err, ErrEventTooLarge):
		return out, nil, tr.Usage(), err
	}
	return out, nil, tr.Usage(), fmt.Errorf("not a *StreamError: %w", err)
}

func TestAnthropicStreamGolden(t *testing.T) {
	for _, tc := range []struct {
		in, want     string
		includeUsage bool
	}{
		{"stream_text.sse", "stream_text.want.sse", true},
		{"stream_text.sse", "stream_text_nousage.want.sse", false},
		{"stream_tools.sse", "stream_tools.want.sse", true},
		{"stream_error.sse", "stream_error.want.sse", true},
		{"stream_truncated.sse", "stream_truncated.want.sse", true},
	} {
		t.Run(tc.want, func(t *testing.T) {
			c := antCall()
			c.Stream, c.IncludeUsage = true, tc.includeUsage
			out, serr, u, err := runAnthropicStream(c, fixture(t, "anthropic/"+tc.in))
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, c, "", out)
			got := append([]byte(nil), out...)
			if serr != nil {
				b, _ := json.Marshal(serr)
				got = append(append(append(got, ": error "...), b...), '\n')
			}
			got = append(append(append(got, ": usage "...), antUsageJSON(u)...), '\n')
			golden(t, "anthropic/"+tc.want, got, false)
		})
	}
}

// Reassembling the tool stream gives back the calls Anthropic made.
func TestAnthropicStreamToolCalls(t *testing.T) {
	c := antCall()
	out, serr, _, err := runAnthropicStream(c, fixture(t, "anthropic/stream_tools.sse"))
	if err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	type call struct{ id, name, args string }
	var calls []call
	var content, finish string
	for _, e := range strings.Split(string(out), "\n\n") {
		d, _ := strings.CutPrefix(e, "data: ")
		for _, tc := range gjson.Get(d, "choices.0.delta.tool_calls").Array() {
			i := int(tc.Get("index").Int())
			if i == len(calls) {
				calls = append(calls, call{})
			}
			if i >= len(calls) {
				t.Fatalf("tool index %d skips ahead", i)
			}
			if id := tc.Get("id").String(); id != "" {
				calls[i].id, calls[i].name = id, tc.Get("function.name").String()
			}
			calls[i].args += tc.Get("function.arguments").String()
		}
		content += gjson.Get(d, "choices.0.delta.content").String()
		if f := gjson.Get(d, "choices.0.finish_reason").String(); f != "" {
			finish = f
		}
	}
	want := []call{{"toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather", `{"city": "Paris"}`}, {"toolu_02", "get_time", "{}"}}
	if fmt.Sprint(calls) != fmt.Sprint(want) || content != "Checking both." || finish != "tool_calls" {
		t.Errorf("calls %v, content %q, finish %q", calls, content, finish)
	}
}

func TestAnthropicStreamEdges(t *testing.T) {
	ev := func(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }
	start := ev("message_start", `{"type":"message_start","message":{"model":"claude-x","usage":{"input_tokens":3,"output_tokens":1}}}`)
	stop := ev("message_stop", `{"type":"message_stop"}`)
	for _, tc := range []struct {
		name, stream string
		class, code  string
	}{
		{"rate limit error", start + ev("error", `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`), ClassRateLimit, "rate_limit_error"},
		{"api error", ev("error", `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`), ClassServer, "api_error"},
		{"error without a body", ev("error", `{}`), ClassServer, "upstream_stream_error"},
		{"invalid JSON", start + ev("content_block_delta", `{"type":"content_block_delta",`), ClassServer, "upstream_stream_invalid"},
		{"empty stream", "", ClassServer, "upstream_stream_incomplete"},
		{"only pings", ev("ping", `{"type":"ping"}`), ClassServer, "upstream_stream_incomplete"},
	} {
		c := antCall()
		out, serr, _, err := runAnthropicStream(c, []byte(tc.stream))
		if err != nil {
			t.Fatal(err)
		}
		if serr == nil || serr.Class != tc.class || serr.Code != tc.code {
			t.Errorf("%s: StreamError %+v, want %s/%s", tc.name, serr, tc.class, tc.code)
		}
		if bytes.Contains(out, []byte("[DONE]")) || bytes.Contains(out, []byte(`"finish_reason":"`)) {
			t.Errorf("%s: the output looks finished: %s", tc.name, out)
		}
	}

	// message_stop without message_delta still finishes; events after it
	// are ignored; without message_start the role chunk still comes first.
	c := antCall()
	c.IncludeUsage = true
	stream := ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}`) + stop +
		ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"late"}}`)
	out, serr, u, err := runAnthropicStream(c, []byte(stream))
	if err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	checkChunks(t, c, "", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n\n")
	if len(lines) != 5 || !strings.Contains(lines[0], `"role":"assistant"`) || !strings.Contains(lines[1], `"content":"hi"`) ||
		!strings.Contains(lines[2], `"finish_reason":"stop"`) || !strings.Contains(lines[3], `"choices":[]`) || lines[4] != "data: [DONE]" {
		t.Errorf("output:\n%s", out)
	}
	if strings.Contains(string(out), "late") || u.Reported() {
		t.Errorf("usage %+v, output %s", u, out)
	}
	if !strings.Contains(lines[0], `"model":"`+c.Model+`"`) {
		t.Errorf("without message_start the model is the call's: %s", lines[0])
	}
}

// --- error classes ---

func TestClassifyAnthropic(t *testing.T) {
	retry := http.Header{"Retry-After": {"12"}}
	rateLimit := `{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization"}}`
	spendCap := `{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your monthly spend limit","details":{"error_code":"enforced_spend_limit_reached"}}}`
	for _, tc := range []struct {
		status int
		h      http.Header
		body   string
		want   string
	}{
		{529, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, ClassOverloaded},
		{429, retry, rateLimit, ClassRateLimit},
		{429, nil, rateLimit, ClassQuota},
		{429, retry, spendCap, ClassQuota},
		{429, nil, spendCap, ClassQuota},
		{401, nil, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, ClassAuth},
		{403, nil, `{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission"}}`, ClassAuth},
		{400, nil, `{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}`, ClassBadRequest},
		{400, nil, `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}`, ClassQuota},
		{400, nil, `{"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified API usage limits. You will regain access on 2026-01-01 at 00:00 UTC."}}`, ClassQuota},
		{402, nil, `{"type":"error","error":{"type":"billing_error","message":"billing"}}`, ClassQuota},
		{404, nil, `{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}`, ClassBadRequest},
		{413, nil, `{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}`, ClassBadRequest},
		{500, nil, `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`, ClassServer},
		{500, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, ClassOverloaded},
		{504, nil, `{"type":"error","error":{"type":"timeout_error","message":"Request timed out"}}`, ClassServer},
		{503, nil, `upstream connect error`, ClassOverloaded},
	} {
		if got := ClassifyResponse(Anthropic, tc.status, tc.h, []byte(tc.body)); got != tc.want {
			t.Errorf("%d %v %.60s: %s, want %s", tc.status, tc.h, tc.body, got, tc.want)
		}
	}
	if got := anthropicErrorClass("timeout_error"); got != ClassTimeout {
		t.Errorf("timeout_error in a stream: %s", got)
	}
	for typ, want := range map[string]string{"billing_error": ClassQuota, "authentication_error": ClassAuth, "invalid_request_error": ClassBadRequest} {
		if got := anthropicErrorClass(typ); got != want {
			t.Errorf("%s: %s, want %s", typ, got, want)
		}
	}
	if got := ErrorMessage([]byte(spendCap)); got != "You have reached your monthly spend limit" {
		t.Errorf("ErrorMessage = %q", got)
	}
	if got := ErrorMessage([]byte(providertest.AnthropicError("overloaded_error", "Overloaded"))); got != "Overloaded" {
		t.Errorf("ErrorMessage = %q", got)
	}
}

// --- against the fake ---

func TestAnthropicAgainstFake(t *testing.T) {
	fake := providertest.New("anthropic")
	defer fake.Close()
	base := Endpoint{BaseURL: fake.BaseURL()}

	// Non-streamed, with a tool call answer and chosen counts.
	u := providertest.AnthropicUsage{Input: 40, CacheRead: 1000, CacheCreation: 7, Output: 33}
	fake.SetResponder(func(rec providertest.Record) providertest.Response {
		return providertest.Response{Body: providertest.AnthropicToolUse(rec.Model, "toolu_9", "get_weather", `{"city":"Oslo"}`, u)}
	})
	c := antCall()
	c.Endpoint = base
	c.Body = fixture(t, "anthropic/request_tool_roundtrip.json")
	resp, body := send(t, Anthropic, c)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	rec, _ := fake.Last()
	if rec.CredentialHeader != "X-Api-Key" || rec.Credential != reqTestKey || rec.Model != c.Model || rec.Stream || rec.Path != "/v1/messages" {
		t.Errorf("record %+v", rec)
	}
	out, got, err := Get(Anthropic).TranslateResponse(c, body)
	if err != nil {
		t.Fatal(err)
	}
	if got.PromptTokens != 1047 || got.CachedTokens != 1000 || got.CompletionTokens != 33 || got.TotalTokens != 1080 {
		t.Errorf("usage %+v", got)
	}
	if gjson.GetBytes(out, "choices.0.message.tool_calls.0.function.arguments").String() != `{"city":"Oslo"}` ||
		gjson.GetBytes(out, "usage.prompt_tokens").Int() != 1047 {
		t.Errorf("completion %s", out)
	}

	// Streamed: the default answer.
	fake.SetResponder(nil)
	c = antCall()
	c.Endpoint, c.Stream, c.IncludeUsage = base, true, true
	c.Body = []byte(`{"model":"x","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	resp, body = send(t, Anthropic, c)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	if rec, _ := fake.Last(); !rec.Stream {
		t.Error("the fake did not see stream: true")
	}
	sse, serr, su, err := runAnthropicStream(c, body)
	if err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	checkChunks(t, c, "", sse)
	if !bytes.HasSuffix(sse, []byte("data: [DONE]\n\n")) {
		t.Errorf("stream %s", sse)
	}
	d := providertest.DefaultAnthropicUsage
	if su.PromptTokens != int64(d.Input+d.CacheRead+d.CacheCreation) || su.CompletionTokens != int64(d.Output) || su.CachedTokens != int64(d.CacheRead) ||
		su.TotalTokens != 16 {
		t.Errorf("stream usage %+v", su)
	}
	last := sse[bytes.LastIndex(sse[:len(sse)-len("data: [DONE]\n\n")-2], []byte("data: ")):]
	if gjson.GetBytes(last[len("data: "):], "usage.total_tokens").Int() != 16 {
		t.Errorf("usage chunk %s", last)
	}

	// A streamed tool call.
	fake.SetResponder(func(rec providertest.Record) providertest.Response {
		return providertest.Response{RawEvents: providertest.AnthropicToolUseStream(rec.Model, "toolu_5", "f", []string{`{"a":`, `1}`}, u)}
	})
	_, body = send(t, Anthropic, c)
	sse, serr, su, _ = runAnthropicStream(c, body)
	if serr != nil || !bytes.Contains(sse, []byte(`"finish_reason":"tool_calls"`)) || su.TotalTokens != 1080 {
		t.Errorf("%v %+v\n%s", serr, su, sse)
	}

	// A stream that fails after 200.
	fake.SetResponder(func(rec providertest.Record) providertest.Response {
		ev := providertest.AnthropicStream(rec.Model, []string{"a", "b"}, u)
		return providertest.Response{RawEvents: append(ev[:4], providertest.AnthropicErrorEvent("overloaded_error", "Overloaded"))}
	})
	_, body = send(t, Anthropic, c)
	if _, serr, _, _ = runAnthropicStream(c, body); serr == nil || serr.Class != ClassOverloaded || serr.Message != "Overloaded" {
		t.Errorf("StreamError %+v", serr)
	}

	// A key the fake refuses: the native 401 echoes it.
	fake.SetResponder(nil)
	fake.AcceptOnly("sk-ant-api03-other")
	resp, body = send(t, Anthropic, c)
	if resp.StatusCode != 401 || !strings.Contains(string(body), reqTestKey) ||
		ClassifyResponse(Anthropic, resp.StatusCode, resp.Header, body) != ClassAuth ||
		!strings.HasPrefix(ErrorMessage(body), "invalid x-api-key") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	fake.AcceptOnly()

	// The fake refuses what the real API refuses.
	for _, tc := range []struct {
		name   string
		edit   func(*http.Request)
		status int
		want   string
	}{
		{"no anthropic-version", func(r *http.Request) { r.Header.Del("Anthropic-Version") }, 400, "anthropic-version"},
		{"no key", func(r *http.Request) { r.Header.Del("X-Api-Key") }, 401, "x-api-key header is required"},
		{"wrong path", func(r *http.Request) { r.URL.Path = "/v1/chat/completions" }, 404, "not_found_error"},
	} {
		c := antCall()
		c.Endpoint, c.Body = base, []byte(`{"model":"x","messages":[{"role":"user","content":"hi"}]}`)
		req, err := Get(Anthropic).NewCallRequest(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		tc.edit(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) || gjson.GetBytes(b, "type").String() != "error" {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
		}
	}
}

// --- fuzzing ---

func FuzzAnthropicRequest(f *testing.F) {
	addFixtures(f, "anthropic/request_*.json")
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":"data:;base64,"}]}]}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":"q"}],"web_search_options":{"user_location":{"approximate":{"city":"x"}},"filters":{"allowed_domains":["a"]}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := antCall()
		c.Body = body
		b, refused := buildOrRefuse(t, Anthropic, c)
		if refused != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("invalid JSON body: %s", b)
		}
		res := gjson.GetManyBytes(b, "max_tokens", "messages")
		if res[0].Int() < 1 || len(res[1].Array()) == 0 {
			t.Fatalf("body without max_tokens or messages: %s", b)
		}
		for _, m := range res[1].Array() {
			if r := m.Get("role").String(); r != "user" && r != "assistant" || len(m.Get("content").Array()) == 0 {
				t.Fatalf("bad message %s", m.Raw)
			}
		}
	})
}

func FuzzAnthropicResponse(f *testing.F) {
	addFixtures(f, "anthropic/response_*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, u, err := Get(Anthropic).TranslateResponse(antCall(), body)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.CachedTokens > u.PromptTokens || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Fatalf("usage %+v", u)
		}
		if gjson.GetBytes(out, "choices.0.message.role").String() != "assistant" {
			t.Fatalf("no message: %s", out)
		}
	})
}

func FuzzAnthropicStream(f *testing.F) {
	addFixtures(f, "anthropic/stream_*.sse")
	ev := func(name, data string) string { return "event: " + name + "\ndata: " + data + "\n\n" }
	f.Add([]byte(ev("message_start", `{"type":"message_start","message":{"model":"m","usage":{"input_tokens":-3,"cache_read_input_tokens":1e30}}}`) +
		ev("content_block_start", `{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}`) +
		ev("content_block_delta", `{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}`) +
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":null}}`) +
		ev("message_stop", `{"type":"message_stop"}`)))
	f.Add([]byte(ev("error", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)))
	f.Add([]byte("data: {\"type\":\"message_stop\"}\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := antCall()
		c.IncludeUsage = true
		out, serr, u, err := runAnthropicStream(c, data)
		if err != nil {
			if strings.Contains(err.Error(), "not a *StreamError") {
				t.Fatal(err)
			}
			return // the SSE reader refused the input
		}
		checkChunks(t, c, "", out)
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.CachedTokens > u.PromptTokens || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Fatalf("usage %+v", u)
		}
		done := bytes.HasSuffix(out, []byte("data: [DONE]\n\n"))
		if (serr == nil) != done {
			t.Fatalf("error %v but [DONE] %v:\n%s", serr, done, out)
		}
	})
}
