package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// Codex on Claude and Gemini with its default tools. The requests are
// shaped as Codex 0.169 sends them with no extra flags (recorded from the
// CLI against a recording fake; descriptions and instructions shortened):
// stream, store false, reasoning summary, include, prompt_cache_key,
// client_metadata, input items with ids, function tools, the
// multi_agent_v1 namespace and a cache-only web_search
// (external_web_access: false).

// codexTurn1 is the recorded first request with model set.
func codexTurn1(t *testing.T, model string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/codex_0.169_turn1.json")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	body["model"] = model
	return body
}

// codexReply is one answer to a Codex request.
type codexReply struct {
	status int
	header http.Header
	body   []byte
	events []gjson.Result // the data of each event, when streamed
}

// item returns the output item a streamed reply's output_item.done events
// (where Codex takes tool calls from) give for a type, or the answer's.
func (r *codexReply) items(typ string) []gjson.Result {
	var out []gjson.Result
	if r.events == nil {
		for _, it := range gjson.GetBytes(r.body, "output").Array() {
			if it.Get("type").String() == typ {
				out = append(out, it)
			}
		}
		return out
	}
	for _, ev := range r.events {
		if ev.Get("type").String() == "response.output_item.done" && ev.Get("item.type").String() == typ {
			out = append(out, ev.Get("item"))
		}
	}
	return out
}

// codexPost sends body as Codex does (its headers, the key as Bearer) and
// reads the answer; a stream is split into events, each checked to name
// its type in both the event line and the data.
func (fe *fdEnv) codexPost(t *testing.T, arKey string, body map[string]any) *codexReply {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", siteURL+"/v1/responses", bytes.NewReader(b))
	for k, v := range map[string]string{"Authorization": "Bearer " + arKey, "Content-Type": "application/json", "Accept": "text/event-stream",
		"Originator": "codex_exec", "User-Agent": "codex_exec/0.169.0 (Debian 12.0.0; x86_64) xterm (codex_exec; 0.169.0)",
		"Session-Id": "01a2509e-fa9d-7c13-9ec6-501c415162a0", "X-Client-Request-Id": "01a2509e-fa9d-7c13-9ec6-501c415162a0",
		"X-Codex-Window-Id": "01a2509e-fa9d-7c13-9ec6-501c415162a0:0"} {
		req.Header.Set(k, v)
	}
	resp, err := fe.e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	r := &codexReply{status: resp.StatusCode, header: resp.Header, body: out}
	if resp.StatusCode == 200 && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		r.events = []gjson.Result{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var name string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				d := gjson.Parse(v)
				if d.Get("type").String() != name {
					t.Errorf("event %q carries data of type %q", name, d.Get("type").String())
				}
				r.events = append(r.events, d)
			}
		}
		if n := len(r.events); n == 0 || r.events[n-1].Get("type").String() != "response.completed" {
			t.Fatalf("the stream does not end with response.completed: %s", out)
		}
	}
	return r
}

// codexToolResponder answers as the provider would: a call of name (with
// args) until a tool result is in the request, then text. native is the
// provider's own name for the function: the offered, flattened one.
func codexToolResponder(kind, native, args, text string) providertest.Responder {
	return func(rec providertest.Record) providertest.Response {
		result := strings.Contains(string(rec.Body), `"tool_result"`) || strings.Contains(string(rec.Body), `"functionResponse"`)
		switch {
		case kind == "anthropic" && result && rec.Stream:
			return providertest.Response{RawEvents: providertest.AnthropicStream(rec.Model, []string{text}, providertest.DefaultAnthropicUsage)}
		case kind == "anthropic" && result:
			return providertest.Response{Body: providertest.AnthropicMessage(rec.Model, text, providertest.DefaultAnthropicUsage)}
		case kind == "anthropic" && rec.Stream:
			half := len(args) / 2
			return providertest.Response{RawEvents: providertest.AnthropicToolUseStream(rec.Model, "toolu_01CX", native, []string{args[:half], args[half:]}, providertest.DefaultAnthropicUsage)}
		case kind == "anthropic":
			return providertest.Response{Body: providertest.AnthropicToolUse(rec.Model, "toolu_01CX", native, args, providertest.DefaultAnthropicUsage)}
		case result && rec.Stream:
			return providertest.Response{RawEvents: providertest.GeminiStream(rec.Model, []string{text}, providertest.DefaultGeminiUsage)}
		case result:
			return providertest.Response{Body: providertest.GeminiText(rec.Model, text, providertest.DefaultGeminiUsage)}
		case rec.Stream:
			return providertest.Response{RawEvents: providertest.GeminiToolCallStream(rec.Model, "", []providertest.GeminiCall{{Name: native, Args: args}}, providertest.DefaultGeminiUsage)}
		}
		return providertest.Response{Body: providertest.GeminiToolCalls(rec.Model, []providertest.GeminiCall{{Name: native, Args: args}}, providertest.DefaultGeminiUsage)}
	}
}

