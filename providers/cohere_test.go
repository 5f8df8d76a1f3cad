package providers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/tidwall/gjson"
)

const (
	cohereTestModel = "command-a-03-2025"
	cohereTestID    = "chatcmpl-cohere-test"
)

func cohereTestCall(body []byte) *Call {
	return &Call{
		Op: OpChat, Key: reqTestKey, Model: cohereTestModel, Body: body,
		Stream:       gjson.GetBytes(body, "stream").Bool(),
		IncludeUsage: gjson.GetBytes(body, "stream_options.include_usage").Bool(),
		ID:           cohereTestID, Created: 1700000000,
	}
}

func TestCohereRequestGolden(t *testing.T) {
	for _, name := range []string{"chat", "tools", "tool_choice_named", "tool_choice_none", "images", "stream"} {
		t.Run(name, func(t *testing.T) {
			req, err := Get(Cohere).NewCallRequest(context.Background(), cohereTestCall(fixture(t, "cohere/request_"+name+".json")))
			if err != nil {
				t.Fatal(err)
			}
			assertKeyOnlyIn(t, req, "Authorization")
			snap, _ := requestSnapshot(t, req)
			golden(t, "cohere/request_"+name+".want.json", snap, true)
		})
	}
}

func TestCohereRequestBaseURL(t *testing.T) {
	c := cohereTestCall([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	c.Endpoint.BaseURL = "https://api.cohere.ai/"
	req, err := Get(Cohere).NewCallRequest(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.URL.String(); got != "https://api.cohere.ai/v2/chat" {
		t.Errorf("url = %s", got)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer "+reqTestKey {
		t.Errorf("Authorization = %q", got)
	}
	c = cohereTestCall(c.Body)
	c.Op = OpEmbeddings
	if _, err := Get(Cohere).NewCallRequest(context.Background(), c); !errors.Is(err, ErrNotImplemented) {
		t.Errorf("embeddings: %v, want ErrNotImplemented", err)
	}
}

func TestCohereRequestErrors(t *testing.T) {
	const user = `{"role":"user","content":"hi"}`
	const tool = `{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}`
	for _, tc := range []struct{ name, body, want string }{
		{"invalid json", `{"model":`, "invalid chat completions request"},
		{"n", `{"model":"m","n":2,"messages":[` + user + `]}`, "n must be 1"},
		{"named tool missing", `{"model":"m","messages":[` + user + `],"tools":[` + tool + `],"tool_choice":{"type":"function","function":{"name":"g"}}}`, `"g"`},
		{"required without tools", `{"model":"m","messages":[` + user + `],"tool_choice":"required"}`, "needs tools"},
		{"unknown tool_choice", `{"model":"m","messages":[` + user + `],"tools":[` + tool + `],"tool_choice":"any"}`, "tool_choice"},
		{"tool_choice object without name", `{"model":"m","messages":[` + user + `],"tools":[` + tool + `],"tool_choice":{"type":"allowed_tools"}}`, "tool_choice"},
		{"image in system", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, "only text parts"},
		{"image in assistant", `{"model":"m","messages":[{"role":"assistant","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, "only text parts"},
		{"image without url", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}`, "needs a url"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}]}`, "input_audio"},
		{"unknown role", `{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`, `"function"`},
		{"tool without id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "tool_call_id"},
		{"content not text", `{"model":"m","messages":[{"role":"user","content":5}]}`, "string or an array"},
		{"custom tool", `{"model":"m","messages":[` + user + `],"tools":[{"type":"custom","custom":{"name":"x"}}]}`, "function tools"},
		{"tool without name", `{"model":"m","messages":[` + user + `],"tools":[{"type":"function","function":{}}]}`, "needs a name"},
		{"assistant custom call", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","type":"custom","custom":{}}]}]}`, "function tool calls"},
		{"response_format unknown", `{"model":"m","messages":[` + user + `],"response_format":{"type":"grammar"}}`, "response_format"},
		{"json_schema without schema", `{"model":"m","messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, "schema"},
		{"penalty type", `{"model":"m","messages":[` + user + `],"presence_penalty":"high"}`, "presence_penalty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Get(Cohere).NewCallRequest(context.Background(), cohereTestCall([]byte(tc.body)))
			var re *RequestError
			if req != nil || !errors.As(err, &re) {
				t.Fatalf("got %v, %v; want a *RequestError", req, err)
			}
			if !strings.Contains(re.Message, tc.want) {
				t.Errorf("message %q does not mention %q", re.Message, tc.want)
			}
			if strings.Contains(re.Message, "Kq3ZUNIQUE") {
				t.Errorf("message leaks the key: %q", re.Message)
			}
		})
	}
}

func TestCohereResponseGolden(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		prompt, completion, cached int64
	}{
		{"text", 71, 4, 0},
		{"tool_calls", 1250, 60, 1024},
		{"max_tokens", 12, 5, 0},
		{"stop_sequence", 80, 30, 0},
		{"complete_tools", 20, 7, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t, "cohere/response_"+tc.name+".json")
			got, u, err := Get(Cohere).TranslateResponse(cohereTestCall(nil), in)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "cohere/response_"+tc.name+".want.json", got, true)
			if u.PromptTokens != tc.prompt || u.CompletionTokens != tc.completion || u.TotalTokens != tc.prompt+tc.completion || u.CachedTokens != tc.cached {
				t.Errorf("usage = %+v, want %d/%d cached %d", u, tc.prompt, tc.completion, tc.cached)
			}
			if !bytes.Equal(canonicalJSON(t, u.Raw), canonicalJSON(t, []byte(gjson.GetBytes(in, "usage").Raw))) {
				t.Errorf("Raw = %s, want the provider's usage object", u.Raw)
			}
		})
	}
}

func TestCohereResponseErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, class string }{
		{"not json", `{"id":`, ""},
		{"array", `[1,2]`, ""},
		{"error body", `{"message":"internal error"}`, ClassServer},
		{"no message", `{}`, ClassServer},
		{"message not an object", `{"id":"x","finish_reason":"COMPLETE","message":[1]}`, ClassServer},
		{"tool call without name", `{"id":"x","finish_reason":"TOOL_CALL","message":{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"arguments":"{}"}}]}}`, ClassServer},
		{"finish error", `{"id":"x","finish_reason":"ERROR","message":{"role":"assistant","content":[]},"usage":{"tokens":{"input_tokens":3,"output_tokens":0}}}`, ClassServer},
		{"finish timeout", `{"id":"x","finish_reason":"TIMEOUT","message":{"role":"assistant","content":[{"type":"text","text":"par"}]}}`, ClassTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _, err := Get(Cohere).TranslateResponse(cohereTestCall(nil), []byte(tc.body))
			if err == nil {
				t.Fatalf("no error; body %s", b)
			}
			var se *StreamError
			if tc.class != "" && (!errors.As(err, &se) || se.Class != tc.class) {
				t.Errorf("error %v, want a *StreamError of class %s", err, tc.class)
			}
		})
	}
	// Finish reasons not in a golden file.
	for reason, want := range map[string]string{"ERROR_TOXIC": "content_filter", "ERROR_LIMIT": "length", "": "stop", "SOMETHING_NEW": "stop"} {
		body := `{"id":"x","finish_reason":"` + reason + `","message":{"role":"assistant","content":[{"type":"text","text":"t"}]}}`
		b, _, err := Get(Cohere).TranslateResponse(cohereTestCall(nil), []byte(body))
		if err != nil {
			t.Fatalf("%s: %v", reason, err)
		}
		if got := gjson.GetBytes(b, "choices.0.finish_reason").String(); got != want {
			t.Errorf("finish_reason %q → %q, want %q", reason, got, want)
		}
	}
}

// cohereRunStream feeds an SSE stream through the translator, checking
// that each piece it writes is well-formed; it returns the output and the
// first error (from Event or End).
func cohereRunStream(t testing.TB, c *Call, r io.Reader) (StreamTranslator, []byte, error) {
	tr := Get(Cohere).NewStream(c)
	out, err := feedStream(tr, r, func(piece []byte) { checkChunks(t, c, cohereTestModel, piece) })
	return tr, out, err
}

func TestCohereStreamGolden(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		includeUsage               bool
		prompt, completion, cached int64
	}{
		{"text", true, 71, 6, 64},
		{"tools", true, 900, 30, 0},
		{"no_names", false, 893, 62, 0},
		{"max_tokens", true, 12, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := fixture(t, "cohere/stream_"+tc.name+".sse")
			c := cohereTestCall(nil)
			c.Stream, c.IncludeUsage = true, tc.includeUsage
			tr, out, err := cohereRunStream(t, c, bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "cohere/stream_"+tc.name+".want.sse", out, false)
			u := tr.Usage()
			if u.PromptTokens != tc.prompt || u.CompletionTokens != tc.completion || u.TotalTokens != tc.prompt+tc.completion || u.CachedTokens != tc.cached {
				t.Errorf("usage = %+v, want %d/%d cached %d", u, tc.prompt, tc.completion, tc.cached)
			}
			if !gjson.ValidBytes(u.Raw) || !gjson.ParseBytes(u.Raw).IsObject() {
				t.Errorf("Raw = %s, want the provider's usage object", u.Raw)
			}
		})
	}
}

func TestCohereStreamErrors(t *testing.T) {
	const (
		start = "event: message-start\ndata: {\"type\":\"message-start\",\"id\":\"x\",\"delta\":{\"message\":{\"role\":\"assistant\"}}}\n\n"
		text  = "event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Hi\"}}}}\n\n"
	)
	for _, tc := range []struct {
		name, stream, class, message string
		fromEnd                      bool
	}{
		{"error event", start + text + "event: error\ndata: {\"message\":\"internal server error\"}\n\n", ClassServer, "internal server error", false},
		{"typed error event", start + "data: {\"type\":\"error\",\"error\":{\"message\":\"overloaded\"}}\n\n", ClassServer, "overloaded", false},
		{"bare message", start + text + "data: {\"message\":\"too many tokens\"}\n\n", ClassServer, "too many tokens", false},
		{"error member", start + "event: content-delta\ndata: {\"type\":\"content-delta\",\"error\":\"stream broke\"}\n\n", ClassServer, "stream broke", false},
		{"finish error", start + text + "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\",\"usage\":{\"tokens\":{\"input_tokens\":3,\"output_tokens\":1}}}}\n\n", ClassServer, "error", false},
		{"finish timeout", start + text + "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TIMEOUT\"}}\n\n", ClassTimeout, "timed out", false},
		{"end error field", start + "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"error\":\"model crashed\"}}\n\n", ClassServer, "model crashed", false},
		{"not json", start + "event: content-delta\ndata: {\"type\":\n\n", ClassServer, "not JSON", false},
		{"not an object", start + "data: [1]\n\n", ClassServer, "not a JSON object", false},
		{"tool delta first", start + "event: tool-call-delta\ndata: {\"type\":\"tool-call-delta\",\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{}\"}}}}}\n\n", ClassServer, "before the tool call", false},
		{"tool without name", start + "event: tool-call-start\ndata: {\"type\":\"tool-call-start\",\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"a\"}}}}\n\n", ClassServer, "without a name", false},
		{"ends early", start + text, ClassServer, "ended before", true},
		{"done without end", start + text + "data: [DONE]\n\n", ClassServer, "ended before", true},
		{"empty", "", ClassServer, "ended before", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cohereTestCall(nil)
			c.Stream, c.IncludeUsage = true, true
			_, out, err := cohereRunStream(t, c, strings.NewReader(tc.stream))
			var se *StreamError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *StreamError; output:\n%s", err, out)
			}
			if se.Class != tc.class || !strings.Contains(se.Message, tc.message) {
				t.Errorf("StreamError = %+v, want class %s and a message with %q", se, tc.class, tc.message)
			}
			if bytes.Contains(out, []byte("[DONE]")) || bytes.Contains(out, []byte(`"finish_reason":"stop"`)) {
				t.Errorf("a failed stream looks finished:\n%s", out)
			}
		})
	}
}

func TestCohereStreamIgnoresAfterEnd(t *testing.T) {
	c := cohereTestCall(nil)
	c.Stream = true
	in := "event: content-delta\ndata: {\"type\":\"content-delta\",\"delta\":{\"message\":{\"content\":{\"text\":\"a\"}}}}\n\n" +
		"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\"}}\n\n" +
		"event: content-delta\ndata: {\"type\":\"content-delta\",\"delta\":{\"message\":{\"content\":{\"text\":\"late\"}}}}\n\n" +
		"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\"}}\n\n" +
		"event: something-new\ndata: {\"type\":\"something-new\"}\n\n"
	_, out, err := cohereRunStream(t, c, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("late")) || bytes.Count(out, []byte(`"finish_reason":"stop"`)) != 1 {
		t.Errorf("events after message-end were relayed:\n%s", out)
	}
	if bytes.Contains(out, []byte(`"usage"`)) {
		t.Errorf("usage chunk without include_usage:\n%s", out)
	}
}

func TestCohereClassify(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{401, `{"message":"invalid api token"}`, ClassAuth},
		{403, `{"message":"forbidden"}`, ClassAuth},
		{498, `{"message":"invalid api token"}`, ClassAuth},
		{429, `{"message":"You are using a Trial key, which is limited to 20 API calls / minute."}`, ClassRateLimit},
		{429, `{"message":"You are using a Trial key, which is limited to 1000 API calls / month."}`, ClassQuota},
		{402, `{"message":"Please add a payment method"}`, ClassQuota},
		{400, `{"message":"invalid request: message must not be empty"}`, ClassBadRequest},
		{422, `{"message":"unprocessable"}`, ClassBadRequest},
		{404, `{"message":"model 'x' not found"}`, ClassBadRequest},
		{500, `{"message":"internal server error"}`, ClassServer},
		{501, `{"message":"not implemented"}`, ClassServer},
		{503, `{"message":"service unavailable"}`, ClassOverloaded},
		{504, `{"message":"gateway timeout"}`, ClassTimeout},
	} {
		if got := ClassifyResponse(Cohere, tc.status, nil, []byte(tc.body)); got != tc.want {
			t.Errorf("%d %s: class %q, want %q", tc.status, tc.body, got, tc.want)
		}
		if got, want := ErrorMessage([]byte(tc.body)), gjson.Get(tc.body, "message").String(); got != want {
			t.Errorf("ErrorMessage(%s) = %q, want %q", tc.body, got, want)
		}
	}
}

// TestCohereAgainstFake runs the adapter against the fake Cohere: the key
// arrives in the Authorization header only, and the usage the client sees
// is what the fake reported.
func TestCohereAgainstFake(t *testing.T) {
	fake := providertest.New("cohere")
	defer fake.Close()
	const key = "co-Kq3ZUNIQUEfakekey0123456789abcdefghij"
	fake.AcceptOnly(key)
	p := Get(Cohere)
	send := func(t *testing.T, c *Call) *http.Response {
		t.Helper()
		c.Endpoint.BaseURL, c.Key = fake.BaseURL(), key
		req, err := p.NewCallRequest(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		rec, _ := fake.Last()
		if rec.CredentialHeader != "Authorization" || rec.Credential != c.Key || rec.Model != cohereTestModel || rec.Stream != c.Stream {
			t.Errorf("fake recorded %s=%q model %q stream %v", rec.CredentialHeader, rec.Credential, rec.Model, rec.Stream)
		}
		if strings.Contains(rec.Path+rec.Query, "Kq3ZUNIQUE") {
			t.Errorf("the key is in the URL %s?%s", rec.Path, rec.Query)
		}
		return resp
	}
	chat := []byte(`{"model":"command-a","messages":[{"role":"user","content":"hi"}]}`)
	streamed := []byte(`{"model":"command-a","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`)

	t.Run("text", func(t *testing.T) {
		u := providertest.CohereUsage{InputTokens: 30, OutputTokens: 4, BilledInputTokens: 3, BilledOutputTokens: 4, CachedTokens: 16}
		fake.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Body: providertest.CohereChat("Hi there", u)}
		})
		defer fake.SetResponder(nil)
		resp := send(t, cohereTestCall(chat))
		body, _ := io.ReadAll(resp.Body)
		out, got, err := p.TranslateResponse(cohereTestCall(chat), body)
		if err != nil {
			t.Fatal(err)
		}
		if got.PromptTokens != 30 || got.CompletionTokens != 4 || got.CachedTokens != 16 {
			t.Errorf("usage = %+v, want the fake's tokens 30/4 cached 16", got)
		}
		if c := gjson.GetBytes(out, "choices.0.message.content").String(); c != "Hi there" {
			t.Errorf("content = %q", c)
		}
	})
	t.Run("tool call", func(t *testing.T) {
		fake.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Body: providertest.CohereToolCall("call_1", "get_time", `{"tz":"UTC"}`, providertest.CohereTokens(40, 9))}
		})
		defer fake.SetResponder(nil)
		resp := send(t, cohereTestCall(chat))
		body, _ := io.ReadAll(resp.Body)
		out, u, err := p.TranslateResponse(cohereTestCall(chat), body)
		if err != nil {
			t.Fatal(err)
		}
		r := gjson.ParseBytes(out)
		if r.Get("choices.0.finish_reason").String() != "tool_calls" || r.Get("choices.0.message.tool_calls.0.function.arguments").String() != `{"tz":"UTC"}` || u.TotalTokens != 49 {
			t.Errorf("translated %s, usage %+v", out, u)
		}
	})
	t.Run("stream", func(t *testing.T) {
		resp := send(t, cohereTestCall(streamed))
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("Content-Type = %q", ct)
		}
		tr, out, err := cohereRunStream(t, cohereTestCall(streamed), resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		for _, line := range strings.Split(string(out), "\n\n") {
			text.WriteString(gjson.Get(strings.TrimPrefix(line, "data: "), "choices.0.delta.content").String())
		}
		if text.String() != "Hello from the fake" {
			t.Errorf("streamed text %q", text.String())
		}
		if u := tr.Usage(); u.PromptTokens != 11 || u.CompletionTokens != 5 {
			t.Errorf("usage = %+v, want the fake's 11/5", u)
		}
		if !bytes.Contains(out, []byte(`"usage":{"completion_tokens":5,"prompt_tokens":11,"total_tokens":16}`)) {
			t.Errorf("no usage chunk:\n%s", out)
		}
	})
	t.Run("tool call stream", func(t *testing.T) {
		fake.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{RawEvents: providertest.CohereToolCallStream("call_9", "get_time", []string{`{"tz":`, `"UTC"}`}, providertest.CohereTokens(50, 12))}
		})
		defer fake.SetResponder(nil)
		resp := send(t, cohereTestCall(streamed))
		tr, out, err := cohereRunStream(t, cohereTestCall(streamed), resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(out, []byte(`"id":"call_9","type":"function","function":{"name":"get_time","arguments":""}`)) ||
			!bytes.Contains(out, []byte(`"finish_reason":"tool_calls"`)) || tr.Usage().TotalTokens != 62 {
			t.Errorf("translated:\n%s\nusage %+v", out, tr.Usage())
		}
	})
	t.Run("bad key", func(t *testing.T) {
		c := cohereTestCall(chat)
		c.Endpoint.BaseURL = fake.BaseURL()
		const wrong = "co-Kq3ZUNIQUEwrongkey0123456789abcdefghij"
		c.Key = wrong
		req, err := p.NewCallRequest(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(body), wrong) {
			t.Fatalf("%d %s, want a 401 that echoes the key", resp.StatusCode, body)
		}
		if got := ClassifyResponse(Cohere, resp.StatusCode, resp.Header, body); got != ClassAuth {
			t.Errorf("class %q", got)
		}
		msg := string(Scrub([]byte(ErrorMessage(body)), wrong))
		if !strings.HasPrefix(msg, "invalid api token") || strings.Contains(msg, "Kq3ZUNIQUE") {
			t.Errorf("scrubbed message %q", msg)
		}
	})
}

