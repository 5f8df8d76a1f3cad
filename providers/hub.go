package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

// The hub: a request in OpenAI's chat-completions terms, the one shape
// every translation meets in. A chat-completions client's body is decoded
// into it once, by the first translating adapter that reads it; a front
// door (door_messages.go, door_responses.go) builds it from its own
// request. The translating adapters (Anthropic, Gemini, Cohere) read it as
// values; the OpenAI-shaped hosts get a client's body as sent, or a door's
// hub encoded (Call.wireBody).

// ChatRequest is the hub request: the part of OpenAI's chat completions
// the translators read (unknown fields are ignored), and what a front door
// asked for beyond it (Effort, Search).
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []ChatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Stop                StringList      `json:"stop,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	User                string          `json:"user,omitempty"`

	// Options only some providers take. An adapter that drops one must
	// not refuse a request over its value, so decoding keeps them as sent:
	// the adapters that read one decode it with Opt.Get, and
	// response_format, which each provider reads its own way, stays raw.
	TopK              Opt[*int]       `json:"top_k,omitzero"`
	FrequencyPenalty  Opt[*float64]   `json:"frequency_penalty,omitzero"`
	PresencePenalty   Opt[*float64]   `json:"presence_penalty,omitzero"`
	ReasoningEffort   Opt[string]     `json:"reasoning_effort,omitzero"`
	ParallelToolCalls Opt[bool]       `json:"parallel_tool_calls,omitzero"`
	ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
	// WebSearchOptions asks for the provider's own web search (OpenAI's
	// search models take it as is): Anthropic's adapter turns it into its
	// web search server tool, Gemini's into Google Search grounding.
	WebSearchOptions json.RawMessage `json:"web_search_options,omitempty"`

	// What a front door's client asked for that chat completions has no
	// field for every host takes. The door sets it whatever the provider;
	// each adapter takes what its host can and drops the rest (saying so in
	// Call.Omitted where the client would miss it). Never encoded.
	//
	// Effort is the thinking effort (Messages' thinking, Responses'
	// reasoning.effort): Gemini's adapter reads it as reasoning_effort (a
	// thinking budget); OpenAI-shaped hosts, which may refuse
	// reasoning_effort, never get it.
	Effort string `json:"-"`
	// Search is a web search tool (Responses' web_search): Anthropic's
	// web search tool, Gemini's Google Search grounding, nothing more on
	// Perplexity (its models search anyway); left out elsewhere.
	Search *WebSearch `json:"-"`

	// body is the client's chat-completions body the request was decoded
	// from (nil for a door's).
	body []byte
}

// parallelOff reports whether the request turns parallel tool calls off.
// In a client's body, only a literal false under parallel_tool_calls, that
// exact key, counts (encoding/json would also take "Parallel_Tool_Calls",
// and the last of repeated keys); a door says so with a false.
func (r *ChatRequest) parallelOff() bool {
	if r.body != nil {
		return gjson.GetBytes(r.body, "parallel_tool_calls").Type == gjson.False
	}
	return bytes.Equal(r.ParallelToolCalls.raw, []byte("false"))
}

// WebSearch is a request's web search, as the adapters read it: a door's
// (Search), or web_search_options: OpenAI's fields, and allowed domains.
type WebSearch struct {
	SearchContextSize string             `json:"search_context_size"`
	UserLocation      *WebSearchLocation `json:"user_location"`
	Filters           *WebSearchFilters  `json:"filters"`
	// strictDomains: the allowed domains are the client's limit on what
	// the model may read (a Responses web_search tool's filters), so a
	// host whose search cannot keep to them leaves search out.
	strictDomains bool
}

// WebSearchFilters limit the sites searched.
type WebSearchFilters struct {
	AllowedDomains []string `json:"allowed_domains"`
}

// WebSearchLocation is the user's approximate location, for local results.
type WebSearchLocation struct {
	Type        string `json:"type"`
	Approximate struct {
		City     string `json:"city,omitempty"`
		Country  string `json:"country,omitempty"`
		Region   string `json:"region,omitempty"`
		Timezone string `json:"timezone,omitempty"`
	} `json:"approximate"`
}

// domains returns the allowed domains, if any.
func (ws *WebSearch) domains() []string {
	if ws.Filters == nil {
		return nil
	}
	return ws.Filters.AllowedDomains
}

// WebSearch returns the request's web search: a door's, or
// web_search_options decoded; nil when it has none.
func (r *ChatRequest) WebSearch() (*WebSearch, error) {
	if r.Search != nil {
		return r.Search, nil
	}
	raw := bytes.TrimSpace(r.WebSearchOptions)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var ws WebSearch
	if err := decodeField("web_search_options", raw, &ws); err != nil {
		return nil, err
	}
	return &ws, nil
}

// Opt is a request field that only some providers read. Decoding keeps
// the client's JSON value and never fails on it, so a provider that drops
// the field takes any value, as if ChatRequest had no such field; Get
// decodes it as a T for a provider that reads it.
type Opt[T any] struct {
	raw json.RawMessage
}

// UnmarshalJSON keeps the value as sent.
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	o.raw = append(o.raw[:0], b...)
	return nil
}

// MarshalJSON writes the value as sent (null when absent).
func (o Opt[T]) MarshalJSON() ([]byte, error) {
	if len(o.raw) == 0 {
		return []byte("null"), nil
	}
	return o.raw, nil
}

// IsZero reports an absent field, which encodes as nothing (omitzero).
func (o Opt[T]) IsZero() bool { return len(o.raw) == 0 }

// optOf is the option set to v, as a door sets one.
func optOf[T any](v T) Opt[T] {
	b, _ := json.Marshal(v)
	return Opt[T]{raw: b}
}

// Get returns the value: the zero T when the field is absent or null. A
// value that is not a T is a RequestError worded as decoding the whole body
// would word it; field is the field's name in the body.
func (o Opt[T]) Get(field string) (T, error) {
	var v T
	err := decodeField(field, o.raw, &v)
	return v, err
}

// decodeField decodes raw, a value the request keeps undecoded, into v. A
// value of the wrong type is a RequestError worded as decoding the whole
// body would word it: field is raw's path in the body, as encoding/json
// names it ("messages.tool_calls.extra_content"). Absent (empty) raw leaves
// v as it is.
func decodeField(field string, raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	err := json.Unmarshal(raw, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errorsAs(err, &te) {
		at := *te
		at.Field = field
		if te.Field != "" {
			at.Field += "." + te.Field
		}
		err = &at
	}
	return badRequest("invalid chat completions request: %s", jsonMessage(err))
}

// StreamOptions is OpenAI's stream_options.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// MaxOutputTokens returns max_completion_tokens, else max_tokens, else 0.
func (r *ChatRequest) MaxOutputTokens() int {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// ChatMessage is one message. Content is a string, an array of parts, or
// null (an assistant message with only tool calls).
type ChatMessage struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content,omitzero"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// Content is a message's content: a string, an array of parts, or none. A
// client's is kept as sent and read by each adapter into its own part type
// (see decodeContent), so that an adapter refuses only the parts it cannot
// take. A door builds it from values (TextContent, PartsContent), which the
// adapters read as they are, with no JSON in between, and which encode as
// OpenAI's content.
type Content struct {
	raw   json.RawMessage
	text  string
	parts []ContentPart
	kind  contentKind
}

type contentKind uint8

const (
	contentNone contentKind = iota
	contentRaw
	contentText
	contentParts
)

// TextContent is content of one string.
func TextContent(s string) Content { return Content{text: s, kind: contentText} }

// PartsContent is content of parts.
func PartsContent(parts []ContentPart) Content { return Content{parts: parts, kind: contentParts} }

// UnmarshalJSON keeps the content as sent.
func (c *Content) UnmarshalJSON(b []byte) error {
	*c = Content{raw: append(json.RawMessage(nil), b...), kind: contentRaw}
	return nil
}

// MarshalJSON writes the content as OpenAI's: as sent, a string, or parts.
func (c Content) MarshalJSON() ([]byte, error) {
	switch c.kind {
	case contentRaw:
		return c.raw, nil
	case contentText:
		return json.Marshal(c.text)
	case contentParts:
		return json.Marshal(c.parts)
	}
	return []byte("null"), nil
}

// IsZero reports content that is absent (omitzero).
func (c Content) IsZero() bool { return c.kind == contentNone }

// isArray reports content given as an array of parts.
func (c *Content) isArray() bool {
	if c.kind == contentRaw {
		r := bytes.TrimSpace(c.raw)
		return len(r) > 0 && r[0] == '['
	}
	return c.kind == contentParts
}

// ContentPart is one element of an array content. CacheControl is
// Anthropic's prompt caching marker.
type ContentPart struct {
	Type         string          `json:"type"`
	Text         string          `json:"text,omitempty"`
	Refusal      string          `json:"refusal,omitempty"`
	ImageURL     PartURL         `json:"image_url,omitzero"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

