package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	antoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// fdEnv is Caddy with an OpenAI fake and an Anthropic fake, an account
// with its own keys for both (byok), one served by the platform's keys
// (platform), and a third account (other) for isolation checks.
type fdEnv struct {
	e         *env
	openai    *providertest.Server
	anthropic *providertest.Server
	azure     *providertest.Server
	gemini    *providertest.Server
	keys      map[string]string // provider key by "openai/byok", "anthropic/platform", ...
	ar        map[string]string // Agent Router key by account role
}

func newFrontDoorEnv(t *testing.T) *fdEnv {
	t.Helper()
	fe := &fdEnv{openai: providertest.New("openai"), anthropic: providertest.New("anthropic"), azure: providertest.New("azure"), gemini: providertest.New("gemini"),
		keys: map[string]string{
			"openai/platform":    "sk-proj-FDplatform" + randomAlnum(40),
			"openai/byok":        "sk-proj-FDbyok" + randomAlnum(40),
			"anthropic/platform": "sk-ant-api03-FDplatform" + randomAlnum(80) + "AA",
			"anthropic/byok":     "sk-ant-api03-FDbyok" + randomAlnum(84) + "AA",
			"azure/platform":     "FDazure" + randomHex(25),
			"gemini/platform":    "AIzaFDplatform" + randomAlnum(25),
		}}
	t.Cleanup(fe.openai.Close)
	t.Cleanup(fe.anthropic.Close)
	t.Cleanup(fe.azure.Close)
	t.Cleanup(fe.gemini.Close)
	t.Setenv("AR_FD_GEMINI_KEY", fe.keys["gemini/platform"])
	t.Setenv("AR_FD_AZURE_KEY", fe.keys["azure/platform"])
	e := &env{t: t, dir: t.TempDir(),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	fe.e = e
	t.Setenv("AR_FD_MASTER_KEY", base64.StdEncoding.EncodeToString(randomBytes(32)))
	t.Setenv("AR_FD_OPENAI_KEY", fe.keys["openai/platform"])
	t.Setenv("AR_FD_ANTHROPIC_KEY", fe.keys["anthropic/platform"])
	handler := fmt.Sprintf(`		provider openai {
			api_key {env.AR_FD_OPENAI_KEY}
			base_url %s
		}
		provider anthropic {
			api_key {env.AR_FD_ANTHROPIC_KEY}
			base_url %s
		}
		provider azure {
			api_key {env.AR_FD_AZURE_KEY}
			base_url %s
			api_version v1
			model fd-azure fd-deploy
		}
		provider gemini {
			api_key {env.AR_FD_GEMINI_KEY}
			base_url %s
		}
		alias claude-alias claude-haiku-4-5
		route claude-or-gpt {
			to claude-haiku-4-5
			to gpt-4o-mini
		}
`, fe.openai.BaseURL(), fe.anthropic.BaseURL(), fe.azure.BaseURL(), fe.gemini.BaseURL())
	e.tester = caddytest.NewTester(t)
	e.tester.InitServer(testCaddyfile(e.dir, "AR_FD_MASTER_KEY", handler, loopbackEgress), "caddyfile")
	for _, a := range []string{"fd-byok", "fd-platform", "fd-other"} {
		e.createAccount(a)
	}
	e.putBYOK("fd-byok", "openai", map[string]string{"api_key": fe.keys["openai/byok"]})
	e.putBYOK("fd-byok", "anthropic", map[string]string{"api_key": fe.keys["anthropic/byok"]})
	fe.ar = map[string]string{"byok": e.createKey("fd-byok", "k").Key, "platform": e.createKey("fd-platform", "k").Key,
		"other": e.createKey("fd-other", "k").Key}
	return fe
}

func antClient(arKey string) anthropic.Client {
	return anthropic.NewClient(antoption.WithoutEnvironmentDefaults(), antoption.WithBaseURL(siteURL),
		antoption.WithAPIKey(arKey), antoption.WithMaxRetries(0), antoption.WithRequestTimeout(15*time.Second))
}

func oaClient(arKey string) openai.Client {
	return openai.NewClient(option.WithBaseURL(siteURL+"/v1/"), option.WithAPIKey(arKey),
		option.WithMaxRetries(0), option.WithRequestTimeout(15*time.Second))
}

func fdCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// lastRecord is the fake's most recent request.
func lastRecord(t *testing.T, f *providertest.Server) providertest.Record {
	t.Helper()
	rec, ok := f.Last()
	if !ok {
		t.Fatal("the fake received no request")
	}
	return rec
}

func TestFrontDoors(t *testing.T) {
	fe := newFrontDoorEnv(t)
	for _, cred := range []string{"byok", "platform"} {
		t.Run("messages/anthropic/"+cred, func(t *testing.T) { fe.messagesAnthropic(t, cred) })
		t.Run("messages/openai/"+cred, func(t *testing.T) { fe.messagesTranslated(t, cred) })
		t.Run("responses/openai/"+cred, func(t *testing.T) { fe.responsesOpenAI(t, cred) })
		t.Run("responses/anthropic/"+cred, func(t *testing.T) { fe.responsesTranslated(t, cred) })
	}
	t.Run("messages/claude_code_passthrough", fe.claudeCodePassthrough)
	t.Run("messages/stream_error", fe.messagesStreamError)
	t.Run("messages/raw_auth", fe.rawAuth)
	t.Run("responses/azure_v1", fe.responsesAzure)
	t.Run("gemini", fe.geminiTranslated)
	t.Run("messages/fallback", fe.messagesFallback)
	t.Run("output_limits", fe.outputLimits)
	t.Run("messages/errors", fe.messagesErrors)
	t.Run("responses/isolation", fe.responsesIsolation)
	t.Run("logs", fe.checkLogs)
	t.Run("canary", fe.canary)
}

// --- /v1/messages against Anthropic: passthrough ---

func (fe *fdEnv) messagesAnthropic(t *testing.T, cred string) {
	client := antClient(fe.ar[cred])
	key := fe.keys["anthropic/"+cred]
	params := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello?"))}}

	var raw *http.Response
	msg, err := client.Messages.New(fdCtx(t), params, antoption.WithResponseInto(&raw))
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake" {
		t.Fatalf("content = %+v", msg.Content)
	}
	u := msg.Usage
	if u.InputTokens != 9 || u.CacheReadInputTokens != 2 || u.OutputTokens != 5 {
		t.Errorf("usage = %+v, want the fake's 9 input, 2 cache read, 5 output", u)
	}
	if got := raw.Header.Get("X-Agent-Router-Credential"); got != cred {
		t.Errorf("X-Agent-Router-Credential = %q, want %q", got, cred)
	}
	rec := lastRecord(t, fe.anthropic)
	if rec.CredentialHeader != "X-Api-Key" || rec.Credential != key {
		t.Errorf("the fake got the credential in %q (want the %s key in X-Api-Key)", rec.CredentialHeader, cred)
	}
	if v := rec.Header.Get("Anthropic-Version"); v != "2026-10-21" {
		t.Errorf("anthropic-version upstream = %q, want the SDK's 2026-10-21", v)
	}
	if rec.Header.Get("Authorization") != "" {
		t.Error("the client's Authorization header (the Agent Router key) went upstream")
	}

	// Streaming, event by event.
	stream := client.Messages.NewStreaming(fdCtx(t), params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Content) != 1 || acc.Content[0].Text != "Hello from the fake" {
		t.Fatalf("streamed content = %+v", acc.Content)
	}
	if acc.Usage.OutputTokens != 5 || acc.Usage.InputTokens != 9 {
		t.Errorf("streamed usage = %+v", acc.Usage)
	}

	// Tool round trip.
	fe.anthropic.SetResponder(func(rec providertest.Record) providertest.Response {
		if strings.Contains(string(rec.Body), `"tool_result"`) {
			return providertest.Response{Body: providertest.AnthropicMessage(rec.Model, "It is sunny", providertest.DefaultAnthropicUsage)}
		}
		return providertest.Response{Body: providertest.AnthropicToolUse(rec.Model, "toolu_01FD", "get_weather", `{"city":"Paris"}`, providertest.DefaultAnthropicUsage)}
	})
	defer fe.anthropic.SetResponder(nil)
	fe.toolRoundTrip(t, client, "claude-haiku-4-5", fe.anthropic)

	// count_tokens goes to Anthropic with the same credential.
	fe.anthropic.SetResponder(nil)
	n, err := client.Messages.CountTokens(fdCtx(t), anthropic.MessageCountTokensParams{Model: "claude-haiku-4-5",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("How many tokens is this?"))}})
	if err != nil {
		t.Fatalf("count_tokens: %v", err)
	}
	rec = lastRecord(t, fe.anthropic)
	if rec.Path != "/v1/messages/count_tokens" || rec.Credential != key || n.InputTokens != int64(len(rec.Body)/10) {
		t.Errorf("count_tokens: path %s, %d tokens for a %d-byte body, right key: %v", rec.Path, n.InputTokens, len(rec.Body), rec.Credential == key)
	}
}

