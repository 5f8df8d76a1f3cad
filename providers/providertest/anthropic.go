package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/tidwall/gjson"
)

// The Anthropic fake speaks the Messages API: POST /v1/messages with the key
// in x-api-key and a required anthropic-version header, native error bodies
// ({"type":"error","error":{"type","message"}}) and typed event streams
// (event: + data: lines, ping events, usage in message_start and
// message_delta). Its base URL is the server's URL, like
// https://api.anthropic.com.

// AnthropicUsage is the token counts a fake Anthropic answer reports.
// Input excludes the two cache counters, as Anthropic's input_tokens does.
type AnthropicUsage struct {
	Input, Output, CacheRead, CacheCreation int
	// CacheWrite5m and CacheWrite1h, when either is set, split the cache
	// writes by lifetime (usage.cache_creation); ServiceTier is
	// usage.service_tier.
	CacheWrite5m, CacheWrite1h int
	ServiceTier                string
}

// DefaultAnthropicUsage is what the fake reports when no responder is set:
// 9 + 2 cached = 11 prompt tokens and 5 completion tokens, the same totals
// as the OpenAI-shaped fakes (11 + 5 = 16).
var DefaultAnthropicUsage = AnthropicUsage{Input: 9, CacheRead: 2, Output: 5}

func (u AnthropicUsage) object() map[string]any {
	m := map[string]any{
		"input_tokens":                u.Input,
		"cache_creation_input_tokens": u.CacheCreation,
		"cache_read_input_tokens":     u.CacheRead,
		"output_tokens":               u.Output,
	}
	if u.CacheWrite5m > 0 || u.CacheWrite1h > 0 {
		m["cache_creation"] = map[string]any{"ephemeral_5m_input_tokens": u.CacheWrite5m, "ephemeral_1h_input_tokens": u.CacheWrite1h}
	}
	if u.ServiceTier != "" {
		m["service_tier"] = u.ServiceTier
	}
	return m
}

func anthropicJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// AnthropicError returns a native error body, e.g.
// AnthropicError("overloaded_error", "Overloaded") for a 529.
func AnthropicError(typ, message string) string {
	return anthropicJSON(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": message},
		"request_id": "req_fake"})
}

func anthropicMessage(model string, content []any, stop string, u AnthropicUsage) string {
	return anthropicJSON(map[string]any{
		"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": u.object(),
	})
}

// AnthropicMessage returns a Messages answer with text as its only block.
func AnthropicMessage(model, text string, u AnthropicUsage) string {
	return anthropicMessage(model, []any{map[string]any{"type": "text", "text": text}}, "end_turn", u)
}

// AnthropicToolUse returns a Messages answer that calls the tool name with
// input (a JSON object), with stop_reason tool_use.
func AnthropicToolUse(model, id, name, input string, u AnthropicUsage) string {
	return anthropicMessage(model, []any{map[string]any{"type": "tool_use", "id": id, "name": name,
		"input": json.RawMessage(input)}}, "tool_use", u)
}

// AnthropicEvent frames one stream event as Anthropic does.
func AnthropicEvent(name string, data any) string {
	return "event: " + name + "\ndata: " + anthropicJSON(data) + "\n\n"
}

