package providers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

func geminiTestCall(body []byte) *Call {
	return &Call{
		Op: OpChat, Key: reqTestKey, Body: body,
		Model:        gjson.GetBytes(body, "model").String(),
		Stream:       gjson.GetBytes(body, "stream").Bool(),
		IncludeUsage: gjson.GetBytes(body, "stream_options.include_usage").Bool(),
		ID:           "chatcmpl-gemtest", Created: 1700000000,
	}
}

func geminiBuild(t *testing.T, c *Call) (*http.Request, string) {
	t.Helper()
	req, err := Get(Gemini).NewCallRequest(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return req, readReqBody(t, req)
}

func TestGeminiRequestGolden(t *testing.T) {
	for _, name := range []string{"basic", "tool_roundtrip", "media"} {
		t.Run(name, func(t *testing.T) {
			c := geminiTestCall(fixture(t, "gemini/request_"+name+".json"))
			req, err := Get(Gemini).NewCallRequest(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Header) != 2 {
				t.Errorf("headers %v, want only Content-Type and X-Goog-Api-Key", req.Header)
			}
			assertKeyOnlyIn(t, req, "X-Goog-Api-Key")
			if req.URL.Query().Has("key") {
				t.Error("the key is a query parameter")
			}
			snap, _ := requestSnapshot(t, req)
			golden(t, "gemini/request_"+name+".want.json", snap, true)
		})
	}
}

func TestGeminiRequestURL(t *testing.T) {
	body := []byte(`{"model":"x","messages":[{"role":"user","content":"hi"}]}`)
	for _, tc := range []struct {
		name, base, model string
		stream            bool
		want              string
	}{
		{"default base", "", "gemini-2.5-flash", false,
			"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"},
		{"stream", "", "gemini-2.5-flash", true,
			"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"},
		{"models/ prefix not doubled", "", "models/gemini-2.5-pro", false,
			"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:generateContent"},
		{"model escaped", "", "a b/c:d?e", false,
			"https://generativelanguage.googleapis.com/v1beta/models/a%20b%2Fc%3Ad%3Fe:generateContent"},
		{"custom base, trailing slash", "http://127.0.0.1:9999/", "gemma-3-27b-it", true,
			"http://127.0.0.1:9999/v1beta/models/gemma-3-27b-it:streamGenerateContent?alt=sse"},
		{"base with version", "https://proxy.example/gl/v1beta", "gemini-2.5-flash", false,
			"https://proxy.example/gl/v1beta/models/gemini-2.5-flash:generateContent"},
		{"base with v1", "https://proxy.example/v1", "gemini-2.5-flash", false,
			"https://proxy.example/v1/models/gemini-2.5-flash:generateContent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Call{Op: OpChat, Endpoint: Endpoint{BaseURL: tc.base}, Key: reqTestKey, Model: tc.model, Body: body, Stream: tc.stream}
			req, _ := geminiBuild(t, c)
			if req.Method != http.MethodPost || req.URL.String() != tc.want {
				t.Errorf("%s %s\nwant POST %s", req.Method, req.URL, tc.want)
			}
			if got := req.Header.Get("x-goog-api-key"); got != reqTestKey {
				t.Errorf("x-goog-api-key = %q", got)
			}
			for _, h := range []string{"Authorization", "Api-Key", "X-Api-Key"} {
				if req.Header.Get(h) != "" {
					t.Errorf("request has a %s header", h)
				}
			}
			assertKeyOnlyIn(t, req, "X-Goog-Api-Key")
		})
	}
}

// geminiNative builds the native body for a small request.
func geminiNative(t *testing.T, model, body string) gjson.Result {
	t.Helper()
	_, b := geminiBuild(t, &Call{Op: OpChat, Key: reqTestKey, Model: model, Body: []byte(body)})
	return gjson.Parse(b)
}

