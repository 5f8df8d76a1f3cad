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
// user), thinking as the hub's Effort (which Gemini's adapter takes as a
// thinking budget; the others drop it). Dropped: cache_control, thinking
// and redacted_thinking blocks, the output_config and top_k options, and
// context_management
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
	nativeBuild:    buildMessagesNative,
	nativeResponse: messagesNativeResponse,
	nativeStream:   func(*Call) StreamTranslator { return &messagesRelay{} },
	toChat:         messagesToChat,
	fromChat:       chatToMessages,
	events:         func(c *Call) doorEvents { return newMessagesEvents(c) },
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

// --- passthrough stream ---

// messagesRelay relays Anthropic's event stream event by event, as sent,
// and reads the usage from message_start and message_delta, whole (see
// antStreamUsage).
type messagesRelay struct {
	usage antStreamUsage
	done  bool
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
		s.usage.add(gjson.GetBytes(ev.Data, "message.usage"))
	case "message_delta":
		s.usage.add(gjson.GetBytes(ev.Data, "usage"))
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

func (s *messagesRelay) End(dst []byte) ([]byte, error) {
	if !s.done {
		return dst, errIncomplete("answer")
	}
	return dst, nil
}

func (s *messagesRelay) Usage() Usage { return s.usage.usage() }

func (s *messagesRelay) ErrorEvent(dst []byte, code, msg string) []byte {
	return anthropicErrorEvent(dst, code, msg)
}

// --- translation: Messages request → the hub ---

// messagesToChat translates a Messages request (c.Body) to the hub
// request; provider names the host in what is refused.
func messagesToChat(c *Call, provider string) (*ChatRequest, error) {
	var r antRequest
	if err := json.Unmarshal(c.Body, &r); err != nil {
		return nil, badRequest("invalid messages request: %s", jsonMessage(err))
	}
	return messagesToHub(&r, provider)
}

// messagesToHub is the translation itself, over a decoded request.
func messagesToHub(r *antRequest, provider string) (*ChatRequest, error) {
	out := &ChatRequest{Model: r.Model, MaxTokens: r.MaxTokens, Temperature: r.Temperature, TopP: r.TopP, Stream: r.Stream}
	if r.Stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"container", r.Container}, {"mcp_servers", r.MCPServers}} {
		if len(f.raw) > 0 && string(f.raw) != "null" {
			return nil, badRequest("%s cannot be translated for %s models (it is an Anthropic feature); remove it or use a Claude model", f.name, provider)
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
	out.Effort = messagesEffort(r.Thinking)
	// system: a string or text blocks, joined with blank lines.
	if sys, err := msgSystemText(&r.System); err != nil {
		return nil, err
	} else if sys != "" {
		out.Messages = append(out.Messages, ChatMessage{Role: "system", Content: TextContent(sys)})
	}
	for i := range r.Messages {
		msgs, err := msgToChat(i, &r.Messages[i])
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, msgs...)
	}
	if err := messagesTools(r, provider, out); err != nil {
		return nil, err
	}
	return out, nil
}

// messagesEffort is the thinking effort of thinking: a budget in the bands
// of ccat3z/caddy-llm (frontdoors.md §2.1), adaptive thinking as medium.
func messagesEffort(t *antThinking) string {
	switch {
	case t == nil:
		return ""
	case t.Type == "disabled":
		return "none"
	case t.Type != "enabled":
		return "medium" // adaptive
	case t.BudgetTokens <= 512:
		return "minimal"
	case t.BudgetTokens <= 1024:
		return "low"
	case t.BudgetTokens <= 8192:
		return "medium"
	}
	return "high"
}

// messagesTools translates tools (client tools only: server tools are
// refused) and tool_choice.
func messagesTools(r *antRequest, provider string, out *ChatRequest) error {
	for _, t := range r.Tools {
		if t.Type != "" && t.Type != "custom" {
			return badRequest("tool %q of type %q is an Anthropic server tool and cannot be translated for %s models", t.Name, t.Type, provider)
		}
		if t.Name == "" {
			return badRequest("every tool needs a name")
		}
		schema := t.InputSchema
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, Tool{Type: "function", Function: ToolFunction{Name: t.Name, Description: t.Description, Parameters: schema}})
	}
	tc := r.ToolChoice
	if tc == nil {
		return nil
	}
	switch tc.Type {
	case "auto", "":
		out.ToolChoice = rawString("auto")
	case "any":
		out.ToolChoice = rawString("required")
	case "none":
		out.ToolChoice = rawString("none")
	case "tool":
		out.ToolChoice, _ = json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
	default:
		return badRequest("tool_choice type %q is not known", tc.Type)
	}
	if tc.DisableParallelToolUse && len(out.Tools) > 0 {
		out.ParallelToolCalls = optOf(false)
	}
	if len(out.Tools) == 0 {
		out.ToolChoice = nil
	}
	return nil
}

