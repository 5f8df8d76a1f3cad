package providers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/tidwall/gjson"
)

// Call is one upstream call: what the client asked for, and the credential
// and endpoint it goes out with.
type Call struct {
	Op       Operation
	Endpoint Endpoint
	// Key is the provider key; it goes in the provider's auth header only.
	Key string
	// Model is the upstream model name.
	Model string
	// Body is the client's OpenAI-shaped JSON body.
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
	// DoorBody is the client's own body when a door translated it (Body is
	// then the chat-completions body the adapter reads).
	DoorBody []byte
	// ResponseID is the id of the response a Responses passthrough
	// created, read from the answer (or its stream) as it is relayed.
	ResponseID string
	// Omitted names what the translation left out of the request because
	// the target has no equivalent ("web_search"): the gateway says so in
	// a response header and in the request log, so nothing is dropped
	// silently.
	Omitted []string
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

// StreamTranslator turns a provider's event stream into OpenAI
// chat.completion.chunk events, one upstream event at a time.
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

// ErrorEvent renders an OpenAI-shaped SSE error event, which the OpenAI SDKs
// raise as an error rather than a quiet finish.
func ErrorEvent(dst []byte, typ, code, message string) []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": typ, "code": code, "param": nil}})
	dst = append(dst, "data: "...)
	dst = append(dst, b...)
	return append(dst, "\n\n"...)
}

var doneEvent = []byte("data: [DONE]\n\n")

// passthroughStream relays an OpenAI-shaped stream event by event. It reads
// usage from whichever chunk carries it, drops the usage-only chunk the
// gateway asked for on its own behalf (when the client did not), turns an
// in-stream error into a StreamError, and always ends with [DONE] (some
// providers, such as Perplexity, omit it).
type passthroughStream struct {
	dropUsageChunk bool
	usage          Usage
	done, finished bool
}

func newPassthroughStream(c *Call) StreamTranslator {
	return &passthroughStream{dropUsageChunk: !c.IncludeUsage}
}

func (p *passthroughStream) Event(dst []byte, ev Event) ([]byte, error) {
	d := ev.Data
	if bytes.Equal(bytes.TrimSpace(d), []byte("[DONE]")) {
		p.done = true
		return dst, nil
	}
	// Cheap byte checks first: most chunks carry neither usage, nor an
	// error, nor a finish reason, and are relayed without a JSON scan.
	// The needles start after the quote: '"' is on every other byte of
	// JSON, and bytes.Index falls back to comparing at every position when
	// the first byte keeps matching; a letter lets it skip ahead.
	if string(ev.Name) == "error" || bytes.Contains(d, []byte(`error"`)) && gjson.GetBytes(d, "error").IsObject() {
		msg := ErrorMessage(d)
		if msg == "" {
			msg = "the provider reported an error in the stream"
		}
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_error", Message: msg}
	}
	if bytes.Contains(d, []byte(`usage"`)) {
		if u := gjson.GetBytes(d, "usage"); u.IsObject() {
			p.usage = openAIUsage(u)
			if p.dropUsageChunk {
				if ch := gjson.GetBytes(d, "choices"); ch.IsArray() && isEmptyArray(ch.Raw) {
					return dst, nil
				}
				// Mistral and Perplexity put usage on the finish chunk
				// unasked: the client did not ask, so it does not get it.
				d = DeleteField(d, "usage")
			}
		}
	}
	if !p.finished && finishReasonSet(d) {
		if fr := gjson.GetBytes(d, "choices.0.finish_reason"); fr.Type == gjson.String && fr.Str != "" {
			p.finished = true
		}
	}
	return appendData(dst, d), nil
}

// finishReasonSet reports whether d may carry a finish_reason string (not
// null): a byte check before the JSON look-up.
func finishReasonSet(d []byte) bool {
	for {
		i := bytes.Index(d, []byte(`finish_reason"`))
		if i < 0 {
			return false
		}
		d = d[i+len(`finish_reason"`):]
		j := 0
		for j < len(d) && (d[j] == ' ' || d[j] == ':' || d[j] == '\t' || d[j] == '\n' || d[j] == '\r') {
			j++
		}
		if j < len(d) && d[j] == '"' {
			return true
		}
	}
}

// appendData frames d as one SSE event. A payload of several lines (the
// reader joins multi-line data with "\n") keeps one "data:" line per line,
// so the client reads back the same payload.
func appendData(dst, d []byte) []byte {
	for {
		dst = append(dst, "data: "...)
		i := bytes.IndexByte(d, '\n')
		if i < 0 {
			dst = append(dst, d...)
			return append(dst, "\n\n"...)
		}
		dst = append(dst, d[:i]...)
		dst = append(dst, '\n')
		d = d[i+1:]
	}
}

func isEmptyArray(raw string) bool {
	for i := 1; i < len(raw)-1; i++ {
		if c := raw[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return len(raw) >= 2
}

func (p *passthroughStream) End(dst []byte) ([]byte, error) {
	if !p.done && !p.finished {
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_incomplete", Message: "the provider's stream ended before the answer was complete"}
	}
	return append(dst, doneEvent...), nil
}

func (p *passthroughStream) Usage() Usage { return p.usage }

// passthroughResponse reads usage from an OpenAI-shaped answer, which is
// relayed unchanged.
func passthroughResponse(_ *Call, body []byte) ([]byte, Usage, error) {
	if !ValidJSON(body) {
		return nil, Usage{}, fmt.Errorf("the provider answered with invalid JSON")
	}
	return body, openAIUsage(gjson.GetBytes(body, "usage")), nil
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
