package providers

import (
	"encoding/json"
	"errors"
	"testing"
)

// The front doors' translators take any client body and any upstream
// chunk without panicking; what they produce is valid JSON (a request for
// the adapter, or the events of the door's stream), and what they refuse is
// a RequestError (the client's 400).

func fuzzTranslation(t *testing.T, translate func([]byte, string) ([]byte, error), body []byte) {
	if CheckRequestJSON(body) != nil {
		return // the gateway refuses these before any door reads them
	}
	out, err := translate(body, "openai")
	if err != nil {
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("error %T (%v) is not a RequestError", err, err)
		}
		return
	}
	if !json.Valid(out) {
		t.Fatalf("invalid chat body %q", out)
	}
	if _, err := DecodeChatRequest(out); err != nil {
		t.Fatalf("the chat body does not decode: %v", err)
	}
}

func fuzzStream(t *testing.T, tr StreamTranslator, chunk []byte) {
	out, _ := tr.Event(nil, Event{Data: chunk})
	end, _ := tr.End(nil)
	for _, ev := range sseEvents(t, append(out, end...)) {
		if !json.Valid([]byte(ev[1])) {
			t.Fatalf("event %s carries invalid JSON %q", ev[0], ev[1])
		}
	}
}

func FuzzMessagesToChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"s"}],"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"n","input":{"a":1}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"}]}],"tools":[{"name":"n","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"n"}}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"tool_result","content":[{"type":"image"}]}]}]}`,
	} {
		f.Add([]byte(s), []byte(`{"choices":[{"delta":{"content":"x","tool_calls":[{"index":0,"id":"c","function":{"name":"n","arguments":"{"}}]},"finish_reason":"length"}],"usage":{"prompt_tokens":1}}`))
	}
	f.Fuzz(func(t *testing.T, body, chunk []byte) {
		fuzzTranslation(t, MessagesToChatBody, body)
		c := &Call{Model: "m", ID: "msg_f", IncludeUsage: true}
		fuzzStream(t, doorOverChat(MessagesDoor, c), chunk)
		if out, err := chatToMessages(c, chunk); err == nil && !json.Valid(out) {
			t.Fatalf("invalid message %q", out)
		}
	})
}

func FuzzResponsesToChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","input":"hi","instructions":"be brief"}`,
		`{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"hi"},{"type":"input_image","image_url":"https://x"}]},{"type":"function_call","call_id":"c","name":"n","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"r"}],"tools":[{"type":"function","name":"n","parameters":{}}],"text":{"format":{"type":"json_schema","name":"o","schema":{}}}}`,
		`{"model":"m","input":"x","previous_response_id":"r"}`,
		`{"model":"m","input":[{"type":"function_call_output","output":[{"type":"input_image"}]}]}`,
		`{"model":"m","input":[{"type":"function_call","namespace":"ns","name":"f","call_id":"c","arguments":"{}"}],"tools":[{"type":"namespace","name":"ns","description":"d","tools":[{"type":"function","name":"f"},{"type":"custom","name":"g"}]},{"type":"web_search","external_web_access":true,"filters":{"allowed_domains":["a"]},"user_location":{"city":"x"}}]}`,
	} {
		f.Add([]byte(s), []byte(`{"choices":[{"delta":{"content":"x","tool_calls":[{"index":3,"function":{"arguments":"{}"}}]},"finish_reason":"stop"}]}`))
	}
	f.Fuzz(func(t *testing.T, body, chunk []byte) {
		fuzzTranslation(t, ResponsesToChatBody, body)
		c := &Call{Model: "m", ID: "resp_f", IncludeUsage: true, respTools: respToolsOf(body)}
		fuzzStream(t, doorOverChat(ResponsesDoor, c), chunk)
		if out, err := chatToResponse(c, chunk); err == nil && !json.Valid(out) {
			t.Fatalf("invalid response %q", out)
		}
	})
}
