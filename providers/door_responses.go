package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
)

// OpenAI's Responses API as a front door (POST /v1/responses, for Codex and
// the OpenAI Agents SDK; reference/frontdoors.md §3).
//
// OpenAI models, and Azure's with api_version v1, pass through: the body's
// bytes go upstream with only "model" rewritten, the answer (or each stream
// event) comes back as sent, and usage is read from the response (from
// response.completed in a stream). The response's id is kept by the call
// (Call.ResponseID) so the gateway can remember who owns it.
//
// Other models get the stateless subset, translated to the hub request and
// back: input as a string or items (messages with input_text, input_image
// and output_text parts; function_call and function_call_output;
// custom_tool_call and its output; reasoning items are dropped),
// instructions, tools and tool_choice (door_responses_tools.go: function,
// custom, namespace and web_search tools), parallel_tool_calls,
// text.format (json_schema, json_object), reasoning.effort (the hub's
// Effort: Gemini's adapter takes it, the others drop it),
// max_output_tokens, temperature, top_p. Ignored: store, include,
// prompt_cache_key, service_tier, metadata, text.verbosity and the like,
// which change nothing the translated answer can carry. Refused with a 400
// naming the feature and the provider: previous_response_id, conversation,
// background, prompt, the other built-in tools (file_search,
// code_interpreter, ...) and item types other than the above.
var ResponsesDoor = &Door{
	API:            "responses",
	Path:           "/v1/responses",
	IDPrefix:       "resp_",
	FinalStatus:    http.StatusBadRequest,
	nativeBuild:    buildResponsesNative,
	nativeResponse: responsesNativeResponse,
	nativeStream:   func(c *Call) StreamTranslator { return &responsesRelay{c: c} },
	toChat:         responsesToChat,
	fromChat:       chatToResponse,
	events:         func(c *Call) doorEvents { return newResponsesEvents(c) },
	errorBody:      OpenAIErrorBody,
	errorEvent: func(dst []byte, code, msg string) []byte {
		return appendJSONEvent(dst, "error", map[string]any{"type": "error", "code": code, "message": msg, "param": nil})
	},
}

// ResponsesURL is the Responses API root of a passthrough provider:
// {base}/responses for OpenAI, {base}/openai/v1/responses for Azure's v1
// API.
func ResponsesURL(p *Provider, ep Endpoint) string {
	base := strings.TrimRight(ep.BaseURL, "/")
	if base == "" {
		base = p.DefaultBaseURL
	}
	if p.Name == Azure {
		return base + "/openai/v1/responses"
	}
	return base + "/responses"
}

// NewResponsesRequest builds an authenticated request to a passthrough
// provider's Responses API: method, the path below /responses ("" or
// "/{id}", "/{id}/input_items") and the client's query.
func NewResponsesRequest(ctx context.Context, p *Provider, ep Endpoint, key, method, sub, query string, body []byte) (*http.Request, error) {
	u := ResponsesURL(p, ep) + sub
	if query != "" {
		u += "?" + query
	}
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, u, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, u, nil)
	}
	if err != nil {
		return nil, err
	}
	if p.Name == Azure {
		req.Header["Api-Key"] = []string{key}
	} else {
		req.Header["Authorization"] = []string{"Bearer " + key}
		if ep.Organization != "" {
			req.Header["Openai-Organization"] = []string{ep.Organization}
		}
		if ep.Project != "" {
			req.Header["Openai-Project"] = []string{ep.Project}
		}
	}
	if body != nil {
		req.Header["Content-Type"] = []string{"application/json"}
	}
	return req, nil
}

func buildResponsesNative(ctx context.Context, p *Provider, c *Call) (*http.Request, error) {
	if p.Name == Azure && c.Endpoint.BaseURL == "" {
		return nil, errAzureEndpoint
	}
	return NewResponsesRequest(ctx, p, c.Endpoint, c.Key, http.MethodPost, "", "", SetModel(c.Body, c.Model))
}

