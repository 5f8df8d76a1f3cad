package providertest

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// The OpenAI-shaped fakes (kinds "openai" and "azure") also speak OpenAI's
// Responses API: POST {base}/responses (plain or streamed), GET and DELETE
// {base}/responses/{id}, GET {base}/responses/{id}/input_items. A created
// response is kept (unless the request said "store": false) with the key
// that created it; retrieving, deleting or listing it with another key is
// a 404, as at OpenAI, where responses belong to the project.
//
// Without a responder, a create answers a function call when the request
// offers function tools and its input has no function_call_output yet
// (call_id "call_fakeResp01", the first tool, arguments FakeResponseArgs),
// and the text "Hello from the fake" otherwise, with ResponsesUsage.

// Operation names of Responses requests, as Kind.Parse names them.
const (
	OpResponses           = "responses"
	OpResponsesGet        = "responses.get"
	OpResponsesDelete     = "responses.delete"
	OpResponsesInputItems = "responses.input_items"
)

// FakeResponseArgs are the arguments of the fake's function call.
const FakeResponseArgs = `{"city":"Paris"}`

// ResponsesUsage is the usage the Responses fake reports: 21 input tokens
// (3 cached), 8 output (2 reasoning), 29 in total.
var ResponsesUsage = map[string]any{
	"input_tokens": 21, "input_tokens_details": map[string]any{"cached_tokens": 3},
	"output_tokens": 8, "output_tokens_details": map[string]any{"reasoning_tokens": 2}, "total_tokens": 29,
}

type storedResponse struct {
	key      string
	response map[string]any
	input    []any
}

// responsesOp names a Responses path (below the base URL's /v1 or
// /openai/v1), or returns "".
func responsesOp(method, path string) string {
	switch {
	case path == "/responses" && method == "POST":
		return OpResponses
	case strings.HasPrefix(path, "/responses/"):
		id, sub, _ := strings.Cut(strings.TrimPrefix(path, "/responses/"), "/")
		switch {
		case id == "":
			return ""
		case sub == "" && method == "GET":
			return OpResponsesGet
		case sub == "" && method == "DELETE":
			return OpResponsesDelete
		case sub == "input_items" && method == "GET":
			return OpResponsesInputItems
		}
	}
	return ""
}

func respJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func openAINotFound(msg string) Response {
	return Response{Status: 404, Body: respJSON(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": nil}})}
}

// responses answers a Responses request.
func (s *Server) responses(rec Record, op string) Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored == nil {
		s.stored = map[string]*storedResponse{}
	}
	id := ""
	if rest, ok := strings.CutPrefix(rec.Path[strings.Index(rec.Path, "/responses"):], "/responses/"); ok {
		id, _, _ = strings.Cut(rest, "/")
	}
	if op != OpResponses {
		st := s.stored[id]
		if st == nil || st.key != rec.Credential {
			return openAINotFound(fmt.Sprintf("Response with id '%s' not found.", id))
		}
		switch op {
		case OpResponsesGet:
			return Response{Body: respJSON(st.response)}
		case OpResponsesDelete:
			delete(s.stored, id)
			return Response{Body: respJSON(map[string]any{"id": id, "object": "response", "deleted": true})}
		default:
			first, last := "", ""
			for i, it := range st.input {
				if m, ok := it.(map[string]any); ok {
					if i == 0 {
						first, _ = m["id"].(string)
					}
					last, _ = m["id"].(string)
				}
			}
			return Response{Body: respJSON(map[string]any{"object": "list", "data": st.input, "first_id": first, "last_id": last, "has_more": false})}
		}
	}
	s.respCount++
	n := s.respCount
	id = fmt.Sprintf("resp_fake%04d", n)
	body := rec.Body
	model := gjson.GetBytes(body, "model").String()
	// The input as stored input items, with ids.
	var input []any
	if in := gjson.GetBytes(body, "input"); in.Type == gjson.String {
		input = append(input, map[string]any{"id": fmt.Sprintf("msg_in%04d_0", n), "type": "message", "role": "user",
			"status": "completed", "content": []any{map[string]any{"type": "input_text", "text": in.Str}}})
	} else {
		for i, it := range in.Array() {
			var m map[string]any
			json.Unmarshal([]byte(it.Raw), &m)
			if m == nil {
				continue
			}
			if _, ok := m["id"]; !ok {
				m["id"] = fmt.Sprintf("item_in%04d_%d", n, i)
			}
			input = append(input, m)
		}
	}
	var item map[string]any
	tool := gjson.GetBytes(body, `tools.#(type=="function").name`).String()
	answered := strings.Contains(gjson.GetBytes(body, "input").Raw, `"function_call_output"`)
	if tool != "" && !answered {
		item = map[string]any{"id": fmt.Sprintf("fc_fake%04d", n), "type": "function_call", "status": "completed",
			"call_id": "call_fakeResp01", "name": tool, "arguments": FakeResponseArgs}
	} else {
		item = map[string]any{"id": fmt.Sprintf("msg_fake%04d", n), "type": "message", "role": "assistant", "status": "completed",
			"content": []any{map[string]any{"type": "output_text", "text": "Hello from the fake", "annotations": []any{}}}}
	}
	response := func(status string, output []any, usage any) map[string]any {
		return map[string]any{"id": id, "object": "response", "created_at": 1700000000, "status": status, "model": model,
			"output": output, "usage": usage, "error": nil, "incomplete_details": nil, "parallel_tool_calls": true,
			"tool_choice": "auto", "tools": []any{}, "store": gjson.GetBytes(body, "store").Type != gjson.False}
	}
	var usage any = ResponsesUsage
	if s.usage != nil {
		usage = s.usage.Responses()
	}
	done := response("completed", []any{item}, usage)
	if s.usage != nil && s.usage.ServiceTier != "" {
		done["service_tier"] = s.usage.ServiceTier
	}
	if gjson.GetBytes(body, "store").Type != gjson.False {
		s.stored[id] = &storedResponse{key: rec.Credential, response: done, input: input}
	}
	if !rec.Stream {
		return Response{Body: respJSON(done)}
	}
	seq := 0
	var ev []string
	emit := func(typ string, fields map[string]any) {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		ev = append(ev, "event: "+typ+"\ndata: "+respJSON(fields)+"\n\n")
	}
	emit("response.created", map[string]any{"response": response("in_progress", []any{}, nil)})
	emit("response.in_progress", map[string]any{"response": response("in_progress", []any{}, nil)})
	if item["type"] == "function_call" {
		added := map[string]any{}
		for k, v := range item {
			added[k] = v
		}
		added["arguments"], added["status"] = "", "in_progress"
		emit("response.output_item.added", map[string]any{"output_index": 0, "item": added})
		for _, piece := range []string{`{"city":`, `"Paris"}`} {
			emit("response.function_call_arguments.delta", map[string]any{"item_id": item["id"], "output_index": 0, "delta": piece})
		}
		emit("response.function_call_arguments.done", map[string]any{"item_id": item["id"], "output_index": 0, "arguments": FakeResponseArgs})
	} else {
		emit("response.output_item.added", map[string]any{"output_index": 0, "item": map[string]any{"id": item["id"], "type": "message",
			"role": "assistant", "status": "in_progress", "content": []any{}}})
		emit("response.content_part.added", map[string]any{"item_id": item["id"], "output_index": 0, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
		for _, piece := range []string{"Hel", "lo", " from", " the", " fake"} {
			emit("response.output_text.delta", map[string]any{"item_id": item["id"], "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []any{}})
		}
		emit("response.output_text.done", map[string]any{"item_id": item["id"], "output_index": 0, "content_index": 0, "text": "Hello from the fake", "logprobs": []any{}})
		emit("response.content_part.done", map[string]any{"item_id": item["id"], "output_index": 0, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": "Hello from the fake", "annotations": []any{}}})
	}
	emit("response.output_item.done", map[string]any{"output_index": 0, "item": item})
	emit("response.completed", map[string]any{"response": done})
	return Response{RawEvents: ev}
}
