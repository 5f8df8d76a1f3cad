package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Anthropic's Messages API as a front door (POST /v1/messages, for Claude
// Code and the Anthropic SDKs; reference/frontdoors.md §1, §2).
//
// Anthropic models pass through: the body's bytes go upstream with only
// "model" rewritten when an alias or route changed it, the client's
// anthropic-version, anthropic-beta and other anthropic-* headers go with
// them unchanged, and the answer (or each stream event) comes back as
// sent, its usage read on the way. Upstream error bodies are relayed as
// they are (scrubbed of keys): Claude Code's recovery reads their wording.
//
// Other models are translated to chat completions and back: system blocks
// (joined with blank lines), text and image content, tool_use and
// tool_result (a user turn's tool results become tool messages before the
// rest of the turn; is_error prefixes "Error: "), tool_choice,
// stop_sequences, max_tokens, temperature, top_p, metadata.user_id (as
// user), thinking as Gemini's reasoning_effort. Dropped: cache_control,
// thinking and redacted_thinking blocks, thinking for other targets, the
// output_config and top_k options, and context_management
// (Anthropic's server-side context editing, which Claude Code sends on most
// requests: without it the whole history simply goes to the model).
// Refused with a 400 that names them: server tools (web search, bash, text
// editor, computer, MCP...), document blocks, images inside tool results,
// container, mcp_servers.
var MessagesDoor = &Door{
	API:            "messages",
	Path:           "/v1/messages",
	IDPrefix:       "msg_",
	FinalStatus:    http.StatusFailedDependency,
	native:         nativeAnthropic,
	nativeBuild:    buildMessagesNative,
	nativeResponse: messagesNativeResponse,
	nativeStream:   func(*Call) StreamTranslator { return &messagesRelay{} },
	toChat:         messagesToChat,
	fromChat:       chatToMessages,
	chatStream:     func(c *Call, inner StreamTranslator) StreamTranslator { return newMessagesStream(c, inner) },
	errorBody:      AnthropicErrorBody,
	errorEvent:     anthropicErrorEvent,
}

// CountTokensDoor is POST /v1/messages/count_tokens: forwarded to Anthropic
// for Anthropic models with the chosen credential; for any other model an
// invalid_request_error saying that token counting is available for
// Anthropic models only (the gateway does not guess token counts: a low
// guess makes Claude Code compact too late; on an error it estimates
// locally).
var CountTokensDoor = &Door{
	API:            "messages",
	Path:           "/v1/messages/count_tokens",
	IDPrefix:       "msg_",
	FinalStatus:    http.StatusFailedDependency,
	native:         nativeAnthropic,
	nativeBuild:    buildMessagesNative,
	nativeResponse: countTokensResponse,
	nativeStream:   func(*Call) StreamTranslator { return &messagesRelay{} },
	untranslated: func(provider string) string {
		return "token counting (/v1/messages/count_tokens) is available for Anthropic models only; this model is served by " +
			provider + " (POST /v1/messages itself serves it)"
	},
	errorBody:  AnthropicErrorBody,
	errorEvent: anthropicErrorEvent,
}

func nativeAnthropic(p *Provider, _ Endpoint) bool { return p.Name == Anthropic }