// --- fuzzing ---

func FuzzCohereStream(f *testing.F) {
	addFixtures(f, "cohere/stream_*.sse", true)
	f.Add([]byte("event: error\ndata: {\"message\":\"x\"}\n\n"), false)
	f.Add([]byte("data: {\"type\":\"tool-call-start\",\"index\":3,\"delta\":{\"message\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":{\"x\":1}}}]}}}\n\ndata: {\"type\":\"tool-call-delta\",\"index\":3,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"}\"}}}}}\n\ndata: {\"type\":\"message-end\"}\n\n"), true)
	f.Fuzz(func(t *testing.T, in []byte, includeUsage bool) {
		c := cohereTestCall(nil)
		c.Stream, c.IncludeUsage = true, includeUsage
		_, out, err := cohereRunStream(t, c, bytes.NewReader(in))
		var se *StreamError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("error %v is not a *StreamError", err)
		}
		if err == nil && !bytes.HasSuffix(out, doneEvent) {
			t.Fatalf("a finished stream does not end with [DONE]:\n%s", out)
		}
		// Every tool call delta that opens a call names it; every index
		// was opened before it is continued.
		opened := map[int64]bool{}
		for _, ev := range bytes.Split(out, []byte("\n\n")) {
			for _, tc := range gjson.GetBytes(bytes.TrimPrefix(ev, []byte("data: ")), "choices.0.delta.tool_calls").Array() {
				ix := tc.Get("index").Int()
				if tc.Get("id").Exists() {
					if tc.Get("function.name").String() == "" || opened[ix] {
						t.Fatalf("tool call %d opened without a name or twice: %s", ix, ev)
					}
					opened[ix] = true
				} else if !opened[ix] {
					t.Fatalf("tool call %d continued before it opened: %s", ix, ev)
				}
			}
		}
	})
}

