package providers

import "encoding/json"

// OpenAI's chat completions as the translating adapters write them: the
// answer (chat.completion) and the stream (chat.completion.chunk events).

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

// newCompletion renders a chat.completion body for c with one choice.
func newCompletion(c *Call, model string, msg ResponseMessage, finish string, u Usage) ([]byte, error) {
	return newCompletionChoices(c, model, []CompletionItem{{Index: 0, Message: msg, FinishReason: finish}}, u)
}

// newCompletionChoices renders a chat.completion body for c with the given
// choices (n > 1); a message without a role is the assistant's.
func newCompletionChoices(c *Call, model string, choices []CompletionItem, u Usage) ([]byte, error) {
	for i := range choices {
		if choices[i].Message.Role == "" {
			choices[i].Message.Role = "assistant"
		}
	}
	return json.Marshal(ChatCompletion{
		ID: c.ID, Object: "chat.completion", Created: c.Created, Model: model,
		Choices: choices,
		Usage:   openAIUsageJSON(u),
	})
}

// ChunkDelta is the delta of a streamed choice.
type ChunkDelta struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	Refusal   *string    `json:"refusal,omitempty"`
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

// appendChunk appends one chat.completion.chunk event with a single choice
// (finish "" means none yet).
func appendChunk(dst []byte, c *Call, model string, delta ChunkDelta, finish string) []byte {
	return appendChoiceChunk(dst, c, model, 0, delta, finish)
}

// appendChoiceChunk is appendChunk for the choice at index (n > 1). Through
// a front door (c.sink), the chunk goes to the door's stream as a value
// instead: the door renders it in its own dialect.
func appendChoiceChunk(dst []byte, c *Call, model string, index int, delta ChunkDelta, finish string) []byte {
	if c.sink != nil {
		return c.sink.chunk(dst, model, &delta, finish)
	}
	ch := chunk{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: model,
		Choices: []chunkChoice{{Index: index, Delta: delta}}}
	if finish != "" {
		ch.Choices[0].FinishReason = &finish
	}
	return appendEvent(dst, ch)
}

// appendUsageChunk appends OpenAI's usage chunk: no choices, the usage. A
// door's stream takes the usage at its end (Usage), so it gets an empty
// chunk (which names the model).
func appendUsageChunk(dst []byte, c *Call, model string, u Usage) []byte {
	if c.sink != nil {
		return c.sink.chunk(dst, model, &ChunkDelta{}, "")
	}
	return appendEvent(dst, chunk{ID: c.ID, Object: "chat.completion.chunk", Created: c.Created, Model: model,
		Choices: []chunkChoice{}, Usage: openAIUsageJSON(u)})
}

// appendDone appends the closing "data: [DONE]" event (none for a door's
// stream, whose end is its own).
func appendDone(dst []byte, c *Call) []byte {
	if c.sink != nil {
		return dst
	}
	return append(dst, doneEvent...)
}

var doneEvent = []byte("data: [DONE]\n\n")

func appendEvent(dst []byte, v any) []byte {
	b, _ := json.Marshal(v)
	dst = append(dst, "data: "...)
	dst = append(dst, b...)
	return append(dst, "\n\n"...)
}

// Str returns a pointer to s, for optional string fields.
func Str(s string) *string { return &s }
