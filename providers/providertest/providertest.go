// Package providertest runs fake LLM providers on loopback for tests. Each
// fake speaks its provider's native protocol, records every request it gets
// (the credential, the header it arrived in, the URL and the model), and can
// be told how to answer: a status, a delay, an error body or a stream.
package providertest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
)

// Record is one request a fake received.
type Record struct {
	Method string
	Path   string
	Query  string
	// CredentialHeader names the header the credential arrived in
	// ("Authorization", "Api-Key", ...), and Credential is its value
	// without any "Bearer " prefix.
	CredentialHeader string
	Credential       string
	Model            string
	Stream           bool
	Header           http.Header
	Body             []byte
	Time             time.Time
	// Usage is what the server was told to report (SetUsage), for its
	// kind's default answer; nil for the kind's own.
	Usage *Usage
	// usageInLastChunk: see StreamUsageAlways.
	usageInLastChunk bool
}

// Response tells a fake how to answer one request.
type Response struct {
	// Status is the HTTP status. Default: 200.
	Status int
	// Body is sent as is when set (with Status), e.g. an error body.
	Body string
	// Header is added to the response.
	Header map[string]string
	// Delay is waited before the response headers.
	Delay time.Duration
	// Events, when set, are sent as an SSE stream of "data: <event>"
	// blocks, each flushed on its own, EventDelay apart.
	Events     []string
	EventDelay time.Duration
	// Gate, when set, holds the stream after its first event until the
	// channel is closed (or the client goes away).
	Gate <-chan struct{}
	// RawEvents, when set instead of Events, are written verbatim (each a
	// complete event with its own framing: "event: x\ndata: y\n\n", CRLF
	// separators...), each flushed on its own. ContentType defaults to
	// text/event-stream.
	RawEvents   []string
	ContentType string
	// Hang keeps the connection open without answering until the client
	// goes away.
	Hang bool
	// Custom, when set, writes the whole answer itself: for answers too
	// big to hold in a string (a 48 MiB event).
	Custom func(http.ResponseWriter)
}

// Responder decides the answer to a request.
type Responder func(Record) Response

// Server is a fake provider.
type Server struct {
	*httptest.Server
	// Kind is "openai" (any OpenAI-shaped provider) or "azure".
	Kind string

	mu        sync.Mutex
	records   []Record
	responder Responder
	validKeys map[string]bool
	// stored and respCount are the Responses API's state (responses.go).
	stored    map[string]*storedResponse
	respCount int
	// usage is what the default answers report (SetUsage).
	usage *Usage
	// usageInLastChunk: see StreamUsageAlways.
	usageInLastChunk bool
}

// StreamUsageAlways makes an OpenAI-shaped fake stream its usage the way
// Mistral, Together and Perplexity do: on the last chunk (the one with the
// finish reason), whether or not the request asked for it with
// stream_options.include_usage (docs.mistral.ai, release note 2024-01-16,
// "token usage in streaming requests"). OpenAI and Azure send it only
// when asked, in a chunk of its own, as the fake does by default.
func (s *Server) StreamUsageAlways() {
	s.mu.Lock()
	s.usageInLastChunk = true
	s.mu.Unlock()
}

// NewOpenAI starts a fake OpenAI-shaped provider (OpenAI, Mistral, Together,
// Perplexity): POST {base}/chat/completions and /embeddings with a Bearer
// key. Its base URL is URL + "/v1".
func NewOpenAI() *Server { return start("openai") }

// NewAzure starts a fake Azure OpenAI resource:
// POST /openai/deployments/{deployment}/chat/completions?api-version=... and
// /openai/v1/chat/completions, with the key in the api-key header.
func NewAzure() *Server { return start("azure") }

func start(kind string) *Server {
	s := NewHandler(kind)
	s.Server = httptest.NewServer(s)
	return s
}

// NewHandler returns a fake of kind ("openai" or "azure") that is not
// listening anywhere: serve it with your own server (Server is nil).
func NewHandler(kind string) *Server { return &Server{Kind: kind} }

// BaseURL is what the gateway's base_url should be for this fake.
func (s *Server) BaseURL() string { return s.BaseURLFor(s.URL) }

// BaseURLFor is the gateway's base_url for this fake served at serverURL
// (for fakes served by a server of one's own, see NewHandler).
func (s *Server) BaseURLFor(serverURL string) string { return kinds[s.Kind].BaseURL(serverURL) }

// SetResponder replaces the default answers.
func (s *Server) SetResponder(r Responder) {
	s.mu.Lock()
	s.responder = r
	s.mu.Unlock()
}

