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

// Anthropic: https://api.anthropic.com, POST /v1/messages, x-api-key and
// anthropic-version: 2023-06-01 (anthropic-sdk-go requestconfig.go), never
// Authorization. Keys are sk-ant-api03-... (admin keys sk-ant-admin01-, which
// are for the Admin API, not inference).
//
// Clients speak OpenAI's chat completions; the adapter translates to the
// Messages API and back (providers.md §3, §12.1–12.4). What does not carry
// over:
//   - n > 1 is refused (400); Anthropic answers one choice.
//   - Dropped without error: seed, logprobs, top_logprobs, logit_bias,
//     frequency_penalty, presence_penalty, response_format,
//     reasoning_effort, service_tier, store, metadata, modalities, audio,
//     prediction, a tool's "strict", a message's "name".
//   - web_search_options becomes the web search server tool; its search
//     blocks in the answer are dropped, the cited text is kept.
//   - temperature above 1 is clamped to 1 (Anthropic's range is 0–1, as
//     its own OpenAI-compatible endpoint does); when both temperature and
//     top_p are given only temperature is sent (newer Claude models refuse
//     both, Bifrost chat.go does the same); whitespace-only stop sequences
//     are dropped (Anthropic refuses them, LiteLLM _map_stop_sequences).
//   - system and developer messages are hoisted into the top-level system
//     blocks, wherever they were in the conversation.
//   - user becomes metadata.user_id unless it looks like an email address
//     or a phone number, which Anthropic refuses (LiteLLM _valid_user_id).
//   - Thinking blocks and server-tool blocks in answers are dropped.
//   - An assistant tool call whose arguments are not a JSON object is a
//     400: replacing them with {} would silently rewrite the history the
//     model reads. Empty arguments (or null) are sent as {}.
//   - Tool call ids are made to fit Anthropic's ^[a-zA-Z0-9_-]+$ by turning
//     other characters into '_' (the same way in tool_use and tool_result,
//     so the pairs still match).
//   - cache_control on a content part is passed through (prompt caching).
var anthropic = register(&Provider{
	Name:           Anthropic,
	DefaultBaseURL: "https://api.anthropic.com",
	KeyPrefixes:    []string{"sk-ant-admin01-", "sk-ant-api03-", "sk-ant-"},
	AuthHeader:     "X-Api-Key",
	Implemented:    true,
	build:          buildAnthropic,
	test:           testAnthropic,
	response:       anthropicResponse,
	stream:         newAnthropicStream,
	classify:       classifyAnthropic,
	speaks:         func(api string, _ Endpoint) bool { return api == MessagesDoor.API },
})

// AnthropicVersion is the anthropic-version header every request carries.
const AnthropicVersion = "2023-06-01"

// --- request build ---