// buildMessagesNative sends the client's body as bytes (model set to the
// upstream name) with the credential in x-api-key, the client's
// anthropic-* headers and its query (Claude Code's ?beta=true);
// anthropic-version defaults to AnthropicVersion.
func buildMessagesNative(ctx context.Context, p *Provider, c *Call) (*http.Request, error) {
	body := SetModel(c.Body, c.Model)
	u := c.Endpoint.BaseURL
	if strings.HasSuffix(u, "/v1") {
		u = strings.TrimSuffix(u, "/v1")
	}
	path := c.Door.Path
	if path == "" {
		path = "/v1/messages"
	}
	if q := ForwardQuery(c.Query); q != "" {
		path += "?" + q
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range c.Header {
		// anthropic-version, anthropic-beta and the rest are open lists
		// that come in pairs with body fields: forward them verbatim.
		if strings.HasPrefix(k, "Anthropic-") || strings.HasPrefix(k, "X-Claude-Code-") {
			req.Header[k] = append([]string(nil), v...)
		}
	}
	if req.Header.Get("Anthropic-Version") == "" {
		req.Header["Anthropic-Version"] = []string{AnthropicVersion}
	}
	req.Header["X-Api-Key"] = []string{c.Key}
	req.Header["Content-Type"] = []string{"application/json"}
	return req, nil
}

func messagesNativeResponse(_ *Call, body []byte) ([]byte, Usage, error) {
	if !ValidJSON(body) {
		return nil, Usage{}, fmt.Errorf("anthropic answered with invalid JSON")
	}
	return body, anthropicUsage(gjson.GetBytes(body, "usage")), nil
}

// countTokensResponse relays {"input_tokens": N}; counting consumes no
// tokens, so no usage is reported.
func countTokensResponse(_ *Call, body []byte) ([]byte, Usage, error) {
	if !ValidJSON(body) {
		return nil, Usage{}, fmt.Errorf("anthropic answered with invalid JSON")
	}
	return body, Usage{}, nil
}

// AnthropicErrorBody renders a gateway error in Anthropic's envelope,
// {"type":"error","error":{"type","message"}}, with the type Anthropic uses
// for the status. The gateway's code leads the message, so that
// byok_credential_rejected and the like keep their meaning.
func AnthropicErrorBody(status int, code, msg string) []byte {
	if code != "" {
		msg = code + ": " + msg
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": anthropicErrorType(status), "message": msg}})
	return append(b, '\n')
}

// anthropicErrorType is Anthropic's error.type for an HTTP status
// (providers.md §3.6, frontdoors.md §1.7).
func anthropicErrorType(status int) string {
	switch status {
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 503, 529:
		return "overloaded_error"
	case 504:
		return "timeout_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// anthropicErrorEvent is the event that ends a failed stream.
func anthropicErrorEvent(dst []byte, code, msg string) []byte {
	typ := code
	switch code {
	case "overloaded_error", "rate_limit_error", "api_error", "timeout_error", "invalid_request_error",
		"authentication_error", "permission_error", "not_found_error", "billing_error", "request_too_large":
	default:
		typ = "api_error"
		if code != "" {
			msg = code + ": " + msg
		}
	}
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
	return appendNamedEvent(dst, "error", b)
}

// --- passthrough stream ---

// messagesRelay relays Anthropic's event stream event by event, as sent,
// and reads the usage from message_start and message_delta (whose counts
// are cumulative and win).
type messagesRelay struct {
	input, output, cacheRead, cacheCreation int64
	seen                                    bool
	done                                    bool
}

func (s *messagesRelay) Event(dst []byte, ev Event) ([]byte, error) {
	name := ev.Name
	if len(name) == 0 {
		name = []byte(gjson.GetBytes(ev.Data, "type").Str)
	}
	switch string(name) {
	case "error":
		return dst, anthropicStreamError(ev.Data)
	case "message_start":
		s.merge(gjson.GetBytes(ev.Data, "message.usage"))
	case "message_delta":
		s.merge(gjson.GetBytes(ev.Data, "usage"))
	case "message_stop":
		s.done = true
	}
	if len(ev.Name) == 0 {
		return appendData(dst, ev.Data), nil
	}
	dst = append(dst, "event: "...)
	dst = append(dst, ev.Name...)
	dst = append(dst, '\n')
	return appendData(dst, ev.Data), nil
}

func (s *messagesRelay) merge(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	s.seen = true
	res := gjson.GetMany(u.Raw, "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
	for i, p := range []*int64{&s.input, &s.output, &s.cacheRead, &s.cacheCreation} {
		if res[i].Type == gjson.Number {
			*p = antTokenCount(res[i])
		}
	}
}

func (s *messagesRelay) End(dst []byte) ([]byte, error) {
	if !s.done {
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_incomplete", Message: "the provider's stream ended before the answer was complete"}
	}
	return dst, nil
}

func (s *messagesRelay) Usage() Usage {
	if !s.seen {
		return Usage{}
	}
	raw := fmt.Sprintf(`{"input_tokens":%d,"output_tokens":%d,"cache_read_input_tokens":%d,"cache_creation_input_tokens":%d}`,
		s.input, s.output, s.cacheRead, s.cacheCreation)
	return anthropicUsage(gjson.Parse(raw))
}

func (s *messagesRelay) ErrorEvent(dst []byte, code, msg string) []byte {
	return anthropicErrorEvent(dst, code, msg)
}

// --- translation: Messages request → chat completions ---

type msgRequest struct {
	Model         string          `json:"model"`
	MaxTokens     *int            `json:"max_tokens"`
	System        json.RawMessage `json:"system"`
	Messages      []msgMessage    `json:"messages"`
	StopSequences []string        `json:"stop_sequences"`
	Stream        bool            `json:"stream"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	Tools         []msgTool       `json:"tools"`
	ToolChoice    *msgToolChoice  `json:"tool_choice"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	Thinking *struct {
		Type         string `json:"type"`
		BudgetTokens int    `json:"budget_tokens"`
	} `json:"thinking"`
	Container  json.RawMessage `json:"container"`
	MCPServers json.RawMessage `json:"mcp_servers"`
}

type msgMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type msgBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Source    *antSource      `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

type msgTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type msgToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// chatBody is the chat-completions request a door's translation sends to
// the provider's adapter. The output limit is MaxTokens until setTarget
// moves it to MaxCompletionTokens for OpenAI.
type chatBody struct {
	Model               string          `json:"model"`
	Messages            []ChatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      json.RawMessage `json:"response_format,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	User                string          `json:"user,omitempty"`
	WebSearchOptions    json.RawMessage `json:"web_search_options,omitempty"`
}

func rawString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// messagesToChat translates a Messages request to chat completions.
func messagesToChat(p *Provider, c *Call) ([]byte, error) {
	var r msgRequest
	if err := json.Unmarshal(c.Body, &r); err != nil {
		return nil, badRequest("invalid messages request: %s", jsonMessage(err))
	}
	out, err := messagesToChatReq(&r, p.Name)
	if err != nil {
		return nil, err
	}
	out.setTarget(p, c.Model)
	return json.Marshal(out)
}

// setTarget names the upstream model and fits the output limit to it: at
// most the model's maximum (Claude Code's max_tokens 32000 is more than
// gpt-4o writes, and OpenAI refuses it), sent as max_completion_tokens to
// OpenAI, whose reasoning models refuse max_tokens (providers.md §2.2).
func (out *chatBody) setTarget(p *Provider, model string) {
	out.Model = model
	out.MaxTokens = clampOutputPtr(model, out.MaxTokens)
	if p.Name == OpenAI && out.MaxTokens != nil {
		out.MaxTokens, out.MaxCompletionTokens = nil, out.MaxTokens
	}
}

// MessagesToChatBody translates a Messages request body for the provider
// named target (for tests and fuzzing): the chat-completions body, or a
// *RequestError naming what cannot be expressed.
func MessagesToChatBody(body []byte, target string) ([]byte, error) {
	var r msgRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, badRequest("invalid messages request: %s", jsonMessage(err))
	}
	out, err := messagesToChatReq(&r, target)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// messagesToChatReq is the translation itself, over a decoded request.
func messagesToChatReq(r *msgRequest, target string) (*chatBody, error) {
	out := &chatBody{Model: r.Model, MaxTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP, Stream: r.Stream}
	if r.Stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"container", r.Container}, {"mcp_servers", r.MCPServers}} {
		if len(f.raw) > 0 && string(f.raw) != "null" {
			return nil, badRequest("%s cannot be translated for %s models (it is an Anthropic feature); remove it or use a Claude model", f.name, target)
		}
	}
	for _, s := range r.StopSequences {
		if strings.TrimSpace(s) != "" {
			out.Stop = append(out.Stop, s)
		}
	}
	if r.Metadata != nil {
		out.User = r.Metadata.UserID
	}
	if r.Thinking != nil && target == Gemini {
		// Gemini's adapter turns reasoning_effort into a thinking budget
		// (the bands of ccat3z/caddy-llm, frontdoors.md §2.1); other
		// targets drop thinking.
		switch b := r.Thinking.BudgetTokens; {
		case r.Thinking.Type == "disabled":
			out.ReasoningEffort = "none"
		case r.Thinking.Type != "enabled":
			out.ReasoningEffort = "medium" // adaptive
		case b <= 512:
			out.ReasoningEffort = "minimal"
		case b <= 1024:
			out.ReasoningEffort = "low"
		case b <= 8192:
			out.ReasoningEffort = "medium"
		default:
			out.ReasoningEffort = "high"
		}
	}
	// system: a string or text blocks, joined with blank lines.
	if sys, err := msgSystemText(r.System); err != nil {
		return nil, err
	} else if sys != "" {
		out.Messages = append(out.Messages, ChatMessage{Role: "system", Content: rawString(sys)})
	}
	for i, m := range r.Messages {
		msgs, err := msgToChat(i, m)
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	for _, t := range r.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, badRequest("tool %q of type %q is an Anthropic server tool and cannot be translated for %s models", t.Name, t.Type, target)
		}
		if t.Name == "" {
			return nil, badRequest("every tool needs a name")
		}
		schema := t.InputSchema
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, Tool{Type: "function", Function: ToolFunction{Name: t.Name, Description: t.Description, Parameters: schema}})
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "":
			out.ToolChoice = rawString("auto")
		case "any":
			out.ToolChoice = rawString("required")
		case "none":
			out.ToolChoice = rawString("none")
		case "tool":
			b, _ := json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
			out.ToolChoice = b
		default:
			return nil, badRequest("tool_choice type %q is not known", tc.Type)
		}
		if tc.DisableParallelToolUse && len(out.Tools) > 0 {
			f := false
			out.ParallelToolCalls = &f
		}
		if len(out.Tools) == 0 {
			out.ToolChoice = nil
		}
	}
	return out, nil
}