// AcceptOnly makes the fake answer 401 to any credential not listed, with an
// error body that echoes the presented key in full (worse than real
// providers do), so tests can check that the gateway scrubs it. With no
// keys, every credential is accepted.
func (s *Server) AcceptOnly(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.validKeys = nil
	if len(keys) > 0 {
		s.validKeys = make(map[string]bool)
		for _, k := range keys {
			s.validKeys[k] = true
		}
	}
}

// Records returns a copy of every request received so far.
func (s *Server) Records() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Record(nil), s.records...)
}

// Reset forgets the recorded requests.
func (s *Server) Reset() {
	s.mu.Lock()
	s.records = nil
	s.mu.Unlock()
}

// Count returns how many recorded requests carried credential key.
func (s *Server) Count(key string) int {
	n := 0
	for _, r := range s.Records() {
		if r.Credential == key {
			n++
		}
	}
	return n
}

// Last returns the most recent request; ok is false when there was none.
func (s *Server) Last() (Record, bool) {
	rs := s.Records()
	if len(rs) == 0 {
		return Record{}, false
	}
	return rs[len(rs)-1], true
}

// Kind is how one provider's fake speaks its protocol. Each provider's fake
// registers one (see openai.go here, and anthropic.go, gemini.go, cohere.go).
type Kind struct {
	// BaseURL turns the server's URL into the gateway's base_url for it.
	BaseURL func(serverURL string) string
	// Parse fills in rec's credential (and the header it came in), model
	// and stream flag from the request, and names the operation ("chat",
	// "embeddings"). A non-nil *Response answers at once (an unknown path,
	// a missing api-version...).
	Parse func(r *http.Request, rec *Record) (op string, early *Response)
	// Unauthorized is the provider's answer to a key it does not accept.
	// The fakes echo the presented key in full, which real providers do
	// only partly: the gateway must scrub it.
	Unauthorized func(key string) Response
	// Default is the answer when no responder is set.
	Default func(rec Record, op string) Response
}

var kinds = map[string]*Kind{}

// RegisterKind makes a kind of fake available to New.
func RegisterKind(name string, k *Kind) { kinds[name] = k }

// New starts a fake of the named kind: "openai" (any OpenAI-shaped
// provider), "azure", "anthropic", "gemini" or "cohere".
func New(kind string) *Server { return start(kind) }

// ServeHTTP answers one request as the provider would, and records it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k := kinds[s.Kind]
	body, _ := io.ReadAll(r.Body)
	rec := Record{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Header: r.Header.Clone(), Body: body, Time: time.Now(),
	}
	op, early := k.Parse(r, &rec)
	s.record(rec)
	if early != nil {
		Write(w, r, *early)
		return
	}
	s.mu.Lock()
	responder, valid := s.responder, s.validKeys
	rec.Usage, rec.usageInLastChunk = s.usage, s.usageInLastChunk
	s.mu.Unlock()
	if valid != nil && !valid[rec.Credential] {
		Write(w, r, k.Unauthorized(rec.Credential))
		return
	}
	var resp Response
	switch {
	case responder != nil:
		resp = responder(rec)
	case strings.HasPrefix(op, OpResponses):
		resp = s.responses(rec, op)
	default:
		resp = k.Default(rec, op)
	}
	Write(w, r, resp)
}

