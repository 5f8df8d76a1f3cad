package providers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// A Door is a front door: an API shape the gateway serves besides OpenAI's
// chat completions (reference/frontdoors.md). Every door joins the same
// pipeline (authentication, routing plan, credential choice, attempts,
// relay, record); what differs is decided here, per resolved provider:
//
//   - passthrough, when the provider speaks the door's API natively (its
//     Provider.speaks says so: Anthropic behind /v1/messages; OpenAI and
//     Azure's v1 API behind /v1/responses): the body goes upstream as bytes
//     with only "model" rewritten, and the answer comes back as bytes, usage
//     read on the way;
//   - translation otherwise: the door's request becomes the hub request
//     (a ChatRequest) for the provider's own adapter, and the adapter's
//     answer becomes the door's answer, or its chunks (as values, see
//     doorStream) the door's events.
//
// A door never asks which provider is behind it: it translates what its
// client asked for, and each adapter drops what its host cannot take. A
// Door also words the gateway's own errors in the door's envelope.
type Door struct {
	// API names the door in logs, usage and metrics: "messages",
	// "responses".
	API string
	// Path is the endpoint's path, for messages ("/v1/messages").
	Path string
	// IDPrefix starts the ids of translated answers ("msg_", "resp_"); the
	// gateway's request id follows.
	IDPrefix string
	// FinalStatus is the status the door's clients take as final, for an
	// answer no retry can change (an account's own provider key refused):
	// each agent retries different statuses. Claude Code sends up to six
	// requests for a 400 (its recovery variants) and stops at a 424; Codex
	// retries every status but 400 (and 401, 429), five times. 0: 400.
	FinalStatus int

	// nativeBuild makes the passthrough request.
	nativeBuild func(ctx context.Context, p *Provider, c *Call) (*http.Request, error)
	// nativeResponse reads usage from a passthrough answer (relayed as is).
	nativeResponse func(c *Call, body []byte) ([]byte, Usage, error)
	// nativeStream relays a passthrough stream event by event.
	nativeStream func(c *Call) StreamTranslator
	// toChat translates the door's request (c.Body) into the hub request,
	// or a *RequestError for what cannot be expressed; it may keep what
	// the answer's translation needs on c. provider names the host in
	// those errors: the translation itself never depends on it.
	toChat func(c *Call, provider string) (*ChatRequest, error)
	// fromChat translates a chat.completion into the door's answer.
	fromChat func(c *Call, chat []byte) ([]byte, error)
	// events renders a translated stream in the door's dialect.
	events func(c *Call) doorEvents
	// untranslated words the refusal of a model whose provider does not
	// speak the door's API, for a door without a translation (toChat
	// nil); provider is the provider's name.
	untranslated func(provider string) string
	// errorBody renders the door's error envelope, errorEvent the event
	// that ends a failed stream.
	errorBody  func(status int, code, msg string) []byte
	errorEvent func(dst []byte, code, msg string) []byte
}

// Native reports whether a call to p with endpoint ep passes through
// (true) or is translated (false).
func (d *Door) Native(p *Provider, ep Endpoint) bool { return p.speaks != nil && p.speaks(d.API, ep) }

// ErrorBody renders a gateway error (status, the gateway's code, a message
// free of secrets) in the door's own envelope.
func (d *Door) ErrorBody(status int, code, msg string) []byte { return d.errorBody(status, code, msg) }

// ErrorEvent appends the event that ends a failed stream in the door's
// dialect (for failures outside a stream translator, such as a recovered
// panic).
func (d *Door) ErrorEvent(dst []byte, code, msg string) []byte { return d.errorEvent(dst, code, msg) }

// newRequest is NewCallRequest for a call through a door: c.Native says
// which way it went.
func (d *Door) newRequest(ctx context.Context, p *Provider, c *Call) (*http.Request, error) {
	if d.Native(p, c.Endpoint) {
		c.Native = true
		return d.nativeBuild(ctx, p, c)
	}
	c.Native = false
	if d.toChat == nil {
		msg := d.API + " is not available for " + p.Name + " models"
		if d.untranslated != nil {
			msg = d.untranslated(p.Name)
		}
		return nil, badRequest("%s", msg)
	}
	hub, err := d.toChat(c, p.Name)
	if err != nil {
		return nil, err
	}
	// The upstream model, with an output limit it takes: at most its
	// maximum (Claude Code's max_tokens 32000 is more than gpt-4o writes,
	// and OpenAI refuses it).
	hub.Model, hub.MaxTokens = c.Model, clampOutputPtr(c.Model, hub.MaxTokens)
	// The adapter reads the hub; the stream is always metered.
	c.chat, c.Op, c.IncludeUsage = hub, OpChat, true
	return p.build(ctx, c)
}

func (d *Door) translateResponse(p *Provider, c *Call, body []byte) ([]byte, Usage, error) {
	if c.Native {
		return d.nativeResponse(c, body)
	}
	var chat []byte
	var u Usage
	var err error
	if p.response == nil {
		chat, u, err = passthroughResponse(c, body)
	} else {
		chat, u, err = p.response(c, body)
	}
	if err != nil {
		return nil, u, err
	}
	out, err := d.fromChat(c, chat)
	return out, u, err
}

func (d *Door) newStream(p *Provider, c *Call) StreamTranslator {
	if c.Native {
		return d.nativeStream(c)
	}
	inner := p.stream
	if inner == nil {
		inner = newPassthroughStream
	}
	return newDoorStream(c, d.events(c), inner)
}

// ErrorEventer is implemented by stream translators whose client speaks
// another event dialect than OpenAI's: the gateway asks them to word the
// error that ends a stream.
type ErrorEventer interface {
	ErrorEvent(dst []byte, code, message string) []byte
}

// Keepaliver is implemented by stream translators whose upstream may be
// silent for long (a translated door: the provider's model thinking before
// its first token): the gateway writes KeepaliveEvent whenever nothing
// else went to the client for a while, so proxies and clients do not give
// up on an idle connection (frontdoors.md §1.6). It is an SSE comment, which
// every client ignores, and it must not depend on the translator's state
// (it is written from another goroutine).
type Keepaliver interface {
	KeepaliveEvent() []byte
}

var keepaliveComment = []byte(": ping\n\n")

// StreamFailer is implemented by translators that relay a provider's own
// failure events as sent (a Responses stream's response.failed or error):
// FailureCode is the code the stream failed with, "" when it did not, so
// the request log says so although the client got the provider's bytes.
type StreamFailer interface {
	FailureCode() string
}

// appendNamedEvent frames one named SSE event: "event: name\ndata: d\n\n".
func appendNamedEvent(dst []byte, name string, d []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, '\n')
	return appendData(dst, d)
}

// appendJSONEvent frames v, marshalled, as a named event.
func appendJSONEvent(dst []byte, name string, v any) []byte {
	b, _ := json.Marshal(v)
	return appendNamedEvent(dst, name, b)
}

// ForwardQuery is a client's raw query string as a passthrough sends it
// upstream: as the client wrote it, less any parameter whose name says it
// may carry a credential (key, api_key, api-key, apikey, x-api-key,
// access_token, token; any case). The gateway takes its own key only from
// headers, but a client may still put an Agent Router key in the URL, and
// it must never reach a provider.
func ForwardQuery(raw string) string {
	if raw == "" {
		return ""
	}
	var b strings.Builder
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if credentialParam(name) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}

// credentialParam reports whether a query parameter's name is one that
// clients and providers use for a key.
func credentialParam(name string) bool {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "key", "api_key", "api-key", "apikey", "x-api-key", "access_token", "token":
		return true
	}
	return false
}