func responsesNativeResponse(c *Call, body []byte) ([]byte, Usage, error) {
	if !ValidJSON(body) {
		return nil, Usage{}, fmt.Errorf("the provider answered with invalid JSON")
	}
	res := gjson.GetManyBytes(body, "id", "usage", "service_tier")
	c.ResponseID = res[0].Str
	u := openAIUsage(res[1])
	u.ServiceTier = res[2].Str
	return body, u, nil
}

// OpenAIErrorBody renders a gateway error in OpenAI's envelope,
// {"error":{"message","type","param","code"}}.
func OpenAIErrorBody(status int, code, msg string) []byte {
	typ := "invalid_request_error"
	switch {
	case status == 401:
		typ = "authentication_error"
	case status == 404:
		typ = "not_found_error"
	case status == 429:
		typ = "rate_limit_error"
	case status >= 500:
		typ = "api_error"
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
	return append(b, '\n')
}

// --- passthrough stream ---

// responsesRelay relays a Responses event stream event by event, as sent;
// it reads the response id from the first event that carries it and the
// usage from the terminal event.
type responsesRelay struct {
	c     *Call
	usage Usage
	seq   int64
	done  bool
	// failed is the code of the provider's response.failed or error
	// event, relayed as sent (see StreamFailer).
	failed string
}

func (s *responsesRelay) Event(dst []byte, ev Event) ([]byte, error) {
	name := string(ev.Name)
	if name == "" {
		name = gjson.GetBytes(ev.Data, "type").Str
	}
	switch name {
	case "response.created", "response.in_progress", "response.queued":
		if s.c.ResponseID == "" {
			s.c.ResponseID = gjson.GetBytes(ev.Data, "response.id").Str
		}
	case "response.completed", "response.incomplete", "response.failed":
		s.done = true
		res := gjson.GetManyBytes(ev.Data, "response.id", "response.usage", "response.service_tier")
		if s.c.ResponseID == "" {
			s.c.ResponseID = res[0].Str
		}
		s.usage = openAIUsage(res[1])
		s.usage.ServiceTier = res[2].Str
		if name == "response.failed" && s.failed == "" {
			s.failed = failureCode(gjson.GetBytes(ev.Data, "response.error.code").Str)
		}
	case "error":
		if s.failed == "" {
			s.failed = failureCode(gjson.GetBytes(ev.Data, "code").Str)
		}
	}
	if n := gjson.GetBytes(ev.Data, "sequence_number"); n.Type == gjson.Number {
		s.seq = n.Int()
	}
	if len(ev.Name) == 0 {
		return appendData(dst, ev.Data), nil
	}
	return appendNamedEvent(dst, name, ev.Data), nil
}

func (s *responsesRelay) End(dst []byte) ([]byte, error) {
	if !s.done {
		return dst, errIncomplete("response")
	}
	return dst, nil
}

func (s *responsesRelay) Usage() Usage { return s.usage }

func (s *responsesRelay) FailureCode() string { return s.failed }

// failureCode is a provider's failure code, or a generic one when it gave
// none.
func failureCode(code string) string {
	if code == "" {
		return "upstream_stream_error"
	}
	return code
}

func (s *responsesRelay) ErrorEvent(dst []byte, code, msg string) []byte {
	return responsesErrorEvents(dst, s.c, s.seq+1, code, msg)
}

// responsesErrorEvents ends a failed stream: response.failed (what Codex
// reads) and an error event (what the SDKs raise).
func responsesErrorEvents(dst []byte, c *Call, seq int64, code, msg string) []byte {
	id := c.ResponseID
	if id == "" {
		id = c.ID
	}
	dst = appendJSONEvent(dst, "response.failed", map[string]any{"type": "response.failed", "sequence_number": seq,
		"response": map[string]any{"id": id, "object": "response", "created_at": c.Created, "status": "failed", "model": c.Model,
			"output": []any{}, "error": map[string]any{"code": code, "message": msg}}})
	return appendJSONEvent(dst, "error", map[string]any{"type": "error", "sequence_number": seq + 1, "code": code, "message": msg, "param": nil})
}

// --- translation: Responses request → chat completions ---

type respRequest struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input"`
	Instructions       string          `json:"instructions"`
	Tools              []respTool      `json:"tools"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	ParallelToolCalls  *bool           `json:"parallel_tool_calls"`
	MaxOutputTokens    *int            `json:"max_output_tokens"`
	Temperature        *float64        `json:"temperature"`
	TopP               *float64        `json:"top_p"`
	Stream             bool            `json:"stream"`
	PreviousResponseID string          `json:"previous_response_id"`
	Conversation       json.RawMessage `json:"conversation"`
	Background         bool            `json:"background"`
	Prompt             json.RawMessage `json:"prompt"`
	Text               *struct {
		Format json.RawMessage `json:"format"`
	} `json:"text"`
	Reasoning *struct {
		Effort string `json:"effort"`
	} `json:"reasoning"`
	User string `json:"user"`
}

type respTool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters"`
	Strict      *bool           `json:"strict"`
	// Tools are a namespace's functions and custom tools.
	Tools []respTool `json:"tools"`
	// A web_search tool's options.
	ExternalWebAccess *bool  `json:"external_web_access"`
	SearchContextSize string `json:"search_context_size"`
	Filters           *struct {
		AllowedDomains []string `json:"allowed_domains"`
	} `json:"filters"`
	UserLocation *struct {
		City     string `json:"city"`
		Country  string `json:"country"`
		Region   string `json:"region"`
		Timezone string `json:"timezone"`
	} `json:"user_location"`
}

type respItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Namespace string          `json:"namespace"`
	Args      string          `json:"arguments"`
	Input     string          `json:"input"`
	Output    json.RawMessage `json:"output"`
}

type respPart struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	ImageURL string          `json:"image_url"`
	Detail   string          `json:"detail"`
	FileID   json.RawMessage `json:"file_id"`
}

// responsesToChat translates a Responses request (c.Body) to the hub
// request; what it leaves out is recorded on c (Call.Omitted), and the
// tools as offered, for reading the answer's calls back. provider names the
// host in what is refused.
func responsesToChat(c *Call, provider string) (*ChatRequest, error) {
	var r respRequest
	if err := json.Unmarshal(c.Body, &r); err != nil {
		return nil, badRequest("invalid responses request: %s", jsonMessage(err))
	}
	unsupported := func(feature string) error {
		return badRequest("%s is not available for %s models through the gateway: it needs OpenAI's stored state or hosted tools (send the whole conversation in input instead)", feature, provider)
	}
	switch {
	case r.PreviousResponseID != "":
		return nil, unsupported("previous_response_id")
	case len(r.Conversation) > 0 && string(r.Conversation) != "null":
		return nil, unsupported("conversation")
	case r.Background:
		return nil, unsupported("background")
	case len(r.Prompt) > 0 && string(r.Prompt) != "null":
		return nil, unsupported("prompt")
	}
	tools, err := newRespTools(r.Tools, provider)
	if err != nil {
		return nil, err
	}
	c.respTools = tools
	out := &ChatRequest{Model: r.Model, MaxTokens: r.MaxOutputTokens, Temperature: r.Temperature, TopP: r.TopP,
		Stream: r.Stream, User: r.User}
	if r.Stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	if r.ParallelToolCalls != nil {
		out.ParallelToolCalls = optOf(*r.ParallelToolCalls)
	}
	if r.Reasoning != nil {
		out.Effort = r.Reasoning.Effort
	}
	if r.Instructions != "" {
		out.Messages = append(out.Messages, ChatMessage{Role: "system", Content: TextContent(r.Instructions)})
	}
	if out.Messages, err = respInput(out.Messages, r.Input, provider, tools); err != nil {
		return nil, err
	}
	out.Tools = tools.offered
	respWebSearch(c, r.Tools, out)
	if out.ToolChoice, err = respToolChoice(r.ToolChoice, provider, tools); err != nil {
		return nil, err
	}
	if len(out.Tools) == 0 {
		out.ToolChoice = nil
	}
	if r.Text != nil {
		out.ResponseFormat, err = respFormat(r.Text.Format, provider)
	}
	return out, err
}