func weatherTool() anthropic.ToolUnionParam {
	return anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{Name: "get_weather", Description: anthropic.String("The weather in a city"),
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}, Required: []string{"city"}}}}
}

// toolRoundTrip: the model calls get_weather, the client answers with a
// tool_result, the model answers "It is sunny".
func (fe *fdEnv) toolRoundTrip(t *testing.T, client anthropic.Client, model string, fake *providertest.Server) {
	t.Helper()
	params := anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 100, Tools: []anthropic.ToolUnionParam{weatherTool()},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather in Paris?"))}}
	msg, err := client.Messages.New(fdCtx(t), params)
	if err != nil {
		t.Fatalf("tool call: %v", err)
	}
	if msg.StopReason != "tool_use" || len(msg.Content) == 0 {
		t.Fatalf("stop_reason %q, content %+v", msg.StopReason, msg.Content)
	}
	use := msg.Content[len(msg.Content)-1]
	if use.Type != "tool_use" || use.Name != "get_weather" || !jsonEqual(string(use.Input), `{"city":"Paris"}`) {
		t.Fatalf("tool_use block = %+v", use)
	}
	params.Messages = append(params.Messages, msg.ToParam(),
		anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "sunny, 21 C", false)))
	final, err := client.Messages.New(fdCtx(t), params)
	if err != nil {
		t.Fatalf("tool result: %v", err)
	}
	if len(final.Content) != 1 || final.Content[0].Text != "It is sunny" || final.StopReason != "end_turn" {
		t.Fatalf("final answer = %+v (%s)", final.Content, final.StopReason)
	}
	if body := string(lastRecord(t, fake).Body); !strings.Contains(body, "sunny, 21 C") || !strings.Contains(body, use.ID) {
		t.Errorf("the tool result did not reach the provider: %s", body)
	}
}

// --- /v1/messages against OpenAI: translated ---