func TestGeminiRequestOptions(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	const tools = `"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}]`
	for _, tc := range []struct {
		name, model, body string
		path, want        string // path in the native body, and its raw JSON ("" = absent)
	}{
		{"no options", "gemini-2.5-flash", `{` + msgs + `}`, "generationConfig", ""},
		{"max_tokens alone", "gemini-2.5-flash", `{` + msgs + `,"max_tokens":7}`, "generationConfig", `{"maxOutputTokens":7}`},
		{"max_completion_tokens wins", "gemini-2.5-flash", `{` + msgs + `,"max_tokens":7,"max_completion_tokens":9}`, "generationConfig.maxOutputTokens", `9`},
		{"stop as a string", "gemini-2.5-flash", `{` + msgs + `,"stop":"END"}`, "generationConfig.stopSequences", `["END"]`},
		{"n=1 is the default", "gemini-2.5-flash", `{` + msgs + `,"n":1}`, "generationConfig", ""},
		{"zero penalties are left out", "gemini-2.5-flash", `{` + msgs + `,"presence_penalty":0,"frequency_penalty":0}`, "generationConfig", ""},
		{"presence penalty", "gemini-2.5-flash", `{` + msgs + `,"presence_penalty":-0.5}`, "generationConfig.presencePenalty", `-0.5`},
		{"temperature 0 is kept", "gemini-2.5-flash", `{` + msgs + `,"temperature":0}`, "generationConfig.temperature", `0`},
		{"json_object", "gemini-2.5-flash", `{` + msgs + `,"response_format":{"type":"json_object"}}`, "generationConfig", `{"responseMimeType":"application/json"}`},
		{"response_format text", "gemini-2.5-flash", `{` + msgs + `,"response_format":{"type":"text"}}`, "generationConfig", ""},
		{"tool_choice auto", "gemini-2.5-flash", `{` + msgs + `,` + tools + `,"tool_choice":"auto"}`, "toolConfig", `{"functionCallingConfig":{"mode":"AUTO"}}`},
		{"tool_choice none", "gemini-2.5-flash", `{` + msgs + `,` + tools + `,"tool_choice":"none"}`, "toolConfig", `{"functionCallingConfig":{"mode":"NONE"}}`},
		{"tool_choice required", "gemini-2.5-flash", `{` + msgs + `,` + tools + `,"tool_choice":"required"}`, "toolConfig", `{"functionCallingConfig":{"mode":"ANY"}}`},
		{"tool_choice function", "gemini-2.5-flash", `{` + msgs + `,` + tools + `,"tool_choice":{"type":"function","function":{"name":"f"}}}`,
			"toolConfig", `{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}}`},
		{"no tool_choice", "gemini-2.5-flash", `{` + msgs + `,` + tools + `}`, "toolConfig", ""},
		{"tool_choice without tools", "gemini-2.5-flash", `{` + msgs + `,"tool_choice":"required"}`, "toolConfig", ""},
		{"tools declared", "gemini-2.5-flash", `{` + msgs + `,` + tools + `}`, "tools",
			`[{"functionDeclarations":[{"name":"f","parameters":{"properties":{"a":{"type":"string"}},"type":"object"}}]}]`},
		{"schema without type gets object", "gemini-2.5-flash", `{` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"a":{"type":"string"}}}}}]}`,
			"tools.0.functionDeclarations.0.parameters.type", `"object"`},
		{"effort on 2.5 flash", "gemini-2.5-flash", `{` + msgs + `,"reasoning_effort":"high"}`, "generationConfig.thinkingConfig", `{"thinkingBudget":24576}`},
		{"none on 2.5 flash", "gemini-2.5-flash", `{` + msgs + `,"reasoning_effort":"none"}`, "generationConfig.thinkingConfig", `{"thinkingBudget":0}`},
		{"none on 2.5 pro", "models/gemini-2.5-pro", `{` + msgs + `,"reasoning_effort":"none"}`, "generationConfig.thinkingConfig", `{"thinkingBudget":128}`},
		{"effort on 3", "gemini-3-flash-preview", `{` + msgs + `,"reasoning_effort":"medium"}`, "generationConfig.thinkingConfig", `{"thinkingLevel":"medium"}`},
		{"none on 3", "gemini-3-pro-preview", `{` + msgs + `,"reasoning_effort":"none"}`, "generationConfig.thinkingConfig", `{"thinkingLevel":"minimal"}`},
		{"effort on 2.0 dropped", "gemini-2.0-flash", `{` + msgs + `,"reasoning_effort":"low"}`, "generationConfig", ""},
		{"effort on gemma dropped", "gemma-3-27b-it", `{` + msgs + `,"reasoning_effort":"low"}`, "generationConfig", ""},
		{"only system", "gemini-2.5-flash", `{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`, "systemInstruction", `{"parts":[{"text":"s"}]}`},
		{"empty system dropped", "gemini-2.5-flash", `{"messages":[{"role":"system","content":""},{"role":"user","content":"u"}]}`, "systemInstruction", ""},
		{"system parts joined", "gemini-2.5-flash", `{"messages":[{"role":"system","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"user","content":"u"}]}`,
			"systemInstruction", `{"parts":[{"text":"a\nb"}]}`},
		{"legacy function message", "gemini-2.5-flash", `{"messages":[{"role":"user","content":"u"},{"role":"function","name":"f","content":"[1,2]"}]}`,
			"contents.0.parts.1", `{"functionResponse":{"name":"f","response":{"content":"[1,2]"}}}`},
		{"tool name from message name", "gemini-2.5-flash", `{"messages":[{"role":"user","content":"u"},{"role":"tool","name":"g","tool_call_id":"x","content":"ok"}]}`,
			"contents.0.parts.1.functionResponse.name", `"g"`},
		{"assistant refusal part", "gemini-2.5-flash", `{"messages":[{"role":"user","content":"u"},{"role":"assistant","content":[{"type":"refusal","refusal":"no"}]},{"role":"user","content":"why"}]}`,
			"contents.1", `{"role":"model","parts":[{"text":"no"}]}`},
		{"empty assistant dropped, users merged", "gemini-2.5-flash", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":""},{"role":"user","content":"b"}]}`,
			"contents", `[{"role":"user","parts":[{"text":"a"},{"text":"b"}]}]`},
		{"trailing assistant kept", "gemini-2.5-flash", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"Sure:"}]}`,
			"contents.1", `{"role":"model","parts":[{"text":"Sure:"}]}`},
		{"gs:// image", "gemini-2.5-flash", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"gs://b/x.webp"}}]}]}`,
			"contents.0.parts.0", `{"fileData":{"mimeType":"image/webp","fileUri":"gs://b/x.webp"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := geminiNative(t, tc.model, tc.body).Get(tc.path)
			if tc.want == "" {
				if got.Exists() {
					t.Errorf("%s = %s, want it absent", tc.path, got.Raw)
				}
				return
			}
			if !got.Exists() {
				t.Fatalf("%s is absent, want %s", tc.path, tc.want)
			}
			if g, w := canonicalJSON(t, []byte(got.Raw)), canonicalJSON(t, []byte(tc.want)); !bytes.Equal(g, w) {
				t.Errorf("%s = %s, want %s", tc.path, got.Raw, tc.want)
			}
		})
	}
}

func TestGeminiRequestErrors(t *testing.T) {
	const user = `{"role":"user","content":"hi"}`
	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `{"messages":`, "invalid chat completions request"},
		{"messages not an array", `{"messages":{}}`, "invalid chat completions request"},
		{"no messages", `{"model":"m"}`, "at least one user or assistant message"},
		{"only system", `{"messages":[{"role":"system","content":"s"}]}`, "at least one user or assistant message"},
		{"unknown role", `{"messages":[{"role":"robot","content":"x"}]}`, `role "robot"`},
		{"content a number", `{"messages":[{"role":"user","content":5}]}`, "messages[0].content must be"},
		{"content an object", `{"messages":[{"role":"user","content":{"a":1}}]}`, "messages[0].content must be"},
		{"image in system", `{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]},` + user + `]}`, "only text parts"},
		{"unknown part", `{"messages":[{"role":"user","content":[{"type":"video","video":{}}]}]}`, `part type "video"`},
		{"image without url", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}`, "image_url has no url"},
		{"ftp image", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "http(s)"},
		{"data URL not base64", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "base64"},
		{"data URL without type", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:;base64,abc"}}]}]}`, "base64"},
		{"file id", `{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-abc"}}]}]}`, "file_data"},
		{"audio without format", `{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAA"}}]}]}`, "input_audio"},
		{"tool call without name", `{"messages":[` + user + `,{"role":"assistant","tool_calls":[{"id":"a","function":{"arguments":"{}"}}]}]}`, "tool_calls[0]: the function has no name"},
		{"tool call arguments not an object", `{"messages":[` + user + `,{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"[1]"}}]}]}`, "JSON object"},
		{"tool call arguments not JSON", `{"messages":[` + user + `,{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"a\":"}}]}]}`, "JSON object"},
		{"tool result for unknown call", `{"messages":[` + user + `,{"role":"tool","tool_call_id":"nope","content":"x"}]}`, `tool_call_id "nope"`},
		{"tool without name", `{"messages":[` + user + `],"tools":[{"type":"function","function":{}}]}`, "tools[0]: the function has no name"},
		{"tool not a function", `{"messages":[` + user + `],"tools":[{"type":"web_search"}]}`, `type "web_search"`},
		{"parameters not a schema", `{"messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f","parameters":[1]}}]}`, "JSON schema object"},
		{"bad tool_choice", `{"messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"}`, `tool_choice "sometimes"`},
		{"n zero", `{"messages":[` + user + `],"n":0}`, "n must be at least 1"},
		{"bad response_format", `{"messages":[` + user + `],"response_format":{"type":"xml"}}`, `response_format type "xml"`},
		{"bad reasoning_effort", `{"messages":[` + user + `],"reasoning_effort":"max"}`, `reasoning_effort "max"`},
		{"stop not strings", `{"messages":[` + user + `],"stop":[1]}`, "invalid chat completions request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Get(Gemini).NewCallRequest(context.Background(), &Call{Op: OpChat, Key: reqTestKey, Model: "gemini-2.5-flash", Body: []byte(tc.body)})
			var re *RequestError
			if req != nil || !errors.As(err, &re) {
				t.Fatalf("got %v, %v; want a *RequestError", req, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "Kq3ZUNIQUE") {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
	if _, err := Get(Gemini).NewCallRequest(context.Background(), &Call{Op: OpChat, Key: reqTestKey, Model: "models/", Body: []byte(`{"messages":[` + user + `]}`)}); err == nil {
		t.Error("an empty model name was accepted")
	}
}

func TestGeminiResponseGolden(t *testing.T) {
	for _, name := range []string{"text", "tool_calls", "tool_only", "max_tokens", "safety", "blocked", "candidates"} {
		t.Run(name, func(t *testing.T) {
			c := &Call{Op: OpChat, Model: "gemini-2.5-flash", ID: "chatcmpl-gemtest", Created: 1700000000}
			body := fixture(t, "gemini/response_"+name+".json")
			got, u, err := Get(Gemini).TranslateResponse(c, body)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "gemini/response_"+name+".want.json", got, true)
			// The usage the gateway meters is what the client sees.
			var seen Usage
			if err := json.Unmarshal([]byte(gjson.GetBytes(got, "usage").Raw), &seen); err != nil {
				t.Fatal(err)
			}
			if seen.PromptTokens != u.PromptTokens || seen.CompletionTokens != u.CompletionTokens || seen.TotalTokens != u.TotalTokens {
				t.Errorf("usage %+v, client sees %s", u, gjson.GetBytes(got, "usage").Raw)
			}
			if raw := gjson.GetBytes(body, "usageMetadata").Raw; string(u.Raw) != raw {
				t.Errorf("Raw = %s, want usageMetadata %s", u.Raw, raw)
			}
		})
	}
}

func TestGeminiResponseUsage(t *testing.T) {
	_, u, err := Get(Gemini).TranslateResponse(&Call{Model: "m"}, fixture(t, "gemini/response_text.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{PromptTokens: 1200, CompletionTokens: 34, TotalTokens: 1234, CachedTokens: 1024, ReasoningTokens: 30}
	if !geminiSameUsage(u, want) {
		t.Errorf("usage %+v, want %+v", u, want)
	}
	// Without totalTokenCount the total is the sum.
	_, u, _ = Get(Gemini).TranslateResponse(&Call{Model: "m"}, []byte(`{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2,"thoughtsTokenCount":1}}`))
	if u.TotalTokens != 6 || u.CompletionTokens != 3 || u.ReasoningTokens != 1 {
		t.Errorf("usage %+v", u)
	}
	// No usage at all.
	got, u, _ := Get(Gemini).TranslateResponse(&Call{Model: "m"}, []byte(`{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}]}`))
	if u.Reported() || gjson.GetBytes(got, "usage.total_tokens").Int() != 0 {
		t.Errorf("usage %+v from %s", u, got)
	}
}

func TestGeminiResponseErrors(t *testing.T) {
	for _, body := range []string{``, `not json`, `{"candidates":"x"}`, `{"candidates":[{"content":{"parts":[{"text":5}]}}]}`, `[]`} {
		if out, _, err := Get(Gemini).TranslateResponse(&Call{Model: "m"}, []byte(body)); err == nil {
			t.Errorf("%q: translated to %s, want an error", body, out)
		}
	}
}

func TestGeminiFinishReasons(t *testing.T) {
	for _, tc := range []struct {
		reason string
		calls  bool
		want   string
	}{
		{"STOP", false, "stop"}, {"STOP", true, "tool_calls"}, {"", false, "stop"}, {"", true, "tool_calls"},
		{"MAX_TOKENS", false, "length"}, {"MAX_TOKENS", true, "length"},
		{"SAFETY", false, "content_filter"}, {"SAFETY", true, "content_filter"}, {"RECITATION", false, "content_filter"},
		{"BLOCKLIST", false, "content_filter"}, {"PROHIBITED_CONTENT", false, "content_filter"}, {"SPII", false, "content_filter"},
		{"IMAGE_SAFETY", false, "content_filter"}, {"LANGUAGE", false, "content_filter"},
		{"OTHER", false, "stop"}, {"MALFORMED_FUNCTION_CALL", false, "stop"}, {"UNEXPECTED_TOOL_CALL", false, "stop"},
		{"FINISH_REASON_UNSPECIFIED", false, "stop"}, {"SOMETHING_NEW", true, "tool_calls"},
	} {
		if got := geminiFinish(tc.reason, tc.calls); got != tc.want {
			t.Errorf("geminiFinish(%q, %v) = %q, want %q", tc.reason, tc.calls, got, tc.want)
		}
	}
}

// geminiSameUsage compares the counts, not Raw.
func geminiSameUsage(a, b Usage) bool {
	a.Raw, b.Raw = nil, nil
	return a.PromptTokens == b.PromptTokens && a.CompletionTokens == b.CompletionTokens && a.TotalTokens == b.TotalTokens &&
		a.CachedTokens == b.CachedTokens && a.ReasoningTokens == b.ReasoningTokens
}

// geminiRunStream feeds data through the gateway's SSE reader and the
// translator, as the gateway does: it stops at the first error.
func geminiRunStream(c *Call, data []byte) ([]byte, StreamTranslator, error) {
	tr := Get(Gemini).NewStream(c)
	out, err := feedStream(tr, bytes.NewReader(data), nil)
	return out, tr, err
}

func TestGeminiStreamGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		usage Usage
	}{
		{"text", Usage{PromptTokens: 7, CompletionTokens: 7, TotalTokens: 14, ReasoningTokens: 5}},
		{"tools", Usage{PromptTokens: 30, CompletionTokens: 52, TotalTokens: 82, CachedTokens: 16, ReasoningTokens: 40}},
		{"blocked", Usage{PromptTokens: 6, TotalTokens: 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Call{Op: OpChat, Model: "gemini-2.5-flash", Stream: true, IncludeUsage: true, ID: "chatcmpl-gemtest", Created: 1700000000}
			in := fixture(t, "gemini/stream_"+tc.name+".sse")
			if !bytes.Contains(in, []byte("\r\n\r\n")) {
				t.Fatal("the fixture is not CRLF-framed as Gemini sends it")
			}
			out, tr, err := geminiRunStream(c, in)
			if err != nil {
				t.Fatal(err)
			}
			checkChunks(t, c, "", out)
			golden(t, "gemini/stream_"+tc.name+".want.sse", out, false)
			u := tr.Usage()
			if u.Raw == nil {
				t.Error("Raw is empty")
			}
			if !geminiSameUsage(u, tc.usage) {
				t.Errorf("usage %+v, want %+v", u, tc.usage)
			}

			// Without include_usage: the same chunks, no usage chunk.
			c.IncludeUsage = false
			plain, _, err := geminiRunStream(c, in)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(plain, []byte(`"usage"`)) || !bytes.HasSuffix(plain, []byte("data: [DONE]\n\n")) {
				t.Errorf("without include_usage:\n%s", plain)
			}
			if n, m := bytes.Count(out, []byte("data: ")), bytes.Count(plain, []byte("data: ")); n != m+1 {
				t.Errorf("%d events with usage, %d without", n, m)
			}
		})
	}
}

func TestGeminiStreamErrors(t *testing.T) {
	c := &Call{Op: OpChat, Model: "gemini-2.5-flash", Stream: true, IncludeUsage: true, ID: "chatcmpl-gemtest", Created: 1700000000}
	for _, tc := range []struct {
		name, fixture, in string
		class, msg        string
	}{
		{"error event mid-stream", "stream_error", "", ClassOverloaded, "The model is overloaded"},
		{"ends without finishReason", "stream_truncated", "", ClassServer, "ended before the answer was complete"},
		{"empty stream", "", "", ClassServer, "ended before"},
		{"only usage", "", "data: {\"usageMetadata\":{\"promptTokenCount\":3}}\r\n\r\n", ClassServer, "ended before"},
		{"rate limited in stream", "", "data: {\"error\":{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\",\"status\":\"RESOURCE_EXHAUSTED\"}}\r\n\r\n",
			ClassRateLimit, "Resource has been exhausted"},
		{"error array", "", "data: [{\"error\":{\"code\":500,\"message\":\"An internal error has occurred.\",\"status\":\"INTERNAL\"}}]\r\n\r\n",
			ClassServer, "An internal error"},
		{"error without code", "", "data: {\"error\":{\"message\":\"boom\"}}\r\n\r\n", ClassServer, "boom"},
		{"invalid JSON", "", "data: {\"candidates\": [\r\n\r\n", ClassServer, "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			if tc.fixture != "" {
				in = fixture(t, "gemini/"+tc.fixture+".sse")
			}
			out, _, err := geminiRunStream(c, in)
			var se *StreamError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *StreamError; out:\n%s", err, out)
			}
			if se.Class != tc.class || !strings.Contains(se.Message, tc.msg) || se.Code == "" {
				t.Errorf("StreamError %+v, want class %s and %q", se, tc.class, tc.msg)
			}
			checkChunks(t, c, "", out)
			if bytes.Contains(out, []byte("[DONE]")) || bytes.Contains(out, []byte("finish_reason\":\"")) {
				t.Errorf("a failed stream looks finished:\n%s", out)
			}
			if tc.fixture != "" {
				golden(t, "gemini/"+tc.fixture+".want.sse", out, false)
			}
		})
	}
	// The usage seen before the stream broke is still reported, for metering.
	_, tr, _ := geminiRunStream(c, fixture(t, "gemini/stream_truncated.sse"))
	if u := tr.Usage(); u.PromptTokens != 4 {
		t.Errorf("usage after a truncated stream: %+v", u)
	}
}

