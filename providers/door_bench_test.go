package providers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// claudeCodeBody is a Messages request shaped like one Claude Code sends
// mid-session: two system blocks (about 12 KB), 12 tools with schemas, and
// a history of 40 messages with text, tool calls, tool results and one
// pasted image (30 KB of base64).
func claudeCodeBody() []byte {
	para := strings.Repeat("You are an interactive CLI tool that helps users with software engineering tasks. ", 8)
	sys := []map[string]any{
		{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
		{"type": "text", "text": strings.Repeat(para+"\n\n", 18), "cache_control": map[string]any{"type": "ephemeral"}},
	}
	var tools []map[string]any
	for i := range 12 {
		tools = append(tools, map[string]any{
			"name": fmt.Sprintf("Tool%d", i), "description": strings.Repeat("Reads, edits or runs something in the workspace. ", 6),
			"input_schema": map[string]any{"type": "object", "$schema": "http://json-schema.org/draft-07/schema#", "additionalProperties": false,
				"required": []string{"path"}, "properties": map[string]any{
					"path":    map[string]any{"type": "string", "description": "The absolute path"},
					"limit":   map[string]any{"type": "number", "description": "How many lines"},
					"mode":    map[string]any{"type": "string", "enum": []string{"read", "write", "append"}},
					"options": map[string]any{"type": "object", "properties": map[string]any{"force": map[string]any{"type": "boolean"}}},
				}},
		})
	}
	img := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x89, 'P', 'N', 'G', 7, 1, 2, 3}, 2800))
	msgs := []map[string]any{{"role": "user", "content": []map[string]any{
		{"type": "text", "text": "<system-reminder>\nAs you answer the user's questions, you can use the following context.\n</system-reminder>"},
		{"type": "image", "source": map[string]any{"type": "base64", "media_type": "image/png", "data": img}},
		{"type": "text", "text": "Why does this screenshot show a failing build? Fix it."},
	}}}
	for i := range 13 {
		id := fmt.Sprintf("toolu_01%022d", i)
		msgs = append(msgs,
			map[string]any{"role": "assistant", "content": []map[string]any{
				{"type": "thinking", "thinking": strings.Repeat("Let me look at the file first. ", 10), "signature": strings.Repeat("c2ln", 40)},
				{"type": "text", "text": "I'll read the build file."},
				{"type": "tool_use", "id": id, "name": fmt.Sprintf("Tool%d", i%12), "input": map[string]any{"path": "/src/build/main.go", "limit": 200}},
			}},
			map[string]any{"role": "user", "content": []map[string]any{
				{"type": "tool_result", "tool_use_id": id, "content": strings.Repeat("     1\tpackage main // the file's lines, as the tool printed them\n", 40)},
			}},
			map[string]any{"role": "assistant", "content": "The build fails because of a missing import; next I check the tests."},
		)
	}
	msgs = append(msgs, map[string]any{"role": "user", "content": "Go on."})
	b, _ := json.Marshal(map[string]any{
		"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true, "system": sys, "tools": tools, "messages": msgs,
		"metadata": map[string]any{"user_id": "user_abc_account_def_session_0123"}, "thinking": map[string]any{"type": "enabled", "budget_tokens": 10000},
	})
	return b
}

