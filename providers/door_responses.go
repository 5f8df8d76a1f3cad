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
// Other models get the stateless subset, translated to chat completions
// and back: input as a string or items (messages with input_text,
// input_image and output_text parts; function_call and
// function_call_output; custom_tool_call and its output; reasoning items
// are dropped), instructions, function tools and tool_choice, custom
// (free-form) tools as functions of one string whose calls come back as
// custom_tool_call items, parallel_tool_calls, text.format (json_schema,
// json_object), reasoning.effort (for Gemini; dropped elsewhere),
// max_output_tokens, temperature, top_p. Ignored: store, include,
// prompt_cache_key, service_tier, metadata, text.verbosity and the like,
// which change nothing the translated answer can carry. Refused with a 400
// naming the feature and the provider: previous_response_id, conversation,
// background, prompt, built-in tools (web_search, file_search,
// code_interpreter, ...) and item types other than the above.
var ResponsesDoor = &Door{
	API:            "responses",
	Path:           "/v1/responses",
	IDPrefix:       "resp_",
	FinalStatus:    http.StatusBadRequest,
	native:         nativeResponses,
	nativeBuild:    buildResponsesNative,
	nativeResponse: responsesNativeResponse,
	nativeStream:   func(c *Call) StreamTranslator { return &responsesRelay{c: c} },
	toChat:         responsesToChat,
	fromChat:       chatToResponse,
	chatStream:     func(c *Call, inner StreamTranslator) StreamTranslator { return newResponsesStream(c, inner) },
	errorBody:      OpenAIErrorBody,
	errorEvent: func(dst []byte, code, msg string) []byte {
		return appendJSONEvent(dst, "error", map[string]any{"type": "error", "code": code, "message": msg, "param": nil})
	},
}

