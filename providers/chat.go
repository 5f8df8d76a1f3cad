package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// OpenAI chat-completions types shared by the translating adapters
// (Anthropic, Gemini, Cohere). OpenAI-shaped providers never decode bodies:
// they are forwarded as bytes.

// ChatRequest is the part of an OpenAI chat-completions request the
// translators read. Unknown fields are ignored.
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
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  []ToolCall      `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// ContentPart is one element of an array content.
type ContentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image part's URL: http(s) or a data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// Parts returns the message content as parts: a string becomes one text
// part; null or absent content gives none.
func (m *ChatMessage) Parts() ([]ContentPart, error) {
	c := bytes.TrimSpace(m.Content)
	if len(c) == 0 || bytes.Equal(c, []byte("null")) {
		return nil, nil
	}
	if c[0] == '"' {
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return nil, err
		}
		return []ContentPart{{Type: "text", Text: s}}, nil
	}
	var parts []ContentPart
	if err := json.Unmarshal(c, &parts); err != nil {
		return nil, fmt.Errorf("message content must be a string or an array of parts")
	}
	return parts, nil
}

// Text joins the message's text parts with newlines.
func (m *ChatMessage) Text() (string, error) {
	parts, err := m.Parts()
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	for _, p := range parts {
		if p.Type == "text" {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
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
		return nil, &RequestError{Message: "invalid chat completions request: " + jsonMessage(err)}
	}
	return &r, nil
}

// RequestError is a client request that cannot be translated for the
// provider (a bad or unsupported field). The gateway answers 400 with it,
// before any upstream call.
type RequestError struct {
	Message string
}

func (e *RequestError) Error() string { return e.Message }

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

// --- rendering OpenAI's answers ---

// ChatCompletion is OpenAI's non-streamed answer.
type ChatCompletion struct {
	ID      string           `json:"id"`
	Object  string           `json:"object"`
	Created int64            `json:"created"`
	Model   string           `json:"model"`
	Choices []CompletionItem `json:"choices"`
	Usage   map[string]any   `json:"usage,omitempty"`
}

// CompletionItem is one choice of a ChatCompletion.
type CompletionItem struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason string          `json:"finish_reason"`
}

// ResponseMessage is the assistant's message. Content is null when the
// answer is only tool calls.
type ResponseMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// NewCompletion renders a chat.completion body for c.
func NewCompletion(c *Call, model string, msg ResponseMessage, finish string, u Usage) ([]byte, error) {
	if msg.Role == "" {
		msg.Role = "assistant"
	}
	return json.Marshal(ChatCompletion{
		ID: c.ID, Object: "chat.completion", Created: c.Created, Model: model,
		Choices: []CompletionItem{{Index: 0, Message: msg, FinishReason: finish}},
		Usage:   openAIUsageJSON(u),
	})
}

// ChunkDelta is the delta of a streamed choice.
type ChunkDelta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        ChunkDelta `json:"delta"`
	FinishReason *string    `json:"finish_reason"`
}

type chunk struct {
	ID      string         `json:"id"`
	Object  string         `json:"object"`
	Created int64          `json:"created"`
	Model   string         `json:"model"`
	Choices []chunkChoice  `json:"choices"`
	Usage   map[string]any `json:"usage,omitempty"`
}

// AppendChunk appends one chat.completion.chunk event with a single choice
// (finish "" means none yet).
func AppendChunk(dst []byte, c *Call, model string, delta ChunkDelta, finish string) []byte {
	ch := chunk{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: model,
		Choices: []chunkChoice{{Index: 0, Delta: delta}}}
	if finish != "" {
		ch.Choices[0].FinishReason = &finish
	}
	return appendEvent(dst, ch)
}

// AppendUsageChunk appends OpenAI's usage chunk: no choices, the usage.
func AppendUsageChunk(dst []byte, c *Call, model string, u Usage) []byte {
	return appendEvent(dst, chunk{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: model,
		Choices: []chunkChoice{}, Usage: openAIUsageJSON(u)})
}

// AppendDone appends the closing "data: [DONE]" event.
func AppendDone(dst []byte) []byte { return append(dst, doneEvent...) }

func appendEvent(dst []byte, v any) []byte {
	b, _ := json.Marshal(v)
	dst = append(dst, "data: "...)
	dst = append(dst, b...)
	return append(dst, "\n\n"...)
}

// Str returns a pointer to s, for optional string fields.
func Str(s string) *string { return &s }
