package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// Cohere: https://api.cohere.com (also api.cohere.ai), POST /v2/chat,
// Authorization: Bearer (cohere-go environments.go, v2/client.go). Keys are
// 40 alphanumerics without a prefix (gitleaks rules/cohere.go), so no prefix
// is listed. The client's OpenAI chat request is translated to Cohere's v2
// chat, and the answer (JSON or an SSE stream) back to OpenAI's shape
// (providers.md §9, §12.3).
//
// What does not survive the translation:
//   - n > 1 is refused (Cohere answers one message); logprobs, top_logprobs,
//     logit_bias, parallel_tool_calls, user, metadata, store,
//     reasoning_effort and audio/modalities are dropped.
//   - A named tool_choice becomes tool_choice REQUIRED with only that tool
//     offered: Cohere has no "call this function" mode (providers.md §9).
//   - Images (http(s) and data: URLs) pass through as Cohere image_url parts,
//     in user messages only; other part types are refused.
//   - An assistant message with tool calls sends its text as Cohere's
//     tool_plan; an answer's tool_plan comes back as content (streamed:
//     tool-plan-delta becomes content deltas), so the round trip keeps it.
//   - Thinking content and citations are dropped.
//   - Embeddings are not translated (Cohere's embed API is not OpenAI's).
var cohere = register(&Provider{
	Name:           Cohere,
	DefaultBaseURL: "https://api.cohere.com",
	AuthHeader:     "Authorization",
	Implemented:    true,
	build:          buildCohere,
	test:           testCohere,
	response:       cohereResponse,
	stream:         newCohereStream,
	classify:       classifyCohere,
})

// --- request build ---

// cohereRequest is the body of POST /v2/chat (cohere-go v_2.go V2ChatRequest).
type cohereRequest struct {
	Model            string          `json:"model"`
	Messages         []cohereMessage `json:"messages"`
	Tools            []Tool          `json:"tools,omitempty"`
	StrictTools      *bool           `json:"strict_tools,omitempty"`
	ToolChoice       string          `json:"tool_choice,omitempty"`
	ResponseFormat   json.RawMessage `json:"response_format,omitempty"`
	MaxTokens        *int            `json:"max_tokens,omitempty"`
	StopSequences    []string        `json:"stop_sequences,omitempty"`
	Temperature      *float64        `json:"temperature,omitempty"`
	Seed             *int64          `json:"seed,omitempty"`
	FrequencyPenalty *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty  *float64        `json:"presence_penalty,omitempty"`
	P                *float64        `json:"p,omitempty"`
	Stream           bool            `json:"stream,omitempty"`
}

// cohereMessage is one v2 message. Content is a string or an array of
// parts; assistant tool calls keep OpenAI's shape.
type cohereMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	ToolPlan   string          `json:"tool_plan,omitempty"`
	ToolCalls  []ToolCall      `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// cohereContentPart is a user content part: text or image_url. The
// client's parts are read into it too, rather than into ContentPart: Cohere
// takes image_url only as an object ({"url": ...}), so a part whose
// image_url is a bare string, or an object of other types, makes the content
// unreadable; members Cohere does not take (refusal, cache_control) are not
// read at all.
type cohereContentPart struct {
	Type     string    `json:"type"`
	Text     *string   `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// text is the part's text, "" when it has none.
func (p *cohereContentPart) text() string {
	if p.Text == nil {
		return ""
	}
	return *p.Text
}

func buildCohere(ctx context.Context, c *Call) (*http.Request, error) {
	if c.Op != OpChat {
		return nil, fmt.Errorf("%s %s: %w", Cohere, c.Op, ErrNotImplemented)
	}
	body, err := cohereRequestBody(c)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint.BaseURL+"/v2/chat", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = []string{"Bearer " + c.Key}
	req.Header["Content-Type"] = []string{"application/json"}
	if c.Stream {
		req.Header["Accept"] = []string{"text/event-stream"}
	} else {
		req.Header["Accept"] = []string{"application/json"}
	}
	return req, nil
}