func (fe *fdEnv) messagesTranslated(t *testing.T, cred string) {
	client := antClient(fe.ar[cred])
	key := fe.keys["openai/"+cred]
	params := anthropic.MessageNewParams{Model: "gpt-4o-mini", MaxTokens: 100,
		System:   []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello?"))}}
	msg, err := client.Messages.New(fdCtx(t), params)
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake" || msg.StopReason != "end_turn" || !strings.HasPrefix(msg.ID, "msg_") {
		t.Fatalf("message = %+v", msg)
	}
	if msg.Usage.InputTokens != 11 || msg.Usage.OutputTokens != 5 {
		t.Errorf("usage = %+v, want 11 in, 5 out", msg.Usage)
	}
	rec := lastRecord(t, fe.openai)
	if rec.Path != "/v1/chat/completions" || rec.Credential != key {
		t.Fatalf("the fake got %s with the right key: %v", rec.Path, rec.Credential == key)
	}
	if got := gjson.GetBytes(rec.Body, "messages.0").Raw; !jsonEqual(got, `{"role":"system","content":"Be brief."}`) {
		t.Errorf("system message upstream = %s", got)
	}

	stream := client.Messages.NewStreaming(fdCtx(t), params)
	var acc anthropic.Message
	var events []string
	for stream.Next() {
		ev := stream.Current()
		events = append(events, ev.Type)
		if err := acc.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Content) != 1 || acc.Content[0].Text != "Hello from the fake" {
		t.Fatalf("streamed content = %+v (events %v)", acc.Content, events)
	}
	if events[0] != "message_start" || events[len(events)-1] != "message_stop" || events[len(events)-2] != "message_delta" {
		t.Errorf("event order = %v", events)
	}
	if acc.StopReason != "end_turn" || acc.Usage.OutputTokens != 5 {
		t.Errorf("streamed stop %q usage %+v", acc.StopReason, acc.Usage)
	}

	fe.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		if strings.Contains(string(rec.Body), `"role":"tool"`) {
			return providertest.Response{Body: providertest.ChatCompletion(rec.Model, "It is sunny")}
		}
		return providertest.Response{Body: sdkJSON(map[string]any{"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": rec.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "tool_calls", "message": map[string]any{"role": "assistant", "content": nil,
				"tool_calls": []any{map[string]any{"id": "call_FD01", "type": "function", "function": map[string]any{"name": "get_weather", "arguments": `{"city":"Paris"}`}}}}}},
			"usage": map[string]any{"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27}})}
	})
	defer fe.openai.SetResponder(nil)
	fe.toolRoundTrip(t, client, "gpt-4o-mini", fe.openai)

	// A streamed tool call: the arguments arrive as input_json_delta
	// fragments the SDK puts together.
	fe.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		chunk := func(delta map[string]any, finish any) string {
			return sdkJSON(map[string]any{"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": rec.Model,
				"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		}
		call := func(fn map[string]any, id string) map[string]any {
			tc := map[string]any{"index": 0, "function": fn}
			if id != "" {
				tc["id"], tc["type"] = id, "function"
			}
			return map[string]any{"tool_calls": []any{tc}}
		}
		return providertest.Response{Events: []string{
			chunk(map[string]any{"role": "assistant", "content": nil}, nil),
			chunk(call(map[string]any{"name": "get_weather", "arguments": ""}, "call_FDs1"), nil),
			chunk(call(map[string]any{"arguments": `{"city":`}, ""), nil),
			chunk(call(map[string]any{"arguments": `"Paris"}`}, ""), nil),
			chunk(map[string]any{}, "tool_calls"),
			providertest.UsageChunk(rec.Model, 20, 7), "[DONE]"}}
	})
	stream = client.Messages.NewStreaming(fdCtx(t), anthropic.MessageNewParams{Model: "gpt-4o-mini", MaxTokens: 100,
		Tools: []anthropic.ToolUnionParam{weatherTool()}, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Weather?"))}})
	var tacc anthropic.Message
	for stream.Next() {
		if err := tacc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("streamed tool call: %v", err)
	}
	if len(tacc.Content) != 1 || tacc.Content[0].Type != "tool_use" || tacc.Content[0].ID != "call_FDs1" ||
		!jsonEqual(string(tacc.Content[0].Input), `{"city":"Paris"}`) || tacc.StopReason != "tool_use" || tacc.Usage.OutputTokens != 7 {
		t.Errorf("streamed tool call = %+v, stop %s, usage %+v", tacc.Content, tacc.StopReason, tacc.Usage)
	}

	// count_tokens has no honest answer for OpenAI models.
	_, err = client.Messages.CountTokens(fdCtx(t), anthropic.MessageCountTokensParams{Model: "gpt-4o-mini",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("count?"))}})
	var ae *anthropic.Error
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Type() != "invalid_request_error" ||
		!strings.Contains(ae.RawJSON(), "token counting (/v1/messages/count_tokens) is available for Anthropic models only") ||
		strings.Contains(ae.RawJSON(), "messages is not available") {
		t.Errorf("count_tokens for gpt-4o-mini: %v", err)
	}
}

// --- a Claude Code request: byte-for-byte passthrough ---

func (fe *fdEnv) claudeCodePassthrough(t *testing.T) {
	body := `{"model":"claude-alias","max_tokens":32000,"stream":true,` +
		`"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.328"},{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>ctx</system-reminder>","cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"text","text":"fix the bug"}]},` +
		`{"role":"assistant","content":[{"type":"thinking","thinking":"Let me look.","signature":"EqQBCkYIBxgCKkBsig=="},{"type":"tool_use","id":"toolu_01A","name":"Read","input":{"file_path":"/a.go"}}]},` +
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A","content":"package a"}]}],` +
		`"tools":[{"name":"Read","description":"Read a file","input_schema":{"type":"object","properties":{"file_path":{"type":"string"}},"required":["file_path"]},"cache_control":{"type":"ephemeral"}}],` +
		`"thinking":{"type":"enabled","budget_tokens":31999},"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},` +
		`"metadata":{"user_id":"user_abc_account_def_session_123"},"temperature":1}`
	beta := "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,fine-grained-tool-streaming-2025-05-14"
	for _, how := range []string{"bearer", "x-api-key"} {
		req, _ := http.NewRequest("POST", siteURL+"/v1/messages?beta=true", strings.NewReader(body))
		if how == "bearer" {
			req.Header.Set("Authorization", "Bearer "+fe.ar["byok"])
		} else {
			req.Header.Set("X-Api-Key", fe.ar["byok"])
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Anthropic-Version", "2023-06-01")
		req.Header.Set("Anthropic-Beta", beta)
		req.Header.Set("Anthropic-Dangerous-Direct-Browser-Access", "true")
		req.Header.Set("X-Claude-Code-Session-Id", "sess-1")
		req.Header.Set("User-Agent", "claude-cli/2.1.328 (external, cli)")
		resp, err := fe.e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("%s: status %d: %s", how, resp.StatusCode, out)
		}
		// The stream comes back as the fake sent it.
		want := strings.Join(providertest.AnthropicStream("claude-haiku-4-5", []string{"Hel", "lo", " from", " the", " fake"}, providertest.DefaultAnthropicUsage), "")
		if string(out) != want {
			t.Errorf("%s: the stream was changed on the way:\n got %q\nwant %q", how, out, want)
		}
		rec := lastRecord(t, fe.anthropic)
		wantBody := strings.Replace(body, `"model":"claude-alias"`, `"model":"claude-haiku-4-5"`, 1)
		if string(rec.Body) != wantBody {
			t.Errorf("%s: the body upstream differs beyond the model:\n got %s\nwant %s", how, rec.Body, wantBody)
		}
		for k, v := range map[string]string{"Anthropic-Version": "2023-06-01", "Anthropic-Beta": beta,
			"Anthropic-Dangerous-Direct-Browser-Access": "true", "X-Claude-Code-Session-Id": "sess-1"} {
			if got := rec.Header.Get(k); got != v {
				t.Errorf("%s: %s upstream = %q, want %q", how, k, got, v)
			}
		}
		if rec.Query != "beta=true" {
			t.Errorf("%s: the query upstream is %q, want Claude Code's beta=true", how, rec.Query)
		}
		if rec.Credential != fe.keys["anthropic/byok"] || rec.Header.Get("Authorization") != "" {
			t.Errorf("%s: wrong credential upstream", how)
		}
	}
}

// An error event after the 200 ends the stream as an Anthropic error event,
// which the SDK raises.
func (fe *fdEnv) messagesStreamError(t *testing.T) {
	fe.anthropic.SetResponder(func(rec providertest.Record) providertest.Response {
		ev := providertest.AnthropicStream(rec.Model, []string{"Hel"}, providertest.DefaultAnthropicUsage)[:4]
		return providertest.Response{RawEvents: append(ev, providertest.AnthropicErrorEvent("overloaded_error", "Overloaded"))}
	})
	defer fe.anthropic.SetResponder(nil)
	client := antClient(fe.ar["platform"])
	stream := client.Messages.NewStreaming(fdCtx(t), anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	n := 0
	for stream.Next() {
		n++
	}
	err := stream.Err()
	if err == nil || !strings.Contains(err.Error(), "overloaded_error") || n == 0 {
		t.Errorf("after %d events: %v, want an overloaded_error", n, err)
	}
}

// Without a key, each door answers in its own envelope; x-api-key works on
// /v1/messages and /v1/models only.
func (fe *fdEnv) rawAuth(t *testing.T) {
	do := func(method, path, header, value, body string) (int, []byte) {
		req, _ := http.NewRequest(method, siteURL+path, strings.NewReader(body))
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := fe.e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, b := do("POST", "/v1/messages", "", "", `{}`)
	if code != 401 || gjson.GetBytes(b, "type").String() != "error" || gjson.GetBytes(b, "error.type").String() != "authentication_error" {
		t.Errorf("/v1/messages without a key: %d %s", code, b)
	}
	code, b = do("POST", "/v1/responses", "", "", `{}`)
	if code != 401 || gjson.GetBytes(b, "error.code").String() != "missing_api_key" {
		t.Errorf("/v1/responses without a key: %d %s", code, b)
	}
	code, b = do("GET", "/v1/models", "X-Api-Key", fe.ar["byok"], "")
	if code != 200 || !strings.Contains(string(b), "claude-") {
		t.Errorf("/v1/models with x-api-key: %d %s", code, b)
	}
	code, _ = do("POST", "/v1/chat/completions", "X-Api-Key", fe.ar["byok"], `{"model":"gpt-4o-mini","messages":[]}`)
	if code != 401 {
		t.Errorf("chat completions took x-api-key: %d", code)
	}
	code, b = do("POST", "/v1/messages", "X-Api-Key", fe.ar["byok"], `{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`)
	if code != 200 || gjson.GetBytes(b, "type").String() != "message" {
		t.Errorf("/v1/messages with x-api-key: %d %s", code, b)
	}
	code, b = do("POST", "/v1/responses/compact", "Authorization", "Bearer "+fe.ar["byok"], `{}`)
	if code != 404 || !strings.Contains(string(b), "not served") {
		t.Errorf("/v1/responses/compact: %d %s", code, b)
	}
}

// Azure's v1 API passes the Responses API through too, with its api-key
// header and the deployment as the model.
func (fe *fdEnv) responsesAzure(t *testing.T) {
	client := oaClient(fe.ar["platform"])
	resp, err := client.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "fd-azure",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello?")}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	rec := lastRecord(t, fe.azure)
	if resp.OutputText() != "Hello from the fake" || rec.Path != "/openai/v1/responses" || rec.CredentialHeader != "Api-Key" ||
		rec.Credential != fe.keys["azure/platform"] || rec.Model != "fd-deploy" {
		t.Fatalf("azure: %q; the fake got %s, model %s, header %s", resp.OutputText(), rec.Path, rec.Model, rec.CredentialHeader)
	}
	got, err := client.Responses.Get(fdCtx(t), resp.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != resp.ID || lastRecord(t, fe.azure).Path != "/openai/v1/responses/"+resp.ID {
		t.Fatalf("retrieve through azure: %v", err)
	}
	stream := client.Responses.NewStreaming(fdCtx(t), responses.ResponseNewParams{Model: "fd-azure",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Stream hello?")}})
	if text, _ := fdReadResponses(t, stream); text != "Hello from the fake" {
		t.Errorf("azure stream: %q", text)
	}
}

// Both doors reach a third adapter (Gemini's native API) by translation.
func (fe *fdEnv) geminiTranslated(t *testing.T) {
	ac := antClient(fe.ar["platform"])
	params := anthropic.MessageNewParams{Model: "gemini-2.5-flash", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello?"))}}
	msg, err := ac.Messages.New(fdCtx(t), params)
	if err != nil || len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake" {
		t.Fatalf("messages → gemini: %v %+v", err, msg)
	}
	stream := ac.Messages.NewStreaming(fdCtx(t), params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil || len(acc.Content) != 1 || acc.Content[0].Text != "Hello from the fake" {
		t.Fatalf("messages stream → gemini: %v %+v", err, acc.Content)
	}
	oc := oaClient(fe.ar["platform"])
	resp, err := oc.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "gemini-2.5-flash",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello?")}})
	if err != nil || resp.OutputText() != "Hello from the fake" {
		t.Fatalf("responses → gemini: %v %+v", err, resp)
	}
	rec := lastRecord(t, fe.gemini)
	if rec.Credential != fe.keys["gemini/platform"] || !strings.Contains(rec.Path, "gemini-2.5-flash") {
		t.Errorf("the gemini fake got %s with the right key: %v", rec.Path, rec.Credential == fe.keys["gemini/platform"])
	}
}

// A route falls back from Anthropic (passthrough) to OpenAI (translated)
// within one Messages request, before the first byte; the record has both
// attempts.
func (fe *fdEnv) messagesFallback(t *testing.T) {
	fe.anthropic.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Status: 529, Body: providertest.AnthropicError("overloaded_error", "Overloaded")}
	})
	defer fe.anthropic.SetResponder(nil)
	client := antClient(fe.ar["platform"])
	var raw *http.Response
	msg, err := client.Messages.New(fdCtx(t), anthropic.MessageNewParams{Model: "claude-or-gpt", MaxTokens: 10,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("fallback?"))}}, antoption.WithResponseInto(&raw))
	if err != nil || len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake" {
		t.Fatalf("fallback: %v %+v", err, msg)
	}
	if raw.Header.Get("X-Agent-Router-Provider") != "openai" || raw.Header.Get("X-Agent-Router-Attempts") != "2" {
		t.Errorf("headers: provider %q, attempts %q", raw.Header.Get("X-Agent-Router-Provider"), raw.Header.Get("X-Agent-Router-Attempts"))
	}
	if rec := lastRecord(t, fe.openai); rec.Path != "/v1/chat/completions" || !strings.Contains(string(rec.Body), "fallback?") {
		t.Errorf("the OpenAI fake got %s %s", rec.Path, rec.Body)
	}
}

// --- output limits across translation ---

// outputLimits: Claude Code's max_tokens 32000 reaches gpt-4o (16,384 at
// most; the fake refuses more, as OpenAI does) clamped, as
// max_completion_tokens; a Responses request without max_output_tokens
// (Codex sends none) reaches Claude with the model's maximum, not 4,096.
func (fe *fdEnv) outputLimits(t *testing.T) {
	ac := antClient(fe.ar["platform"])
	msg, err := ac.Messages.New(fdCtx(t), anthropic.MessageNewParams{Model: "gpt-4o", MaxTokens: 32000,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello?"))}})
	if err != nil || len(msg.Content) != 1 || msg.Content[0].Text != "Hello from the fake" {
		t.Fatalf("max_tokens 32000 to gpt-4o: %v", err)
	}
	rec := lastRecord(t, fe.openai)
	if got := gjson.GetBytes(rec.Body, "max_completion_tokens").Int(); got != 16384 || gjson.GetBytes(rec.Body, "max_tokens").Exists() {
		t.Errorf("gpt-4o got %s", rec.Body)
	}

	oc := oaClient(fe.ar["platform"])
	for _, c := range []struct {
		model string
		limit int64 // max_output_tokens, 0 for none
		want  int64
	}{{"claude-sonnet-4-5", 0, 64000}, {"claude-haiku-4-5", 100000, 64000}, {"claude-haiku-4-5", 300, 300}} {
		p := responses.ResponseNewParams{Model: responses.ResponsesModel(c.model), Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello?")}}
		if c.limit > 0 {
			p.MaxOutputTokens = openai.Int(c.limit)
		}
		if _, err := oc.Responses.New(fdCtx(t), p); err != nil {
			t.Fatalf("%s, max_output_tokens %d: %v", c.model, c.limit, err)
		}
		if got := gjson.GetBytes(lastRecord(t, fe.anthropic).Body, "max_tokens").Int(); got != c.want {
			t.Errorf("%s, max_output_tokens %d: max_tokens upstream %d, want %d", c.model, c.limit, got, c.want)
		}
	}
}

// --- errors in Anthropic's envelope ---

func (fe *fdEnv) messagesErrors(t *testing.T) {
	check := func(what string, err error, status int, typ, contains string) {
		t.Helper()
		var ae *anthropic.Error
		if !errors.As(err, &ae) {
			t.Fatalf("%s: %v is not an API error", what, err)
		}
		if ae.StatusCode != status || string(ae.Type()) != typ || !strings.Contains(ae.RawJSON(), contains) {
			t.Errorf("%s: %d %s %s, want %d %s containing %q", what, ae.StatusCode, ae.Type(), ae.RawJSON(), status, typ, contains)
		}
	}
	params := func(model string) anthropic.MessageNewParams {
		return anthropic.MessageNewParams{Model: anthropic.Model(model), MaxTokens: 10,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
	}
	stranger := antClient("ar_" + randomAlnum(40))
	_, err := stranger.Messages.New(fdCtx(t), params("claude-haiku-4-5"))
	check("unknown key", err, 401, "authentication_error", "invalid_api_key")
	client := antClient(fe.ar["byok"])
	_, err = client.Messages.New(fdCtx(t), params("no-such-model-xyz"))
	check("unknown model", err, 404, "not_found_error", "model_not_found")

	// Upstream errors on the passthrough come back as Anthropic sent them.
	fe.anthropic.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Status: 529, Body: providertest.AnthropicError("overloaded_error", "Overloaded")}
	})
	_, err = client.Messages.New(fdCtx(t), params("claude-haiku-4-5"))
	check("overloaded", err, 529, "overloaded_error", `"Overloaded"`)
	fe.anthropic.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Status: 400, Body: providertest.AnthropicError("invalid_request_error", "messages.1.content.0.thinking.signature: Invalid signature in thinking block")}
	})
	_, err = client.Messages.New(fdCtx(t), params("claude-haiku-4-5"))
	check("bad signature", err, 400, "invalid_request_error", "Invalid signature in thinking block")
	fe.anthropic.SetResponder(nil)

	// Untranslatable for OpenAI: a server tool.
	p := params("gpt-4o-mini")
	p.Tools = []anthropic.ToolUnionParam{{OfWebSearchTool20250305: &anthropic.WebSearchTool20250305Param{}}}
	_, err = client.Messages.New(fdCtx(t), p)
	check("server tool on gpt", err, 400, "invalid_request_error", "web_search")

	// A refused BYOK key keeps its meaning (last: it marks the key invalid).
	fe.anthropic.AcceptOnly("not-" + randomAlnum(20))
	defer fe.anthropic.AcceptOnly()
	_, err = client.Messages.New(fdCtx(t), params("claude-haiku-4-5"))
	check("byok rejected", err, 424, "invalid_request_error", "byok_credential_rejected")
	var ae *anthropic.Error
	if errors.As(err, &ae) && strings.Contains(ae.RawJSON(), fe.keys["anthropic/byok"]) {
		t.Error("the rejected key came back in the error (the fake echoes it)")
	}
}