func rawString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// msgSystemText joins the system prompt's text blocks with blank lines
// (blank blocks left out); a string is the prompt as it is.
func msgSystemText(sys *antContent) (string, error) {
	if sys.err != nil {
		return "", badRequest("system must be a string or an array of text blocks")
	}
	if sys.text {
		return sys.blocks[0].Text, nil
	}
	var parts []string
	for _, b := range sys.blocks {
		if b.Type != "text" {
			return "", badRequest("system blocks must be text blocks, not %q", b.Type)
		}
		if strings.TrimSpace(b.Text) != "" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n\n"), nil
}

// msgBlocks is content's blocks, or the error of content that is neither a
// string nor blocks (where names it).
func msgBlocks(c *antContent, where string) ([]antBlock, error) {
	if c.err != nil {
		return nil, badRequest("%s.content must be a string or an array of content blocks", where)
	}
	return c.blocks, nil
}

// msgToChat translates message i: a user turn's tool results become tool
// messages ahead of the rest of the turn (frontdoors.md §2.1).
func msgToChat(i int, m *antMessage) ([]ChatMessage, error) {
	where := "messages." + strconv.Itoa(i)
	blocks, err := msgBlocks(&m.Content, where)
	if err != nil {
		return nil, err
	}
	switch m.Role {
	case "user", "system":
		return msgUserToChat(where, m.Role, blocks)
	case "assistant":
		return msgAssistantToChat(where, blocks)
	}
	return nil, badRequest("%s.role must be user or assistant, not %q", where, m.Role)
}

// msgUserToChat translates a user (or mid-conversation system) turn.
func msgUserToChat(where, role string, blocks []antBlock) ([]ChatMessage, error) {
	var out []ChatMessage
	var parts []ContentPart
	for j := range blocks {
		b := &blocks[j]
		at := fmt.Sprintf("%s.content.%d", where, j)
		switch b.Type {
		case "text":
			parts = append(parts, textPart(b.Text))
		case "image":
			u, err := msgImageURL(b.Source, at)
			if err != nil {
				return nil, err
			}
			parts = append(parts, imagePart(u, ""))
		case "tool_result":
			if role != "user" {
				return nil, badRequest("%s: tool_result blocks belong in user messages", at)
			}
			text, err := msgToolResultText(b, at)
			if err != nil {
				return nil, err
			}
			// Several results for one call are one message (a chat API
			// refuses two answers to one call: litellm#16711).
			if n := len(out); n > 0 && out[n-1].Role == "tool" && out[n-1].ToolCallID == b.ToolUseID {
				out[n-1].Content = TextContent(out[n-1].Content.text + "\n" + text)
				continue
			}
			out = append(out, ChatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: TextContent(text)})
		case "thinking", "redacted_thinking":
			// Signatures mean nothing to other providers: dropped.
		case "document":
			return nil, badRequest("%s: document blocks cannot be translated for this model; send the text instead", at)
		default:
			return nil, badRequest("%s: content blocks of type %q cannot be translated for this model", at, b.Type)
		}
	}
	switch {
	case len(parts) == 1 && parts[0].Type == "text":
		out = append(out, ChatMessage{Role: role, Content: TextContent(parts[0].Text)})
	case len(parts) > 0:
		out = append(out, ChatMessage{Role: role, Content: PartsContent(parts)})
	}
	return out, nil
}