// cohereRequestBody translates the hub request to Cohere's v2 chat. A
// door's web search is left out (Cohere has none), and says so.
func cohereRequestBody(c *Call) ([]byte, error) {
	req, err := c.chatRequest()
	if err != nil {
		return nil, err
	}
	if req.Search != nil {
		c.omit("web_search")
	}
	frequency, err := req.FrequencyPenalty.Get("frequency_penalty")
	if err != nil {
		return nil, err
	}
	presence, err := req.PresencePenalty.Get("presence_penalty")
	if err != nil {
		return nil, err
	}
	if req.N != nil && *req.N > 1 {
		return nil, badRequest("cohere returns one choice: n must be 1")
	}
	out := cohereRequest{
		Model:            c.Model,
		Messages:         make([]cohereMessage, 0, len(req.Messages)),
		Temperature:      req.Temperature,
		P:                req.TopP,
		Seed:             req.Seed,
		StopSequences:    req.Stop,
		FrequencyPenalty: frequency,
		PresencePenalty:  presence,
		Stream:           c.Stream,
	}
	// max_completion_tokens wins over the older max_tokens, at most the
	// model's maximum (limits.go). Cohere needs none (it defaults to the
	// model's limit), so DefaultMaxTokens is unused.
	if req.MaxCompletionTokens != nil {
		out.MaxTokens = clampOutputPtr(c.Model, req.MaxCompletionTokens)
	} else if req.MaxTokens != nil {
		out.MaxTokens = clampOutputPtr(c.Model, req.MaxTokens)
	}
	for i := range req.Messages {
		m, err := cohereMessageOf(i, &req.Messages[i])
		if err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, m)
	}
	if err := cohereTools(req, &out); err != nil {
		return nil, err
	}
	if out.ResponseFormat, err = cohereResponseFormat(req.ResponseFormat); err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// cohereDoorPart is a door's content part as Cohere takes it.
func cohereDoorPart(p ContentPart) cohereContentPart {
	out := cohereContentPart{Type: p.Type}
	switch p.Type {
	case "text":
		out.Text = &p.Text
	case "image_url":
		if p.ImageURL.URL != "" {
			out.ImageURL = &ImageURL{URL: p.ImageURL.URL, Detail: p.ImageURL.Detail}
		}
	}
	return out
}

func cohereMessageOf(i int, m *ChatMessage) (cohereMessage, error) {
	parts, err := decodeContent(m.Content, func(s string) cohereContentPart { return cohereContentPart{Type: "text", Text: &s} }, cohereDoorPart)
	if err != nil {
		return cohereMessage{}, badRequest("messages[%d]: %v", i, err)
	}
	// text joins the text parts; any other part is refused for roles that
	// only take text.
	text := func() (string, error) {
		var b strings.Builder
		for j, p := range parts {
			if p.Type != "text" {
				return "", badRequest("messages[%d].content[%d]: cohere accepts only text parts in %s messages", i, j, m.Role)
			}
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.text())
		}
		return b.String(), nil
	}
	str := func(s string) json.RawMessage { b, _ := json.Marshal(s); return b }
	switch m.Role {
	case "system", "developer":
		s, err := text()
		if err != nil {
			return cohereMessage{}, err
		}
		return cohereMessage{Role: "system", Content: str(s)}, nil
	case "user":
		if !m.Content.isArray() {
			// A string (or null: an empty turn) stays a string.
			s := ""
			if len(parts) == 1 {
				s = parts[0].text()
			}
			return cohereMessage{Role: "user", Content: str(s)}, nil
		}
		b, err := cohereUserParts(i, parts)
		return cohereMessage{Role: "user", Content: b}, err
	case "assistant":
		s, err := text()
		if err != nil {
			return cohereMessage{}, err
		}
		if len(m.ToolCalls) == 0 {
			return cohereMessage{Role: "assistant", Content: str(s)}, nil
		}
		// Cohere's assistant turn that calls tools carries its text as the
		// tool_plan, which is where Cohere's own answers put it.
		calls, err := cohereToolCalls(i, m.ToolCalls)
		return cohereMessage{Role: "assistant", ToolPlan: s, ToolCalls: calls}, err
	case "tool":
		if m.ToolCallID == "" {
			return cohereMessage{}, badRequest("messages[%d]: a tool message needs tool_call_id", i)
		}
		s, err := text()
		if err != nil {
			return cohereMessage{}, err
		}
		return cohereMessage{Role: "tool", Content: str(s), ToolCallID: m.ToolCallID}, nil
	}
	return cohereMessage{}, badRequest("messages[%d]: cohere does not accept role %q", i, m.Role)
}

