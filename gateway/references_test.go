package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// createResponse creates a stored response through the gateway and returns
// its id.
func (e *env) createResponse(t *testing.T, key string) string {
	t.Helper()
	r := e.post(t, "/v1/responses", key, `{"model":"gpt-4o-mini","input":"remember: the launch code is 0000"}`)
	id := gjson.GetBytes(r.body, "id").Str
	if r.status != 200 || id == "" {
		t.Fatalf("create: %s", r)
	}
	return id
}

// TestResponsesReferencesMustBeOwned: a create that continues a stored
// response (previous_response_id) is served only for the account that
// created it; another account, which shares the platform key at the
// provider, gets the same 404 as for an unknown id, and the provider is
// never called — whatever spelling or repetition of the member it tries.
func TestResponsesReferencesMustBeOwned(t *testing.T) {
	e := newEnv(t, options{})
	acme, _ := e.account(t, "acme", 1)
	globex, _ := e.account(t, "globex", 1)
	id := e.createResponse(t, acme[0])
	other := e.createResponse(t, globex[0])

	// The owner continues it.
	e.openai.Reset()
	r := e.post(t, "/v1/responses", acme[0], fmt.Sprintf(`{"model":"gpt-4o-mini","input":"and?","previous_response_id":%q}`, id))
	if r.status != 200 {
		t.Fatalf("owner's continuation: %s", r)
	}
	if rec, ok := e.openai.Last(); !ok || gjson.GetBytes(rec.Body, "previous_response_id").Str != id {
		t.Fatalf("the owner's continuation did not reach the provider with its id")
	}

	e.openai.Reset()
	for name, body := range map[string]string{
		"plain":        fmt.Sprintf(`{"model":"gpt-4o-mini","input":"what was the code?","previous_response_id":%q}`, id),
		"stream":       fmt.Sprintf(`{"model":"gpt-4o-mini","input":"what was the code?","stream":true,"previous_response_id":%q}`, id),
		"escaped":      fmt.Sprintf(`{"model":"gpt-4o-mini","input":"what was the code?","previous\u005fresponse_id":%q}`, id),
		"second copy":  fmt.Sprintf(`{"model":"gpt-4o-mini","input":"what was the code?","previous_response_id":%q,"previous_response_id":%q}`, other, id),
		"unknown":      `{"model":"gpt-4o-mini","input":"hi","previous_response_id":"resp_nobody"}`,
		"not a string": `{"model":"gpt-4o-mini","input":"hi","previous_response_id":12}`,
	} {
		r := e.post(t, "/v1/responses", globex[0], body)
		d := expectError(t, r, 404, gateway.CodeResponseNotFound, "previous_response_id")
		if name != "unknown" && name != "not a string" && !strings.Contains(d.Message, id) {
			t.Errorf("%s: the 404 does not name the id: %q", name, d.Message)
		}
		if rec := e.record(t, r.id); rec.Status != 404 || len(rec.Attempts) != 1 || rec.Attempts[0].Skipped != "response_not_owned" {
			t.Errorf("%s: logged %d with attempts %+v", name, rec.Status, rec.Attempts)
		}
	}
	// Through the account's own key, too: the check is the gateway's.
	e.putCred(t, "globex", providers.OpenAI, canaryOpenAI("globex"), store.Extras{})
	r = e.post(t, "/v1/responses", globex[0], fmt.Sprintf(`{"model":"gpt-4o-mini","input":"hi","previous_response_id":%q}`, id))
	expectError(t, r, 404, gateway.CodeResponseNotFound)
	e.expectNoUpstream(t)

	// A translated target refuses previous_response_id itself (400 naming
	// the feature), without a call either.
	r = e.post(t, "/v1/responses", acme[0], fmt.Sprintf(`{"model":"claude-haiku-4-5","input":"hi","previous_response_id":%q}`, id))
	expectError(t, r, 400, gateway.CodeUnsupportedRequest, "previous_response_id")
	e.expectNoUpstream(t)
}