// respInput appends input, a string or an array of items, to msgs.
func respInput(msgs []ChatMessage, input json.RawMessage, provider string, tools *respTools) ([]ChatMessage, error) {
	in := bytes.TrimSpace(input)
	switch {
	case len(in) == 0 || string(in) == "null":
		return nil, badRequest("input is required")
	case in[0] == '"':
		var s string
		if err := json.Unmarshal(in, &s); err != nil {
			return nil, badRequest("input must be a string or an array of items")
		}
		return append(msgs, ChatMessage{Role: "user", Content: TextContent(s)}), nil
	}
	var items []respItem
	if err := json.Unmarshal(in, &items); err != nil {
		return nil, badRequest("input must be a string or an array of items: %s", jsonMessage(err))
	}
	for i, it := range items {
		var err error
		if msgs, err = respItemToChat(msgs, i, it, provider, tools); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// respToolChoice translates tool_choice: a mode as it is, a function or
// custom tool by the name it is offered under.
func respToolChoice(raw json.RawMessage, provider string, tools *respTools) (json.RawMessage, error) {
	tc := bytes.TrimSpace(raw)
	if len(tc) == 0 || string(tc) == "null" {
		return nil, nil
	}
	if tc[0] == '"' {
		return tc, nil
	}
	var obj struct {
		Type      string `json:"type"`
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	if json.Unmarshal(tc, &obj) != nil || obj.Type != "function" && obj.Type != "custom" || obj.Name == "" {
		return nil, badRequest("tool_choice must be auto, none, required or {\"type\":\"function\",\"name\":...} for %s models", provider)
	}
	return json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tools.flatName(obj.Namespace, obj.Name)}})
}

// respFormat translates text.format to response_format.
func respFormat(format json.RawMessage, provider string) (json.RawMessage, error) {
	if len(format) == 0 || string(format) == "null" {
		return nil, nil
	}
	f := gjson.ParseBytes(format)
	switch f.Get("type").String() {
	case "text", "":
		return nil, nil
	case "json_object":
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		js := map[string]any{"name": f.Get("name").String(), "schema": json.RawMessage(f.Get("schema").Raw)}
		if !f.Get("schema").IsObject() {
			return nil, badRequest("text.format.schema must be a JSON schema object")
		}
		if s := f.Get("strict"); s.Exists() {
			js["strict"] = s.Bool()
		}
		return json.Marshal(map[string]any{"type": "json_schema", "json_schema": js})
	}
	return nil, badRequest("text.format type %q is not available for %s models", f.Get("type").String(), provider)
}

func respItemToChat(msgs []ChatMessage, i int, it respItem, provider string, tools *respTools) ([]ChatMessage, error) {
	at := fmt.Sprintf("input.%d", i)
	typ := it.Type
	if typ == "" && it.Role != "" {
		typ = "message"
	}
	switch typ {
	case "message":
		role := it.Role
		switch role {
		case "user", "assistant", "system":
		case "developer":
			role = "system"
		default:
			return nil, badRequest("%s.role must be user, assistant, system or developer", at)
		}
		content, err := respContent(it.Content, at)
		if err != nil {
			return nil, err
		}
		return append(msgs, ChatMessage{Role: role, Content: content}), nil
	case "function_call", "custom_tool_call":
		args := it.Args
		if typ == "custom_tool_call" {
			b, _ := json.Marshal(map[string]string{"input": it.Input})
			args = string(b)
		}
		if strings.TrimSpace(args) == "" {
			args = "{}"
		}
		// A namespace's function was offered under its flattened name.
		tc := ToolCall{ID: it.CallID, Type: "function", Function: FunctionCall{Name: tools.flatName(it.Namespace, it.Name), Arguments: args}}
		// Consecutive calls are one assistant turn.
		if n := len(msgs); n > 0 && msgs[n-1].Role == "assistant" && (len(msgs[n-1].ToolCalls) > 0 || !msgs[n-1].Content.IsZero()) {
			msgs[n-1].ToolCalls = append(msgs[n-1].ToolCalls, tc)
			return msgs, nil
		}
		return append(msgs, ChatMessage{Role: "assistant", ToolCalls: []ToolCall{tc}}), nil
	case "function_call_output", "custom_tool_call_output":
		out := bytes.TrimSpace(it.Output)
		var text string
		if len(out) > 0 && out[0] == '"' {
			if err := json.Unmarshal(out, &text); err != nil {
				return nil, badRequest("%s.output must be a string or an array of input_text items", at)
			}
		} else if len(out) > 0 && out[0] == '[' {
			var parts []respPart
			if err := json.Unmarshal(out, &parts); err != nil {
				return nil, badRequest("%s.output must be a string or an array of input_text items", at)
			}
			var b strings.Builder
			for _, p := range parts {
				if p.Type != "input_text" && p.Type != "output_text" {
					return nil, badRequest("%s.output items of type %q cannot be translated for %s models (only text)", at, p.Type, provider)
				}
				b.WriteString(p.Text)
			}
			text = b.String()
		}
		return append(msgs, ChatMessage{Role: "tool", ToolCallID: it.CallID, Content: TextContent(text)}), nil
	case "reasoning":
		// Reasoning (and its encrypted content) only OpenAI can read.
		return msgs, nil
	}
	return nil, badRequest("%s: items of type %q are not available for %s models through the gateway", at, typ, provider)
}