// imagePart is an image_url part of a door's content.
func imagePart(url, detail string) ContentPart {
	return ContentPart{Type: "image_url", ImageURL: PartURL{URL: url, Detail: detail, ok: true}}
}

// URL reads image_url given as {"url": ...} or, as some clients send it,
// the bare URL string. ok is false when it is neither (or absent).
func (p *ContentPart) URL() (url string, ok bool) { return p.ImageURL.URL, p.ImageURL.ok }

// PartURL is an image part's image_url: clients send {"url": ...,
// "detail": ...} or the bare URL string. Decoding takes either and never
// fails: an adapter refuses an image part whose URL does not read (ok
// false) and ignores the member anywhere else. It encodes as the object.
type PartURL struct {
	URL    string
	Detail string
	ok     bool
}

// UnmarshalJSON reads the URL as a string or an object.
func (u *PartURL) UnmarshalJSON(b []byte) error {
	*u = PartURL{}
	var s string
	if json.Unmarshal(b, &s) == nil {
		u.URL, u.ok = s, true
		return nil
	}
	var obj ImageURL
	if json.Unmarshal(b, &obj) == nil {
		u.URL, u.Detail, u.ok = obj.URL, obj.Detail, true
	}
	return nil
}

// MarshalJSON writes {"url": ..., "detail": ...}.
func (u PartURL) MarshalJSON() ([]byte, error) {
	return json.Marshal(ImageURL{URL: u.URL, Detail: u.Detail})
}