// --- /v1/responses against OpenAI: passthrough, stored responses ---

func (fe *fdEnv) responsesOpenAI(t *testing.T, cred string) {
	client := oaClient(fe.ar[cred])
	key := fe.keys["openai/"+cred]
	resp, err := client.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello?")}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if resp.OutputText() != "Hello from the fake" || resp.Usage.TotalTokens != 29 || resp.Usage.InputTokensDetails.CachedTokens != 3 {
		t.Fatalf("response: %q, usage %+v", resp.OutputText(), resp.Usage)
	}
	rec := lastRecord(t, fe.openai)
	if rec.Path != "/v1/responses" || rec.Credential != key {
		t.Fatalf("the fake got %s, right key: %v", rec.Path, rec.Credential == key)
	}

	// Stream.
	stream := client.Responses.NewStreaming(fdCtx(t), responses.ResponseNewParams{Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Stream hello?")}})
	text, completed := fdReadResponses(t, stream)
	if text != "Hello from the fake" || completed.Usage.TotalTokens != 29 {
		t.Errorf("stream: %q, usage %+v", text, completed.Usage)
	}

	// Retrieve, input items, delete.
	got, err := client.Responses.Get(fdCtx(t), resp.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != resp.ID || got.OutputText() != "Hello from the fake" {
		t.Fatalf("retrieve: %v %+v", err, got)
	}
	items, err := client.Responses.InputItems.List(fdCtx(t), resp.ID, responses.InputItemListParams{})
	if err != nil || len(items.Data) != 1 {
		t.Fatalf("input_items: %v %+v", err, items)
	}
	if err := client.Responses.Delete(fdCtx(t), resp.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = client.Responses.Get(fdCtx(t), resp.ID, responses.ResponseGetParams{})
	fdCheckOpenAIError(t, "retrieve after delete", err, 404)
	for _, r := range fe.openai.Records() {
		if r.Credential != key {
			t.Errorf("%s %s went with another key", r.Method, r.Path)
		}
	}

	fe.responsesFunctionRoundTrip(t, client, "gpt-4o-mini", fe.openai)
	fe.openai.Reset()
}

func fdReadResponses(t *testing.T, stream interface {
	Next() bool
	Current() responses.ResponseStreamEventUnion
	Err() error
}) (string, responses.Response) {
	t.Helper()
	var text strings.Builder
	var completed responses.Response
	seq := int64(-1)
	for stream.Next() {
		ev := stream.Current()
		if ev.SequenceNumber <= seq {
			t.Errorf("sequence_number %d after %d", ev.SequenceNumber, seq)
		}
		seq = ev.SequenceNumber
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			completed = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if completed.ID == "" {
		t.Fatal("the stream had no response.completed")
	}
	return text.String(), completed
}

func fdCheckOpenAIError(t *testing.T, what string, err error, status int) {
	t.Helper()
	var oe *openai.Error
	if !errors.As(err, &oe) || oe.StatusCode != status {
		t.Errorf("%s: %v, want status %d", what, err, status)
	}
}

// responsesFunctionRoundTrip: a function call, then its output sent back
// statelessly with the whole history.
func (fe *fdEnv) responsesFunctionRoundTrip(t *testing.T, client openai.Client, model string, fake *providertest.Server) {
	t.Helper()
	tools := []responses.ToolUnionParam{responses.ToolParamOfFunction("get_weather",
		map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}}, false)}
	input := responses.ResponseInputParam{responses.ResponseInputItemParamOfMessage("Weather in Paris?", responses.EasyInputMessageRoleUser)}
	first, err := client.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: model, Tools: tools, Store: openai.Bool(false),
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: input}})
	if err != nil {
		t.Fatalf("function call: %v", err)
	}
	var call responses.ResponseOutputItemUnion
	for _, it := range first.Output {
		if it.Type == "function_call" {
			call = it
		}
	}
	if call.Name != "get_weather" || !jsonEqual(call.Arguments.OfString, `{"city":"Paris"}`) || call.CallID == "" {
		t.Fatalf("function call = %+v", first.Output)
	}
	out := responses.ResponseInputItemParamOfFunctionCallOutput("sunny, 21 C")
	out.OfFunctionCallOutput.CallID = openai.String(call.CallID)
	input = append(input, responses.ResponseInputItemParamOfFunctionCall(call.Arguments.OfString, call.CallID, call.Name), out)
	final, err := client.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: model, Tools: tools, Store: openai.Bool(false),
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: input}})
	if err != nil {
		t.Fatalf("function output: %v", err)
	}
	if final.OutputText() == "" {
		t.Fatalf("final answer has no text: %+v", final.Output)
	}
	if body := string(lastRecord(t, fake).Body); !strings.Contains(body, "sunny, 21 C") {
		t.Errorf("the function output did not reach the provider: %s", body)
	}
}