// respContent turns a message item's content (a string or parts) into
// chat content: text parts joined into one string, or parts with images.
func respContent(raw json.RawMessage, at string) (Content, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return TextContent(""), nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Content{}, badRequest("%s.content must be a string or an array of content parts", at)
		}
		return TextContent(s), nil
	}
	var parts []respPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return Content{}, badRequest("%s.content must be a string or an array of content parts", at)
	}
	out := make([]ContentPart, 0, len(parts))
	textOnly := true
	for j, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text", "refusal":
			out = append(out, textPart(p.Text))
		case "input_image":
			if p.ImageURL == "" {
				return Content{}, badRequest("%s.content.%d: input_image needs an image_url (file ids cannot be translated)", at, j)
			}
			out = append(out, imagePart(p.ImageURL, p.Detail))
			textOnly = false
		default:
			return Content{}, badRequest("%s.content.%d: parts of type %q cannot be translated for this model", at, j, p.Type)
		}
	}
	if !textOnly {
		return PartsContent(out), nil
	}
	var b strings.Builder
	for _, p := range out {
		b.WriteString(p.Text)
	}
	return TextContent(b.String()), nil
}

// --- translation: chat completion → Response ---

type respOutputItem struct {
	index int
	item  map[string]any
}

func respUsage(u Usage) map[string]any {
	return map[string]any{
		"input_tokens":          u.PromptTokens,
		"input_tokens_details":  map[string]any{"cached_tokens": u.CachedTokens},
		"output_tokens":         u.CompletionTokens,
		"output_tokens_details": map[string]any{"reasoning_tokens": u.ReasoningTokens},
		"total_tokens":          u.TotalTokens,
	}
}

// respStatus maps finish_reason to the response's status and its
// incomplete_details.
func respStatus(finish string) (string, any) {
	switch finish {
	case "length":
		return "incomplete", map[string]any{"reason": "max_output_tokens"}
	case "content_filter":
		return "incomplete", map[string]any{"reason": "content_filter"}
	}
	return "completed", nil
}

func newResponseObject(c *Call, model, status string, incomplete any, output []any, u *Usage) map[string]any {
	r := map[string]any{
		"id": c.ID, "object": "response", "created_at": c.Created, "status": status, "model": model,
		"output": output, "error": nil, "incomplete_details": incomplete, "parallel_tool_calls": true,
		"tool_choice": "auto", "tools": []any{}, "text": map[string]any{"format": map[string]any{"type": "text"}},
	}
	if u != nil {
		r["usage"] = respUsage(*u)
	}
	return r
}

func respMessageItem(id, text, status string) map[string]any {
	content := []any{}
	if status == "completed" {
		content = append(content, map[string]any{"type": "output_text", "text": text, "annotations": []any{}})
	}
	return map[string]any{"id": id, "type": "message", "role": "assistant", "status": status, "content": content}
}

