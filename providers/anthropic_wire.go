package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
)

// Anthropic's Messages API on the wire, in both directions: the adapter
// writes these types for Anthropic's models (anthropic.go), the Messages
// door reads them from Claude Code and the Anthropic SDKs
// (door_messages.go). Each mapping to chat completions stands beside its
// inverse: stop reason and finish reason, usage in and out, error type and
// class (anthropic_wire_test.go holds them together). Sources:
// providers.md §3, §12; frontdoors.md §1, §2; anthropic-sdk-go message.go,
// shared.go.

// --- the request ---

// antRequest is a Messages request. The adapter leaves the door's fields
// (thinking, container, mcp_servers) out; the door reads them to refuse or
// map them.
type antRequest struct {
	Model         string         `json:"model"`
	System        antContent     `json:"system,omitzero"`
	Messages      []antMessage   `json:"messages"`
	MaxTokens     *int           `json:"max_tokens"`
	Temperature   *float64       `json:"temperature,omitempty"`
	TopP          *float64       `json:"top_p,omitempty"`
	StopSequences []string       `json:"stop_sequences,omitempty"`
	Stream        bool           `json:"stream,omitempty"`
	Tools         []antTool      `json:"tools,omitempty"`
	ToolChoice    *antToolChoice `json:"tool_choice,omitempty"`
	Metadata      *antMetadata   `json:"metadata,omitempty"`

	Thinking   *antThinking    `json:"thinking,omitempty"`
	Container  json.RawMessage `json:"container,omitempty"`
	MCPServers json.RawMessage `json:"mcp_servers,omitempty"`
}

type antMessage struct {
	Role    string     `json:"role"`
	Content antContent `json:"content"`
}

// antContent is content as the Messages API takes it: a string (one text
// block) or an array of blocks. The adapter writes blocks. The door reads
// either, and keeps the error of content that is neither until it reads
// that content, so that the error says where it is.
type antContent struct {
	blocks []antBlock
	text   bool // read from a string
	err    error
}

// antBlocks is content of blocks.
func antBlocks(b ...antBlock) antContent { return antContent{blocks: b} }

// UnmarshalJSON reads a string or blocks; null is no content.
func (c *antContent) UnmarshalJSON(b []byte) error {
	*c = antContent{}
	switch b = bytes.TrimSpace(b); {
	case bytes.Equal(b, []byte("null")):
	case len(b) > 0 && b[0] == '"':
		var s string
		if c.err = json.Unmarshal(b, &s); c.err == nil {
			c.blocks, c.text = []antBlock{{Type: "text", Text: s}}, true
		}
	default:
		if c.err = json.Unmarshal(b, &c.blocks); c.err != nil {
			c.blocks = nil
		}
	}
	return nil
}

// MarshalJSON writes the blocks.
func (c antContent) MarshalJSON() ([]byte, error) {
	if c.blocks == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(c.blocks)
}

// IsZero reports content without blocks (omitzero).
func (c antContent) IsZero() bool { return len(c.blocks) == 0 }

