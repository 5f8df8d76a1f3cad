package providers

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// sseEvents splits translator output into (event name, data) pairs.
func sseEvents(t testing.TB, b []byte) [][2]string {
	t.Helper()
	var out [][2]string
	for _, frame := range strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n") {
		if frame == "" {
			continue
		}
		var name, data string
		for _, line := range strings.Split(frame, "\n") {
			switch {
			case strings.HasPrefix(line, "event: "):
				name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				data += line[len("data: "):]
			}
		}
		out = append(out, [2]string{name, data})
	}
	return out
}

// chatChunks frames chat chunks as an upstream would.
func chatChunks(chunks ...string) []Event {
	evs := make([]Event, len(chunks))
	for i, c := range chunks {
		evs[i] = Event{Data: []byte(c)}
	}
	return evs
}

var toolChunks = chatChunks(
	`{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Let me look."},"finish_reason":null}]}`,
	`{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"ls","arguments":""}}]},"finish_reason":null}]}`,
	`{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]},"finish_reason":null}]}`,
	`{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\".\"}"}}]},"finish_reason":null}]}`,
	`{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"pwd","arguments":""}}]},"finish_reason":null}]}`,
	`{"id":"c","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
	`{"id":"c","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":9,"total_tokens":39,"prompt_tokens_details":{"cached_tokens":10}}}`,
	`[DONE]`,
)

func runStream(t testing.TB, tr StreamTranslator, evs []Event) []byte {
	t.Helper()
	var out []byte
	for _, ev := range evs {
		var err error
		if out, err = tr.Event(out, ev); err != nil {
			t.Fatalf("event: %v", err)
		}
	}
	out, err := tr.End(out)
	if err != nil {
		t.Fatalf("end: %v", err)
	}
	return out
}

// The Messages stream opens one block at a time, with contiguous indexes,
// gives a tool without arguments "{}", and ends with message_delta (stop
// reason and usage) and message_stop.
func TestMessagesStreamFromChat(t *testing.T) {
	c := &Call{Model: "gpt-4o", ID: "msg_1", IncludeUsage: true}
	out := runStream(t, doorOverChat(MessagesDoor, c), toolChunks)
	var names []string
	open := -1
	for _, ev := range sseEvents(t, out) {
		names = append(names, ev[0])
		d := gjson.Parse(ev[1])
		if d.Get("type").String() != ev[0] {
			t.Errorf("event %s carries type %s", ev[0], d.Get("type"))
		}
		switch ev[0] {
		case "content_block_start":
			if int(d.Get("index").Int()) != open+1 {
				t.Errorf("block %d opened after %d", d.Get("index").Int(), open)
			}
			open = int(d.Get("index").Int())
		case "content_block_delta", "content_block_stop":
			if int(d.Get("index").Int()) != open {
				t.Errorf("%s for block %d while %d is open", ev[0], d.Get("index").Int(), open)
			}
		case "message_delta":
			if d.Get("delta.stop_reason").String() != "tool_use" || d.Get("usage.input_tokens").Int() != 20 ||
				d.Get("usage.cache_read_input_tokens").Int() != 10 || d.Get("usage.output_tokens").Int() != 9 {
				t.Errorf("message_delta = %s", ev[1])
			}
		}
	}
	want := "message_start content_block_start content_block_delta content_block_stop " +
		"content_block_start content_block_delta content_block_delta content_block_stop " +
		"content_block_start content_block_delta content_block_stop message_delta message_stop"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(string(out), `"partial_json":"{}"`) {
		t.Error("the tool called without arguments got no {}")
	}
}

// The Responses stream numbers its events from 0, and its
// response.completed carries every item and the usage.
func TestResponsesStreamFromChat(t *testing.T) {
	c := &Call{Model: "gpt-4o", ID: "resp_1", IncludeUsage: true}
	out := runStream(t, doorOverChat(ResponsesDoor, c), toolChunks)
	evs := sseEvents(t, out)
	for i, ev := range evs {
		if n := gjson.Get(ev[1], "sequence_number").Int(); n != int64(i) {
			t.Errorf("event %d (%s) has sequence_number %d", i, ev[0], n)
		}
	}
	if evs[0][0] != "response.created" || evs[len(evs)-1][0] != "response.completed" {
		t.Fatalf("first %s, last %s", evs[0][0], evs[len(evs)-1][0])
	}
	done := gjson.Get(evs[len(evs)-1][1], "response")
	if done.Get("output.#").Int() != 3 || done.Get("output.1.arguments").String() != `{"path":"."}` ||
		done.Get("output.2.arguments").String() != "{}" || done.Get("output.0.content.0.text").String() != "Let me look." ||
		done.Get("usage.total_tokens").Int() != 39 || done.Get("usage.input_tokens_details.cached_tokens").Int() != 10 {
		t.Errorf("completed response = %s", done.Raw)
	}
}

func TestMessagesToChat(t *testing.T) {
	body := `{"model":"m","max_tokens":50,"system":[{"type":"text","text":"A","cache_control":{"type":"ephemeral"}},{"type":"text","text":"B"}],
	"stop_sequences":["END"," "],"metadata":{"user_id":"u1"},"thinking":{"type":"enabled","budget_tokens":2000},
	"tool_choice":{"type":"any","disable_parallel_tool_use":true},
	"tools":[{"name":"ls","description":"list","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"}}],
	"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA"}}]},
	{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"ok"},{"type":"tool_use","id":"t1","name":"ls","input":{}}]},
	{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"a.txt"}],"is_error":true},{"type":"text","text":"and?"}]}]}`
	out, err := MessagesToChatBody([]byte(body), "openai")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"m","max_tokens":50,"stop":["END"],"user":"u1","tool_choice":"required","parallel_tool_calls":false,
	"tools":[{"type":"function","function":{"name":"ls","description":"list","parameters":{"type":"object"}}}],
	"messages":[{"role":"system","content":"A\n\nB"},
	{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA"}}]},
	{"role":"assistant","content":"ok","tool_calls":[{"id":"t1","type":"function","function":{"name":"ls","arguments":"{}"}}]},
	{"role":"tool","content":"Error: a.txt","tool_call_id":"t1"},
	{"role":"user","content":"and?"}]}`
	var a, b any
	json.Unmarshal(out, &a)
	json.Unmarshal([]byte(want), &b)
	if ja, _ := json.Marshal(a); string(ja) != string(mustJSON(b)) {
		t.Errorf("got  %s\nwant %s", ja, mustJSON(b))
	}
	for _, bad := range []struct{ body, says string }{
		{`{"model":"m","max_tokens":5,"messages":[],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, "web_search"},
		{`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`, "document"},
		{`{"model":"m","max_tokens":5,"messages":[],"mcp_servers":[{"type":"url","url":"https://x"}]}`, "mcp_servers"},
		{`{"model":"m","messages":"no"}`, "invalid messages request"},
	} {
		_, err := MessagesToChatBody([]byte(bad.body), "openai")
		var re *RequestError
		if !errors.As(err, &re) || !strings.Contains(re.Message, bad.says) {
			t.Errorf("%s: %v, want a RequestError saying %q", bad.body, err, bad.says)
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestResponsesToChat(t *testing.T) {
	body := `{"model":"m","instructions":"Be brief.","max_output_tokens":100,"reasoning":{"effort":"low"},
	"text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true}},
	"tools":[{"type":"function","name":"ls","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"ls"},
	"input":[{"role":"developer","content":"dev"},{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]},
	{"type":"reasoning","id":"rs_1","summary":[]},
	{"type":"function_call","call_id":"c1","name":"ls","arguments":"{}"},{"type":"function_call","call_id":"c2","name":"ls","arguments":""},
	{"type":"function_call_output","call_id":"c1","output":"a"},{"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"b"}]}]}`
	out, err := ResponsesToChatBody([]byte(body), "gemini")
	if err != nil {
		t.Fatal(err)
	}
	r := gjson.ParseBytes(out)
	checks := map[string]string{
		"messages.0.content": "Be brief.", "messages.1.role": "system", "messages.2.content": "hi",
		"messages.3.tool_calls.#": "2", "messages.3.tool_calls.1.function.arguments": "{}",
		"messages.4.role": "tool", "messages.5.content": "b", "max_tokens": "100",
		"response_format.json_schema.name": "out", "tool_choice.function.name": "ls", "tools.0.function.name": "ls",
	}
	for path, want := range checks {
		if got := r.Get(path).String(); got != want {
			t.Errorf("%s = %q, want %q (%s)", path, got, want, out)
		}
	}
	// reasoning.effort reaches Gemini (as a thinking budget), and no
	// OpenAI-shaped host.
	for provider, path := range map[string]string{Gemini: "generationConfig.thinkingConfig.thinkingBudget", Mistral: "reasoning_effort"} {
		c := &Call{Model: "gemini-2.5-flash", Key: "k", Door: ResponsesDoor, Body: []byte(body), Endpoint: Endpoint{BaseURL: "https://example.com"}}
		req, err := Get(provider).NewCallRequest(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := gjson.Get(readReqBody(t, req), path), map[string]string{Gemini: "1024"}[provider]; got.Raw != want {
			t.Errorf("%s: %s = %s, want %q", provider, path, got.Raw, want)
		}
	}
	for _, bad := range []struct{ body, says string }{
		{`{"model":"m","input":"x","previous_response_id":"resp_1"}`, "previous_response_id"},
		{`{"model":"m","input":"x","background":true}`, "background"},
		{`{"model":"m","input":"x","tools":[{"type":"file_search","vector_store_ids":["vs_1"]}]}`, "file_search"},
		{`{"model":"m","input":"x","tools":[{"type":"namespace","name":"ns","tools":[{"type":"web_search"}]}]}`, "web_search"},
		{`{"model":"m","input":[{"type":"item_reference","id":"x"}]}`, "item_reference"},
	} {
		_, err := ResponsesToChatBody([]byte(bad.body), "anthropic")
		var re *RequestError
		if !errors.As(err, &re) || !strings.Contains(re.Message, bad.says) || !strings.Contains(re.Message, "anthropic") && bad.says != "item_reference" {
			t.Errorf("%s: %v, want a RequestError naming %q and the provider", bad.body, err, bad.says)
		}
	}
}

// The passthrough relay changes no byte and reads Anthropic's usage.
func TestMessagesRelay(t *testing.T) {
	evs := []Event{
		{Name: []byte("message_start"), Data: []byte(`{"type":"message_start","message":{"usage":{"input_tokens":9,"cache_read_input_tokens":2,"cache_creation_input_tokens":3,"output_tokens":1}}}`)},
		{Name: []byte("ping"), Data: []byte(`{"type": "ping"}`)},
		{Name: []byte("message_delta"), Data: []byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}`)},
		{Name: []byte("message_stop"), Data: []byte(`{"type":"message_stop"}`)},
	}
	r := &messagesRelay{}
	out := runStream(t, r, evs)
	var want string
	for _, ev := range evs {
		want += "event: " + string(ev.Name) + "\ndata: " + string(ev.Data) + "\n\n"
	}
	if string(out) != want {
		t.Errorf("relayed:\n%s\nwant:\n%s", out, want)
	}
	if u := r.Usage(); u.PromptTokens != 14 || u.CachedTokens != 2 || u.CompletionTokens != 5 {
		t.Errorf("usage = %+v", u)
	}
	if _, err := (&messagesRelay{}).End(nil); err == nil {
		t.Error("a stream without message_stop ended cleanly")
	}
}

// thinking reaches Gemini as its effort (medium: a budget of 8,192 on 2.5),
// and no other host.
func TestMessagesThinkingForGemini(t *testing.T) {
	body := []byte(`{"model":"m","max_tokens":5,"thinking":{"type":"enabled","budget_tokens":4000},"messages":[{"role":"user","content":"hi"}]}`)
	for _, c := range []struct{ provider, model, path, want string }{
		{Gemini, "gemini-2.5-flash", "generationConfig.thinkingConfig.thinkingBudget", "8192"},
		{Gemini, "gemini-3-pro-preview", "generationConfig.thinkingConfig.thinkingLevel", `"medium"`},
		{OpenAI, "gpt-4o", "reasoning_effort", ""},
		{Mistral, "mistral-large-latest", "reasoning_effort", ""},
	} {
		call := &Call{Model: c.model, Key: "k", Door: MessagesDoor, Body: body, Endpoint: Endpoint{BaseURL: "https://example.com"}}
		req, err := Get(c.provider).NewCallRequest(t.Context(), call)
		if err != nil {
			t.Fatalf("%s: %v", c.provider, err)
		}
		if got := gjson.Get(readReqBody(t, req), c.path); got.Raw != c.want {
			t.Errorf("%s %s: %s = %s, want %q", c.provider, c.model, c.path, got.Raw, c.want)
		}
	}
}

// Several tool results for one call become one tool message; a tool call
// without an id gets one.
func TestMessagesToolIDs(t *testing.T) {
	out, err := MessagesToChatBody([]byte(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[
		{"type":"tool_result","tool_use_id":"t1","content":"a"},{"type":"tool_result","tool_use_id":"t1","content":"b"},
		{"type":"tool_result","tool_use_id":"t2","content":"c"}]}]}`), "openai")
	if err != nil {
		t.Fatal(err)
	}
	if r := gjson.ParseBytes(out); r.Get("messages.#").Int() != 2 || r.Get("messages.0.content").String() != "a\nb" {
		t.Errorf("merged tool results: %s", out)
	}
	c := &Call{Model: "m", ID: "msg_abc"}
	msg, err := chatToMessages(c, []byte(`{"choices":[{"message":{"tool_calls":[{"function":{"name":"ls","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`))
	if err != nil || gjson.GetBytes(msg, "content.0.id").String() != "toolu_msg_abc_0" {
		t.Errorf("minted tool_use id: %s %v", msg, err)
	}
	c = &Call{Model: "m", ID: "resp_abc"}
	resp, err := chatToResponse(c, []byte(`{"choices":[{"message":{"tool_calls":[{"function":{"name":"ls","arguments":""}}]},"finish_reason":"tool_calls"}]}`))
	if err != nil || gjson.GetBytes(resp, "output.0.call_id").String() != "call_abc_0" || gjson.GetBytes(resp, "output.0.arguments").String() != "{}" {
		t.Errorf("minted call_id: %s %v", resp, err)
	}
}

// Codex's free-form tools (apply_patch) become functions of one string and
// their calls come back as custom_tool_call items, streamed or not.
func TestResponsesCustomTools(t *testing.T) {
	body := []byte(`{"model":"m","tools":[{"type":"custom","name":"apply_patch","description":"patch"},{"type":"function","name":"ls","parameters":{}}],
	"input":[{"type":"custom_tool_call","call_id":"c0","name":"apply_patch","input":"*** Begin Patch"},{"type":"custom_tool_call_output","call_id":"c0","output":"done"}]}`)
	out, err := ResponsesToChatBody(body, "anthropic")
	if err != nil {
		t.Fatal(err)
	}
	r := gjson.ParseBytes(out)
	if r.Get("tools.0.function.parameters.required.0").String() != "input" ||
		r.Get("messages.0.tool_calls.0.function.arguments").String() != `{"input":"*** Begin Patch"}` ||
		r.Get("messages.1.role").String() != "tool" || r.Get("messages.1.content").String() != "done" {
		t.Fatalf("custom tool translation: %s", out)
	}
	c := &Call{Model: "m", ID: "resp_1", respTools: respToolsOf(body), IncludeUsage: true}
	resp, err := chatToResponse(c, []byte(`{"choices":[{"message":{"tool_calls":[{"id":"call_9","function":{"name":"apply_patch","arguments":"{\"input\":\"*** Begin Patch\\n\"}"}},{"id":"call_8","function":{"name":"ls","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}`))
	if err != nil || gjson.GetBytes(resp, "output.0.type").String() != "custom_tool_call" || gjson.GetBytes(resp, "output.0.input").String() != "*** Begin Patch\n" ||
		gjson.GetBytes(resp, "output.1.type").String() != "function_call" {
		t.Errorf("custom tool call answer: %s %v", resp, err)
	}
	stream := runStream(t, doorOverChat(ResponsesDoor, c), chatChunks(
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_9","function":{"name":"apply_patch","arguments":"{\"input\":"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"x\"}"}}]},"finish_reason":"tool_calls"}]}`,
		`[DONE]`))
	var done string
	for _, ev := range sseEvents(t, stream) {
		if strings.HasPrefix(ev[0], "response.function_call_arguments") {
			t.Errorf("a custom tool's call streamed %s", ev[0])
		}
		if ev[0] == "response.output_item.done" {
			done = ev[1]
		}
	}
	if gjson.Get(done, "item.type").String() != "custom_tool_call" || gjson.Get(done, "item.input").String() != "x" {
		t.Errorf("output_item.done = %s", done)
	}
}

// A Messages passthrough keeps the client's query (Claude Code's
// ?beta=true), less any parameter that may carry a credential.
func TestMessagesPassthroughQuery(t *testing.T) {
	for _, c := range []struct{ query, want string }{
		{"", "/v1/messages"},
		{"beta=true", "/v1/messages?beta=true"},
		{"beta=true&key=ar_secret&KEY=x&api%2Dkey=y&x=1", "/v1/messages?beta=true&x=1"},
		{"key=ar_secret", "/v1/messages"},
	} {
		c0 := &Call{Model: "claude-haiku-4-5", Key: "sk-ant-api03-x", Body: []byte(`{"model":"claude-haiku-4-5"}`),
			Door: MessagesDoor, Query: c.query, Endpoint: Endpoint{BaseURL: "https://api.anthropic.com"}}
		req, err := Get(Anthropic).NewCallRequest(t.Context(), c0)
		if err != nil {
			t.Fatal(err)
		}
		if got := req.URL.RequestURI(); got != c.want {
			t.Errorf("query %q: upstream %s, want %s", c.query, got, c.want)
		}
	}
}

// count_tokens for another provider's model says what is available,
// rather than that "messages" is not (POST /v1/messages serves it).
func TestCountTokensOtherProviders(t *testing.T) {
	for _, name := range []string{OpenAI, Gemini, Mistral} {
		c := &Call{Model: "m", Key: "k", Body: []byte(`{"model":"m","messages":[]}`), Door: CountTokensDoor}
		_, err := Get(name).NewCallRequest(t.Context(), c)
		var re *RequestError
		if !errors.As(err, &re) || !strings.Contains(re.Message, "token counting (/v1/messages/count_tokens) is available for Anthropic models only") ||
			!strings.Contains(re.Message, name) || strings.Contains(re.Message, "messages is not available") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// codexTools are the tools Codex 0.169 sends by default (recorded from the
// CLI, descriptions shortened): functions, the multi_agent_v1 namespace and
// a cache-only web_search.
const codexTools = `[{"type":"function","name":"exec_command","description":"Runs a command in a PTY.","strict":false,"parameters":{"type":"object","properties":{"cmd":{"type":"string"}},"required":["cmd"],"additionalProperties":false}},
{"type":"namespace","name":"multi_agent_v1","description":"Tools for spawning and managing sub-agents.","tools":[
 {"type":"function","name":"spawn_agent","description":"Spawn a sub-agent.","strict":false,"parameters":{"type":"object","properties":{"message":{"type":"string"}},"additionalProperties":false}},
 {"type":"function","name":"wait_agent","description":"Wait for agents.","strict":false,"parameters":{"type":"object","properties":{"targets":{"type":"array","items":{"type":"string"}}},"additionalProperties":false}}]},
{"type":"custom","name":"apply_patch","description":"Patch files."},
{"type":"web_search","external_web_access":false}]`

// A namespace's functions are offered under namespace__name, with the
// namespace's description; their calls come back with their own name and
// the namespace (streamed and not), and a history item's namespace + name
// reaches the model under the offered name again.
func TestResponsesNamespaceTools(t *testing.T) {
	body := []byte(`{"model":"m","tools":` + codexTools + `,"tool_choice":"auto","input":[
	{"type":"message","role":"user","content":[{"type":"input_text","text":"go"}]},
	{"type":"function_call","call_id":"c1","name":"wait_agent","namespace":"multi_agent_v1","arguments":"{\"targets\":[\"a\"]}"},
	{"type":"function_call_output","call_id":"c1","output":"done"}]}`)
	for _, target := range []string{Anthropic, Gemini, OpenAI, Mistral} {
		c := &Call{Body: body}
		out, err := responsesToChat(c, target)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		b, _ := json.Marshal(out)
		r := gjson.ParseBytes(b)
		var names []string
		for _, tl := range r.Get("tools").Array() {
			names = append(names, tl.Get("function.name").String())
		}
		if strings.Join(names, ",") != "exec_command,multi_agent_v1__spawn_agent,multi_agent_v1__wait_agent,apply_patch" {
			t.Errorf("%s: offered %v", target, names)
		}
		if d := r.Get("tools.1.function.description").String(); !strings.HasPrefix(d, "Tools for spawning and managing sub-agents.") || !strings.HasSuffix(d, "Spawn a sub-agent.") {
			t.Errorf("%s: description %q", target, d)
		}
		if got := r.Get("messages.1.tool_calls.0.function.name").String(); got != "multi_agent_v1__wait_agent" {
			t.Errorf("%s: the history's call reaches the model as %q", target, got)
		}
		// Codex's cache-only search is left out, visibly, everywhere.
		if r.Get("web_search_options").Exists() || len(c.Omitted) != 1 || c.Omitted[0] != "web_search" {
			t.Errorf("%s: web_search_options %s, omitted %v", target, r.Get("web_search_options").Raw, c.Omitted)
		}
	}

	c := &Call{Model: "m", ID: "resp_1", respTools: respToolsOf(body), IncludeUsage: true}
	resp, err := chatToResponse(c, []byte(`{"choices":[{"message":{"tool_calls":[
		{"id":"call_1","function":{"name":"multi_agent_v1__spawn_agent","arguments":"{\"message\":\"hi\"}"}},
		{"id":"call_2","function":{"name":"exec_command","arguments":"{\"cmd\":\"ls\"}"}}]},"finish_reason":"tool_calls"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`{"name":"spawn_agent","namespace":"multi_agent_v1","call_id":"call_1","type":"function_call"}`,
		`{"name":"exec_command","namespace":null,"call_id":"call_2","type":"function_call"}`} {
		it := gjson.GetBytes(resp, fmt.Sprintf("output.%d", i))
		got := fmt.Sprintf(`{"name":%s,"namespace":%s,"call_id":%s,"type":%s}`, it.Get("name").Raw, orNull(it.Get("namespace").Raw), it.Get("call_id").Raw, it.Get("type").Raw)
		if got != want {
			t.Errorf("output.%d = %s, want %s", i, it.Raw, want)
		}
	}

	stream := runStream(t, doorOverChat(ResponsesDoor, c), chatChunks(
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"multi_agent_v1__wait_agent","arguments":"{\"targets\":"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"[\"a\"]}"}}]},"finish_reason":"tool_calls"}]}`,
		`[DONE]`))
	var added, done, completed string
	for _, ev := range sseEvents(t, stream) {
		switch ev[0] {
		case "response.output_item.added":
			added = ev[1]
		case "response.output_item.done":
			done = ev[1]
		case "response.completed":
			completed = ev[1]
		}
	}
	for what, item := range map[string]gjson.Result{"added": gjson.Get(added, "item"), "done": gjson.Get(done, "item"), "completed": gjson.Get(completed, "response.output.0")} {
		if item.Get("name").String() != "wait_agent" || item.Get("namespace").String() != "multi_agent_v1" || item.Get("type").String() != "function_call" {
			t.Errorf("%s: %s", what, item.Raw)
		}
	}
	if gjson.Get(done, "item.arguments").String() != `{"targets":["a"]}` {
		t.Errorf("done: %s", done)
	}
}

func orNull(raw string) string {
	if raw == "" {
		return "null"
	}
	return raw
}

// Flattened names fit every provider's limit, and two tools that would
// share one are refused rather than confused.
func TestResponsesNamespaceNames(t *testing.T) {
	long := strings.Repeat("n", 40)
	body := `{"model":"m","input":"x","tools":[{"type":"namespace","name":"` + long + `","description":"d","tools":[{"type":"function","name":"` + strings.Repeat("f", 40) + `"},{"type":"function","name":"` + strings.Repeat("f", 41) + `"}]}]}`
	out, err := ResponsesToChatBody([]byte(body), Anthropic)
	if err != nil {
		t.Fatal(err)
	}
	a, b := gjson.GetBytes(out, "tools.0.function.name").String(), gjson.GetBytes(out, "tools.1.function.name").String()
	if len(a) > 64 || len(b) > 64 || a == b {
		t.Errorf("flattened names %q and %q", a, b)
	}
	dup := `{"model":"m","input":"x","tools":[{"type":"function","name":"ns__f"},{"type":"namespace","name":"ns","description":"d","tools":[{"type":"function","name":"f"}]}]}`
	_, err = ResponsesToChatBody([]byte(dup), Anthropic)
	var re *RequestError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "ns.f") {
		t.Errorf("clashing names: %v", err)
	}
}

// web_search becomes the target's own search where there is one (live
// search only), and is left out, recorded, elsewhere: the door says what
// the client asked for, each adapter what its host takes.
func TestResponsesWebSearch(t *testing.T) {
	for _, c := range []struct {
		tool, target, model string
		mapped, omitted     bool
	}{
		{`{"type":"web_search"}`, Anthropic, "claude-sonnet-4-5", true, false},
		{`{"type":"web_search","external_web_access":true,"filters":{"allowed_domains":["go.dev"]},"user_location":{"type":"approximate","city":"Paris","country":"FR"}}`, Anthropic, "claude-sonnet-4-5", true, false},
		{`{"type":"web_search_preview","search_context_size":"low"}`, Gemini, "gemini-2.5-flash", true, false},
		{`{"type":"web_search","external_web_access":false}`, Anthropic, "claude-sonnet-4-5", false, true},
		{`{"type":"web_search","external_web_access":false}`, Gemini, "gemini-2.5-flash", false, true},
		{`{"type":"web_search","filters":{"allowed_domains":["go.dev"]}}`, Gemini, "gemini-2.5-flash", false, true},
		{`{"type":"web_search"}`, Mistral, "mistral-large-latest", false, true},
		{`{"type":"web_search"}`, Azure, "my-deployment", false, true},
		{`{"type":"web_search"}`, Cohere, "command-a-03-2025", false, true},
		{`{"type":"web_search"}`, Perplexity, "sonar", false, false},
	} {
		call := &Call{Model: c.model, Key: "k", Door: ResponsesDoor, Body: []byte(`{"model":"m","input":"x","tools":[` + c.tool + `]}`),
			Endpoint: Endpoint{BaseURL: "https://example.com"}}
		req, err := Get(c.target).NewCallRequest(t.Context(), call)
		if err != nil {
			t.Fatalf("%s for %s: %v", c.tool, c.target, err)
		}
		body := gjson.Parse(readReqBody(t, req))
		var mapped bool
		switch c.target {
		case Anthropic:
			mapped = body.Get(`tools.#(type=="web_search_20250305")`).Exists()
			if d := body.Get(`tools.0.allowed_domains`); strings.Contains(c.tool, "go.dev") && d.Raw != `["go.dev"]` {
				t.Errorf("%s: allowed domains %s", c.tool, d.Raw)
			}
		case Gemini:
			mapped = body.Get("tools.0.googleSearch").Exists()
		}
		omitted := len(call.Omitted) == 1 && call.Omitted[0] == "web_search"
		if mapped != c.mapped || omitted != c.omitted || len(call.Omitted) > 1 {
			t.Errorf("%s for %s: mapped %v, omitted %v (%s)", c.tool, c.target, mapped, call.Omitted, body.Raw)
		}
		// Never offered as a function (Anthropic's client tools have no
		// type), nor passed on as options a host may refuse.
		for _, tl := range body.Get("tools").Array() {
			if tl.Get("type").String() == "function" || tl.Get("functionDeclarations").Exists() || c.target == Anthropic && !tl.Get("type").Exists() {
				t.Errorf("%s for %s: offered as a function: %s", c.tool, c.target, tl.Raw)
			}
		}
		if body.Get("web_search_options").Exists() {
			t.Errorf("%s for %s: %s", c.tool, c.target, body.Raw)
		}
	}
}