func FuzzCohereRequest(f *testing.F) {
	addFixtures(f, "cohere/request_*.json", false)
	f.Add([]byte(`{"model":"m","messages":[{"role":"user","content":null},{"role":"assistant"}],"tools":[{"function":{"name":"f","parameters":null}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`), true)
	f.Fuzz(func(t *testing.T, body []byte, stream bool) {
		c := cohereTestCall(body)
		c.Stream = stream
		b, refused := buildOrRefuse(t, Cohere, c)
		if refused != nil {
			if strings.Contains(refused.Message, "Kq3ZUNIQUE") {
				t.Fatalf("error leaks the key: %q", refused.Message)
			}
			return
		}
		r := gjson.ParseBytes(b)
		if !gjson.ValidBytes(b) || !r.IsObject() || r.Get("model").String() != cohereTestModel || !r.Get("messages").IsArray() {
			t.Fatalf("request body is not a Cohere chat request: %s", b)
		}
		if bytes.Contains(b, []byte("Kq3ZUNIQUE")) && !bytes.Contains(body, []byte("Kq3ZUNIQUE")) {
			t.Fatalf("the key is in the body")
		}
		if r.Get("stream").Bool() != stream {
			t.Fatalf("stream = %v, want %v", r.Get("stream").Bool(), stream)
		}
	})
}

func FuzzCohereResponse(f *testing.F) {
	addFixtures(f, "cohere/response_*.json")
	f.Add([]byte(`{"message":{"content":"plain","tool_calls":[{"function":{"name":"f","arguments":{"a":1}}}]},"usage":{"tokens":{"input_tokens":-4,"output_tokens":1e3},"cached_tokens":"7"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, u, err := Get(Cohere).TranslateResponse(cohereTestCall(nil), body)
		if err != nil {
			return
		}
		r := gjson.ParseBytes(out)
		if !gjson.ValidBytes(out) || r.Get("object").String() != "chat.completion" || len(r.Get("choices").Array()) != 1 ||
			r.Get("choices.0.finish_reason").String() == "" {
			t.Fatalf("not a chat.completion: %s", out)
		}
		if u.PromptTokens < 0 || u.CompletionTokens < 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Fatalf("usage %+v", u)
		}
		if len(u.Raw) > 0 && !gjson.ValidBytes(u.Raw) {
			t.Fatalf("Raw %q", u.Raw)
		}
	})
}