// msgAssistantToChat translates an assistant turn: its text, then its
// tool calls, with their input as the arguments.
func msgAssistantToChat(where string, blocks []antBlock) ([]ChatMessage, error) {
	var text strings.Builder
	var calls []ToolCall
	for j := range blocks {
		b := &blocks[j]
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			args := "{}"
			if in := bytes.TrimSpace(b.Input); len(in) > 0 && string(in) != "null" {
				var buf bytes.Buffer
				if err := json.Compact(&buf, in); err != nil {
					return nil, badRequest("%s.content.%d: tool_use input must be a JSON object", where, j)
				}
				args = buf.String()
			}
			calls = append(calls, ToolCall{ID: b.ID, Type: "function", Function: FunctionCall{Name: b.Name, Arguments: args}})
		case "thinking", "redacted_thinking":
		default:
			return nil, badRequest("%s.content.%d: assistant content blocks of type %q cannot be translated for this model", where, j, b.Type)
		}
	}
	msg := ChatMessage{Role: "assistant", ToolCalls: calls}
	if text.Len() > 0 || len(calls) == 0 {
		msg.Content = TextContent(text.String())
	}
	return []ChatMessage{msg}, nil
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

func msgToolResultText(b *antBlock, at string) (string, error) {
	inner, err := msgBlocks(&b.Content, at)
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

// --- translation: chunks → Messages events ---

// messagesEvents renders a translated stream as Anthropic's events: one
// message_start, then content blocks opened, fed and closed one at a time
// with contiguous indexes (text_delta, input_json_delta), then
// message_delta with stop_reason and usage, and message_stop
// (frontdoors.md §1.6, §2.3).
type messagesEvents struct {
	c       *Call
	model   string
	started bool
	// next is the index of the next block; open the kind of the open block
	// ("" none, "text", "tool_use"); tools maps a chat tool-call index to
	// its block, args whether it got any arguments.
	next  int
	open  string
	tools map[int]int
	args  map[int]bool
	stop  string
}

func newMessagesEvents(c *Call) *messagesEvents {
	return &messagesEvents{c: c, model: c.Model, tools: map[int]int{}, args: map[int]bool{}}
}

func (s *messagesEvents) chunk(dst []byte, model string, d *ChunkDelta, finish string) []byte {
	if model != "" {
		s.model = model
	}
	dst = s.start(dst)
	if d.Content != nil && *d.Content != "" {
		if s.open != "text" {
			dst = s.closeBlock(dst)
			dst = appendJSONEvent(dst, "content_block_start", map[string]any{"type": "content_block_start", "index": s.next,
				"content_block": map[string]any{"type": "text", "text": ""}})
			s.open = "text"
		}
		dst = appendJSONEvent(dst, "content_block_delta", map[string]any{"type": "content_block_delta", "index": s.next,
			"delta": map[string]any{"type": "text_delta", "text": *d.Content}})
	}
	for k := range d.ToolCalls {
		dst = s.toolCall(dst, &d.ToolCalls[k])
	}
	if finish != "" {
		s.stop = messagesStopReason(finish)
	}
	return dst
}

// toolCall opens the block of a call not seen before, and streams its
// arguments while its block is the open one.
func (s *messagesEvents) toolCall(dst []byte, tc *ToolCall) []byte {
	i := 0
	if tc.Index != nil {
		i = *tc.Index
	}
	block, known := s.tools[i]
	if !known {
		dst = s.closeBlock(dst)
		block = s.next
		s.tools[i] = block
		dst = appendJSONEvent(dst, "content_block_start", map[string]any{"type": "content_block_start", "index": block,
			"content_block": map[string]any{"type": "tool_use", "id": messagesToolID(s.c, tc.ID, i),
				"name": tc.Function.Name, "input": map[string]any{}}})
		s.open = "tool_use"
	}
	if a := tc.Function.Arguments; a != "" && block == s.next && s.open == "tool_use" {
		s.args[block] = true
		dst = appendJSONEvent(dst, "content_block_delta", map[string]any{"type": "content_block_delta", "index": block,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": a}})
	}
	return dst
}

func (s *messagesEvents) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	return appendJSONEvent(dst, "message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": s.c.ID, "type": "message", "role": "assistant", "model": s.model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 0, "output_tokens": 0}}})
}

func (s *messagesEvents) closeBlock(dst []byte) []byte {
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

func (s *messagesEvents) end(dst []byte, u Usage) []byte {
	dst = s.start(dst)
	dst = s.closeBlock(dst)
	if s.stop == "" {
		s.stop = "end_turn"
	}
	dst = appendJSONEvent(dst, "message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": s.stop, "stop_sequence": nil}, "usage": messagesUsage(u)})
	return appendJSONEvent(dst, "message_stop", map[string]any{"type": "message_stop"})
}

func (s *messagesEvents) errorEvent(dst []byte, code, msg string) []byte {
	return anthropicErrorEvent(dst, code, msg)
}