// AnthropicErrorEvent is an error event, as sent after a 200 when the
// stream fails (e.g. "overloaded_error", "Overloaded").
func AnthropicErrorEvent(typ, message string) string {
	return AnthropicEvent("error", map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": message}})
}

func anthropicStreamStart(model string, u AnthropicUsage) []string {
	start := u.object()
	start["output_tokens"] = 1 // what message_start reports before any output
	return []string{
		AnthropicEvent("message_start", map[string]any{"type": "message_start", "message": map[string]any{
			"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": []any{},
			"stop_reason": nil, "stop_sequence": nil, "usage": start}}),
		AnthropicEvent("ping", map[string]any{"type": "ping"}),
	}
}

func anthropicStreamEnd(stop string, u AnthropicUsage) []string {
	return []string{
		AnthropicEvent("message_delta", map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": u.Output}}),
		AnthropicEvent("message_stop", map[string]any{"type": "message_stop"}),
	}
}

// AnthropicStream returns the raw events of a streamed text answer, one
// text_delta per piece (use as Response.RawEvents).
func AnthropicStream(model string, pieces []string, u AnthropicUsage) []string {
	ev := anthropicStreamStart(model, u)
	ev = append(ev, AnthropicEvent("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""}}))
	for i, p := range pieces {
		ev = append(ev, AnthropicEvent("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": p}}))
		if i == 0 {
			ev = append(ev, AnthropicEvent("ping", map[string]any{"type": "ping"}))
		}
	}
	ev = append(ev, AnthropicEvent("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}))
	return append(ev, anthropicStreamEnd("end_turn", u)...)
}

// AnthropicToolUseStream returns the raw events of a streamed tool call:
// the tool's input arrives as the given input_json_delta fragments.
func AnthropicToolUseStream(model, id, name string, fragments []string, u AnthropicUsage) []string {
	ev := anthropicStreamStart(model, u)
	ev = append(ev, AnthropicEvent("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "tool_use", "id": id, "name": name, "input": map[string]any{}}}))
	for _, f := range fragments {
		ev = append(ev, AnthropicEvent("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": f}}))
	}
	ev = append(ev, AnthropicEvent("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}))
	return append(ev, anthropicStreamEnd("tool_use", u)...)
}

// AnthropicDefault is the Anthropic fake's answer when no responder is set:
// "Hello from the fake", streamed in five pieces when asked, with
// DefaultAnthropicUsage.
func AnthropicDefault(rec Record, op string) Response {
	if op == OpCountTokens {
		// A count the tests can recognise: the body's length in bytes / 10.
		return Response{Body: fmt.Sprintf(`{"input_tokens":%d}`, len(rec.Body)/10)}
	}
	if op == OpModels {
		return Response{Body: `{"data":[{"type":"model","id":"claude-haiku-4-5","display_name":"Claude Haiku 4.5","created_at":"2025-10-01T00:00:00Z"}],"has_more":false,"first_id":"claude-haiku-4-5","last_id":"claude-haiku-4-5"}`}
	}
	u := DefaultAnthropicUsage
	if rec.Usage != nil {
		u = rec.Usage.Anthropic()
	}
	if rec.Stream {
		return Response{RawEvents: AnthropicStream(rec.Model, []string{"Hel", "lo", " from", " the", " fake"}, u)}
	}
	return Response{Body: AnthropicMessage(rec.Model, "Hello from the fake", u)}
}

// OpCountTokens is the operation of POST /v1/messages/count_tokens; the
// fake answers {"input_tokens": <body length / 10>}.
const OpCountTokens = "count_tokens"

func anthropicErrorResponse(status int, typ, message string) *Response {
	return &Response{Status: status, Body: AnthropicError(typ, message)}
}

// anthropicParse checks a request the way the Messages API does before
// it answers: the path, the key header, anthropic-version, and the body's
// required fields, so a translation bug shows as the API's own 400.
func anthropicParse(r *http.Request, rec *Record) (string, *Response) {
	body := rec.Body
	rec.Model, rec.Stream = gjson.GetBytes(body, "model").String(), gjson.GetBytes(body, "stream").Bool()
	if key := r.Header.Get("X-Api-Key"); key != "" {
		rec.CredentialHeader, rec.Credential = "X-Api-Key", key
	}
	if r.URL.Path == "/v1/models" && r.Method == http.MethodGet {
		if rec.Credential == "" {
			return "", anthropicErrorResponse(401, "authentication_error", "x-api-key header is required")
		}
		if r.Header.Get("Anthropic-Version") == "" {
			return "", anthropicErrorResponse(400, "invalid_request_error", "anthropic-version: header is required")
		}
		return OpModels, nil
	}
	if r.URL.Path == "/v1/messages/count_tokens" && r.Method == http.MethodPost {
		if rec.Credential == "" {
			return "", anthropicErrorResponse(401, "authentication_error", "x-api-key header is required")
		}
		if r.Header.Get("Anthropic-Version") == "" {
			return "", anthropicErrorResponse(400, "invalid_request_error", "anthropic-version: header is required")
		}
		if rec.Model == "" {
			return "", anthropicErrorResponse(400, "invalid_request_error", "model: Field required")
		}
		return OpCountTokens, nil
	}
	if r.URL.Path != "/v1/messages" || r.Method != http.MethodPost {
		return "", anthropicErrorResponse(404, "not_found_error", "Not Found")
	}
	if rec.Credential == "" {
		return "", anthropicErrorResponse(401, "authentication_error", "x-api-key header is required")
	}
	if r.Header.Get("Anthropic-Version") == "" {
		return "", anthropicErrorResponse(400, "invalid_request_error", "anthropic-version: header is required")
	}
	if !gjson.ValidBytes(body) {
		return "", anthropicErrorResponse(400, "invalid_request_error", "There was an issue with the request body: invalid JSON")
	}
	if rec.Model == "" {
		return "", anthropicErrorResponse(400, "invalid_request_error", "model: Field required")
	}
	mt := gjson.GetBytes(body, "max_tokens")
	if mt.Type != gjson.Number || mt.Int() < 1 {
		return "", anthropicErrorResponse(400, "invalid_request_error", "max_tokens: Field required")
	}
	if max, ok := anthropicMaxOutput(rec.Model); ok && mt.Int() > max {
		return "", anthropicErrorResponse(400, "invalid_request_error",
			fmt.Sprintf("max_tokens: %d > %d, which is the maximum allowed number of output tokens for %s", mt.Int(), max, rec.Model))
	}
	if early := anthropicTools(body); early != nil {
		return "", early
	}
	msgs := gjson.GetBytes(body, "messages")
	if !msgs.IsArray() || len(msgs.Array()) == 0 {
		return "", anthropicErrorResponse(400, "invalid_request_error", "messages: at least one message is required")
	}
	for i, m := range msgs.Array() {
		role := m.Get("role").String()
		if role != "user" && role != "assistant" {
			return "", anthropicErrorResponse(400, "invalid_request_error",
				fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i))
		}
	}
	return "chat", nil
}

// anthropicToolName is what the Messages API takes as a tool's name.
var anthropicToolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// anthropicTools refuses the tools the Messages API refuses: a client
// tool's name it does not take, one without input_schema, a server tool of
// a type it does not know (the fake knows web search), and two tools of one
// name.
func anthropicTools(body []byte) *Response {
	names := map[string]bool{}
	for i, t := range gjson.GetBytes(body, "tools").Array() {
		name := t.Get("name").String()
		switch typ := t.Get("type").String(); typ {
		case "", "custom":
			if !anthropicToolName.MatchString(name) {
				return anthropicErrorResponse(400, "invalid_request_error", fmt.Sprintf("tools.%d.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'", i))
			}
			if !t.Get("input_schema").IsObject() {
				return anthropicErrorResponse(400, "invalid_request_error", fmt.Sprintf("tools.%d.custom.input_schema: Field required", i))
			}
		case "web_search_20250305":
			if name != "web_search" {
				return anthropicErrorResponse(400, "invalid_request_error", fmt.Sprintf("tools.%d.web_search_20250305.name: Input should be 'web_search'", i))
			}
		default:
			return anthropicErrorResponse(400, "invalid_request_error", fmt.Sprintf("tools.%d: Input tag '%s' found using 'type' does not match any of the expected tags", i, typ))
		}
		if names[name] {
			return anthropicErrorResponse(400, "invalid_request_error", "tools: Tool names must be unique.")
		}
		names[name] = true
	}
	return nil
}

// anthropicMaxOutput is the most output tokens the fake's Claude models
// write (docs.claude.com models overview), by name prefix: Anthropic
// refuses a larger max_tokens.
func anthropicMaxOutput(model string) (int64, bool) {
	for _, m := range []struct {
		prefix string
		max    int64
	}{{"claude-sonnet-4-5", 64000}, {"claude-haiku-4-5", 64000}, {"claude-opus-4-1", 32000}, {"claude-3-5-haiku", 8192}, {"claude-3-haiku", 4096}} {
		if strings.HasPrefix(model, m.prefix) {
			return m.max, true
		}
	}
	return 0, false
}

func init() {
	RegisterKind("anthropic", &Kind{
		BaseURL: func(u string) string { return u },
		Parse:   anthropicParse,
		Unauthorized: func(key string) Response {
			// Anthropic says "invalid x-api-key"; the fake also echoes the
			// key, so the gateway's scrubbing is tested.
			return Response{Status: 401, Body: AnthropicError("authentication_error", "invalid x-api-key: "+strings.TrimSpace(key))}
		},
		Default: AnthropicDefault,
	})
}