// customToolParams is the parameters schema of a custom tool offered as a
// function.
var customToolParams = json.RawMessage(`{"type":"object","properties":{"input":{"type":"string","description":"The tool's raw input"}},"required":["input"]}`)

func chatToResponse(c *Call, chat []byte) ([]byte, error) {
	res := gjson.GetManyBytes(chat, "model", "choices.0.message", "choices.0.finish_reason", "usage")
	model := res[0].String()
	if model == "" {
		model = c.Model
	}
	output := []any{}
	tools := c.offeredTools()
	if t := res[1].Get("content"); t.Type == gjson.String && t.Str != "" {
		output = append(output, respMessageItem("msg_"+strings.TrimPrefix(c.ID, "resp_"), t.Str, "completed"))
	}
	for i, tc := range res[1].Get("tool_calls").Array() {
		args := tc.Get("function.arguments").String()
		if args == "" {
			args = "{}"
		}
		output = append(output, tools.item(fmt.Sprintf("fc_%s_%d", strings.TrimPrefix(c.ID, "resp_"), i),
			respCallID(c, tc.Get("id").String(), i), tc.Get("function.name").String(), args, "completed"))
	}
	u := openAIUsage(res[3])
	status, incomplete := respStatus(res[2].String())
	return json.Marshal(newResponseObject(c, model, status, incomplete, output, &u))
}

// respCallID is a function call's call_id: the provider's tool call id, or
// one minted from the response's id when it gave none.
func respCallID(c *Call, id string, i int) string {
	if id == "" {
		return fmt.Sprintf("call_%s_%d", strings.TrimPrefix(c.ID, "resp_"), i)
	}
	return id
}

// offeredTools are the Responses tools as offered to the model (none
// before the request was translated).
func (c *Call) offeredTools() *respTools {
	if c.respTools == nil {
		return &respTools{}
	}
	return c.respTools
}

// --- translation: chunks → Responses events ---

// responsesEvents renders a translated stream as Responses events,
// numbered from 0: response.created and response.in_progress at once;
// output_item.added (+ content_part.added) when text or a tool call begins;
// output_text.delta and function_call_arguments.delta as they come; at the
// end every .done event with the whole text or arguments, output_item.done
// with the whole item, then response.completed (or response.incomplete)
// with the usage (frontdoors.md §3.8).
type responsesEvents struct {
	c       *Call
	model   string
	seq     int64
	started bool
	next    int // the next output_index
	text    *respStreamText
	tools   map[int]*respStreamCall
	offered *respTools // the request's tools, by the names offered
	finish  string
}

type respStreamText struct {
	index int
	id    string
	text  strings.Builder
}

type respStreamCall struct {
	index            int
	id, callID, name string
	args             strings.Builder
}

func newResponsesEvents(c *Call) *responsesEvents {
	return &responsesEvents{c: c, model: c.Model, tools: map[int]*respStreamCall{}, offered: c.offeredTools()}
}

func (s *responsesEvents) emit(dst []byte, typ string, fields map[string]any) []byte {
	fields["type"] = typ
	fields["sequence_number"] = s.seq
	s.seq++
	return appendJSONEvent(dst, typ, fields)
}

func (s *responsesEvents) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	dst = s.emit(dst, "response.created", map[string]any{"response": newResponseObject(s.c, s.model, "in_progress", nil, []any{}, nil)})
	return s.emit(dst, "response.in_progress", map[string]any{"response": newResponseObject(s.c, s.model, "in_progress", nil, []any{}, nil)})
}

func (s *responsesEvents) chunk(dst []byte, model string, d *ChunkDelta, finish string) []byte {
	if model != "" {
		s.model = model
	}
	dst = s.start(dst)
	if d.Content != nil && *d.Content != "" {
		dst = s.textDelta(dst, *d.Content)
	}
	for k := range d.ToolCalls {
		dst = s.toolCall(dst, &d.ToolCalls[k])
	}
	if finish != "" {
		s.finish = finish
	}
	return dst
}