func msgSystemText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badRequest("system must be a string or an array of text blocks")
		}
		return s, nil
	}
	var blocks []msgBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", badRequest("system must be a string or an array of text blocks")
	}
	var parts []string
	for _, b := range blocks {
		if b.Type != "text" {
			return "", badRequest("system blocks must be text blocks, not %q", b.Type)
		}
		if strings.TrimSpace(b.Text) != "" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n\n"), nil
}

// msgBlocks reads content given as a string (one text block) or blocks.
func msgBlocks(raw json.RawMessage, where string) ([]msgBlock, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("%s.content must be a string or an array of content blocks", where)
		}
		return []msgBlock{{Type: "text", Text: s}}, nil
	}
	var blocks []msgBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, badRequest("%s.content must be a string or an array of content blocks", where)
	}
	return blocks, nil
}

func msgToChat(i int, m msgMessage) ([]ChatMessage, error) {
	where := "messages." + strconv.Itoa(i)
	blocks, err := msgBlocks(m.Content, where)
	if err != nil {
		return nil, err
	}
	switch m.Role {
	case "user", "system":
		var out []ChatMessage
		var parts []ContentPart
		for j, b := range blocks {
			at := fmt.Sprintf("%s.content.%d", where, j)
			switch b.Type {
			case "text":
				parts = append(parts, ContentPart{Type: "text", Text: b.Text})
			case "image":
				u, err := msgImageURL(b.Source, at)
				if err != nil {
					return nil, err
				}
				iu, _ := json.Marshal(ImageURL{URL: u})
				parts = append(parts, ContentPart{Type: "image_url", ImageURL: iu})
			case "tool_result":
				if m.Role != "user" {
					return nil, badRequest("%s: tool_result blocks belong in user messages", at)
				}
				text, err := msgToolResultText(b, at)
				if err != nil {
					return nil, err
				}
				// Tool results go first, as tool messages (frontdoors.md §2.1);
				// several results for one call are one message (a chat API
				// refuses two answers to one call: litellm#16711).
				if n := len(out); n > 0 && out[n-1].Role == "tool" && out[n-1].ToolCallID == b.ToolUseID {
					var prev string
					json.Unmarshal(out[n-1].Content, &prev)
					out[n-1].Content = rawString(prev + "\n" + text)
					continue
				}
				out = append(out, ChatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: rawString(text)})
			case "thinking", "redacted_thinking":
				// Signatures mean nothing to other providers: dropped.
			case "document":
				return nil, badRequest("%s: document blocks cannot be translated for this model; send the text instead", at)
			default:
				return nil, badRequest("%s: content blocks of type %q cannot be translated for this model", at, b.Type)
			}
		}
		if len(parts) > 0 {
			var content json.RawMessage
			if len(parts) == 1 && parts[0].Type == "text" {
				content = rawString(parts[0].Text)
			} else {
				content, _ = json.Marshal(parts)
			}
			out = append(out, ChatMessage{Role: m.Role, Content: content})
		}
		return out, nil
	case "assistant":
		var text strings.Builder
		var calls []ToolCall
		for j, b := range blocks {
			at := fmt.Sprintf("%s.content.%d", where, j)
			switch b.Type {
			case "text":
				text.WriteString(b.Text)
			case "tool_use":
				args := "{}"
				if in := bytes.TrimSpace(b.Input); len(in) > 0 && string(in) != "null" {
					var buf bytes.Buffer
					if err := json.Compact(&buf, in); err != nil {
						return nil, badRequest("%s: tool_use input must be a JSON object", at)
					}
					args = buf.String()
				}
				calls = append(calls, ToolCall{ID: b.ID, Type: "function", Function: FunctionCall{Name: b.Name, Arguments: args}})
			case "thinking", "redacted_thinking":
			default:
				return nil, badRequest("%s: assistant content blocks of type %q cannot be translated for this model", at, b.Type)
			}
		}
		msg := ChatMessage{Role: "assistant", ToolCalls: calls}
		if text.Len() > 0 || len(calls) == 0 {
			msg.Content = rawString(text.String())
		}
		return []ChatMessage{msg}, nil
	default:
		return nil, badRequest("%s.role must be user or assistant, not %q", where, m.Role)
	}
}

