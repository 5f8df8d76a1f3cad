package providers

import (
	"encoding/json"
	"net/http"
)

// Call is one upstream call: what the client asked for, and the credential
// and endpoint it goes out with. It carries the request through the
// translation (the hub, decoded once) and, for a front door, the door's
// state from the request to the answer.
type Call struct {
	Op       Operation
	Endpoint Endpoint
	// Key is the provider key; it goes in the provider's auth header only.
	Key string
	// Model is the upstream model name.
	Model string
	// Body is the client's JSON body as sent: chat completions (or
	// embeddings), or a front door's own request.
	Body []byte
	// Stream and IncludeUsage are what the client asked for
	// ("stream": true, "stream_options": {"include_usage": true}).
	Stream       bool
	IncludeUsage bool
	// DefaultMaxTokens bounds the output limit sent to providers that
	// require one (Anthropic) when the client gave none: the model's
	// maximum, at most this (0: no bound; see defaultOutput).
	DefaultMaxTokens int
	// ID and Created identify translated responses and chunks
	// ("chatcmpl-..."), stable across one response.
	ID      string
	Created int64
	// Door is the front door the client came in by (nil: chat completions
	// or embeddings), and Header the client's request headers, which a
	// door's passthrough reads (anthropic-version, anthropic-beta).
	Door   *Door
	Header http.Header
	// Query is the client's raw query string, which a door's passthrough
	// forwards (Claude Code calls /v1/messages?beta=true) without the
	// parameters that may carry a credential (see ForwardQuery).
	Query string
	// Native is set by NewCallRequest for a call through a door: true when
	// the provider speaks the door's shape and the body passes through.
	Native bool
	// ResponseID is the id of the response a Responses passthrough
	// created, read from the answer (or its stream) as it is relayed.
	ResponseID string
	// Omitted names what the translation left out of the request because
	// the target has no equivalent ("web_search"): the gateway says so in
	// a response header and in the request log, so nothing is dropped
	// silently.
	Omitted []string

	// chat is the hub request, decoded at most once: a door's translation
	// builds it; for a chat-completions call the first adapter that reads
	// it decodes Body (chatRequest).
	chat *ChatRequest
	// respTools are the Responses door's tools as offered to the model, to
	// read the answer's calls back as the client's tools.
	respTools *respTools
	// sink takes the chunks of a door's translated stream as values (see
	// appendChunk): the door's stream renders them in its own dialect.
	sink chunkSink
}

// omit records that the translation left what out (once).
func (c *Call) omit(what string) {
	for _, o := range c.Omitted {
		if o == what {
			return
		}
	}
	c.Omitted = append(c.Omitted, what)
}

// chatRequest returns the hub request: a door's, or the client's
// chat-completions body, decoded on the first call.
func (c *Call) chatRequest() (*ChatRequest, error) {
	if c.chat == nil {
		r, err := DecodeChatRequest(c.Body)
		if err != nil {
			return nil, err
		}
		c.chat = r
	}
	return c.chat, nil
}

// wireBody is the chat-completions body an OpenAI-shaped host receives: the
// client's own body as sent, or a door's hub request encoded.
// What only the translating adapters read (Effort, Search) stays out; a
// door's web search is reported left out unless the host's models search
// on every request (searches).
func (c *Call) wireBody(searches bool) ([]byte, error) {
	r := c.doorHub()
	if r == nil {
		return c.Body, nil
	}
	if r.Search != nil && !searches {
		c.omit("web_search")
	}
	return json.Marshal(r)
}

// doorHub is the hub request a door built, nil for a client's own body.
func (c *Call) doorHub() *ChatRequest {
	if c.chat == nil || c.chat.body != nil {
		return nil
	}
	return c.chat
}

// StreamTranslator turns a provider's event stream into OpenAI
// chat.completion.chunk events (or, for a front door, the door's events),
// one upstream event at a time.
type StreamTranslator interface {
	// Event appends to dst the SSE bytes the client should receive for one
	// upstream event (possibly none). A *StreamError means the provider
	// reported a failure inside the stream.
	Event(dst []byte, ev Event) ([]byte, error)
	// End appends what follows the last upstream event: a final chunk if
	// one is owed, the usage chunk when the client asked for it, and
	// "data: [DONE]". It returns a *StreamError when the upstream stream
	// ended before it was complete.
	End(dst []byte) ([]byte, error)
	// Usage is the usage reported so far.
	Usage() Usage
}

// StreamError is a failure reported inside an event stream, or a stream
// that ended early. The gateway sends it to the client as an OpenAI-shaped
// error event.
type StreamError struct {
	Class   string
	Code    string
	Message string
}

func (e *StreamError) Error() string { return e.Message }

// errIncomplete is the StreamError of a stream that ended before the
// answer (what names it: "answer", "response") was complete.
func errIncomplete(what string) *StreamError {
	return &StreamError{Class: ClassServer, Code: "upstream_stream_incomplete", Message: "the provider's stream ended before the " + what + " was complete"}
}

// ErrorEvent renders an OpenAI-shaped SSE error event, which the OpenAI SDKs
// raise as an error rather than a quiet finish.
func ErrorEvent(dst []byte, typ, code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": typ, "code": code, "param": nil}})
	dst = append(dst, "data: "...)
	dst = append(dst, b...)
	return append(dst, "\n\n"...)
}
