package providers

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/tidwall/gjson"
)

// What the tests (and fuzz targets) reach that the gateway does not.

// NewRequest is NewCallRequest for a call of op with nothing but a body.
func (p *Provider) NewRequest(ctx context.Context, op Operation, ep Endpoint, key, model string, body []byte) (*http.Request, error) {
	return p.NewCallRequest(ctx, &Call{Op: op, Endpoint: ep, Key: key, Model: model, Body: body})
}

// NewSSEReader reads events from r (unpooled).
func NewSSEReader(r io.Reader) *SSEReader {
	return &SSEReader{r: bufio.NewReaderSize(r, sseBufSize)}
}

// Classify is ClassifyResponse without headers.
func Classify(provider string, status int, body []byte) string {
	return ClassifyResponse(provider, status, nil, body)
}

// MessagesToChatBody translates a Messages request body to the hub request
// and encodes it, as an OpenAI-shaped host would get it (provider names
// the host in refusals): the chat-completions body, or a *RequestError
// naming what cannot be expressed.
func MessagesToChatBody(body []byte, provider string) ([]byte, error) {
	hub, err := messagesToChat(&Call{Body: body}, provider)
	if err != nil {
		return nil, err
	}
	return json.Marshal(hub)
}

// ResponsesToChatBody is MessagesToChatBody for a Responses request.
func ResponsesToChatBody(body []byte, provider string) ([]byte, error) {
	hub, err := responsesToChat(&Call{Body: body}, provider)
	if err != nil {
		return nil, err
	}
	return json.Marshal(hub)
}

// respToolsOf reads the tools of a Responses request body as the door
// offers them (an empty set when they do not read), for the answer's
// translation in tests that skip the request's.
func respToolsOf(body []byte) *respTools {
	var tools []respTool
	if raw := gjson.GetBytes(body, "tools"); raw.IsArray() {
		_ = json.Unmarshal([]byte(raw.Raw), &tools)
	}
	ts, err := newRespTools(tools, "")
	if err != nil {
		return &respTools{byFlat: map[string]respToolRef{}}
	}
	return ts
}

// doorOverChat is door's stream of an answer translated from an
// OpenAI-shaped host (whose chunks the passthrough relays).
func doorOverChat(d *Door, c *Call) StreamTranslator { return d.newStream(Get(OpenAI), c) }
