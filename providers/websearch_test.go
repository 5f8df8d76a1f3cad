package providers

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// web_search_options reaches Anthropic as its web search server tool and
// Gemini as Google Search grounding, where the model can take it; where it
// cannot, it is left out and the call says so.
func TestWebSearchAdapters(t *testing.T) {
	fn := `"tools":[{"type":"function","function":{"name":"ls","parameters":{"type":"object","properties":{"p":{"type":"string"}}}}}]`
	ws := `"web_search_options":{"search_context_size":"low","user_location":{"type":"approximate","approximate":{"city":"Paris","country":"FR"}},"filters":{"allowed_domains":["go.dev"]}}`
	for _, c := range []struct {
		provider, model, body string
		check                 func(b gjson.Result) bool
		omitted               bool
	}{
		{Anthropic, "claude-sonnet-4-5", `{"messages":[{"role":"user","content":"q"}],` + fn + `,` + ws + `}`, func(b gjson.Result) bool {
			return b.Get("tools.#").Int() == 2 && !b.Get("tools.0.type").Exists() && b.Get("tools.0.input_schema").IsObject() &&
				b.Get("tools.1").Raw == `{"type":"web_search_20250305","name":"web_search","allowed_domains":["go.dev"],"user_location":{"type":"approximate","city":"Paris","country":"FR"}}`
		}, false},
		{Anthropic, "claude-sonnet-4-5", `{"messages":[{"role":"user","content":"q"}],"tools":[{"type":"function","function":{"name":"web_search"}}],` + ws + `}`, func(b gjson.Result) bool {
			return b.Get("tools.#").Int() == 1 && !b.Get("tools.0.type").Exists()
		}, true},
		{Gemini, "gemini-2.5-flash", `{"messages":[{"role":"user","content":"q"}],` + ws + `}`, func(b gjson.Result) bool {
			return b.Get("tools").Raw == `[{"googleSearch":{}}]` && !b.Get("toolConfig").Exists()
		}, false},
		{Gemini, "gemini-2.5-flash", `{"messages":[{"role":"user","content":"q"}],` + fn + `,` + ws + `}`, func(b gjson.Result) bool {
			return b.Get("tools.#").Int() == 1 && !b.Get("tools.0.googleSearch").Exists() && b.Get("tools.0.functionDeclarations.#").Int() == 1
		}, true},
		{Gemini, "gemini-3-pro-preview", `{"messages":[{"role":"user","content":"q"}],` + fn + `,"tool_choice":"auto",` + ws + `}`, func(b gjson.Result) bool {
			return b.Get("tools.#").Int() == 1 && b.Get("tools.0.googleSearch").IsObject() && b.Get("tools.0.functionDeclarations.#").Int() == 1 &&
				b.Get("toolConfig.includeServerSideToolInvocations").Bool() && b.Get("toolConfig.functionCallingConfig.mode").String() == "AUTO"
		}, false},
	} {
		call := &Call{Op: OpChat, Key: "k", Model: c.model, Body: []byte(c.body), Endpoint: Endpoint{BaseURL: "https://example.com"}}
		req, err := Get(c.provider).NewCallRequest(t.Context(), call)
		if err != nil {
			t.Fatalf("%s %s: %v", c.provider, c.model, err)
		}
		body := gjson.Parse(readReqBody(t, req))
		if !c.check(body) || c.omitted != (len(call.Omitted) == 1 && call.Omitted[0] == "web_search") {
			t.Errorf("%s %s: omitted %v, body %s", c.provider, c.model, call.Omitted, body.Raw)
		}
	}
	// A malformed web_search_options is the client's error.
	call := &Call{Op: OpChat, Key: "k", Model: "claude-sonnet-4-5", Body: []byte(`{"messages":[{"role":"user","content":"q"}],"web_search_options":{"filters":{"allowed_domains":"go.dev"}}}`),
		Endpoint: Endpoint{BaseURL: "https://example.com"}}
	if _, err := Get(Anthropic).NewCallRequest(t.Context(), call); err == nil || !strings.Contains(err.Error(), "web_search_options") {
		t.Errorf("malformed web_search_options: %v", err)
	}
}

// Claude's answer after a web search keeps its (cited) text and drops the
// search blocks, streamed and not.
func TestAnthropicWebSearchAnswer(t *testing.T) {
	c := &Call{Op: OpChat, Model: "claude-sonnet-4-5", ID: "chatcmpl-1", IncludeUsage: true}
	body := `{"type":"message","model":"claude-sonnet-4-5","stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5,"server_tool_use":{"web_search_requests":1}},"content":[
	{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"go release"}},
	{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","url":"https://go.dev","title":"Go","encrypted_content":"x"}]},
	{"type":"text","text":"Go 1.26 is out.","citations":[{"type":"web_search_result_location","url":"https://go.dev","cited_text":"Go 1.26"}]}]}`
	out, _, err := anthropicResponse(c, []byte(body))
	if err != nil || gjson.GetBytes(out, "choices.0.message.content").String() != "Go 1.26 is out." || gjson.GetBytes(out, "choices.0.message.tool_calls").Exists() {
		t.Fatalf("answer: %s %v", out, err)
	}
	evs := []Event{
		{Name: []byte("message_start"), Data: []byte(`{"type":"message_start","message":{"model":"claude-sonnet-4-5","usage":{"input_tokens":10}}}`)},
		{Name: []byte("content_block_start"), Data: []byte(`{"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}`)},
		{Name: []byte("content_block_delta"), Data: []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"go\"}"}}`)},
		{Name: []byte("content_block_stop"), Data: []byte(`{"type":"content_block_stop","index":0}`)},
		{Name: []byte("content_block_start"), Data: []byte(`{"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]}}`)},
		{Name: []byte("content_block_stop"), Data: []byte(`{"type":"content_block_stop","index":1}`)},
		{Name: []byte("content_block_start"), Data: []byte(`{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}`)},
		{Name: []byte("content_block_delta"), Data: []byte(`{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"Go 1.26 is out."}}`)},
		{Name: []byte("content_block_delta"), Data: []byte(`{"type":"content_block_delta","index":2,"delta":{"type":"citations_delta","citation":{"type":"web_search_result_location","url":"https://go.dev"}}}`)},
		{Name: []byte("content_block_stop"), Data: []byte(`{"type":"content_block_stop","index":2}`)},
		{Name: []byte("message_delta"), Data: []byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}`)},
		{Name: []byte("message_stop"), Data: []byte(`{"type":"message_stop"}`)},
	}
	stream := string(runStream(t, newAnthropicStream(c), evs))
	if strings.Contains(stream, "tool_calls") || strings.Contains(stream, "srvtoolu") || !strings.Contains(stream, `"content":"Go 1.26 is out."`) {
		t.Errorf("stream: %s", stream)
	}
}