func nativeResponses(p *Provider, ep Endpoint) bool {
	return p.Name == OpenAI || p.Name == Azure && ep.APIVersion == "v1"
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

// responsesUsage reads the Responses API's usage object in OpenAI's chat
// terms (prompt includes cached input, completion includes reasoning).
func responsesUsage(r gjson.Result) Usage {
	if !r.IsObject() {
		return Usage{}
	}
	u := Usage{
		PromptTokens:     r.Get("input_tokens").Int(),
		CompletionTokens: r.Get("output_tokens").Int(),
		TotalTokens:      r.Get("total_tokens").Int(),
		CachedTokens:     r.Get("input_tokens_details.cached_tokens").Int(),
		ReasoningTokens:  r.Get("output_tokens_details.reasoning_tokens").Int(),
		Raw:              json.RawMessage(r.Raw),
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u
}

func responsesNativeResponse(c *Call, body []byte) ([]byte, Usage, error) {
	if !ValidJSON(body) {
		return nil, Usage{}, fmt.Errorf("the provider answered with invalid JSON")
	}
	res := gjson.GetManyBytes(body, "id", "usage")
	c.ResponseID = res[0].Str
	return body, responsesUsage(res[1]), nil
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
		res := gjson.GetManyBytes(ev.Data, "response.id", "response.usage")
		if s.c.ResponseID == "" {
			s.c.ResponseID = res[0].Str
		}
		s.usage = responsesUsage(res[1])
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
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_incomplete", Message: "the provider's stream ended before the response was complete"}
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

func responsesToChat(p *Provider, c *Call) ([]byte, error) {
	out, err := responsesToChatBody(c, c.Body, p.Name)
	if err != nil {
		return nil, err
	}
	out.setTarget(p, c.Model)
	return json.Marshal(out)
}

// ResponsesToChatBody translates a Responses request body for the provider
// named target (for tests and fuzzing): the chat-completions body, or a
// *RequestError naming what cannot be expressed.
func ResponsesToChatBody(body []byte, target string) ([]byte, error) {
	out, err := responsesToChatBody(&Call{}, body, target)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// responsesToChatBody is the translation itself; what it leaves out is
// recorded on c (Call.Omitted).
func responsesToChatBody(c *Call, body []byte, target string) (*chatBody, error) {
	var r respRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, badRequest("invalid responses request: %s", jsonMessage(err))
	}
	unsupported := func(feature string) error {
		return badRequest("%s is not available for %s models through the gateway: it needs OpenAI's stored state or hosted tools (send the whole conversation in input instead)", feature, target)
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
	tools, err := newRespTools(r.Tools, target)
	if err != nil {
		return nil, err
	}
	out := &chatBody{Model: r.Model, MaxTokens: r.MaxOutputTokens, Temperature: r.Temperature, TopP: r.TopP,
		Stream: r.Stream, ParallelToolCalls: r.ParallelToolCalls, User: r.User}
	if r.Stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	if r.Reasoning != nil && r.Reasoning.Effort != "" && target == Gemini {
		// Only Gemini's adapter reads reasoning_effort (as a thinking
		// budget); OpenAI-shaped hosts may refuse a field they lack, and
		// Anthropic's adapter drops it. Gemini knows none to high.
		out.ReasoningEffort = r.Reasoning.Effort
		if out.ReasoningEffort == "xhigh" {
			out.ReasoningEffort = "high"
		}
	}
	if r.Instructions != "" {
		out.Messages = append(out.Messages, ChatMessage{Role: "system", Content: rawString(r.Instructions)})
	}
	in := bytes.TrimSpace(r.Input)
	switch {
	case len(in) == 0 || string(in) == "null":
		return nil, badRequest("input is required")
	case in[0] == '"':
		var s string
		if err := json.Unmarshal(in, &s); err != nil {
			return nil, badRequest("input must be a string or an array of items")
		}
		out.Messages = append(out.Messages, ChatMessage{Role: "user", Content: rawString(s)})
	default:
		var items []respItem
		if err := json.Unmarshal(in, &items); err != nil {
			return nil, badRequest("input must be a string or an array of items: %s", jsonMessage(err))
		}
		for i, it := range items {
			msgs, err := respItemToChat(out.Messages, i, it, target, tools)
			if err != nil {
				return nil, err
			}
			out.Messages = msgs
		}
	}
	out.Tools = tools.offered
	if err := respWebSearch(c, r.Tools, target, out); err != nil {
		return nil, err
	}
	if tc := bytes.TrimSpace(r.ToolChoice); len(tc) > 0 && string(tc) != "null" {
		if tc[0] == '"' {
			out.ToolChoice = tc
		} else {
			var obj struct {
				Type      string `json:"type"`
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			}
			if json.Unmarshal(tc, &obj) != nil || obj.Type != "function" && obj.Type != "custom" || obj.Name == "" {
				return nil, badRequest("tool_choice must be auto, none, required or {\"type\":\"function\",\"name\":...} for %s models", target)
			}
			out.ToolChoice, _ = json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tools.flatName(obj.Namespace, obj.Name)}})
		}
		if len(out.Tools) == 0 {
			out.ToolChoice = nil
		}
	}
	if r.Text != nil && len(r.Text.Format) > 0 && string(r.Text.Format) != "null" {
		f := gjson.ParseBytes(r.Text.Format)
		switch f.Get("type").String() {
		case "text", "":
		case "json_object":
			out.ResponseFormat = json.RawMessage(`{"type":"json_object"}`)
		case "json_schema":
			js := map[string]any{"name": f.Get("name").String(), "schema": json.RawMessage(f.Get("schema").Raw)}
			if !f.Get("schema").IsObject() {
				return nil, badRequest("text.format.schema must be a JSON schema object")
			}
			if s := f.Get("strict"); s.Exists() {
				js["strict"] = s.Bool()
			}
			out.ResponseFormat, _ = json.Marshal(map[string]any{"type": "json_schema", "json_schema": js})
		default:
			return nil, badRequest("text.format type %q is not available for %s models", f.Get("type").String(), target)
		}
	}
	return out, nil
}

func respItemToChat(msgs []ChatMessage, i int, it respItem, target string, tools *respTools) ([]ChatMessage, error) {
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
		if n := len(msgs); n > 0 && msgs[n-1].Role == "assistant" && (len(msgs[n-1].ToolCalls) > 0 || len(msgs[n-1].Content) > 0) {
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
					return nil, badRequest("%s.output items of type %q cannot be translated for %s models (only text)", at, p.Type, target)
				}
				b.WriteString(p.Text)
			}
			text = b.String()
		}
		return append(msgs, ChatMessage{Role: "tool", ToolCallID: it.CallID, Content: rawString(text)}), nil
	case "reasoning":
		// Reasoning (and its encrypted content) only OpenAI can read.
		return msgs, nil
	}
	return nil, badRequest("%s: items of type %q are not available for %s models through the gateway", at, typ, target)
}

// respContent turns a message item's content (a string or parts) into
// chat content.
func respContent(raw json.RawMessage, at string) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return rawString(""), nil
	}
	if raw[0] == '"' {
		return raw, nil
	}
	var parts []respPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, badRequest("%s.content must be a string or an array of content parts", at)
	}
	out := make([]ContentPart, 0, len(parts))
	textOnly := true
	for j, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text":
			out = append(out, ContentPart{Type: "text", Text: p.Text})
		case "refusal":
			out = append(out, ContentPart{Type: "text", Text: p.Text})
		case "input_image":
			if p.ImageURL == "" {
				return nil, badRequest("%s.content.%d: input_image needs an image_url (file ids cannot be translated)", at, j)
			}
			iu, _ := json.Marshal(ImageURL{URL: p.ImageURL, Detail: p.Detail})
			out = append(out, ContentPart{Type: "image_url", ImageURL: iu})
			textOnly = false
		default:
			return nil, badRequest("%s.content.%d: parts of type %q cannot be translated for this model", at, j, p.Type)
		}
	}
	if textOnly {
		var b strings.Builder
		for _, p := range out {
			b.WriteString(p.Text)
		}
		return rawString(b.String()), nil
	}
	b, _ := json.Marshal(out)
	return b, nil
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
	tools := respToolsOf(c.DoorBody)
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