func init() {
	openAIUnauthorized := func(key string) Response {
		msg := fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", key)
		b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "param": nil, "code": "invalid_api_key"}})
		return Response{Status: 401, Body: string(b)}
	}
	notFound := &Response{Status: 404, Body: `{"error":{"message":"unknown path","type":"invalid_request_error","code":"not_found"}}`}
	openAIOp := func(path string) (string, bool) {
		switch path {
		case "/chat/completions":
			return "chat", true
		case "/embeddings":
			return "embeddings", true
		}
		return "", false
	}
	RegisterKind("openai", &Kind{
		BaseURL: func(u string) string { return u + "/v1" },
		Parse: func(r *http.Request, rec *Record) (string, *Response) {
			rec.Model, rec.Stream = gjson.GetBytes(rec.Body, "model").String(), gjson.GetBytes(rec.Body, "stream").Bool()
			if auth := r.Header.Get("Authorization"); auth != "" {
				rec.CredentialHeader, rec.Credential = "Authorization", strings.TrimPrefix(auth, "Bearer ")
			}
			if r.URL.Path == "/v1/models" && r.Method == http.MethodGet {
				return listModelsOp(rec)
			}
			if op := responsesOp(r.Method, strings.TrimPrefix(r.URL.Path, "/v1")); op != "" {
				return op, nil
			}
			op, ok := openAIOp(strings.TrimPrefix(r.URL.Path, "/v1"))
			if !ok {
				return "", notFound
			}
			if op == "chat" {
				if early := openAIOutputLimit(rec); early != nil {
					return "", early
				}
			}
			return op, nil
		},
		Unauthorized: openAIUnauthorized,
		Default:      Default,
	})
	RegisterKind("azure", &Kind{
		BaseURL: func(u string) string { return u },
		Parse: func(r *http.Request, rec *Record) (string, *Response) {
			rec.Model, rec.Stream = gjson.GetBytes(rec.Body, "model").String(), gjson.GetBytes(rec.Body, "stream").Bool()
			rec.CredentialHeader, rec.Credential = "Api-Key", r.Header.Get("Api-Key")
			path := ""
			switch {
			case r.Method == http.MethodGet && r.URL.Path == "/openai/models":
				if r.URL.Query().Get("api-version") == "" {
					return "", &Response{Status: 404, Body: `{"error":{"code":"404","message":"Resource not found"}}`}
				}
				return listModelsOp(rec)
			case r.Method == http.MethodGet && r.URL.Path == "/openai/v1/models":
				return listModelsOp(rec)
			}
			if rest, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/"); ok {
				dep, tail, _ := strings.Cut(rest, "/")
				rec.Model, path = dep, "/"+tail
				if r.URL.Query().Get("api-version") == "" {
					return "", &Response{Status: 404, Body: `{"error":{"code":"404","message":"Resource not found"}}`}
				}
			} else if rest, ok := strings.CutPrefix(r.URL.Path, "/openai/v1"); ok {
				path = rest
				if op := responsesOp(r.Method, rest); op != "" {
					return op, nil
				}
			}
			op, ok := openAIOp(path)
			if !ok {
				return "", notFound
			}
			return op, nil
		},
		Unauthorized: func(string) Response {
			// Azure does not echo the key.
			return Response{Status: 401, Body: `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}`}
		},
		Default: Default,
	})
}

// openAIMaxOutput is the most completion tokens the fake's OpenAI models
// write (platform.openai.com/docs/models): a chat request asking for more
// is refused as OpenAI refuses it.
var openAIMaxOutput = map[string]int64{"gpt-4o": 16384, "gpt-4o-mini": 16384, "gpt-4.1": 32768, "gpt-4.1-mini": 32768}

// openAIFunctionName is what OpenAI takes as a function's name.
var openAIFunctionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// openAIOutputLimit refuses what OpenAI refuses about a chat request's
// tools and output limit: a function name it does not take, more output
// than the model writes, and max_tokens for a reasoning model (gpt-5,
// o-series), which takes only max_completion_tokens.
func openAIOutputLimit(rec *Record) *Response {
	res := gjson.GetManyBytes(rec.Body, "max_tokens", "max_completion_tokens")
	if res[0].Exists() && (strings.HasPrefix(rec.Model, "gpt-5") || strings.HasPrefix(rec.Model, "o1") ||
		strings.HasPrefix(rec.Model, "o3") || strings.HasPrefix(rec.Model, "o4")) {
		return &Response{Status: 400, Body: `{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}`}
	}
	for i, t := range gjson.GetBytes(rec.Body, "tools").Array() {
		if name := t.Get("function.name").String(); !openAIFunctionName.MatchString(name) {
			b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": fmt.Sprintf("Invalid 'tools[%d].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.", i),
				"type": "invalid_request_error", "param": fmt.Sprintf("tools[%d].function.name", i), "code": "invalid_value"}})
			return &Response{Status: 400, Body: string(b)}
		}
	}
	max, ok := openAIMaxOutput[rec.Model]
	if !ok {
		return nil
	}
	for i, name := range []string{"max_tokens", "max_completion_tokens"} {
		if n := res[i].Int(); n > max {
			b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": fmt.Sprintf("%s is too large: %d. This model supports at most %d completion tokens, whereas you provided %d.", name, n, max, n),
				"type": "invalid_request_error", "param": name, "code": "invalid_value"}})
			return &Response{Status: 400, Body: string(b)}
		}
	}
	return nil
}

// OpModels is the operation of a list-models request (GET {base}/models and
// each provider's equivalent), which key tests use. Like chat, it answers
// 401 (or the provider's equivalent) to a key AcceptOnly does not list,
// and records the key it got.
const OpModels = "models"

// listModelsOp names a list-models request; without a credential it is
// refused as the providers refuse it.
func listModelsOp(rec *Record) (string, *Response) {
	if rec.Credential == "" {
		return "", &Response{Status: 401, Body: `{"error":{"message":"You didn't provide an API key.","type":"invalid_request_error","code":null}}`}
	}
	return OpModels, nil
}

func (s *Server) record(rec Record) {
	s.mu.Lock()
	s.records = append(s.records, rec)
	s.mu.Unlock()
}