// textDelta adds text to the message item, opening it first.
func (s *responsesEvents) textDelta(dst []byte, text string) []byte {
	if s.text == nil {
		s.text = &respStreamText{index: s.next, id: "msg_" + strings.TrimPrefix(s.c.ID, "resp_")}
		s.next++
		dst = s.emit(dst, "response.output_item.added", map[string]any{"output_index": s.text.index,
			"item": respMessageItem(s.text.id, "", "in_progress")})
		dst = s.emit(dst, "response.content_part.added", map[string]any{"item_id": s.text.id, "output_index": s.text.index,
			"content_index": 0, "part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
	}
	s.text.text.WriteString(text)
	return s.emit(dst, "response.output_text.delta", map[string]any{"item_id": s.text.id, "output_index": s.text.index,
		"content_index": 0, "delta": text, "logprobs": []any{}})
}

// toolCall opens the item of a call not seen before, and streams its
// arguments (a custom tool's input is whole only at the end).
func (s *responsesEvents) toolCall(dst []byte, tc *ToolCall) []byte {
	i := 0
	if tc.Index != nil {
		i = *tc.Index
	}
	call := s.tools[i]
	if call == nil {
		call = &respStreamCall{index: s.next, id: fmt.Sprintf("fc_%s_%d", strings.TrimPrefix(s.c.ID, "resp_"), i),
			callID: respCallID(s.c, tc.ID, i), name: tc.Function.Name}
		s.next++
		s.tools[i] = call
		dst = s.emit(dst, "response.output_item.added", map[string]any{"output_index": call.index,
			"item": s.offered.item(call.id, call.callID, call.name, "", "in_progress")})
	}
	if a := tc.Function.Arguments; a != "" {
		call.args.WriteString(a)
		if !s.offered.ref(call.name).custom {
			dst = s.emit(dst, "response.function_call_arguments.delta", map[string]any{"item_id": call.id,
				"output_index": call.index, "delta": a})
		}
	}
	return dst
}

func (s *responsesEvents) end(dst []byte, u Usage) []byte {
	dst = s.start(dst)
	items := make([]respOutputItem, 0, len(s.tools)+1)
	if t := s.text; t != nil {
		text := t.text.String()
		dst = s.emit(dst, "response.output_text.done", map[string]any{"item_id": t.id, "output_index": t.index,
			"content_index": 0, "text": text, "logprobs": []any{}})
		dst = s.emit(dst, "response.content_part.done", map[string]any{"item_id": t.id, "output_index": t.index,
			"content_index": 0, "part": map[string]any{"type": "output_text", "text": text, "annotations": []any{}}})
		item := respMessageItem(t.id, text, "completed")
		dst = s.emit(dst, "response.output_item.done", map[string]any{"output_index": t.index, "item": item})
		items = append(items, respOutputItem{t.index, item})
	}
	calls := make([]*respStreamCall, 0, len(s.tools))
	for _, c := range s.tools {
		calls = append(calls, c)
	}
	sort.Slice(calls, func(i, j int) bool { return calls[i].index < calls[j].index })
	for _, c := range calls {
		args := c.args.String()
		if args == "" {
			args = "{}"
		}
		if r := s.offered.ref(c.name); !r.custom {
			dst = s.emit(dst, "response.function_call_arguments.done", map[string]any{"item_id": c.id, "output_index": c.index,
				"arguments": args, "name": r.name})
		}
		item := s.offered.item(c.id, c.callID, c.name, args, "completed")
		dst = s.emit(dst, "response.output_item.done", map[string]any{"output_index": c.index, "item": item})
		items = append(items, respOutputItem{c.index, item})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].index < items[j].index })
	output := make([]any, len(items))
	for i, it := range items {
		output[i] = it.item
	}
	status, incomplete := respStatus(s.finish)
	name := "response.completed"
	if status == "incomplete" {
		name = "response.incomplete"
	}
	return s.emit(dst, name, map[string]any{"response": newResponseObject(s.c, s.model, status, incomplete, output, &u)})
}

func (s *responsesEvents) errorEvent(dst []byte, code, msg string) []byte {
	return responsesErrorEvents(dst, s.c, s.seq, code, msg)
}