// --- translation: chat chunks → Responses events ---

// responsesStream turns the adapter's chat.completion.chunk events into
// Responses events, numbered from 0: response.created and
// response.in_progress at once; output_item.added (+ content_part.added)
// when text or a tool call begins; output_text.delta and
// function_call_arguments.delta as they come; at the end every .done event
// with the whole text or arguments, output_item.done with the whole item,
// then response.completed (or response.incomplete) with the usage
// (frontdoors.md §3.8).
type responsesStream struct {
	c       *Call
	inner   StreamTranslator
	buf     []byte
	model   string
	seq     int64
	started bool
	ended   bool
	next    int // the next output_index
	text    *respStreamText
	tools   map[int64]*respStreamCall
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

func newResponsesStream(c *Call, inner StreamTranslator) *responsesStream {
	return &responsesStream{c: c, inner: inner, model: c.Model, tools: map[int64]*respStreamCall{}, offered: respToolsOf(c.DoorBody)}
}

func (s *responsesStream) emit(dst []byte, typ string, fields map[string]any) []byte {
	fields["type"] = typ
	fields["sequence_number"] = s.seq
	s.seq++
	return appendJSONEvent(dst, typ, fields)
}

func (s *responsesStream) Event(dst []byte, ev Event) ([]byte, error) {
	var err error
	s.buf, err = s.inner.Event(s.buf[:0], ev)
	dst = s.convert(dst, s.buf)
	return dst, err
}

func (s *responsesStream) start(dst []byte) []byte {
	if s.started {
		return dst
	}
	s.started = true
	dst = s.emit(dst, "response.created", map[string]any{"response": newResponseObject(s.c, s.model, "in_progress", nil, []any{}, nil)})
	return s.emit(dst, "response.in_progress", map[string]any{"response": newResponseObject(s.c, s.model, "in_progress", nil, []any{}, nil)})
}

func (s *responsesStream) convert(dst, b []byte) []byte {
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
			if s.text == nil {
				s.text = &respStreamText{index: s.next, id: "msg_" + strings.TrimPrefix(s.c.ID, "resp_")}
				s.next++
				dst = s.emit(dst, "response.output_item.added", map[string]any{"output_index": s.text.index,
					"item": respMessageItem(s.text.id, "", "in_progress")})
				dst = s.emit(dst, "response.content_part.added", map[string]any{"item_id": s.text.id, "output_index": s.text.index,
					"content_index": 0, "part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
			}
			s.text.text.WriteString(res[1].Str)
			dst = s.emit(dst, "response.output_text.delta", map[string]any{"item_id": s.text.id, "output_index": s.text.index,
				"content_index": 0, "delta": res[1].Str, "logprobs": []any{}})
		}
		for _, tc := range res[2].Array() {
			i := tc.Get("index").Int()
			call := s.tools[i]
			if call == nil {
				call = &respStreamCall{index: s.next, id: fmt.Sprintf("fc_%s_%d", strings.TrimPrefix(s.c.ID, "resp_"), i),
					callID: respCallID(s.c, tc.Get("id").String(), int(i)), name: tc.Get("function.name").String()}
				s.next++
				s.tools[i] = call
				dst = s.emit(dst, "response.output_item.added", map[string]any{"output_index": call.index,
					"item": s.offered.item(call.id, call.callID, call.name, "", "in_progress")})
			}
			if a := tc.Get("function.arguments").Str; a != "" {
				call.args.WriteString(a)
				if s.offered.ref(call.name).custom {
					continue // the input is whole only once the arguments are: output_item.done carries it
				}
				dst = s.emit(dst, "response.function_call_arguments.delta", map[string]any{"item_id": call.id,
					"output_index": call.index, "delta": a})
			}
		}
		if res[3].Type == gjson.String && res[3].Str != "" {
			s.finish = res[3].Str
		}
	})
	return dst
}

func (s *responsesStream) End(dst []byte) ([]byte, error) {
	var err error
	s.buf, err = s.inner.End(s.buf[:0])
	dst = s.convert(dst, s.buf)
	if err != nil || s.ended {
		return dst, err
	}
	s.ended = true
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
	u := s.inner.Usage()
	status, incomplete := respStatus(s.finish)
	name := "response.completed"
	if status == "incomplete" {
		name = "response.incomplete"
	}
	return s.emit(dst, name, map[string]any{"response": newResponseObject(s.c, s.model, status, incomplete, output, &u)}), nil
}

func (s *responsesStream) Usage() Usage { return s.inner.Usage() }

// KeepaliveEvent implements Keepaliver.
func (s *responsesStream) KeepaliveEvent() []byte { return keepaliveComment }

func (s *responsesStream) ErrorEvent(dst []byte, code, msg string) []byte {
	return responsesErrorEvents(dst, s.c, s.seq, code, msg)
}