func msgImageURL(src *antSource, at string) (string, error) {
	if src == nil {
		return "", badRequest("%s: an image needs a source", at)
	}
	switch src.Type {
	case "base64":
		if src.MediaType == "" || src.Data == "" {
			return "", badRequest("%s: a base64 image needs media_type and data", at)
		}
		return "data:" + src.MediaType + ";base64," + src.Data, nil
	case "url":
		if src.URL == "" {
			return "", badRequest("%s: a url image needs a url", at)
		}
		return src.URL, nil
	}
	return "", badRequest("%s: image sources of type %q cannot be translated for this model", at, src.Type)
}

func msgToolResultText(b msgBlock, at string) (string, error) {
	inner, err := msgBlocks(b.Content, at)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, ib := range inner {
		if ib.Type != "text" {
			return "", badRequest("%s: tool_result content of type %q cannot be translated for this model (only text)", at, ib.Type)
		}
		parts = append(parts, ib.Text)
	}
	text := strings.Join(parts, "\n")
	if b.IsError {
		text = "Error: " + text
	}
	return text, nil
}

// --- translation: chat completion → Messages answer ---

// messagesStopReason maps finish_reason to stop_reason (frontdoors.md §2.2).
func messagesStopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// messagesUsage renders usage in Anthropic's terms: input_tokens excludes
// what was read from the cache.
func messagesUsage(u Usage) map[string]any {
	m := map[string]any{"input_tokens": max(u.PromptTokens-u.CachedTokens, 0), "output_tokens": u.CompletionTokens}
	if u.CachedTokens > 0 {
		m["cache_read_input_tokens"] = u.CachedTokens
	}
	return m
}