// antBlock is one content block: text, image, document, tool_use,
// tool_result (whose content is blocks, and is_error), thinking.
type antBlock struct {
	Type         string          `json:"type"`
	Text         string          `json:"text,omitempty"`
	Source       *antSource      `json:"source,omitempty"`
	ID           string          `json:"id,omitempty"`
	Name         string          `json:"name,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
	ToolUseID    string          `json:"tool_use_id,omitempty"`
	Content      antContent      `json:"content,omitzero"`
	IsError      bool            `json:"is_error,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type antSource struct {
	Type      string `json:"type"` // base64 or url
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// antTool is a client tool (name, description, input_schema) or, with a
// Type, a server tool: web search, which the adapter offers (the door
// refuses every server tool).
type antTool struct {
	Type           string           `json:"type,omitempty"`
	Name           string           `json:"name"`
	Description    string           `json:"description,omitempty"`
	InputSchema    json.RawMessage  `json:"input_schema,omitempty"`
	AllowedDomains []string         `json:"allowed_domains,omitempty"`
	UserLocation   *antUserLocation `json:"user_location,omitempty"`
}

// antUserLocation localises web search results.
type antUserLocation struct {
	Type     string `json:"type"`
	City     string `json:"city,omitempty"`
	Region   string `json:"region,omitempty"`
	Country  string `json:"country,omitempty"`
	Timezone string `json:"timezone,omitempty"`
}

// antWebSearchTool is the web search server tool's version and name
// (docs.claude.com, web search tool): Claude runs the searches itself and
// answers with cited text; the search blocks in its answer are dropped.
const (
	antWebSearchType = "web_search_20250305"
	antWebSearchName = "web_search"
)

type antToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type antMetadata struct {
	UserID string `json:"user_id"`
}

type antThinking struct {
	Type         string `json:"type"`
	BudgetTokens int    `json:"budget_tokens"`
}

// antToolID makes a tool call id fit Anthropic's ^[a-zA-Z0-9_-]+$ by
// turning other characters into '_' (the same way in tool_use and
// tool_result, so the pairs still match).
func antToolID(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, id)
}

// messagesToolID is the tool_use id of a chat tool call in a translated
// answer: its own, made to fit, or one minted from the answer's id when the
// provider gave none.
func messagesToolID(c *Call, id string, i int) string {
	if id == "" {
		return fmt.Sprintf("toolu_%s_%d", antToolID(c.ID), i)
	}
	return antToolID(id)
}

// --- stop reason ↔ finish reason ---

// anthropicFinish maps stop_reason to finish_reason (providers.md §12.2):
// Anthropic's answer in chat terms.
func anthropicFinish(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	default: // end_turn, stop_sequence, pause_turn, or none given
		return "stop"
	}
}

// messagesStopReason maps finish_reason to stop_reason (frontdoors.md
// §2.2): a chat answer in Anthropic's terms, anthropicFinish's inverse.
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

// --- usage in ↔ out ---