// --- /v1/responses against Anthropic: translated ---

func (fe *fdEnv) responsesTranslated(t *testing.T, cred string) {
	client := oaClient(fe.ar[cred])
	key := fe.keys["anthropic/"+cred]
	resp, err := client.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "claude-haiku-4-5",
		Instructions: openai.String("Be brief."), Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello?")}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if resp.OutputText() != "Hello from the fake" || resp.Status != "completed" || resp.Usage.InputTokens != 11 || resp.Usage.OutputTokens != 5 {
		t.Fatalf("response %q %s usage %+v", resp.OutputText(), resp.Status, resp.Usage)
	}
	rec := lastRecord(t, fe.anthropic)
	if rec.Path != "/v1/messages" || rec.Credential != key || gjson.GetBytes(rec.Body, "system.0.text").String() != "Be brief." {
		t.Fatalf("upstream: %s, right key %v, body %s", rec.Path, rec.Credential == key, rec.Body)
	}
	stream := client.Responses.NewStreaming(fdCtx(t), responses.ResponseNewParams{Model: "claude-haiku-4-5",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Stream hello?")}})
	text, completed := fdReadResponses(t, stream)
	if text != "Hello from the fake" || completed.Usage.TotalTokens != 16 || completed.OutputText() != "Hello from the fake" {
		t.Errorf("stream: %q, completed %q usage %+v", text, completed.OutputText(), completed.Usage)
	}

	fe.anthropic.SetResponder(func(rec providertest.Record) providertest.Response {
		if strings.Contains(string(rec.Body), `"tool_result"`) {
			return providertest.Response{Body: providertest.AnthropicMessage(rec.Model, "It is sunny", providertest.DefaultAnthropicUsage)}
		}
		return providertest.Response{Body: providertest.AnthropicToolUse(rec.Model, "toolu_01R", "get_weather", `{"city":"Paris"}`, providertest.DefaultAnthropicUsage)}
	})
	defer fe.anthropic.SetResponder(nil)
	fe.responsesFunctionRoundTrip(t, client, "claude-haiku-4-5", fe.anthropic)

	// Stateful features have no translation.
	_, err = client.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "claude-haiku-4-5", PreviousResponseID: openai.String("resp_x"),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("again")}})
	fdCheckOpenAIError(t, "previous_response_id on claude", err, 400)
	var oe *openai.Error
	if errors.As(err, &oe) && (!strings.Contains(oe.Message, "previous_response_id") || !strings.Contains(oe.Message, "anthropic")) {
		t.Errorf("the 400 does not name the feature and the provider: %s", oe.Message)
	}
}