// TestUnattributableReferencesNeedBYOK: conversations, item references,
// files and containers are objects at the provider that the gateway cannot
// attribute to an account. Under the platform key, which every account
// shares, a request naming one is refused (404, in the door's own error
// format) without a provider call; under the account's own key, which
// reaches only its own objects, it is served. A route that falls back from
// BYOK to the platform skips the platform attempt.
func TestUnattributableReferencesNeedBYOK(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)

	responses := map[string]string{
		"conversation":           `{"model":"gpt-4o-mini","input":"hi","conversation":"conv_123"}`,
		"conversation object":    `{"model":"gpt-4o-mini","input":"hi","conversation":{"id":"conv_123"}}`,
		"conversation 2nd copy":  `{"model":"gpt-4o-mini","input":"hi","conversation":null,"conversation":"conv_123"}`,
		"item_reference":         `{"model":"gpt-4o-mini","input":[{"type":"item_reference","id":"msg_123"}]}`,
		"untyped item reference": `{"model":"gpt-4o-mini","input":[{"role":"user","content":"hi"},{"id":"msg_123"}]}`,
		"item type 2nd copy":     `{"model":"gpt-4o-mini","input":[{"type":"message","type":"item_reference","id":"msg_123"}]}`,
		"input_file":             `{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-123"}]}]}`,
		"input_image":            `{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-123","detail":"auto"}]}]}`,
		"escaped file_id":        `{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_file","file\u005fid":"file-123"}]}]}`,
		"container":              `{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"code_interpreter","container":"cntr_123"}]}`,
		"container files":        `{"model":"gpt-4o-mini","input":"hi","tools":[{"type":"code_interpreter","container":{"type":"auto","file_ids":["file-123"]}}]}`,
	}
	messages := map[string]string{
		"container":         `{"model":"claude-haiku-4-5","max_tokens":10,"container":"container_123","messages":[{"role":"user","content":"hi"}]}`,
		"container object":  `{"model":"claude-haiku-4-5","max_tokens":10,"container":{"id":"container_123"},"messages":[{"role":"user","content":"hi"}]}`,
		"document file":     `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"file","file_id":"file_123"}}]}]}`,
		"container_upload":  `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"container_upload","file_id":"file_123"}]}]}`,
		"count_tokens file": `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"file_123"}}]}]}`,
	}
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-123"}}]}]}`

	anthropicError := func(name string, r *reply) {
		t.Helper()
		if r.status != 404 || gjson.GetBytes(r.body, "type").Str != "error" || gjson.GetBytes(r.body, "error.type").Str != "not_found_error" ||
			!strings.Contains(gjson.GetBytes(r.body, "error.message").Str, "platform") {
			t.Errorf("%s: %s, want Anthropic's 404 not_found_error", name, r)
		}
	}
	platform := func() {
		t.Helper()
		for name, body := range responses {
			r := e.post(t, "/v1/responses", keys[0], body)
			expectError(t, r, 404, gateway.CodeReferenceNotAllowed, "own openai key")
			if rec := e.record(t, r.id); len(rec.Attempts) != 1 || rec.Attempts[0].Skipped != "reference_needs_byok" {
				t.Errorf("%s: attempts %+v", name, rec.Attempts)
			}
		}
		for name, body := range messages {
			path := "/v1/messages"
			if strings.HasPrefix(name, "count_tokens") {
				path += "/count_tokens"
			}
			anthropicError(name, e.post(t, path, keys[0], body))
		}
		expectError(t, e.post(t, "/v1/chat/completions", keys[0], chat), 404, gateway.CodeReferenceNotAllowed, "file_id")
		expectError(t, e.playground(t, "acme", "", "", chat), 404, gateway.CodeReferenceNotAllowed, "file_id")
		e.expectNoUpstream(t)
	}
	platform()

	// A file_id that is the client's own data (a tool's arguments or
	// schema, metadata) is no reference.
	for _, body := range []string{
		`{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"read","input":{"file_id":"abc"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"ok"}]}],"tools":[{"name":"read","input_schema":{"type":"object","properties":{"file_id":{"type":"string"}}}}]}`,
		`{"model":"claude-haiku-4-5","max_tokens":10,"metadata":{"file_id":"x"},"messages":[{"role":"user","content":"the file_id is x"}]}`,
	} {
		if r := e.post(t, "/v1/messages", keys[0], body); r.status != 200 {
			t.Errorf("a body without references: %s", r)
		}
	}
	if r := e.post(t, "/v1/responses", keys[0], `{"model":"gpt-4o-mini","input":[{"type":"message","role":"user","content":"hi","id":"msg_1"}],"tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"file_id":{"type":"string"}}}}]}`); r.status != 200 {
		t.Errorf("a body without references: %s", r)
	}
	e.openai.Reset()
	e.anthropic.Reset()

	// A route that would fall back to the platform key skips it.
	byokOpenAI, byokAnthropic := canaryOpenAI("acme"), "sk-ant-api03-CANARYacme"+randAlnum(40)
	e.putCred(t, "acme", providers.OpenAI, byokOpenAI, store.Extras{})
	e.putCred(t, "acme", providers.Anthropic, byokAnthropic, store.Extras{})
	for name, body := range responses {
		if r := e.post(t, "/v1/responses", keys[0], body); r.status != 200 || r.header.Get(gateway.HeaderCredential) != gateway.SourceBYOK {
			t.Errorf("byok %s: %s", name, r)
		}
	}
	for name, body := range messages {
		path := "/v1/messages"
		if strings.HasPrefix(name, "count_tokens") {
			path += "/count_tokens"
		}
		if r := e.post(t, path, keys[0], body); r.status != 200 {
			t.Errorf("byok %s: %s", name, r)
		}
	}
	if r := e.post(t, "/v1/chat/completions", keys[0], chat); r.status != 200 {
		t.Errorf("byok chat file_id: %s", r)
	}
	for _, f := range []*fake{e.openai, e.anthropic} {
		for _, rec := range f.Records() {
			if rec.Credential != byokOpenAI && rec.Credential != byokAnthropic {
				t.Errorf("%s %s reached %s with another key", rec.Method, rec.Path, f.name)
			}
		}
	}
	e.openai.Reset()
	e.anthropic.Reset()
	e.s.DeleteCredential("acme", providers.OpenAI)
	e.s.DeleteCredential("acme", providers.Anthropic)
	platform()
}