// cohereUserParts is a user message's parts as Cohere takes them: text and
// images by URL.
func cohereUserParts(i int, parts []cohereContentPart) (json.RawMessage, error) {
	out := make([]cohereContentPart, 0, len(parts))
	for j, p := range parts {
		switch p.Type {
		case "text":
			out = append(out, cohereContentPart{Type: "text", Text: Str(p.text())})
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return nil, badRequest("messages[%d].content[%d]: image_url needs a url", i, j)
			}
			img := *p.ImageURL
			out = append(out, cohereContentPart{Type: "image_url", ImageURL: &img})
		default:
			return nil, badRequest("messages[%d].content[%d]: cohere does not accept %q parts", i, j, p.Type)
		}
	}
	return json.Marshal(out)
}

// cohereToolCalls is an assistant's tool calls as Cohere takes them
// (empty arguments are {}).
func cohereToolCalls(i int, in []ToolCall) ([]ToolCall, error) {
	calls := make([]ToolCall, len(in))
	for j, tc := range in {
		if tc.Type != "" && tc.Type != "function" {
			return nil, badRequest("messages[%d].tool_calls[%d]: cohere accepts only function tool calls", i, j)
		}
		args := tc.Function.Arguments
		if strings.TrimSpace(args) == "" {
			args = "{}"
		}
		calls[j] = ToolCall{ID: tc.ID, Type: "function", Function: FunctionCall{Name: tc.Function.Name, Arguments: args}}
	}
	return calls, nil
}

// cohereTools maps tools and tool_choice. Cohere's tool_choice is REQUIRED or
// NONE (absent means auto); a named function becomes REQUIRED with only that
// tool offered.
func cohereTools(req *ChatRequest, out *cohereRequest) error {
	for j, t := range req.Tools {
		if t.Type != "" && t.Type != "function" {
			return badRequest("tools[%d]: cohere accepts only function tools", j)
		}
		if t.Function.Name == "" {
			return badRequest("tools[%d]: a function tool needs a name", j)
		}
		t.Type = "function"
		if t.Function.Strict != nil && *t.Function.Strict {
			// Cohere's strictness is per request, not per tool.
			out.StrictTools = t.Function.Strict
		}
		t.Function.Strict = nil
		if p := bytes.TrimSpace(t.Function.Parameters); bytes.Equal(p, []byte("null")) {
			t.Function.Parameters = nil
		}
		out.Tools = append(out.Tools, t)
	}
	mode, name := ToolChoiceMode(req.ToolChoice)
	raw := bytes.TrimSpace(req.ToolChoice)
	switch mode {
	case "", "auto":
		if mode == "" && len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
			return badRequest("tool_choice: cohere accepts \"auto\", \"none\", \"required\" or one named function")
		}
	case "none":
		if len(out.Tools) > 0 {
			out.ToolChoice = "NONE"
		}
	case "required":
		if len(out.Tools) == 0 {
			return badRequest("tool_choice \"required\" needs tools")
		}
		out.ToolChoice = "REQUIRED"
	case "function":
		for _, t := range out.Tools {
			if t.Function.Name == name {
				out.Tools = []Tool{t}
				out.ToolChoice = "REQUIRED"
				return nil
			}
		}
		return badRequest("tool_choice names function %q, which is not in tools", name)
	default:
		return badRequest("tool_choice: cohere accepts \"auto\", \"none\", \"required\" or one named function")
	}
	return nil
}

// cohereResponseFormat maps OpenAI's response_format: json_object stays,
// json_schema becomes json_object with the schema (cohere-go
// ResponseFormatV2), text is the default and is omitted.
func cohereResponseFormat(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	r := gjson.ParseBytes(raw)
	switch r.Get("type").String() {
	case "text":
		return nil, nil
	case "json_object":
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		schema := r.Get("json_schema.schema")
		if !schema.IsObject() {
			return nil, badRequest("response_format: json_schema needs a schema object")
		}
		b, _ := json.Marshal(map[string]any{"type": "json_object", "json_schema": json.RawMessage(schema.Raw)})
		return b, nil
	}
	return nil, badRequest("response_format: cohere accepts text, json_object or json_schema")
}