func TestGeminiStreamEdges(t *testing.T) {
	c := &Call{Op: OpChat, Model: "gemini-2.5-flash", Stream: true, ID: "chatcmpl-e", Created: 1}
	ev := func(s string) string { return "data: " + s + "\r\n\r\n" }

	// Two candidates (n=2), interleaved, each with its own index, role and finish.
	in := ev(`{"candidates":[{"content":{"parts":[{"text":"A"}]}},{"content":{"parts":[{"text":"B"}]},"index":1}]}`) +
		ev(`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{}}}]},"finishReason":"STOP"},{"content":{"parts":[{"text":"b"}]},"index":1}]}`) +
		ev(`{"candidates":[{"content":{"parts":[{"text":"late"}]},"finishReason":"STOP"},{"finishReason":"MAX_TOKENS","index":1}]}`) +
		ev(`{"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":4,"totalTokenCount":6}}`)
	out, tr, err := geminiRunStream(c, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, c, "", out)
	var finishes, roles []string
	for _, line := range strings.Split(string(out), "\n\n") {
		r := gjson.Parse(strings.TrimPrefix(line, "data: ")).Get("choices.0")
		if f := r.Get("finish_reason").String(); f != "" {
			finishes = append(finishes, r.Get("index").String()+":"+f)
		}
		if r.Get("delta.role").Exists() {
			roles = append(roles, r.Get("index").String())
		}
	}
	if strings.Join(finishes, ",") != "0:tool_calls,1:length" || strings.Join(roles, ",") != "0,1" {
		t.Errorf("finishes %v, roles %v:\n%s", finishes, roles, out)
	}
	if bytes.Contains(out, []byte("late")) {
		t.Errorf("content after a finish_reason was sent:\n%s", out)
	}
	if !bytes.Contains(out, []byte(`"tool_calls":[{"index":0,"id":"call_e_0","type":"function","function":{"name":"f","arguments":"{}"}}]`)) {
		t.Errorf("tool call delta:\n%s", out)
	}
	if u := tr.Usage(); u.TotalTokens != 6 {
		t.Errorf("usage %+v: the latest usageMetadata should win", u)
	}

	// One candidate of two never finishes.
	in = ev(`{"candidates":[{"content":{"parts":[{"text":"A"}]},"finishReason":"STOP"},{"content":{"parts":[{"text":"B"}]},"index":1}]}`)
	if _, _, err := geminiRunStream(c, []byte(in)); err == nil {
		t.Error("a stream with an unfinished choice ended normally")
	}

	// LF framing and [DONE] (not what Gemini sends) are read too; the model
	// stays the first one seen.
	in = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]}}],\"modelVersion\":\"v1\"}\n\n" +
		"data: {\"candidates\":[{\"finishReason\":\"STOP\"}],\"modelVersion\":\"v2\"}\n\ndata: [DONE]\n\n"
	out, _, err = geminiRunStream(c, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte(`"v2"`)) || bytes.Count(out, []byte("[DONE]")) != 1 {
		t.Errorf("stream:\n%s", out)
	}
	// Without modelVersion the requested model names the chunks.
	out, _, _ = geminiRunStream(c, []byte(ev(`{"candidates":[{"content":{"parts":[{"text":"x"}]},"finishReason":"STOP"}]}`)))
	if !bytes.Contains(out, []byte(`"model":"gemini-2.5-flash"`)) {
		t.Errorf("stream:\n%s", out)
	}
}