func buildAnthropic(ctx context.Context, c *Call) (*http.Request, error) {
	if c.Op != OpChat {
		return nil, badRequest("anthropic does not serve %s", c.Op)
	}
	body, err := anthropicRequestBody(c)
	if err != nil {
		return nil, err
	}
	// A base URL configured OpenAI-style, ending in /v1, still works.
	u := c.Endpoint.BaseURL
	if strings.HasSuffix(u, "/v1") {
		u += "/messages"
	} else {
		u += "/v1/messages"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["X-Api-Key"] = []string{c.Key}
	req.Header["Anthropic-Version"] = []string{AnthropicVersion}
	req.Header["Content-Type"] = []string{"application/json"}
	return req, nil
}

// anthropicRequestBody translates the hub request to a Messages request
// (providers.md §12.1).
func anthropicRequestBody(c *Call) ([]byte, error) {
	r, err := c.chatRequest()
	if err != nil {
		return nil, err
	}
	if r.N != nil && *r.N > 1 {
		return nil, badRequest("anthropic answers one choice: n must be 1")
	}
	out := antRequest{Model: c.Model, Stream: c.Stream || r.Stream}

	// max_tokens is required: the client's, at most the model's maximum
	// (Anthropic refuses more), else the model's maximum bounded by the
	// operator's default_max_tokens (limits.go).
	n := defaultOutput(c.Model, c.DefaultMaxTokens)
	if r.MaxCompletionTokens != nil || r.MaxTokens != nil {
		if n = r.MaxOutputTokens(); n < 1 {
			return nil, badRequest("max_tokens must be at least 1")
		}
		n = clampOutput(c.Model, n)
	}
	out.MaxTokens = &n
	if r.Temperature != nil {
		t := min(*r.Temperature, 1)
		out.Temperature = &t
	} else if r.TopP != nil {
		out.TopP = r.TopP
	}
	for _, s := range r.Stop {
		if strings.TrimSpace(s) != "" {
			out.StopSequences = append(out.StopSequences, s)
		}
	}
	if r.User != "" && !antPersonalUserID(r.User) {
		out.Metadata = &antMetadata{UserID: r.User}
	}

	if err := anthropicTools(r, &out); err != nil {
		return nil, err
	}
	if err := anthropicWebSearch(c, r, &out); err != nil {
		return nil, err
	}
	if err := anthropicMessages(r.Messages, &out); err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// antPersonalUserID tells whether user looks like an email address or a phone
// number: Anthropic's metadata.user_id must be an opaque id.
func antPersonalUserID(user string) bool {
	if strings.Contains(user, "@") {
		return true
	}
	digits := 0
	for _, ch := range user {
		switch {
		case ch >= '0' && ch <= '9':
			digits++
		case strings.ContainsRune("+-() .", ch):
		default:
			return false
		}
	}
	return digits >= 7
}

func anthropicTools(r *ChatRequest, out *antRequest) error {
	for i, t := range r.Tools {
		if t.Type != "function" && t.Type != "" {
			return badRequest("tools[%d]: anthropic supports only function tools", i)
		}
		if t.Function.Name == "" {
			return badRequest("tools[%d]: function.name is required", i)
		}
		schema := bytes.TrimSpace(t.Function.Parameters)
		if len(schema) == 0 || bytes.Equal(schema, []byte("null")) {
			schema = []byte(`{"type":"object","properties":{}}`)
		} else if schema[0] != '{' {
			return badRequest("tools[%d]: function.parameters must be a JSON schema object", i)
		}
		out.Tools = append(out.Tools, antTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}

	mode, name := ToolChoiceMode(r.ToolChoice)
	var tc antToolChoice
	switch mode {
	case "":
		if raw := bytes.TrimSpace(r.ToolChoice); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
			return badRequest("unsupported tool_choice: use \"none\", \"auto\", \"required\" or a function")
		}
		tc.Type = "auto"
	case "auto":
		tc.Type = "auto"
	case "none":
		tc.Type = "none"
	case "required":
		tc.Type = "any"
	case "function":
		tc.Type, tc.Name = "tool", name
	default:
		return badRequest("unsupported tool_choice: use \"none\", \"auto\", \"required\" or a function")
	}
	// Without tools a tool_choice means nothing, and Anthropic refuses it.
	if len(out.Tools) == 0 {
		return nil
	}
	// parallel_tool_calls: false is Anthropic's inverse flag (LiteLLM
	// _map_tool_choice); it does not apply to "none".
	if r.parallelOff() && tc.Type != "none" {
		tc.DisableParallelToolUse = true
	}
	if mode != "" || tc.DisableParallelToolUse {
		out.ToolChoice = &tc
	}
	return nil
}

// anthropicWebSearch adds the web search server tool for
// web_search_options (allowed domains and the user's approximate location
// carry over; search_context_size has no equivalent). A client function
// already named web_search would clash with it: then search is left out
// and the call says so.
func anthropicWebSearch(c *Call, r *ChatRequest, out *antRequest) error {
	ws, err := r.WebSearch()
	if err != nil || ws == nil {
		return err
	}
	for _, t := range out.Tools {
		if t.Name == antWebSearchName {
			c.omit("web_search")
			return nil
		}
	}
	t := antTool{Type: antWebSearchType, Name: antWebSearchName}
	if ws.Filters != nil {
		t.AllowedDomains = ws.Filters.AllowedDomains
	}
	if ul := ws.UserLocation; ul != nil {
		a := ul.Approximate
		if a.City != "" || a.Region != "" || a.Country != "" || a.Timezone != "" {
			t.UserLocation = &antUserLocation{Type: "approximate", City: a.City, Region: a.Region, Country: a.Country, Timezone: a.Timezone}
		}
	}
	out.Tools = append(out.Tools, t)
	return nil
}

// anthropicMessages fills system and messages: system and developer
// messages become system blocks; tool results become user messages;
// consecutive messages of one role are merged, as Anthropic wants them to
// alternate.
func anthropicMessages(msgs []ChatMessage, out *antRequest) error {
	for i := range msgs {
		m := &msgs[i]
		parts, err := m.Parts()
		if err != nil {
			return badRequest("messages[%d]: content must be a string or an array of parts", i)
		}
		if m.Role == "system" || m.Role == "developer" {
			for _, p := range parts {
				if p.Type != "text" {
					return badRequest("messages[%d]: %s messages may contain only text", i, m.Role)
				}
				if b, ok := antTextBlock(p); ok {
					out.System.blocks = append(out.System.blocks, b)
				}
			}
			continue
		}
		role, blocks, err := antMessageBlocks(i, m, parts)
		if err != nil {
			return err
		}
		if len(blocks) == 0 {
			continue // Anthropic refuses empty messages
		}
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == role {
			out.Messages[n-1].Content.blocks = append(out.Messages[n-1].Content.blocks, blocks...)
		} else {
			out.Messages = append(out.Messages, antMessage{Role: role, Content: antBlocks(blocks...)})
		}
	}
	if len(out.Messages) == 0 {
		return badRequest("anthropic needs at least one user or assistant message with content")
	}
	// In a user message, tool results must come before anything else.
	for i := range out.Messages {
		if out.Messages[i].Role == "user" {
			antToolResultsFirst(out.Messages[i].Content.blocks)
		}
	}
	return nil
}

// antMessageBlocks translates message i (of a user, assistant or tool) to
// the role and blocks of an Anthropic message.
func antMessageBlocks(i int, m *ChatMessage, parts []ContentPart) (role string, blocks []antBlock, err error) {
	switch m.Role {
	case "user":
		if blocks, err = antUserBlocks(parts); err != nil {
			return "", nil, badRequest("messages[%d]: %v", i, err)
		}
		return "user", blocks, nil
	case "assistant":
		for _, p := range parts {
			switch p.Type {
			case "text":
				if b, ok := antTextBlock(p); ok {
					blocks = append(blocks, b)
				}
			case "refusal":
				if p.Refusal != "" {
					blocks = append(blocks, antBlock{Type: "text", Text: p.Refusal})
				}
			default:
				return "", nil, badRequest("messages[%d]: assistant content part type %q is not supported", i, p.Type)
			}
		}
		for j, tc := range m.ToolCalls {
			b, err := antToolUse(tc)
			if err != nil {
				return "", nil, badRequest("messages[%d].tool_calls[%d]: %v", i, j, err)
			}
			blocks = append(blocks, b)
		}
		return "assistant", blocks, nil
	case "tool":
		if m.ToolCallID == "" {
			return "", nil, badRequest("messages[%d]: tool messages need a tool_call_id", i)
		}
		inner, err := antUserBlocks(parts)
		if err != nil {
			return "", nil, badRequest("messages[%d]: %v", i, err)
		}
		return "user", []antBlock{{Type: "tool_result", ToolUseID: antToolID(m.ToolCallID), Content: antBlocks(inner...)}}, nil
	}
	return "", nil, badRequest("messages[%d]: role %q is not supported", i, m.Role)
}

func antToolResultsFirst(blocks []antBlock) {
	k := 0
	for i := range blocks {
		if blocks[i].Type == "tool_result" {
			b := blocks[i]
			copy(blocks[k+1:i+1], blocks[k:i])
			blocks[k] = b
			k++
		}
	}
}

// antTextBlock turns a text part into a text block; empty text gives none
// (Anthropic refuses empty text blocks).
func antTextBlock(p ContentPart) (antBlock, bool) {
	if p.Text == "" {
		return antBlock{}, false
	}
	return antBlock{Type: "text", Text: p.Text, CacheControl: antCacheControl(p.CacheControl)}, true
}

func antCacheControl(raw json.RawMessage) json.RawMessage {
	if r := bytes.TrimSpace(raw); len(r) > 0 && r[0] == '{' {
		return r
	}
	return nil
}

// antUserBlocks translates the parts of a user (or tool) message.
func antUserBlocks(parts []ContentPart) ([]antBlock, error) {
	var blocks []antBlock
	for _, p := range parts {
		switch p.Type {
		case "text":
			if b, ok := antTextBlock(p); ok {
				blocks = append(blocks, b)
			}
		case "image_url":
			b, err := antImage(p)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, b)
		default:
			return nil, fmt.Errorf("content part type %q is not supported by anthropic", p.Type)
		}
	}
	return blocks, nil
}

// antImage turns an image_url part into an image block: a data URL is sent
// inline (a PDF as a document block), an http(s) URL by reference.
func antImage(p ContentPart) (antBlock, error) {
	u, ok := p.URL()
	if !ok {
		return antBlock{}, fmt.Errorf("image_url must be an object with a url")
	}
	cc := antCacheControl(p.CacheControl)
	if strings.HasPrefix(u, "data:") {
		mediaType, data, ok := splitDataURL(u)
		if !ok {
			return antBlock{}, fmt.Errorf("an image data URL must be data:<media type>;base64,<data>")
		}
		typ := "image"
		if mediaType == "application/pdf" {
			typ = "document"
		}
		return antBlock{Type: typ, Source: &antSource{Type: "base64", MediaType: mediaType, Data: data}, CacheControl: cc}, nil
	}
	lower := strings.ToLower(u)
	if !strings.HasPrefix(lower, "https://") && !strings.HasPrefix(lower, "http://") {
		return antBlock{}, fmt.Errorf("an image URL must be http(s) or a base64 data URL")
	}
	return antBlock{Type: "image", Source: &antSource{Type: "url", URL: u}, CacheControl: cc}, nil
}

// antToolUse turns an assistant's tool call into a tool_use block whose
// input is the parsed arguments.
func antToolUse(tc ToolCall) (antBlock, error) {
	if tc.ID == "" {
		return antBlock{}, fmt.Errorf("id is required")
	}
	if tc.Function.Name == "" {
		return antBlock{}, fmt.Errorf("function.name is required")
	}
	args := bytes.TrimSpace([]byte(tc.Function.Arguments))
	switch {
	case len(args) == 0 || bytes.Equal(args, []byte("null")):
		args = []byte("{}")
	case args[0] != '{' || !json.Valid(args):
		return antBlock{}, fmt.Errorf("function.arguments must be a JSON object")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, args); err != nil {
		return antBlock{}, fmt.Errorf("function.arguments must be a JSON object")
	}
	return antBlock{Type: "tool_use", ID: antToolID(tc.ID), Name: tc.Function.Name, Input: compact.Bytes()}, nil
}

// --- response and stream translation ---

// anthropicResponse translates a Messages answer to a chat.completion. Its
// id is the call's; Anthropic's msg_ id stays in the provider's own logs.
func anthropicResponse(c *Call, body []byte) ([]byte, Usage, error) {
	if !ValidJSON(body) {
		return nil, Usage{}, fmt.Errorf("anthropic answered with invalid JSON")
	}
	res := gjson.GetManyBytes(body, "type", "model", "content", "stop_reason", "usage")
	if res[0].Str == "error" {
		msg := ErrorMessage(body)
		return nil, Usage{}, fmt.Errorf("anthropic answered with an error: %s", msg)
	}
	model := res[1].String()
	if model == "" {
		model = c.Model
	}
	var text strings.Builder
	var calls []ToolCall
	for _, b := range res[2].Array() {
		switch b.Get("type").String() {
		case "text":
			text.WriteString(b.Get("text").String())
		case "tool_use":
			args := "{}"
			if in := b.Get("input"); in.Exists() && in.Type != gjson.Null {
				var buf bytes.Buffer
				if json.Compact(&buf, []byte(in.Raw)) == nil {
					args = buf.String()
				}
			}
			calls = append(calls, ToolCall{ID: b.Get("id").String(), Type: "function",
				Function: FunctionCall{Name: b.Get("name").String(), Arguments: args}})
		}
		// thinking, redacted_thinking and server-tool blocks are dropped.
	}
	msg := ResponseMessage{Role: "assistant", ToolCalls: calls}
	if text.Len() > 0 || len(calls) == 0 {
		msg.Content = Str(text.String())
	}
	u := anthropicUsage(res[4])
	out, err := newCompletion(c, model, msg, anthropicFinish(res[3].String()), u)
	return out, u, err
}

// anthropicStream turns Anthropic's typed event stream into chunks
// (providers.md §12.4).
type anthropicStream struct {
	c     *Call
	model string
	usage antStreamUsage
	// tools maps a content block's index to its tool call's index, for
	// tool_use blocks; argsSent tells whether a tool got any arguments.
	tools    map[int64]int
	argsSent []bool
	roleSent bool
	finished bool // the finish chunk went out
	done     bool // message_stop arrived
}

func newAnthropicStream(c *Call) StreamTranslator {
	return &anthropicStream{c: c, model: c.Model, tools: map[int64]int{}}
}

func (s *anthropicStream) chunk(dst []byte, d ChunkDelta, finish string) []byte {
	if !s.roleSent {
		s.roleSent = true
		if d.Role == "" {
			dst = appendChunk(dst, s.c, s.model, ChunkDelta{Role: "assistant", Content: Str("")}, "")
		}
	}
	return appendChunk(dst, s.c, s.model, d, finish)
}

func (s *anthropicStream) Event(dst []byte, ev Event) ([]byte, error) {
	if s.done {
		return dst, nil
	}
	if !ValidJSON(ev.Data) {
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_invalid", Message: "the provider sent an invalid stream event"}
	}
	typ := gjson.GetBytes(ev.Data, "type").String()
	if typ == "" {
		typ = string(ev.Name)
	}
	if typ == "error" || string(ev.Name) == "error" {
		return dst, anthropicStreamError(ev.Data)
	}
	switch typ {
	case "message_start":
		m := gjson.GetBytes(ev.Data, "message")
		if model := m.Get("model").String(); model != "" {
			s.model = model
		}
		s.usage.add(m.Get("usage"))
		if !s.roleSent {
			s.roleSent = true
			dst = appendChunk(dst, s.c, s.model, ChunkDelta{Role: "assistant", Content: Str("")}, "")
		}
	case "content_block_start":
		res := gjson.GetManyBytes(ev.Data, "index", "content_block.type", "content_block.text", "content_block.id", "content_block.name")
		switch res[1].Str {
		case "text":
			if res[2].Str != "" {
				dst = s.chunk(dst, ChunkDelta{Content: Str(res[2].Str)}, "")
			}
		case "tool_use":
			i := len(s.argsSent)
			s.tools[res[0].Int()] = i
			s.argsSent = append(s.argsSent, false)
			dst = s.chunk(dst, ChunkDelta{ToolCalls: []ToolCall{{Index: &i, ID: res[3].Str, Type: "function",
				Function: FunctionCall{Name: res[4].Str}}}}, "")
		}
	case "content_block_delta":
		res := gjson.GetManyBytes(ev.Data, "index", "delta.type", "delta.text", "delta.partial_json")
		switch res[1].Str {
		case "text_delta":
			if res[2].Str != "" {
				dst = s.chunk(dst, ChunkDelta{Content: Str(res[2].Str)}, "")
			}
		case "input_json_delta":
			if i, ok := s.tools[res[0].Int()]; ok && res[3].Str != "" {
				s.argsSent[i] = true
				dst = s.chunk(dst, ChunkDelta{ToolCalls: []ToolCall{{Index: &i, Function: FunctionCall{Arguments: res[3].Str}}}}, "")
			}
		}
		// thinking_delta, signature_delta, citations_delta are dropped.
	case "content_block_stop":
		// A tool called without input sent no fragment: its arguments are {}.
		if i, ok := s.tools[gjson.GetBytes(ev.Data, "index").Int()]; ok && !s.argsSent[i] {
			s.argsSent[i] = true
			dst = s.chunk(dst, ChunkDelta{ToolCalls: []ToolCall{{Index: &i, Function: FunctionCall{Arguments: "{}"}}}}, "")
		}
	case "message_delta":
		res := gjson.GetManyBytes(ev.Data, "delta.stop_reason", "usage")
		s.usage.add(res[1])
		if res[0].Type == gjson.String && !s.finished {
			s.finished = true
			dst = s.chunk(dst, ChunkDelta{}, anthropicFinish(res[0].Str))
		}
	case "message_stop":
		s.done = true
		if !s.finished {
			s.finished = true
			dst = s.chunk(dst, ChunkDelta{}, "stop")
		}
		if s.c.IncludeUsage {
			dst = appendUsageChunk(dst, s.c, s.model, s.Usage())
		}
		dst = appendDone(dst, s.c)
	}
	// ping and unknown events add nothing.
	return dst, nil
}

func (s *anthropicStream) End(dst []byte) ([]byte, error) {
	if !s.done {
		return dst, errIncomplete("answer")
	}
	return dst, nil
}

func (s *anthropicStream) Usage() Usage { return s.usage.usage() }

// --- error classes ---

// classifyAnthropic: a 429 is a rate limit only with a retry-after; without
// one it is the monthly spend cap (error.details.error_code
// enforced_spend_limit_reached), which waiting does not fix. A 400 that
// says the credit balance is too low, or that a self-set spend limit was
// reached, is quota too (platform.claude.com/docs/en/api/errors).
func classifyAnthropic(status int, h http.Header, body []byte) string {
	switch status {
	case 529:
		return ClassOverloaded
	case 429:
		if gjson.GetBytes(body, "error.details.error_code").String() == "enforced_spend_limit_reached" {
			return ClassQuota
		}
		if h.Get("Retry-After") != "" {
			return ClassRateLimit
		}
		return ClassQuota
	case 400:
		msg := strings.ToLower(gjson.GetBytes(body, "error.message").String())
		if strings.Contains(msg, "credit balance is too low") || strings.Contains(msg, "api usage limits") || strings.Contains(msg, "spend limit") {
			return ClassQuota
		}
		return ClassBadRequest
	}
	if typ := gjson.GetBytes(body, "error.type").String(); typ == "overloaded_error" {
		return ClassOverloaded
	}
	return ""
}

// testAnthropic: GET /v1/models (a base URL ending in /v1 works too, as
// for messages), x-api-key and anthropic-version.
func testAnthropic(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	u := ep.BaseURL
	if strings.HasSuffix(u, "/v1") {
		u += "/models"
	} else {
		u += "/v1/models"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header["X-Api-Key"] = []string{key}
	req.Header["Anthropic-Version"] = []string{AnthropicVersion}
	return req, nil
}