// --- response and stream translation ---

// cohereResponse translates a v2 chat answer: {id, finish_reason,
// message:{role, content:[{type:"text",text}], tool_plan, tool_calls,
// citations}, usage}. The text parts are joined (after the tool_plan, as the
// stream sends them); thinking parts and citations are dropped.
func cohereResponse(c *Call, body []byte) ([]byte, Usage, error) {
	if !ValidJSON(body) {
		return nil, Usage{}, fmt.Errorf("the provider answered with invalid JSON")
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return nil, Usage{}, fmt.Errorf("the provider answered with a JSON %s, not an object", root.Type)
	}
	msg := root.Get("message")
	if msg.Type == gjson.String {
		// {"message": "..."}: an error, even with a 200.
		return nil, Usage{}, &StreamError{Class: ClassServer, Code: "upstream_error", Message: msg.Str}
	}
	if !msg.IsObject() {
		return nil, Usage{}, &StreamError{Class: ClassServer, Code: "upstream_invalid", Message: "the provider's answer has no message"}
	}
	u := cohereUsage(root.Get("usage"))
	var text strings.Builder
	text.WriteString(msg.Get("tool_plan").String())
	content := msg.Get("content")
	if content.Type == gjson.String {
		text.WriteString(content.Str)
	}
	for _, p := range content.Array() {
		if p.Get("type").String() == "text" {
			text.WriteString(p.Get("text").String())
		}
	}
	var calls []ToolCall
	for _, tc := range msg.Get("tool_calls").Array() {
		name := tc.Get("function.name").String()
		if name == "" {
			return nil, u, &StreamError{Class: ClassServer, Code: "upstream_invalid", Message: "the provider answered with a tool call without a name"}
		}
		calls = append(calls, ToolCall{
			ID:       tc.Get("id").String(),
			Type:     "function",
			Function: FunctionCall{Name: name, Arguments: cohereArguments(tc.Get("function.arguments"), "{}")},
		})
	}
	finish, serr := cohereFinish(root.Get("finish_reason").String(), len(calls) > 0)
	if serr != nil {
		return nil, u, serr
	}
	out := ResponseMessage{Role: "assistant", ToolCalls: calls}
	if text.Len() > 0 || len(calls) == 0 {
		out.Content = Str(text.String())
	}
	b, err := newCompletion(c, c.Model, out, finish, u)
	return b, u, err
}

// cohereArguments reads a tool call's arguments: a JSON string as Cohere
// sends it, or (defensively) a JSON value, or def when absent.
func cohereArguments(r gjson.Result, def string) string {
	switch {
	case r.Type == gjson.String:
		if r.Str == "" {
			return def
		}
		return r.Str
	case r.Exists() && r.Type != gjson.Null:
		return r.Raw
	}
	return def
}

// cohereFinish maps Cohere's finish_reason (Portkey cohere/types.ts; the
// v1 ERROR_TOXIC and ERROR_LIMIT too). ERROR and TIMEOUT mean the
// generation failed: they are reported as errors, never as a quiet finish.
// An answer with tool calls finishes with tool_calls whatever Cohere says
// (its streams have been seen to end tool calls with COMPLETE).
func cohereFinish(reason string, toolCalls bool) (string, *StreamError) {
	switch reason {
	case "MAX_TOKENS", "ERROR_LIMIT":
		return "length", nil
	case "TOOL_CALL":
		return "tool_calls", nil
	case "ERROR_TOXIC":
		return "content_filter", nil
	case "ERROR":
		return "", &StreamError{Class: ClassServer, Code: "upstream_generation_error", Message: "the provider reported an error while generating the answer"}
	case "TIMEOUT":
		return "", &StreamError{Class: ClassTimeout, Code: "upstream_timeout", Message: "the provider timed out while generating the answer"}
	}
	// COMPLETE, STOP_SEQUENCE, and anything new.
	if toolCalls {
		return "tool_calls", nil
	}
	return "stop", nil
}