// --- account isolation of stored responses ---

func (fe *fdEnv) responsesIsolation(t *testing.T) {
	owner, other := oaClient(fe.ar["byok"]), oaClient(fe.ar["other"])
	resp, err := owner.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("mine")}})
	if err != nil {
		t.Fatal(err)
	}
	before := len(fe.openai.Records())
	_, err = other.Responses.Get(fdCtx(t), resp.ID, responses.ResponseGetParams{})
	fdCheckOpenAIError(t, "another account's retrieve", err, 404)
	_, err = other.Responses.InputItems.List(fdCtx(t), resp.ID, responses.InputItemListParams{})
	fdCheckOpenAIError(t, "another account's input_items", err, 404)
	err = other.Responses.Delete(fdCtx(t), resp.ID)
	fdCheckOpenAIError(t, "another account's delete", err, 404)
	// Continuing it is reading it: refused the same way, streamed or not.
	_, err = other.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "gpt-4o-mini", PreviousResponseID: openai.String(resp.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("what did I say?")}})
	fdCheckOpenAIError(t, "another account's continuation", err, 404)
	stream := other.Responses.NewStreaming(fdCtx(t), responses.ResponseNewParams{Model: "gpt-4o-mini", PreviousResponseID: openai.String(resp.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("what did I say?")}})
	for stream.Next() {
	}
	fdCheckOpenAIError(t, "another account's streamed continuation", stream.Err(), 404)
	// So is naming a provider object the gateway cannot attribute, under
	// the platform key.
	_, err = other.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{responses.ResponseInputItemParamOfItemReference(resp.Output[0].ID)}}})
	fdCheckOpenAIError(t, "another account's item_reference", err, 404)
	if n := len(fe.openai.Records()); n != before {
		t.Errorf("another account's requests reached the provider (%d calls)", n-before)
	}
	if _, err := owner.Responses.Get(fdCtx(t), resp.ID, responses.ResponseGetParams{}); err != nil {
		t.Errorf("the owner cannot retrieve after the others tried: %v", err)
	}
	if _, err := owner.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "gpt-4o-mini", PreviousResponseID: openai.String(resp.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("and then?")}}); err != nil {
		t.Errorf("the owner cannot continue its response: %v", err)
	}
}

