// Package providers knows the upstream LLM providers and the API shapes
// the gateway serves; it does not import Caddy. It owns:
//
//   - the providers (one file each: openai.go, anthropic.go, gemini.go,
//     azure.go, mistral.go, together.go, perplexity.go, cohere.go), each with
//     the same pieces in the same order: catalog entry and key rule, request
//     build, response and stream translation, error classes, and last the
//     key test's request (an authenticated list of models, keytest.go);
//     Anthropic's wire types and their mappings both ways are in
//     anthropic_wire.go, Gemini's JSON-Schema scrubber in gemini_schema.go;
//   - the catalog and model limits (catalog.go, limits.go), key checks and
//     masking (keys.go), error classes and scrubbing (errors.go);
//   - the call (call.go: what one upstream call carries) and the hub
//     (hub.go: ChatRequest, a request in chat-completions terms, decoded
//     once, which the translating adapters read and the front doors build);
//   - the front doors (door.go, door_messages.go, door_responses.go,
//     door_responses_tools.go, door_stream.go): Anthropic's Messages and
//     OpenAI's Responses, passed through to the providers that speak them
//     and translated through the hub for the others;
//   - the answers: OpenAI's chat completions and chunks as the adapters
//     write them (chat.go), the OpenAI-shaped passthrough (passthrough.go),
//     usage (usage.go), the SSE reader (sse.go), and checks and small edits
//     of client JSON (jsoncheck.go, jsonedit.go).
package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The supported providers, by the name used in config, URLs and logs.
const (
	OpenAI     = "openai"
	Anthropic  = "anthropic"
	Gemini     = "gemini"
	Azure      = "azure"
	Mistral    = "mistral"
	Together   = "together"
	Perplexity = "perplexity"
	Cohere     = "cohere"
)

// Names lists every supported provider in a stable order.
var Names = []string{OpenAI, Anthropic, Gemini, Azure, Mistral, Together, Perplexity, Cohere}

// Operation is what the client asked for.
type Operation uint8

// Operations the gateway forwards.
const (
	OpChat Operation = iota
	OpEmbeddings
)

func (op Operation) String() string {
	if op == OpEmbeddings {
		return "embeddings"
	}
	return "chat.completions"
}

// Endpoint is where and how to reach a provider for one credential: the
// platform's configuration, or the extras stored with a BYOK key.
type Endpoint struct {
	// BaseURL is the provider's API root, e.g. https://api.openai.com/v1.
	BaseURL string
	// APIVersion is Azure's api-version ("v1" selects Azure's v1 API).
	APIVersion string
	// Organization and Project are OpenAI's optional account headers.
	Organization string
	Project      string
}

// Provider describes one upstream provider.
type Provider struct {
	// Name is the provider's config name, e.g. "openai".
	Name string
	// DefaultBaseURL is used when neither config nor credential gives one.
	DefaultBaseURL string
	// KeyPrefixes are the known key prefixes, longest first (for masking and
	// for catching a key pasted for the wrong provider). Empty when the
	// provider's keys carry none.
	KeyPrefixes []string
	// AuthHeader is the header the credential travels in.
	AuthHeader string
	// Implemented reports whether requests can be forwarded yet.
	Implemented bool

	// build makes the authenticated upstream request for a call.
	build func(ctx context.Context, c *Call) (*http.Request, error)
	// test makes the key test's request: an authenticated list of models
	// (see NewTestRequest).
	test func(ctx context.Context, ep Endpoint, key string) (*http.Request, error)
	// response translates a non-streamed answer to OpenAI's
	// chat.completion (or embeddings) body and reads its usage. nil: the
	// answer is OpenAI-shaped and relayed unchanged.
	response func(c *Call, body []byte) ([]byte, Usage, error)
	// stream returns the translator of a streamed answer. nil: OpenAI-shaped.
	stream func(c *Call) StreamTranslator
	// classify adds the provider's own error classes to the common ones
	// (see Classify); it returns "" to defer to them.
	classify func(status int, h http.Header, body []byte) string
	// speaks reports whether the provider serves a front door's API
	// ("messages", "responses") natively, with endpoint ep: the door's
	// requests then pass through as bytes (see Door).
	speaks func(api string, ep Endpoint) bool
}

var registry = map[string]*Provider{}

func register(p *Provider) *Provider {
	registry[p.Name] = p
	return p
}

// Get returns the named provider, or nil.
func Get(name string) *Provider { return registry[name] }

// ErrNotImplemented is returned for providers whose adapter is not built yet.
var ErrNotImplemented = errors.New("provider not implemented")

// NewCallRequest builds the authenticated upstream request for c. The
// client's body is translated to the provider's format; c.Endpoint.BaseURL
// defaults to the provider's.
func (p *Provider) NewCallRequest(ctx context.Context, c *Call) (*http.Request, error) {
	if p.build == nil || !p.Implemented {
		return nil, fmt.Errorf("%s: %w", p.Name, ErrNotImplemented)
	}
	if c.Endpoint.BaseURL == "" {
		c.Endpoint.BaseURL = p.DefaultBaseURL
	}
	c.Endpoint.BaseURL = strings.TrimRight(c.Endpoint.BaseURL, "/")
	if c.Door != nil {
		return c.Door.newRequest(ctx, p, c)
	}
	return p.build(ctx, c)
}

// TranslateResponse turns a successful non-streamed answer into the body
// the client receives, and reads its usage.
func (p *Provider) TranslateResponse(c *Call, body []byte) ([]byte, Usage, error) {
	if c.Door != nil {
		return c.Door.translateResponse(p, c, body)
	}
	if p.response == nil {
		return passthroughResponse(c, body)
	}
	return p.response(c, body)
}

// NewStream returns the translator for a streamed answer.
func (p *Provider) NewStream(c *Call) StreamTranslator {
	if c.Door != nil {
		return c.Door.newStream(p, c)
	}
	if p.stream == nil {
		return newPassthroughStream(c)
	}
	return p.stream(c)
}