func TestGeminiCallIDs(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"chatcmpl-abc123", "call_abc123_0"},
		{"", "call_0"},
		{"chatcmpl-", "call_0"},
		{"chatcmpl-" + strings.Repeat("x", 40), ""},
		{"chatcmpl-a b", ""},
	} {
		got := newGeminiCallIDs(tc.id).toolCall(&geminiFunctionCall{Name: "f"}, "").ID
		if tc.want != "" && got != tc.want {
			t.Errorf("%q: id %q, want %q", tc.id, got, tc.want)
		}
		if len(got) > 40 || strings.ContainsAny(got, " /") {
			t.Errorf("%q: id %q is too long or has odd characters", tc.id, got)
		}
	}
}

func TestGeminiClassify(t *testing.T) {
	badKey := providertest.GeminiUnauthorized("AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE12").Body
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"bad key", 400, badKey, ClassAuth},
		{"bad key, message only", 400, `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}`, ClassAuth},
		{"expired key", 400, `{"error":{"code":400,"message":"API key expired. Please renew the API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}`, ClassAuth},
		{"bad key, array form", 400, `[{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}]`, ClassAuth},
		{"invalid argument", 400, providertest.GeminiError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified\n"), ClassBadRequest},
		{"location / billing", 400, providertest.GeminiError(400, "FAILED_PRECONDITION", "User location is not supported for the API use."), ClassQuota},
		{"permission denied", 403, providertest.GeminiError(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key."), ClassAuth},
		{"unauthenticated", 401, providertest.GeminiError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), ClassAuth},
		{"not found", 404, providertest.GeminiError(404, "NOT_FOUND", "models/gemini-9 is not found for API version v1beta"), ClassBadRequest},
		{"per-minute with retry", 429, providertest.GeminiError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.",
			providertest.GeminiQuotaFailure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "15"), providertest.GeminiRetryInfo("37s")), ClassRateLimit},
		{"per-day", 429, providertest.GeminiError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details.",
			providertest.GeminiQuotaFailure("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "20"), providertest.GeminiRetryInfo("36s")), ClassQuota},
		{"limit zero", 429, providertest.GeminiError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.",
			providertest.GeminiQuotaFailure("GenerateContentInputTokensPerModelPerMinute-FreeTier", "0"), providertest.GeminiRetryInfo("25s")), ClassQuota},
		{"quota without retry info", 429, providertest.GeminiError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details."), ClassQuota},
		{"plain exhausted", 429, providertest.GeminiError(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."), ClassRateLimit},
		{"429 not JSON", 429, `Too Many Requests`, ClassRateLimit},
		{"overloaded", 503, providertest.GeminiError(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), ClassOverloaded},
		{"internal", 500, providertest.GeminiError(500, "INTERNAL", "An internal error has occurred."), ClassServer},
		{"deadline", 504, providertest.GeminiError(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."), ClassServer},
	} {
		if got := ClassifyResponse(Gemini, tc.status, nil, []byte(tc.body)); got != tc.want {
			t.Errorf("%s: class %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestGeminiErrorMessage(t *testing.T) {
	body := providertest.GeminiError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
	if got := ErrorMessage([]byte(body)); got != "The model is overloaded. Please try again later." {
		t.Errorf("ErrorMessage = %q", got)
	}
	// The fake echoes the key; the gateway's scrubbing removes it.
	key := "AIzaSyFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE12"
	msg := ErrorMessage([]byte(providertest.GeminiUnauthorized(key).Body))
	if !strings.Contains(msg, key) || strings.Contains(string(Scrub([]byte(msg), key)), key) {
		t.Errorf("message %q", msg)
	}
}

func TestGeminiEmbeddings(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"string", `{"model":"text-embedding-004","input":"hello"}`,
			`{"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"hello"}]}}]}`},
		{"strings and dimensions", `{"model":"m","input":["a","b"],"dimensions":256}`,
			`{"requests":[{"model":"models/text-embedding-004","content":{"parts":[{"text":"a"}]},"outputDimensionality":256},{"model":"models/text-embedding-004","content":{"parts":[{"text":"b"}]},"outputDimensionality":256}]}`},
	} {
		c := &Call{Op: OpEmbeddings, Key: reqTestKey, Model: "models/text-embedding-004", Body: []byte(tc.body)}
		req, body := geminiBuild(t, c)
		if want := "https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004:batchEmbedContents"; req.URL.String() != want {
			t.Errorf("%s: URL %s", tc.name, req.URL)
		}
		assertKeyOnlyIn(t, req, "X-Goog-Api-Key")
		if !bytes.Equal(canonicalJSON(t, []byte(body)), canonicalJSON(t, []byte(tc.want))) {
			t.Errorf("%s: body %s\nwant %s", tc.name, body, tc.want)
		}
	}
	for _, in := range []string{`{"input":[1,2,3]}`, `{"input":[]}`, `{"input":null}`, `{`} {
		var re *RequestError
		if _, err := Get(Gemini).NewCallRequest(context.Background(), &Call{Op: OpEmbeddings, Model: "m", Body: []byte(in)}); !errors.As(err, &re) {
			t.Errorf("%s: err %v, want a RequestError", in, err)
		}
	}

	answer := []byte(`{"embeddings":[{"values":[0.5,-1.25]},{"values":[3]}]}`)
	c := &Call{Op: OpEmbeddings, Model: "text-embedding-004", Body: []byte(`{"input":["a","b"]}`)}
	got, u, err := Get(Gemini).TranslateResponse(c, answer)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1.25]},{"object":"embedding","index":1,"embedding":[3]}],"model":"text-embedding-004","usage":{"prompt_tokens":0,"total_tokens":0}}`
	if !bytes.Equal(canonicalJSON(t, got), canonicalJSON(t, []byte(want))) || u.Reported() {
		t.Errorf("got %s (%+v)\nwant %s", got, u, want)
	}
	c.Body = []byte(`{"input":["a","b"],"encoding_format":"base64"}`)
	got, _, err = Get(Gemini).TranslateResponse(c, answer)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(gjson.GetBytes(got, "data.0.embedding").String())
	if len(raw) != 8 || math.Float32frombits(binary.LittleEndian.Uint32(raw[4:])) != -1.25 {
		t.Errorf("base64 embedding %s", got)
	}
	if _, _, err := Get(Gemini).TranslateResponse(c, []byte(`{"embeddings":[{"values":["x"]}]}`)); err == nil {
		t.Error("a non-number value was accepted")
	}
}

func TestGeminiAgainstFake(t *testing.T) {
	fake := providertest.New("gemini")
	defer fake.Close()
	const key = "AIzaSyFAKE-gemini-0123456789abcdefghij"
	call := func(model, body string, stream bool) *Call {
		return &Call{Op: OpChat, Endpoint: Endpoint{BaseURL: fake.BaseURL()}, Key: key, Model: model, Body: []byte(body),
			Stream: stream, IncludeUsage: stream, ID: "chatcmpl-fake1", Created: 1700000000}
	}
	const chat = `{"model":"x","messages":[{"role":"user","content":"hi"}]}`

	t.Run("default answer", func(t *testing.T) {
		c := call("models/gemini-2.5-flash", chat, false)
		resp, body := send(t, Gemini, c)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		rec, _ := fake.Last()
		if rec.CredentialHeader != "X-Goog-Api-Key" || rec.Credential != key || rec.Model != "gemini-2.5-flash" || rec.Stream {
			t.Errorf("record %+v", rec)
		}
		if strings.Contains(rec.Query, "key") {
			t.Errorf("query %q", rec.Query)
		}
		out, u, err := Get(Gemini).TranslateResponse(c, body)
		if err != nil {
			t.Fatal(err)
		}
		d := providertest.DefaultGeminiUsage
		if gjson.GetBytes(out, "choices.0.message.content").String() != "Hello from the fake" ||
			u.PromptTokens != int64(d.Prompt) || u.CompletionTokens != int64(d.Candidates+d.Thoughts) || u.TotalTokens != int64(d.Total()) {
			t.Errorf("%s, usage %+v", out, u)
		}
	})

	t.Run("tool calls and usage", func(t *testing.T) {
		u := providertest.GeminiUsage{Prompt: 1500, Cached: 1024, Candidates: 20, Thoughts: 300, ToolUsePrompt: 7}
		fake.SetResponder(func(rec providertest.Record) providertest.Response {
			return providertest.Response{Body: providertest.GeminiToolCalls(rec.Model, []providertest.GeminiCall{
				{Name: "get_weather", Args: `{"city":"Oslo"}`, ThoughtSignature: "c2ln"}, {ID: "fc_2", Name: "get_time"}}, u)}
		})
		defer fake.SetResponder(nil)
		c := call("gemini-3-flash-preview", chat, false)
		_, body := send(t, Gemini, c)
		out, got, err := Get(Gemini).TranslateResponse(c, body)
		if err != nil {
			t.Fatal(err)
		}
		r := gjson.ParseBytes(out)
		if r.Get("choices.0.finish_reason").String() != "tool_calls" || r.Get("choices.0.message.tool_calls.#").Int() != 2 ||
			r.Get("choices.0.message.tool_calls.0.id").String() != "call_fake1_0" || r.Get("choices.0.message.tool_calls.1.id").String() != "fc_2" ||
			r.Get("choices.0.message.tool_calls.0.extra_content.google.thought_signature").String() != "c2ln" {
			t.Errorf("answer %s", out)
		}
		want := Usage{PromptTokens: 1507, CompletionTokens: 320, TotalTokens: 1827, CachedTokens: 1024, ReasoningTokens: 300}
		if !geminiSameUsage(got, want) || r.Get("usage.total_tokens").Int() != want.TotalTokens || r.Get("usage.prompt_tokens").Int() != want.PromptTokens {
			t.Errorf("usage %+v (client sees %s), want %+v", got, r.Get("usage").Raw, want)
		}
	})

	t.Run("stream", func(t *testing.T) {
		c := call("gemini-2.5-flash", chat, true)
		resp, raw := send(t, Gemini, c)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Contains(raw, []byte("\r\n\r\n")) {
			t.Errorf("the fake's stream is not CRLF-framed: %q", raw)
		}
		out, tr, err := geminiRunStream(c, raw)
		if err != nil {
			t.Fatal(err)
		}
		checkChunks(t, c, "", out)
		var text strings.Builder
		var usage gjson.Result
		for _, ev := range strings.Split(string(out), "\n\n") {
			r := gjson.Parse(strings.TrimPrefix(ev, "data: "))
			text.WriteString(r.Get("choices.0.delta.content").String())
			if r.Get("usage").Exists() {
				usage = r.Get("usage")
			}
		}
		d := providertest.DefaultGeminiUsage
		if text.String() != "Hello from the fake" || usage.Get("total_tokens").Int() != int64(d.Total()) ||
			usage.Get("completion_tokens_details.reasoning_tokens").Int() != int64(d.Thoughts) || tr.Usage().TotalTokens != int64(d.Total()) {
			t.Errorf("text %q, usage %s / %+v", text.String(), usage.Raw, tr.Usage())
		}
		rec, _ := fake.Last()
		if !rec.Stream || rec.Query != "alt=sse" || rec.CredentialHeader != "X-Goog-Api-Key" {
			t.Errorf("record %+v", rec)
		}
	})

	t.Run("error mid-stream", func(t *testing.T) {
		fake.SetResponder(func(rec providertest.Record) providertest.Response {
			ev := providertest.GeminiStream(rec.Model, []string{"a", "b"}, providertest.DefaultGeminiUsage)
			return providertest.Response{RawEvents: []string{ev[0], providertest.GeminiEvent(
				json.RawMessage(providertest.GeminiError(500, "INTERNAL", "An internal error has occurred.")))}}
		})
		defer fake.SetResponder(nil)
		c := call("gemini-2.5-flash", chat, true)
		_, raw := send(t, Gemini, c)
		_, _, err := geminiRunStream(c, raw)
		var se *StreamError
		if !errors.As(err, &se) || se.Class != ClassServer {
			t.Errorf("err %v", err)
		}
	})

	t.Run("bad key", func(t *testing.T) {
		fake.AcceptOnly("AIzaSyGOOD")
		defer fake.AcceptOnly()
		resp, body := send(t, Gemini, call("gemini-2.5-flash", chat, false))
		if resp.StatusCode != 400 || ClassifyResponse(Gemini, resp.StatusCode, resp.Header, body) != ClassAuth {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
		if !strings.Contains(string(body), key) {
			t.Error("the fake should echo the key, for the gateway's scrubbing to be tested")
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		c := &Call{Op: OpEmbeddings, Endpoint: Endpoint{BaseURL: fake.BaseURL()}, Key: key, Model: "text-embedding-004",
			Body: []byte(`{"model":"text-embedding-004","input":["a","b"]}`)}
		resp, body := send(t, Gemini, c)
		out, _, err := Get(Gemini).TranslateResponse(c, body)
		if resp.StatusCode != 200 || err != nil || gjson.GetBytes(out, "data.#").Int() != 2 {
			t.Errorf("%d %s %v", resp.StatusCode, out, err)
		}
	})

	t.Run("a key in the URL is recorded as such", func(t *testing.T) {
		resp, err := http.Post(fake.URL+"/v1beta/models/gemini-2.5-flash:generateContent?key=AIzaQUERY", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if rec, _ := fake.Last(); rec.CredentialHeader != "query" || rec.Credential != "AIzaQUERY" {
			t.Errorf("record %+v", rec)
		}
		for _, r := range fake.Records() {
			if r.Credential == key && r.CredentialHeader != "X-Goog-Api-Key" {
				t.Errorf("the adapter sent the key in %s", r.CredentialHeader)
			}
		}
	})
}

// --- fuzzing ---

// FuzzGeminiRequest: any body either translates to a valid JSON
// generateContent request or fails with a RequestError; never a panic.
func FuzzGeminiRequest(f *testing.F) {
	addFixtures(f, "gemini/request_*.json")
	f.Add([]byte(`{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/a"}}}}}]}`))
	f.Add([]byte(`{"input":["a","b"],"dimensions":8}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"web_search_options":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c := &Call{Op: OpChat, Key: "k", Model: "gemini-2.5-flash", Body: body, Stream: len(body)%2 == 0}
		if gjson.GetBytes(body, "input").Exists() {
			c.Op = OpEmbeddings
		}
		b, refused := buildOrRefuse(t, Gemini, c)
		if refused != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("invalid native body %s", b)
		}
		if c.Op == OpChat && !gjson.GetBytes(b, "contents.0.parts.0").Exists() {
			t.Fatalf("native body without contents %s", b)
		}
	})
}

// FuzzGeminiResponse: any answer either translates to a valid
// chat.completion with at least one choice or fails; never a panic.
func FuzzGeminiResponse(f *testing.F) {
	addFixtures(f, "gemini/response_*.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		c := &Call{Op: OpChat, Model: "m", ID: "chatcmpl-f", Created: 1}
		out, _, err := Get(Gemini).TranslateResponse(c, body)
		if err == nil {
			if !json.Valid(out) || gjson.GetBytes(out, "choices.#").Int() == 0 || !gjson.GetBytes(out, "usage").IsObject() {
				t.Fatalf("invalid completion %s", out)
			}
		}
		c.Op, c.Body = OpEmbeddings, []byte(`{"encoding_format":"base64"}`)
		if out, _, err := Get(Gemini).TranslateResponse(c, body); err == nil && !json.Valid(out) {
			t.Fatalf("invalid embeddings %s", out)
		}
	})
}

// FuzzGeminiStream: any byte stream yields well-formed chunks, ending either
// in [DONE] or in a StreamError; never a panic.
func FuzzGeminiStream(f *testing.F) {
	addFixtures(f, "gemini/stream_*.sse")
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &Call{Op: OpChat, Model: "m", Stream: true, IncludeUsage: true, ID: "chatcmpl-f", Created: 1}
		out, _, err := geminiRunStream(c, data)
		if err != nil {
			var se *StreamError
			if !errors.As(err, &se) && !errors.Is(err, ErrEventTooLarge) {
				t.Fatalf("error %v is not a StreamError", err)
			}
			if bytes.Contains(out, []byte("[DONE]")) {
				t.Fatalf("[DONE] before an error:\n%s", out)
			}
		} else if !bytes.HasSuffix(out, []byte("data: [DONE]\n\n")) {
			t.Fatalf("no [DONE]:\n%s", out)
		}
		checkChunks(t, c, "", out)
	})
}