func chatToMessages(c *Call, chat []byte) ([]byte, error) {
	res := gjson.GetManyBytes(chat, "model", "choices.0.message", "choices.0.finish_reason", "usage")
	model := res[0].String()
	if model == "" {
		model = c.Model
	}
	content := []any{}
	if t := res[1].Get("content"); t.Type == gjson.String && t.Str != "" {
		content = append(content, map[string]any{"type": "text", "text": t.Str})
	}
	for i, tc := range res[1].Get("tool_calls").Array() {
		input := json.RawMessage(`{}`)
		if a := tc.Get("function.arguments").String(); a != "" && json.Valid([]byte(a)) && strings.HasPrefix(strings.TrimSpace(a), "{") {
			input = json.RawMessage(a)
		}
		content = append(content, map[string]any{"type": "tool_use", "id": messagesToolID(c, tc.Get("id").String(), i),
			"name": tc.Get("function.name").String(), "input": input})
	}
	u := openAIUsage(res[3])
	return json.Marshal(map[string]any{
		"id": c.ID, "type": "message", "role": "assistant", "model": model, "content": content,
		"stop_reason": messagesStopReason(res[2].String()), "stop_sequence": nil, "usage": messagesUsage(u),
	})
}

// messagesToolID is a tool_use id for a chat tool call: its own, made to
// fit Anthropic's ^[a-zA-Z0-9_-]+$, or one minted from the answer's id when
// the provider gave none.
func messagesToolID(c *Call, id string, i int) string {
	if id == "" {
		return fmt.Sprintf("toolu_%s_%d", antToolID(c.ID), i)
	}
	return antToolID(id)
}

// --- translation: chat chunks → Messages events ---

// messagesStream turns the adapter's chat.completion.chunk events into
// Anthropic's: one message_start, then content blocks opened, fed and
// closed one at a time with contiguous indexes (text_delta,
// input_json_delta), then message_delta with stop_reason and usage, and
// message_stop (frontdoors.md §1.6, §2.3).
type messagesStream struct {
	c       *Call
	inner   StreamTranslator
	buf     []byte
	model   string
	started bool
	// next is the index of the next block; open the kind of the open block
	// ("" none, "text", "tool_use"); tools maps a chat tool-call index to
	// its block, args whether it got any arguments.
	next  int
	open  string
	tools map[int64]int
	args  map[int]bool
	stop  string
	ended bool
}