// TestResponseOwnershipCannotBeTakenOver: an account whose BYOK base URL is
// its own server answers with another account's response id; the id stays
// the first account's (it can still read it, the other cannot).
func TestResponseOwnershipCannotBeTakenOver(t *testing.T) {
	e := newEnv(t, options{})
	acme, _ := e.account(t, "acme", 1)
	mallory, _ := e.account(t, "mallory", 1)
	id := e.createResponse(t, acme[0])

	// mallory's "OpenAI" is a server of its own (the Mistral fake's
	// address, taken over) that answers any create with acme's id.
	e.mistral.handle(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"object":"response","status":"completed","model":"gpt-4o-mini","output":[],"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}`, id)
	})
	e.putCred(t, "mallory", providers.OpenAI, canaryOpenAI("mallory"), store.Extras{BaseURL: e.mistral.BaseURL()})
	r := e.post(t, "/v1/responses", mallory[0], `{"model":"gpt-4o-mini","input":"hi"}`)
	if r.status != 200 || gjson.GetBytes(r.body, "id").Str != id {
		t.Fatalf("mallory's create: %s", r)
	}

	// acme still owns it: the retrieve goes to the platform's OpenAI.
	r = e.do(t, http.MethodGet, "/v1/responses/"+id, acme[0], nil)
	if r.status != 200 || gjson.GetBytes(r.body, "id").Str != id || r.header.Get(gateway.HeaderCredential) != gateway.SourcePlatform {
		t.Fatalf("the owner's retrieve after the takeover attempt: %s", r)
	}
	// mallory cannot read it, nor continue it.
	expectError(t, e.do(t, http.MethodGet, "/v1/responses/"+id, mallory[0], nil), 404, gateway.CodeResponseNotFound)
	expectError(t, e.post(t, "/v1/responses", mallory[0], fmt.Sprintf(`{"model":"gpt-4o-mini","input":"hi","previous_response_id":%q}`, id)),
		404, gateway.CodeResponseNotFound)
	e.waitIdle(t)
	if e.observed.FilterMessage("a provider answered with a response id another account owns; ownership kept").Len() != 1 {
		t.Error("the refused takeover was not logged")
	}
}