// benchDoorRequest builds the upstream request for a door's body, as the
// gateway does for each attempt.
func benchDoorRequest(b *testing.B, door *Door, provider, model string, body []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	ctx := context.Background()
	for b.Loop() {
		c := &Call{Op: OpChat, Key: "k", Model: model, Body: body, Stream: true, Door: door, ID: "msg_bench", Created: 1700000000,
			Endpoint: Endpoint{BaseURL: "https://example.com"}}
		if _, err := Get(provider).NewCallRequest(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

// Messages → Gemini: the request Claude Code sends, translated for Gemini.
func BenchmarkMessagesToGemini(b *testing.B) {
	benchDoorRequest(b, MessagesDoor, Gemini, "gemini-2.5-pro", claudeCodeBody())
}

// Messages → OpenAI: the same request for an OpenAI-shaped host.
func BenchmarkMessagesToOpenAI(b *testing.B) {
	benchDoorRequest(b, MessagesDoor, OpenAI, "gpt-4o", claudeCodeBody())
}

// Messages → Anthropic: the passthrough, for comparison.
func BenchmarkMessagesToAnthropic(b *testing.B) {
	benchDoorRequest(b, MessagesDoor, Anthropic, "claude-sonnet-4-5", claudeCodeBody())
}

// geminiBenchStream is a Gemini answer streamed as Gemini sends it: text
// in 60 events, then a function call, then the finish and usage.
func geminiBenchStream() []Event {
	var evs []Event
	for i := range 60 {
		evs = append(evs, Event{Data: fmt.Appendf(nil, `{"candidates":[{"content":{"role":"model","parts":[{"text":"word %d of the answer, "}]},"index":0}],"modelVersion":"gemini-2.5-pro"}`, i)})
	}
	evs = append(evs,
		Event{Data: []byte(`{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"Tool1","args":{"path":"/src/main.go","limit":200}},"thoughtSignature":"c2lnbmF0dXJl"}]},"index":0}],"modelVersion":"gemini-2.5-pro"}`)},
		Event{Data: []byte(`{"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12000,"candidatesTokenCount":400,"thoughtsTokenCount":120,"totalTokenCount":12520,"cachedContentTokenCount":8000},"modelVersion":"gemini-2.5-pro"}`)},
	)
	return evs
}

// Gemini's stream → Messages events: what Claude Code reads back.
func BenchmarkMessagesStreamFromGemini(b *testing.B) {
	evs := geminiBenchStream()
	c := &Call{Op: OpChat, Key: "k", Model: "gemini-2.5-pro", Body: claudeCodeBody(), Stream: true, Door: MessagesDoor, ID: "msg_bench", Created: 1700000000,
		Endpoint: Endpoint{BaseURL: "https://example.com"}}
	if _, err := Get(Gemini).NewCallRequest(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	benchStream(b, func() StreamTranslator { return Get(Gemini).NewStream(c) }, evs)
}

// benchStream feeds evs through a new translator per iteration, as the
// gateway relays one stream, and checks that it reports usage.
func benchStream(b *testing.B, newTr func() StreamTranslator, evs []Event) {
	b.ReportAllocs()
	var dst []byte
	for b.Loop() {
		tr := newTr()
		var err error
		for _, ev := range evs {
			if dst, err = tr.Event(dst[:0], ev); err != nil {
				b.Fatal(err)
			}
		}
		if dst, err = tr.End(dst[:0]); err != nil {
			b.Fatal(err)
		}
		if !tr.Usage().Reported() {
			b.Fatal("no usage")
		}
	}
}

// anthropicBenchStream is a Claude answer as Anthropic streams it: usage
// first (with cache reads and writes), 40 text deltas, the final usage.
func anthropicBenchStream() []Event {
	ev := func(name, data string) Event { return Event{Name: []byte(name), Data: []byte(data)} }
	evs := []Event{ev("message_start", `{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":300,"cache_read_input_tokens":12000,"cache_creation":{"ephemeral_5m_input_tokens":300,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}`),
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)}
	for i := range 40 {
		evs = append(evs, ev("content_block_delta", fmt.Sprintf(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"word %d "}}`, i)))
	}
	return append(evs, ev("content_block_stop", `{"type":"content_block_stop","index":0}`),
		ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":120}}`),
		ev("message_stop", `{"type":"message_stop"}`))
}

// The Messages passthrough (Claude Code on Anthropic): relayed as sent,
// usage read on the way.
func BenchmarkMessagesRelay(b *testing.B) {
	c := &Call{Door: MessagesDoor, Native: true}
	benchStream(b, func() StreamTranslator { return MessagesDoor.newStream(Get(Anthropic), c) }, anthropicBenchStream())
}
