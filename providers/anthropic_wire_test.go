package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// Each mapping of anthropic_wire.go read back through its inverse: what
// the adapter writes for Anthropic, the Messages door reads back as it was.

func TestAnthropicStopReasonRoundTrip(t *testing.T) {
	for _, stop := range []string{"end_turn", "max_tokens", "tool_use", "refusal"} {
		if got := messagesStopReason(anthropicFinish(stop)); got != stop {
			t.Errorf("%s → %s → %s", stop, anthropicFinish(stop), got)
		}
	}
	for _, finish := range []string{"stop", "length", "tool_calls", "content_filter"} {
		if got := anthropicFinish(messagesStopReason(finish)); got != finish {
			t.Errorf("%s → %s → %s", finish, messagesStopReason(finish), got)
		}
	}
	// The rest fold into those: stop_sequence and pause_turn are a stop,
	// the context window's end a length.
	for stop, want := range map[string]string{"stop_sequence": "end_turn", "pause_turn": "end_turn", "model_context_window_exceeded": "max_tokens"} {
		if got := messagesStopReason(anthropicFinish(stop)); got != want {
			t.Errorf("%s → %s, want %s", stop, got, want)
		}
	}
}

func TestAnthropicUsageRoundTrip(t *testing.T) {
	for _, u := range []Usage{
		{PromptTokens: 1200, CachedTokens: 1000, CompletionTokens: 33},
		{PromptTokens: 7, CompletionTokens: 0},
		{PromptTokens: 0, CompletionTokens: 5},
	} {
		out, _ := json.Marshal(messagesUsage(u))
		back := anthropicUsage(gjson.ParseBytes(out))
		if back.PromptTokens != u.PromptTokens || back.CachedTokens != u.CachedTokens || back.CompletionTokens != u.CompletionTokens ||
			back.TotalTokens != u.PromptTokens+u.CompletionTokens {
			t.Errorf("%+v → %s → %+v", u, out, back)
		}
	}
	// Cache writes are input in chat terms, and read back as such.
	in := gjson.Parse(`{"input_tokens":10,"cache_creation_input_tokens":90,"cache_read_input_tokens":5,"output_tokens":7}`)
	out, _ := json.Marshal(messagesUsage(anthropicUsage(in)))
	if string(out) != `{"cache_read_input_tokens":5,"input_tokens":100,"output_tokens":7}` {
		t.Errorf("read back as %s", out)
	}
}

// The error types the gateway words its statuses in are read back, from a
// stream's error event, as the classes they stand for; any other code
// stays in the message.
func TestAnthropicErrorRoundTrip(t *testing.T) {
	for status, class := range map[int]string{
		400: ClassBadRequest, 401: ClassAuth, 402: ClassQuota, 403: ClassAuth, 404: ClassBadRequest, 413: ClassBadRequest,
		429: ClassRateLimit, 500: ClassServer, 502: ClassServer, 503: ClassOverloaded, 504: ClassTimeout, 529: ClassOverloaded,
	} {
		typ := anthropicErrorType(status)
		ev := sseEvents(t, anthropicErrorEvent(nil, typ, "m"))
		se := anthropicStreamError([]byte(ev[0][1]))
		if ev[0][0] != "error" || se.Code != typ || se.Class != class || se.Message != "m" {
			t.Errorf("%d → %s → %+v, want class %s", status, typ, se, class)
		}
		if body := AnthropicErrorBody(status, "", "m"); gjson.GetBytes(body, "error.type").String() != typ {
			t.Errorf("%d: body %s", status, body)
		}
	}
	ev := sseEvents(t, anthropicErrorEvent(nil, "upstream_timeout", "slow"))
	if se := anthropicStreamError([]byte(ev[0][1])); se.Code != "api_error" || se.Class != ClassServer || se.Message != "upstream_timeout: slow" {
		t.Errorf("a gateway code: %+v", se)
	}
}

