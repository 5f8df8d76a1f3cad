package providertest

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// The Cohere fake speaks Cohere's v2 chat (reference/providers.md §9):
// POST {base}/v2/chat with Authorization: Bearer <key>; errors are
// {"message": "..."}; answers are {id, finish_reason, message, usage}; a
// request with "stream": true gets an SSE stream of "event: <type>" +
// "data: <json with the same type>" blocks, ending with message-end and no
// [DONE]. Its base URL is the server's URL.

func init() {
	RegisterKind("cohere", &Kind{
		BaseURL: func(u string) string { return u },
		Parse: func(r *http.Request, rec *Record) (string, *Response) {
			rec.Model, rec.Stream = gjson.GetBytes(rec.Body, "model").String(), gjson.GetBytes(rec.Body, "stream").Bool()
			auth := r.Header.Get("Authorization")
			if auth != "" {
				rec.CredentialHeader, rec.Credential = "Authorization", strings.TrimPrefix(auth, "Bearer ")
			}
			if r.Method == http.MethodGet && r.URL.Path == "/v1/models" {
				if auth == "" {
					return "", &Response{Status: 401, Body: CohereError("no api key supplied")}
				}
				return OpModels, nil
			}
			if r.Method != http.MethodPost || r.URL.Path != "/v2/chat" {
				return "", &Response{Status: 404, Body: CohereError("Not Found")}
			}
			if auth == "" {
				return "", &Response{Status: 401, Body: CohereError("no api key supplied")}
			}
			if !gjson.ValidBytes(rec.Body) || rec.Model == "" || !gjson.GetBytes(rec.Body, "messages").IsArray() {
				return "", &Response{Status: 400, Body: CohereError("invalid request: model and messages are required")}
			}
			return "chat", nil
		},
		Unauthorized: func(key string) Response {
			// Cohere answers "invalid api token"; the fake adds the key.
			return Response{Status: 401, Body: CohereError("invalid api token: " + key)}
		},
		Default: func(rec Record, op string) Response {
			if op == OpModels {
				return Response{Body: `{"models":[{"name":"command-a-03-2025","endpoints":["chat"]}]}`}
			}
			u := CohereTokens(11, 5)
			if rec.Usage != nil {
				u = rec.Usage.Cohere()
			}
			if rec.Stream {
				return Response{RawEvents: CohereStream([]string{"Hel", "lo", " from", " the", " fake"}, u)}
			}
			return Response{Body: CohereChat("Hello from the fake", u)}
		},
	})
}

// CohereUsage is the usage a Cohere answer reports. Tokens are what the
// model processed (the gateway meters these); billed units are what Cohere
// bills, which for real keys leave out Cohere's own preamble.
type CohereUsage struct {
	InputTokens, OutputTokens             int
	BilledInputTokens, BilledOutputTokens int
	// CachedTokens is the cached part of the input; 0 leaves it out.
	CachedTokens int
}

// CohereTokens is a usage with the same tokens and billed units.
func CohereTokens(in, out int) CohereUsage {
	return CohereUsage{InputTokens: in, OutputTokens: out, BilledInputTokens: in, BilledOutputTokens: out}
}

// JSON returns Cohere's usage object.
func (u CohereUsage) JSON() map[string]any {
	m := map[string]any{
		"billed_units": map[string]any{"input_tokens": u.BilledInputTokens, "output_tokens": u.BilledOutputTokens},
		"tokens":       map[string]any{"input_tokens": u.InputTokens, "output_tokens": u.OutputTokens},
	}
	if u.CachedTokens > 0 {
		m["cached_tokens"] = u.CachedTokens
	}
	return m
}

const cohereFakeID = "c0ffee00-fake-4000-8000-000000000001"

func cohereJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// CohereChat returns a v2 chat answer with text as its content.
func CohereChat(text string, u CohereUsage) string {
	return cohereJSON(map[string]any{
		"id": cohereFakeID, "finish_reason": "COMPLETE",
		"message": map[string]any{"role": "assistant", "content": []any{map[string]any{"type": "text", "text": text}}},
		"usage":   u.JSON(),
	})
}

// CohereToolCall returns a v2 chat answer that calls one function, with a
// tool plan as Cohere's models write one.
func CohereToolCall(id, name, arguments string, u CohereUsage) string {
	return cohereJSON(map[string]any{
		"id": cohereFakeID, "finish_reason": "TOOL_CALL",
		"message": map[string]any{
			"role": "assistant", "tool_plan": "I will call " + name + ".",
			"tool_calls": []any{map[string]any{"id": id, "type": "function",
				"function": map[string]any{"name": name, "arguments": arguments}}},
		},
		"usage": u.JSON(),
	})
}

// CohereError returns Cohere's error body.
func CohereError(message string) string {
	return cohereJSON(map[string]any{"message": message})
}

// CohereEvent returns one stream event as Cohere frames it: the event's
// type on the event: line and in the data's "type" field. Extra fields
// come from fields.
func CohereEvent(typ string, fields map[string]any) string {
	m := map[string]any{"type": typ}
	for k, v := range fields {
		m[k] = v
	}
	return "event: " + typ + "\ndata: " + cohereJSON(m) + "\n\n"
}

func cohereStreamStart() string {
	return CohereEvent("message-start", map[string]any{"id": cohereFakeID, "delta": map[string]any{"message": map[string]any{
		"role": "assistant", "content": []any{}, "tool_plan": "", "tool_calls": []any{}, "citations": []any{}}}})
}

// CohereStreamEnd returns the message-end event with its finish reason
// ("COMPLETE", "MAX_TOKENS", "TOOL_CALL", "ERROR"...) and usage.
func CohereStreamEnd(finish string, u CohereUsage) string {
	return CohereEvent("message-end", map[string]any{"delta": map[string]any{"finish_reason": finish, "usage": u.JSON()}})
}

// CohereStream returns the events of a streamed text answer, one
// content-delta per piece, for Response.RawEvents.
func CohereStream(pieces []string, u CohereUsage) []string {
	out := []string{
		cohereStreamStart(),
		CohereEvent("content-start", map[string]any{"index": 0, "delta": map[string]any{"message": map[string]any{"content": map[string]any{"type": "text", "text": ""}}}}),
	}
	for _, p := range pieces {
		out = append(out, CohereEvent("content-delta", map[string]any{"index": 0, "delta": map[string]any{"message": map[string]any{"content": map[string]any{"text": p}}}}))
	}
	return append(out, CohereEvent("content-end", map[string]any{"index": 0}), CohereStreamEnd("COMPLETE", u))
}

// CohereToolCallStream returns the events of a streamed answer that calls
// one function, its arguments sent in the given pieces.
func CohereToolCallStream(id, name string, argPieces []string, u CohereUsage) []string {
	out := []string{
		cohereStreamStart(),
		CohereEvent("tool-plan-delta", map[string]any{"delta": map[string]any{"message": map[string]any{"tool_plan": "I will call " + name + "."}}}),
		CohereEvent("tool-call-start", map[string]any{"index": 0, "delta": map[string]any{"message": map[string]any{"tool_calls": map[string]any{
			"id": id, "type": "function", "function": map[string]any{"name": name, "arguments": ""}}}}}),
	}
	for _, p := range argPieces {
		out = append(out, CohereEvent("tool-call-delta", map[string]any{"index": 0, "delta": map[string]any{"message": map[string]any{"tool_calls": map[string]any{
			"function": map[string]any{"arguments": p}}}}}))
	}
	return append(out, CohereEvent("tool-call-end", map[string]any{"index": 0}), CohereStreamEnd("TOOL_CALL", u))
}