// --- the request log knows the front door ---

func (fe *fdEnv) checkLogs(t *testing.T) {
	var apis map[string]int
	testfix.WaitFor(t, 10*time.Second, "request-log records of every front door", func() bool {
		var out struct {
			Records []struct {
				API      string `json:"api"`
				Endpoint string `json:"endpoint"`
			} `json:"records"`
		}
		fe.e.admin("GET", "/agent_router/logs?account=fd-byok&limit=1000", nil, &out)
		apis = map[string]int{}
		for _, r := range out.Records {
			apis[r.API]++
		}
		return apis["messages"] > 0 && apis["responses"] > 0
	})
}

// --- no key anywhere ---

func (fe *fdEnv) canary(t *testing.T) {
	var files [][]byte
	for _, name := range []string{"caddy.log", "access.log", "ar.db"} {
		b, _ := os.ReadFile(filepath.Join(fe.e.dir, name))
		files = append(files, b)
	}
	_, logs := fe.e.admin("GET", "/agent_router/logs?limit=1000", nil, nil)
	files = append(files, logs)
	for name, key := range fe.keys {
		for i, b := range files {
			if bytes.Contains(b, []byte(key)) {
				t.Errorf("the %s key is in file %d", name, i)
			}
		}
	}
}

// TestBYOKRefusedNoRetry: when the provider refuses an account's own key,
// the SDKs agents are built on (anthropic-sdk-go, openai-go, with their
// retries on) get an answer they do not retry, saying whose key failed and
// what to do, and the refused key reaches the provider once, however many
// requests follow.
func TestBYOKRefusedNoRetry(t *testing.T) {
	fe := newFrontDoorEnv(t)
	fe.anthropic.AcceptOnly(fe.keys["anthropic/platform"])
	fe.openai.AcceptOnly(fe.keys["openai/platform"])
	antKey, oaKey := fe.keys["anthropic/byok"], fe.keys["openai/byok"]
	// The status is one each door's clients take as final: 424 on
	// Anthropic's Messages (Claude Code sends up to six recovery requests
	// for a 400), 400 on OpenAI's shapes (Codex retries any other).
	check := func(what string, status int, body string) {
		t.Helper()
		want := 400
		if strings.HasPrefix(what, "anthropic") {
			want = 424
		}
		if status != want || !strings.Contains(body, "byok_credential_rejected") ||
			!strings.Contains(body, "Settings → Bring Your Own Key") || !strings.Contains(body, "Your Agent Router API key is fine") {
			t.Errorf("%s: %d %s", what, status, body)
		}
		for _, words := range []string{"x-api-key", "Incorrect API key", "invalid_api_key", "authentication_error", "login"} {
			if strings.Contains(body, words) {
				t.Errorf("%s: the answer says %q, which agents read as their own credential failing: %s", what, words, body)
			}
		}
	}

	ac := anthropic.NewClient(antoption.WithoutEnvironmentDefaults(), antoption.WithBaseURL(siteURL),
		antoption.WithAPIKey(fe.ar["byok"]), antoption.WithMaxRetries(3), antoption.WithRequestTimeout(15*time.Second))
	params := anthropic.MessageNewParams{Model: "claude-haiku-4-5", MaxTokens: 100,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello?"))}}
	_, err := ac.Messages.New(fdCtx(t), params)
	var ae *anthropic.Error
	if !errors.As(err, &ae) {
		t.Fatalf("messages: %v", err)
	}
	check("anthropic-sdk-go", ae.StatusCode, ae.RawJSON())
	stream := ac.Messages.NewStreaming(fdCtx(t), params)
	for stream.Next() {
	}
	if !errors.As(stream.Err(), &ae) {
		t.Fatalf("messages stream: %v", stream.Err())
	}
	check("anthropic-sdk-go stream", ae.StatusCode, ae.RawJSON())

	oc := openai.NewClient(option.WithBaseURL(siteURL+"/v1/"), option.WithAPIKey(fe.ar["byok"]),
		option.WithMaxRetries(3), option.WithRequestTimeout(15*time.Second))
	_, err = oc.Chat.Completions.New(fdCtx(t), openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello?")}})
	var oe *openai.Error
	if !errors.As(err, &oe) {
		t.Fatalf("chat: %v", err)
	}
	check("openai-go chat", oe.StatusCode, oe.RawJSON())
	_, err = oc.Responses.New(fdCtx(t), responses.ResponseNewParams{Model: "gpt-4o-mini",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("Hello?")}})
	if !errors.As(err, &oe) {
		t.Fatalf("responses: %v", err)
	}
	check("openai-go responses", oe.StatusCode, oe.RawJSON())

	// Each refused key reached its provider once.
	if a, o := fe.anthropic.Count(antKey), fe.openai.Count(oaKey); a != 1 || o != 1 {
		t.Errorf("the refused keys reached the providers %d (anthropic) and %d (openai) times, want once each", a, o)
	}
	// And the gateway got each SDK call once: no retries.
	var n int
	testfix.WaitFor(t, 10*time.Second, "the request-log records", func() bool {
		var out struct {
			Records []struct {
				ErrorCode string `json:"error_code"`
			} `json:"records"`
		}
		fe.e.admin("GET", "/agent_router/logs?account=fd-byok&limit=1000", nil, &out)
		n = len(out.Records)
		return n >= 4
	})
	time.Sleep(600 * time.Millisecond) // a retry would be in by now; let its record be flushed
	var out struct {
		Records []struct {
			ErrorCode string `json:"error_code"`
			Status    int    `json:"status"`
		} `json:"records"`
	}
	fe.e.admin("GET", "/agent_router/logs?account=fd-byok&limit=1000", nil, &out)
	if len(out.Records) != 4 {
		t.Errorf("the gateway got %d requests for 4 SDK calls (retries?)", len(out.Records))
	}
	for _, r := range out.Records {
		if r.Status != 424 && r.Status != 400 || r.ErrorCode != "byok_credential_rejected" {
			t.Errorf("record %+v", r)
		}
	}
}