// anthropicUsage reads Anthropic's usage object in OpenAI's terms: the
// prompt is all input, cached or not (input_tokens excludes both cache
// counters), and cached_tokens is what was read from the cache
// (providers.md §12.3). Raw keeps the object for billing, which prices
// cache writes by lifetime (cache_creation) and the service tier.
func anthropicUsage(r gjson.Result) Usage {
	if !r.IsObject() {
		return Usage{}
	}
	res := gjson.GetMany(r.Raw, "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
	u := Usage{
		PromptTokens:     antTokenCount(res[0]) + antTokenCount(res[1]) + antTokenCount(res[2]),
		CachedTokens:     antTokenCount(res[1]),
		CompletionTokens: antTokenCount(res[3]),
		Raw:              json.RawMessage(r.Raw),
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// messagesUsage renders usage in Anthropic's terms, anthropicUsage's
// inverse: input_tokens excludes what was read from the cache.
func messagesUsage(u Usage) map[string]any {
	m := map[string]any{"input_tokens": max(u.PromptTokens-u.CachedTokens, 0), "output_tokens": u.CompletionTokens}
	if u.CachedTokens > 0 {
		m["cache_read_input_tokens"] = u.CachedTokens
	}
	return m
}

// antMaxTokenCount bounds one reported count, so that a garbled usage object
// cannot meter a negative or overflowing number of tokens.
const antMaxTokenCount = 1 << 40

func antTokenCount(r gjson.Result) int64 {
	if r.Type != gjson.Number {
		return 0
	}
	return min(max(r.Int(), 0), antMaxTokenCount)
}

// antStreamUsage gathers a stream's usage: message_start gives the input
// side, each message_delta restates the cumulative counts, which win field
// by field (a null does not). It keeps the provider's objects whole, so
// that nothing Anthropic reported is lost for billing: the cache writes by
// lifetime (cache_creation), the service tier, the server tools' use. The
// Messages passthrough reads every Claude Code stream with it, so it
// merges without a map or a second parse.
type antStreamUsage struct {
	objs []string // usage objects as sent, oldest first
}

// add takes one usage object (anything else is ignored).
func (a *antStreamUsage) add(r gjson.Result) {
	if !r.IsObject() {
		return
	}
	if len(a.objs) == 2 {
		// More restatements than Anthropic sends: fold them, so that a
		// long stream keeps two objects.
		a.objs = append(a.objs[:0], string(a.usage().Raw))
	}
	a.objs = append(a.objs, r.Raw)
}

// antField is one member of a usage object.
type antField struct{ key, raw string }

// usage is the stream's usage so far: every field reported, the latest
// value winning, as one object with sorted keys (Raw); none before a field
// has a value.
func (a *antStreamUsage) usage() Usage {
	var scratch [12]antField
	fields := scratch[:0]
	for _, o := range a.objs {
		gjson.Parse(o).ForEach(func(k, v gjson.Result) bool {
			if v.Type == gjson.Null {
				return true
			}
			for i := range fields {
				if fields[i].key == k.Str {
					fields[i].raw = v.Raw
					return true
				}
			}
			fields = append(fields, antField{k.Str, v.Raw})
			return true
		})
	}
	if len(fields) == 0 {
		return Usage{}
	}
	slices.SortFunc(fields, func(x, y antField) int { return strings.Compare(x.key, y.key) })
	n := 2
	for _, f := range fields {
		n += len(f.key) + len(f.raw) + 4
	}
	raw := append(make([]byte, 0, n), '{')
	var input, cacheRead, cacheWrite, output int64
	for i, f := range fields {
		if i > 0 {
			raw = append(raw, ',')
		}
		raw = appendJSONKey(raw, f.key)
		raw = append(raw, f.raw...)
		switch r := gjson.Parse(f.raw); f.key {
		case "input_tokens":
			input = antTokenCount(r)
		case "cache_read_input_tokens":
			cacheRead = antTokenCount(r)
		case "cache_creation_input_tokens":
			cacheWrite = antTokenCount(r)
		case "output_tokens":
			output = antTokenCount(r)
		}
	}
	return Usage{PromptTokens: input + cacheRead + cacheWrite, CachedTokens: cacheRead, CompletionTokens: output,
		TotalTokens: input + cacheRead + cacheWrite + output, Raw: append(raw, '}')}
}

// appendJSONKey appends key as an object member's name and a colon.
func appendJSONKey(dst []byte, key string) []byte {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(key)
			return append(append(dst, b...), ':')
		}
	}
	dst = append(dst, '"')
	dst = append(dst, key...)
	return append(dst, '"', ':')
}

// --- error type ↔ class and status ---

// anthropicErrorClass maps an error.type to a class (providers.md §3.6).
func anthropicErrorClass(typ string) string {
	switch typ {
	case "overloaded_error":
		return ClassOverloaded
	case "rate_limit_error":
		return ClassRateLimit
	case "billing_error":
		return ClassQuota
	case "authentication_error", "permission_error":
		return ClassAuth
	case "invalid_request_error", "not_found_error", "request_too_large":
		return ClassBadRequest
	case "timeout_error":
		return ClassTimeout
	default: // api_error and anything new
		return ClassServer
	}
}

// anthropicErrorType is Anthropic's error.type for an HTTP status
// (providers.md §3.6, frontdoors.md §1.7), for the gateway's own errors.
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

// anthropicStreamError reads an error event,
// {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}.
func anthropicStreamError(data []byte) *StreamError {
	typ := gjson.GetBytes(data, "error.type").String()
	msg := ErrorMessage(data)
	if msg == "" {
		msg = "the provider reported an error in the stream"
	}
	code := typ
	if code == "" {
		code = "upstream_stream_error"
	}
	return &StreamError{Class: anthropicErrorClass(typ), Code: code, Message: msg}
}

// anthropicErrorEvent is the event that ends a failed stream,
// anthropicStreamError's inverse: a code that is one of Anthropic's error
// types is the event's type; any other (the gateway's) leads the message
// of an api_error.
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