// IsZero reports an absent (or unreadable) URL (omitzero).
func (u PartURL) IsZero() bool { return !u.ok && u.URL == "" }

// splitDataURL splits a base64 data URL, data:<media type>;base64,<data>,
// into the media type (its parameters left out: data:text/plain;charset=
// utf-8;base64,... is text/plain) and the data: the one rule by which every
// adapter reads an inline image or file. ok is false for any other URL, a
// media type without "/" and empty data included.
func splitDataURL(u string) (mediaType, data string, ok bool) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return "", "", false
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok || data == "" || !strings.HasSuffix(meta, ";base64") {
		return "", "", false
	}
	mediaType, _, _ = strings.Cut(meta, ";")
	if !strings.Contains(mediaType, "/") {
		return "", "", false
	}
	return mediaType, data, true
}

// ImageURL is an image part's URL: http(s) or a data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// Parts returns the message content as parts: a string becomes one text
// part; null or absent content gives none.
func (m *ChatMessage) Parts() ([]ContentPart, error) {
	return decodeContent(m.Content, textPart, func(p ContentPart) ContentPart { return p })
}

// textPart is a text part of s.
func textPart(s string) ContentPart { return ContentPart{Type: "text", Text: s} }

// errContent is the error of content that is neither a string, an array of
// parts, nor null.
var errContent = errors.New("message content must be a string or an array of parts")

// decodeContent reads message content as parts of type P, for an adapter
// that reads parts into its own type: a string becomes the one part
// text(s), a door's part p the part part(p); null or absent content gives
// none. A client's array that does not decode as []P is errContent.
func decodeContent[P any](content Content, text func(string) P, part func(ContentPart) P) ([]P, error) {
	switch content.kind {
	case contentText:
		return []P{text(content.text)}, nil
	case contentParts:
		out := make([]P, len(content.parts))
		for i, p := range content.parts {
			out[i] = part(p)
		}
		return out, nil
	case contentNone:
		return nil, nil
	}
	c := bytes.TrimSpace(content.raw)
	if len(c) == 0 || bytes.Equal(c, []byte("null")) {
		return nil, nil
	}
	if c[0] == '"' {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return nil, errContent
		}
		return []P{text(s)}, nil
	}
	var parts []P
	if err := json.Unmarshal(c, &parts); err != nil {
		return nil, errContent
	}
	return parts, nil
}

// Tool is a function the model may call.
type Tool struct {
	Type     string       `json:"type"`
	Function ToolFunction `json:"function"`
}

// ToolFunction declares a function: its parameters are a JSON schema.
type ToolFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolCall is a call the model made (in a message) or is making (in a
// stream delta, with Index).
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
	// ExtraContent is provider data on the call: Google's OpenAI-compatible
	// endpoint puts Gemini's thought signature there, and clients send it
	// back with the history. Kept raw; only the Gemini adapter reads or
	// writes it.
	ExtraContent json.RawMessage `json:"extra_content,omitempty"`
}

// FunctionCall names the function and carries its arguments as a JSON
// string (possibly partial, in a stream delta).
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// ToolChoiceMode reads tool_choice: "none", "auto", "required", or
// "function" with the function's name.
func ToolChoiceMode(raw json.RawMessage) (mode, function string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, ""
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Function.Name != "" {
		return "function", obj.Function.Name
	}
	return "", ""
}

// StringList accepts a string or an array of strings (OpenAI's stop).
type StringList []string

// UnmarshalJSON accepts "x" or ["x", "y"].
func (l *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*l = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = StringList{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return fmt.Errorf("stop must be a string or an array of strings")
	}
	*l = ss
	return nil
}

// DecodeChatRequest parses a client's chat-completions body.
func DecodeChatRequest(body []byte) (*ChatRequest, error) {
	var r ChatRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, badRequest("invalid chat completions request: %s", jsonMessage(err))
	}
	r.body = body
	return &r, nil
}

// RequestError is a client request that cannot be translated for the
// provider (a bad or unsupported field). The gateway answers 400 with it,
// before any upstream call.
type RequestError struct {
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// badRequest is a RequestError worded with fmt's verbs: the one
// constructor every translation refuses a request with.
func badRequest(format string, args ...any) error {
	return &RequestError{Message: fmt.Sprintf(format, args...)}
}

// jsonMessage keeps decoder errors free of the client's values.
func jsonMessage(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errorsAs(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errorsAs(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	}
	return err.Error()
}