// cohereUsage reads Cohere's usage: tokens (what the model processed)
// before billed_units (what Cohere bills, without its own preamble), as
// Portkey does (providers.md §12.3); cached_tokens is the cached part of
// the input. Raw keeps the whole object.
func cohereUsage(r gjson.Result) Usage {
	if !r.IsObject() {
		return Usage{}
	}
	count := func(field string) int64 {
		v := r.Get("tokens." + field)
		if !v.Exists() || v.Type == gjson.Null {
			v = r.Get("billed_units." + field)
		}
		if n := v.Int(); n > 0 {
			return n
		}
		return 0
	}
	u := Usage{
		PromptTokens:     count("input_tokens"),
		CompletionTokens: count("output_tokens"),
		CachedTokens:     max(r.Get("cached_tokens").Int(), 0),
		Raw:              json.RawMessage(r.Raw),
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// cohereStream translates Cohere's v2 chat stream: SSE events named by
// their type (the data's "type" field, or the event: line), with no
// [DONE] of its own (one is ignored if it comes). See cohere-go v_2.go's
// stream union and Portkey's CohereChatCompleteStreamChunkTransform.
type cohereStream struct {
	c       *Call
	started bool // the role chunk is out
	done    bool // message-end arrived
	tools   int  // tool calls started
	cur     int  // the tool call deltas without an index go to
	byIndex map[int64]int
	usage   Usage
}

func newCohereStream(c *Call) StreamTranslator { return &cohereStream{c: c, cur: -1} }

func (s *cohereStream) Usage() Usage { return s.usage }

// chunk appends one chunk, after the role chunk if it is not out yet.
func (s *cohereStream) chunk(dst []byte, d ChunkDelta, finish string) []byte {
	if !s.started {
		s.started = true
		dst = appendChunk(dst, s.c, s.c.Model, ChunkDelta{Role: "assistant", Content: Str("")}, "")
		if d.Content == nil && d.ToolCalls == nil && finish == "" {
			return dst
		}
	}
	return appendChunk(dst, s.c, s.c.Model, d, finish)
}

func (s *cohereStream) Event(dst []byte, ev Event) ([]byte, error) {
	data := bytes.TrimSpace(ev.Data)
	if bytes.Equal(data, []byte("[DONE]")) {
		return dst, nil
	}
	if !ValidJSON(data) {
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_invalid", Message: "the provider sent an event that is not JSON"}
	}
	r := gjson.ParseBytes(data)
	if !r.IsObject() {
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_invalid", Message: "the provider sent an event that is not a JSON object"}
	}
	typ := r.Get("type")
	name := typ.String()
	if name == "" {
		name = string(ev.Name)
	}
	// An error: an event named so, an "error" member, or a bare
	// {"message": "..."} (Cohere's error body) with no type.
	errField := r.Get("error")
	if name == "error" || errField.Exists() && errField.Type != gjson.Null ||
		!typ.Exists() && r.Get("message").Type == gjson.String {
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_error", Message: cohereErrorText(r)}
	}
	if s.done {
		return dst, nil
	}
	switch name {
	case "message-start":
		if !s.started {
			dst = s.chunk(dst, ChunkDelta{}, "")
		}
	case "content-start", "content-delta":
		// Thinking deltas carry "thinking" instead of "text": dropped.
		if t := r.Get("delta.message.content.text").String(); t != "" {
			dst = s.chunk(dst, ChunkDelta{Content: &t}, "")
		}
	case "tool-plan-delta":
		if t := r.Get("delta.message.tool_plan").String(); t != "" {
			dst = s.chunk(dst, ChunkDelta{Content: &t}, "")
		}
	case "tool-call-start":
		return s.toolCallStart(dst, r)
	case "tool-call-delta":
		return s.toolCallDelta(dst, r)
	case "message-end":
		s.usage = cohereUsage(r.Get("delta.usage"))
		if e := r.Get("delta.error"); e.Exists() && e.Type != gjson.Null && e.String() != "" {
			return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_error", Message: cohereErrorText(r.Get("delta"))}
		}
		finish, serr := cohereFinish(r.Get("delta.finish_reason").String(), s.tools > 0)
		if serr != nil {
			return dst, serr
		}
		s.done = true
		dst = s.chunk(dst, ChunkDelta{}, finish)
	}
	// content-end, tool-call-end, citation-start/end, debug and unknown
	// events add nothing.
	return dst, nil
}

// toolCallStart opens a tool call (named, with its id or one minted).
func (s *cohereStream) toolCallStart(dst []byte, r gjson.Result) ([]byte, error) {
	tc := r.Get("delta.message.tool_calls")
	if tc.IsArray() {
		tc = tc.Get("0")
	}
	fn := tc.Get("function.name").String()
	if fn == "" {
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_invalid", Message: "the provider started a tool call without a name"}
	}
	n := s.tools
	s.tools++
	s.cur = n
	if ix := r.Get("index"); ix.Exists() {
		if s.byIndex == nil {
			s.byIndex = make(map[int64]int)
		}
		s.byIndex[ix.Int()] = n
	}
	id := tc.Get("id").String()
	if id == "" {
		id = fmt.Sprintf("call_%s_%d", strings.TrimPrefix(s.c.ID, "chatcmpl-"), n)
	}
	return s.chunk(dst, ChunkDelta{ToolCalls: []ToolCall{{Index: &n, ID: id, Type: "function",
		Function: FunctionCall{Name: fn, Arguments: cohereArguments(tc.Get("function.arguments"), "")}}}}, ""), nil
}

// toolCallDelta streams a tool call's arguments: of the call its index
// names, else of the last one started.
func (s *cohereStream) toolCallDelta(dst []byte, r gjson.Result) ([]byte, error) {
	n := s.cur
	if ix := r.Get("index"); ix.Exists() {
		if m, ok := s.byIndex[ix.Int()]; ok {
			n = m
		}
	}
	if n < 0 {
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_invalid", Message: "the provider sent tool call arguments before the tool call"}
	}
	tc := r.Get("delta.message.tool_calls")
	if tc.IsArray() {
		tc = tc.Get("0")
	}
	if args := cohereArguments(tc.Get("function.arguments"), ""); args != "" {
		dst = s.chunk(dst, ChunkDelta{ToolCalls: []ToolCall{{Index: &n, Function: FunctionCall{Arguments: args}}}}, "")
	}
	return dst, nil
}

// cohereErrorText is the message of an error event, never the raw event.
func cohereErrorText(r gjson.Result) string {
	for _, path := range []string{"error.message", "message", "error"} {
		if v := r.Get(path); v.Type == gjson.String && v.Str != "" {
			return v.Str
		}
	}
	return "the provider reported an error in the stream"
}

func (s *cohereStream) End(dst []byte) ([]byte, error) {
	if !s.done {
		return dst, errIncomplete("answer")
	}
	if s.c.IncludeUsage {
		dst = appendUsageChunk(dst, s.c, s.c.Model, s.usage)
	}
	return appendDone(dst, s.c), nil
}

// --- error classes ---

// classifyCohere adds Cohere's own statuses (cohere-go error_codes.go) to
// the common classes: 498 is an invalid token; 504 (gateway timeout) is a
// timeout rather than a server error; a 429 about a trial key's monthly
// call cap is out of quota, not a rate limit (trial keys are capped per
// month and per minute, cohere-developer-experience#199; the exact wording
// is [unverified], so only "trial key" with "month" is matched). Bodies are
// {"message": "..."}.
func classifyCohere(status int, _ http.Header, body []byte) string {
	switch status {
	case 498:
		return ClassAuth
	case 504:
		return ClassTimeout
	case 429:
		msg := strings.ToLower(gjson.GetBytes(body, "message").String())
		if strings.Contains(msg, "trial key") && strings.Contains(msg, "month") {
			return ClassQuota
		}
	}
	return ""
}

// testCohere: GET /v1/models, Bearer.
func testCohere(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.BaseURL+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = []string{"Bearer " + key}
	req.Header["Accept"] = []string{"application/json"}
	return req, nil
}