// Default is the OpenAI-shaped fakes' answer when no responder is set: a
// fixed chat completion (or a 5-event stream when the request asked for
// one) or a one-vector embedding, naming the model it was asked for. op is
// "chat" or "embeddings".
func Default(rec Record, op string) Response {
	model := rec.Model
	if op == OpModels {
		return Response{Body: `{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"system"}]}`}
	}
	if op == "embeddings" {
		prompt := 3
		if u := rec.Usage; u != nil {
			prompt = u.prompt()
		}
		return Response{Body: fmt.Sprintf(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2,0.3]}],"model":%q,"usage":{"prompt_tokens":%d,"total_tokens":%d}}`, model, prompt, prompt)}
	}
	if rec.Stream {
		events := StreamEvents(model, []string{"Hel", "lo", " from", " the", " fake"})
		if rec.usageInLastChunk {
			u := Usage{Input: 11, Output: 5}
			if rec.Usage != nil {
				u = *rec.Usage
			}
			events[len(events)-2] = lastChunkWithUsage(model, u)
			return Response{Events: events}
		}
		if gjson.GetBytes(rec.Body, "stream_options.include_usage").Bool() {
			// OpenAI's usage chunk: no choices, the usage, before [DONE].
			chunk := UsageChunk(model, 11, 5)
			if rec.Usage != nil {
				chunk = UsageChunkOf(model, *rec.Usage)
			}
			events = append(events[:len(events)-1], chunk, "[DONE]")
		}
		return Response{Events: events}
	}
	if rec.Usage != nil {
		return Response{Body: ChatCompletionOf(model, "Hello from the fake", *rec.Usage)}
	}
	return Response{Body: ChatCompletion(model, "Hello from the fake")}
}

// ChatCompletionOf returns a chat.completion body with text as the answer
// and u as its usage (and service tier).
func ChatCompletionOf(model, text string, u Usage) string {
	m := map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": text}}},
		"usage": u.OpenAI(),
	}
	if u.ServiceTier != "" {
		m["service_tier"] = u.ServiceTier
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// lastChunkWithUsage is the finish chunk of a stream that carries the
// usage (StreamUsageAlways).
func lastChunkWithUsage(model string, u Usage) string {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}},
		"usage":   u.OpenAI(),
	})
	return string(b)
}

// UsageChunkOf returns OpenAI's streamed usage chunk reporting u.
func UsageChunkOf(model string, u Usage) string {
	m := map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": []any{},
		"usage": u.OpenAI(),
	}
	if u.ServiceTier != "" {
		m["service_tier"] = u.ServiceTier
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// ChatCompletion returns a chat.completion body with text as the answer.
func ChatCompletion(model, text string) string {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000, "model": model,
		"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": text}}},
		"usage": map[string]any{"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
	})
	return string(b)
}

// UsageChunk returns OpenAI's streamed usage chunk.
func UsageChunk(model string, prompt, completion int) string {
	b, _ := json.Marshal(map[string]any{
		"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model, "choices": []any{},
		"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
	})
	return string(b)
}

// StreamEvents returns the data payloads of a chat.completion.chunk stream
// with one chunk per piece, a finish chunk and [DONE].
func StreamEvents(model string, pieces []string) []string {
	chunk := func(delta map[string]any, finish any) string {
		b, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		})
		return string(b)
	}
	out := []string{chunk(map[string]any{"role": "assistant", "content": ""}, nil)}
	for _, p := range pieces {
		out = append(out, chunk(map[string]any{"content": p}, nil))
	}
	out = append(out, chunk(map[string]any{}, "stop"), "[DONE]")
	return out
}

// Write sends resp.
func Write(w http.ResponseWriter, r *http.Request, resp Response) {
	if resp.Delay > 0 {
		select {
		case <-time.After(resp.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if resp.Custom != nil {
		resp.Custom(w)
		return
	}
	if resp.Hang {
		<-r.Context().Done()
		return
	}
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	status := resp.Status
	if status == 0 {
		status = 200
	}
	if resp.Events != nil || resp.RawEvents != nil {
		ct := resp.ContentType
		if ct == "" {
			ct = "text/event-stream"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(status)
		f, _ := w.(http.Flusher)
		events := resp.RawEvents
		if events == nil {
			events = make([]string, len(resp.Events))
			for i, e := range resp.Events {
				events[i] = "data: " + e + "\n\n"
			}
		}
		for i, e := range events {
			if i > 0 && resp.EventDelay > 0 {
				select {
				case <-time.After(resp.EventDelay):
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, e)
			if f != nil {
				f.Flush()
			}
			if i == 0 && resp.Gate != nil {
				select {
				case <-resp.Gate:
				case <-r.Context().Done():
					return
				}
			}
		}
		return
	}
	writeJSON(w, status, resp.Body)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}