// offeredTools lists the function names a fake got: Anthropic's tools or
// Gemini's function declarations, and the built-in ones by their type.
func offeredTools(kind string, body []byte) []string {
	var names []string
	for _, tl := range gjson.GetBytes(body, "tools").Array() {
		if kind == "anthropic" {
			if typ := tl.Get("type").String(); typ != "" {
				names = append(names, typ)
				continue
			}
			names = append(names, tl.Get("name").String())
			continue
		}
		if tl.Get("googleSearch").Exists() {
			names = append(names, "googleSearch")
		}
		for _, d := range tl.Get("functionDeclarations").Array() {
			names = append(names, d.Get("name").String())
		}
	}
	return names
}

func TestCodexOnClaudeAndGemini(t *testing.T) {
	fe := newFrontDoorEnv(t)
	for _, target := range []struct {
		model, kind, account string
		fake                 *providertest.Server
		searchesWithTools    bool // the model can search beside function tools
	}{
		{"claude-sonnet-4-5", "anthropic", "byok", fe.anthropic, true},
		{"gemini-3-pro-preview", "gemini", "platform", fe.gemini, true},
		{"gemini-2.5-flash", "gemini", "platform", fe.gemini, false},
	} {
		t.Run(target.model, func(t *testing.T) {
			fake, arKey := target.fake, fe.ar[target.account]
			defer fake.SetResponder(nil)

			// 1. A shell-tool round trip, streamed, as Codex runs it.
			fake.SetResponder(codexToolResponder(target.kind, "exec_command", `{"cmd":"echo hi"}`, "It printed hi."))
			body := codexTurn1(t, target.model)
			r := fe.codexPost(t, arKey, body)
			if r.status != 200 {
				t.Fatalf("turn 1: %d %s", r.status, r.body)
			}
			if got := r.header.Get("X-Agent-Router-Omitted"); got != "web_search" {
				t.Errorf("X-Agent-Router-Omitted = %q: Codex's cache-only web_search has no equivalent and must be named", got)
			}
			calls := r.items("function_call")
			if len(calls) != 1 || calls[0].Get("name").String() != "exec_command" || calls[0].Get("namespace").Exists() ||
				!jsonEqual(calls[0].Get("arguments").String(), `{"cmd":"echo hi"}`) || calls[0].Get("call_id").String() == "" {
				t.Fatalf("turn 1 tool call: %v", calls)
			}
			up := lastRecord(t, fake)
			offered := offeredTools(target.kind, up.Body)
			for _, want := range []string{"exec_command", "write_stdin", "multi_agent_v1__spawn_agent", "multi_agent_v1__wait_agent", "multi_agent_v1__close_agent", "update_goal"} {
				if !contains(offered, want) {
					t.Errorf("%s was not offered to the model (offered %v)", want, offered)
				}
			}
			if contains(offered, "web_search_20250305") || contains(offered, "googleSearch") {
				t.Errorf("cache-only web search reached the provider as a live one: %v", offered)
			}
			if target.kind == "anthropic" && gjson.GetBytes(up.Body, "max_tokens").Int() != 64000 {
				t.Errorf("max_tokens upstream %s, want the model's 64000", gjson.GetBytes(up.Body, "max_tokens").Raw)
			}
			// Turn 2: the history with the call and its output, as Codex
			// sends it (item ids, status).
			call := calls[0]
			input := body["input"].([]any)
			input = append(input,
				map[string]any{"type": "function_call", "status": "completed", "id": call.Get("id").String(), "name": "exec_command",
					"arguments": call.Get("arguments").String(), "call_id": call.Get("call_id").String()},
				map[string]any{"type": "function_call_output", "id": "fco_01a2509f", "call_id": call.Get("call_id").String(),
					"output": "Process exited with code 0\nOutput:\nhi\n"})
			body["input"] = input
			r = fe.codexPost(t, arKey, body)
			if r.status != 200 {
				t.Fatalf("turn 2: %d %s", r.status, r.body)
			}
			msgs := r.items("message")
			if len(msgs) != 1 || msgs[0].Get("content.0.text").String() != "It printed hi." {
				t.Errorf("turn 2 answer: %v", msgs)
			}
			if up := lastRecord(t, fake); !strings.Contains(string(up.Body), `Output:\nhi`) || !strings.Contains(string(up.Body), "exec_command") {
				t.Errorf("the tool output did not reach the provider: %s", up.Body)
			}

			// 2. A namespace's function, not streamed: called by its
			// offered name, answered with its own name and namespace.
			fake.SetResponder(codexToolResponder(target.kind, "multi_agent_v1__wait_agent", `{"targets":["agent-1"]}`, "Waited."))
			body = codexTurn1(t, target.model)
			body["stream"] = false
			r = fe.codexPost(t, arKey, body)
			calls = r.items("function_call")
			if r.status != 200 || len(calls) != 1 || calls[0].Get("name").String() != "wait_agent" || calls[0].Get("namespace").String() != "multi_agent_v1" {
				t.Fatalf("namespaced call: %d %s", r.status, r.body)
			}
			input = body["input"].([]any)
			input = append(input,
				map[string]any{"type": "function_call", "status": "completed", "id": calls[0].Get("id").String(), "name": "wait_agent",
					"namespace": "multi_agent_v1", "arguments": calls[0].Get("arguments").String(), "call_id": calls[0].Get("call_id").String()},
				map[string]any{"type": "function_call_output", "call_id": calls[0].Get("call_id").String(), "output": "agent-1: completed"})
			body["input"], body["stream"] = input, true
			r = fe.codexPost(t, arKey, body)
			if msgs := r.items("message"); r.status != 200 || len(msgs) != 1 || msgs[0].Get("content.0.text").String() != "Waited." {
				t.Fatalf("after the namespaced call: %d %s", r.status, r.body)
			}
			if up := lastRecord(t, fake); !strings.Contains(string(up.Body), `"multi_agent_v1__wait_agent"`) || !strings.Contains(string(up.Body), "agent-1: completed") {
				t.Errorf("the namespaced call's history reached the provider as: %s", up.Body)
			}

			// 3. Live search (web_search = "live" in Codex): the
			// provider's own search where the model can take it.
			fake.SetResponder(nil)
			body = codexTurn1(t, target.model)
			tools := body["tools"].([]any)
			tools[len(tools)-1] = map[string]any{"type": "web_search", "external_web_access": true}
			body["stream"] = false
			r = fe.codexPost(t, arKey, body)
			if r.status != 200 || len(r.items("message")) != 1 {
				t.Fatalf("live search: %d %s", r.status, r.body)
			}
			offered = offeredTools(target.kind, lastRecord(t, fake).Body)
			searched := contains(offered, "web_search_20250305") || contains(offered, "googleSearch")
			if searched != target.searchesWithTools || (r.header.Get("X-Agent-Router-Omitted") == "web_search") == searched {
				t.Errorf("live search: offered %v, X-Agent-Router-Omitted %q", offered, r.header.Get("X-Agent-Router-Omitted"))
			}
			if target.kind == "gemini" && searched && !gjson.GetBytes(lastRecord(t, fake).Body, "toolConfig.includeServerSideToolInvocations").Bool() {
				t.Errorf("gemini 3 searched beside function tools without server-side tool invocations")
			}
		})
	}

	// The request log names what was left out.
	testfix.WaitFor(t, 10*time.Second, "a record naming the omitted web_search", func() bool {
		var out struct {
			Records []struct {
				API     string   `json:"api"`
				Omitted []string `json:"omitted"`
			} `json:"records"`
		}
		fe.e.admin("GET", "/agent_router/logs?limit=1000", nil, &out)
		for _, r := range out.Records {
			if r.API == "responses" && len(r.Omitted) == 1 && r.Omitted[0] == "web_search" {
				return true
			}
		}
		return false
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