// A chat request written for Anthropic by the adapter, read by the
// Messages door, is the request it was.
func TestAnthropicRequestRoundTrip(t *testing.T) {
	chat := `{"model":"m","max_tokens":300,"temperature":0.5,"stop":["END"],"user":"u-1",
	"messages":[{"role":"system","content":"Be brief."},
	{"role":"user","content":[{"type":"text","text":"Look:"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAA"}}]},
	{"role":"assistant","content":"Calling.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"ls","arguments":"{\"p\":\".\"}"}}]},
	{"role":"tool","tool_call_id":"call_1","content":"a.txt"},
	{"role":"user","content":"And?"}],
	"tools":[{"type":"function","function":{"name":"ls","description":"list","parameters":{"type":"object","properties":{"p":{"type":"string"}}}}}],
	"tool_choice":"required","parallel_tool_calls":false}`
	req, err := Get(Anthropic).NewCallRequest(context.Background(), &Call{Op: OpChat, Key: "k", Model: "m", Body: []byte(chat)})
	if err != nil {
		t.Fatal(err)
	}
	messages := readReqBody(t, req)
	back, err := MessagesToChatBody([]byte(messages), Anthropic)
	if err != nil {
		t.Fatalf("%v\n%s", err, messages)
	}
	if !bytes.Equal(canonicalJSON(t, back), canonicalJSON(t, []byte(chat))) {
		t.Errorf("chat → messages → chat:\n%s\n→ %s\n→ %s", chat, messages, back)
	}
}

// An Anthropic answer translated to a chat completion and back to a
// Messages answer is the answer it was (but for the gateway's id).
func TestAnthropicAnswerRoundTrip(t *testing.T) {
	answer := `{"id":"msg_x","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi"},
	{"type":"tool_use","id":"toolu_1","name":"ls","input":{"p":"."}}],"stop_reason":"tool_use","stop_sequence":null,
	"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}`
	c := &Call{Op: OpChat, Model: "m", ID: "msg_x"}
	chat, _, err := anthropicResponse(c, []byte(answer))
	if err != nil {
		t.Fatal(err)
	}
	back, err := chatToMessages(c, chat)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonicalJSON(t, back), canonicalJSON(t, []byte(answer))) {
		t.Errorf("messages → chat → messages:\n%s\n→ %s\n→ %s", answer, chat, back)
	}
}

// An Anthropic stream translated to chat chunks and rendered as Messages
// events carries the same blocks, stop reason and output tokens (thinking
// is dropped on the way, as it is for every other host).
func TestAnthropicStreamRoundTrip(t *testing.T) {
	in := fixture(t, "anthropic/stream_tools.sse")
	c := &Call{Op: OpChat, Model: "m", ID: "msg_x", Stream: true, IncludeUsage: true, Door: MessagesDoor}
	tr := newDoorStream(c, newMessagesEvents(c), newAnthropicStream)
	out, err := feedStream(tr, bytes.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var orig []string
	for _, frame := range strings.Split(string(in), "\n\n") {
		if _, data, ok := strings.Cut(frame, "data: "); ok {
			orig = append(orig, data)
		}
	}
	want, got := summarizeMessagesStream(orig), summarizeMessagesStream(eventData(t, out))
	if got != want {
		t.Errorf("stream read back as\n%s\nwant\n%s", got, want)
	}
}

func eventData(t *testing.T, b []byte) []string {
	var out []string
	for _, ev := range sseEvents(t, b) {
		out = append(out, ev[1])
	}
	return out
}

// summarizeMessagesStream reads the blocks (thinking aside), stop reason
// and output tokens of a Messages event stream; a tool_use block without
// deltas has the input it started with.
func summarizeMessagesStream(events []string) string {
	var b strings.Builder
	kinds := map[int64]string{}
	var input string // the open tool_use's input until a delta comes
	for _, d := range events {
		r := gjson.Parse(d)
		switch r.Get("type").String() {
		case "content_block_start":
			typ := r.Get("content_block.type").String()
			kinds[r.Get("index").Int()] = typ
			switch typ {
			case "tool_use":
				b.WriteString("\ntool_use " + r.Get("content_block.name").String() + " ")
				input = r.Get("content_block.input").Raw
			case "text":
				b.WriteString("\ntext ")
			}
		case "content_block_delta":
			switch kinds[r.Get("index").Int()] {
			case "text":
				b.WriteString(r.Get("delta.text").String())
			case "tool_use":
				input = ""
				b.WriteString(r.Get("delta.partial_json").String())
			}
		case "content_block_stop":
			if kinds[r.Get("index").Int()] == "tool_use" {
				b.WriteString(input)
				input = ""
			}
		case "message_delta":
			b.WriteString("\nstop " + r.Get("delta.stop_reason").String() + ", output " + r.Get("usage.output_tokens").String())
		}
	}
	return b.String()
}