func newMessagesStream(c *Call, inner StreamTranslator) *messagesStream {
	return &messagesStream{c: c, inner: inner, model: c.Model, tools: map[int64]int{}, args: map[int]bool{}}
}

func (s *messagesStream) Event(dst []byte, ev Event) ([]byte, error) {
	var err error
	s.buf, err = s.inner.Event(s.buf[:0], ev)
	dst = s.convert(dst, s.buf)
	return dst, err
}

func (s *messagesStream) convert(dst, b []byte) []byte {
	chatFrames(b, func(d []byte) {
		if bytes.Equal(d, []byte("[DONE]")) || s.ended {
			return
		}
		res := gjson.GetManyBytes(d, "model", "choices.0.delta.content", "choices.0.delta.tool_calls", "choices.0.finish_reason")
		if res[0].Str != "" {
			s.model = res[0].Str
		}
		dst = s.start(dst)
		if res[1].Type == gjson.String && res[1].Str != "" {
			if s.open != "text" {
				dst = s.closeBlock(dst)
				dst = appendJSONEvent(dst, "content_block_start", map[string]any{"type": "content_block_start", "index": s.next,
					"content_block": map[string]any{"type": "text", "text": ""}})
				s.open = "text"
			}
			dst = appendJSONEvent(dst, "content_block_delta", map[string]any{"type": "content_block_delta", "index": s.next,
				"delta": map[string]any{"type": "text_delta", "text": res[1].Str}})
		}
		for _, tc := range res[2].Array() {
			i := tc.Get("index").Int()
			block, known := s.tools[i]
			if !known {
				dst = s.closeBlock(dst)
				block = s.next
				s.tools[i] = block
				dst = appendJSONEvent(dst, "content_block_start", map[string]any{"type": "content_block_start", "index": block,
					"content_block": map[string]any{"type": "tool_use", "id": messagesToolID(s.c, tc.Get("id").String(), int(i)),
						"name": tc.Get("function.name").String(), "input": map[string]any{}}})
				s.open = "tool_use"
			}
			if a := tc.Get("function.arguments").Str; a != "" && block == s.next && s.open == "tool_use" {
				s.args[block] = true
				dst = appendJSONEvent(dst, "content_block_delta", map[string]any{"type": "content_block_delta", "index": block,
					"delta": map[string]any{"type": "input_json_delta", "partial_json": a}})
			}
		}
		if res[3].Type == gjson.String && res[3].Str != "" {
			s.stop = messagesStopReason(res[3].Str)
		}
	})
	return dst
}

func (s *messagesStream) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	return appendJSONEvent(dst, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": s.c.ID, "type": "message", "role": "assistant", "model": s.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 0, "output_tokens": 0}}})
}

func (s *messagesStream) closeBlock(dst []byte) []byte {
	if s.open == "" {
		return dst
	}
	if s.open == "tool_use" && !s.args[s.next] {
		// A tool called without arguments still gets valid JSON.
		dst = appendJSONEvent(dst, "content_block_delta", map[string]any{"type": "content_block_delta", "index": s.next,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": "{}"}})
	}
	dst = appendJSONEvent(dst, "content_block_stop", map[string]any{"type": "content_block_stop", "index": s.next})
	s.open = ""
	s.next++
	return dst
}

func (s *messagesStream) End(dst []byte) ([]byte, error) {
	var err error
	s.buf, err = s.inner.End(s.buf[:0])
	dst = s.convert(dst, s.buf)
	if err != nil || s.ended {
		return dst, err
	}
	s.ended = true
	dst = s.start(dst)
	dst = s.closeBlock(dst)
	if s.stop == "" {
		s.stop = "end_turn"
	}
	dst = appendJSONEvent(dst, "message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": s.stop, "stop_sequence": nil}, "usage": messagesUsage(s.inner.Usage())})
	dst = appendJSONEvent(dst, "message_stop", map[string]any{"type": "message_stop"})
	return dst, nil
}

func (s *messagesStream) Usage() Usage { return s.inner.Usage() }

// KeepaliveEvent implements Keepaliver.
func (s *messagesStream) KeepaliveEvent() []byte { return keepaliveComment }

func (s *messagesStream) ErrorEvent(dst []byte, code, msg string) []byte {
	return anthropicErrorEvent(dst, code, msg)
}
