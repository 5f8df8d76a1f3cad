package gateway

import (
	"net/http"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// endpoint is one path the gateway serves, with everything that differs by
// path: the door its clients speak, what the request log calls it, the one
// method it takes, where the key may come from and how it is served.
// Owns, ServeHTTP, ServeAccount and the request log all read the endpoints
// table, so a new path is one row.
type endpoint struct {
	// path is the exact path, or with prefix a path prefix.
	path   string
	prefix bool
	// door is the API shape its clients speak.
	door *door
	// name and api are the request log's endpoint and api ("" for an api
	// means OpenAI's chat, as store.APIOf reads it). Stored responses name
	// each request by what it does (responses.get, responses.delete...).
	name, api string
	// method is the one method it takes ("" when serve checks itself).
	method string
	// xAPIKey: the Agent Router key may come as x-api-key, as Anthropic's
	// SDKs and Claude Code send it (also for Claude Code's model discovery).
	xAPIKey bool
	// op is what the attempts ask of the provider.
	op providers.Operation
	// serve serves it: forward (a body through the routing plan's
	// attempts), serveModels or serveStoredResponse.
	serve func(*Gateway, *exchange)
}

// endpoints are the paths the gateway serves: OpenAI's chat completions,
// embeddings and models, Anthropic's Messages (and its token count), and
// OpenAI's Responses (create, and the stored responses below it).
var endpoints = [...]endpoint{
	{path: "/v1/chat/completions", door: &openAIDoor, name: "chat.completions", api: "chat", method: http.MethodPost, op: providers.OpChat, serve: (*Gateway).forward},
	{path: "/v1/embeddings", door: &openAIDoor, name: "embeddings", api: "embeddings", method: http.MethodPost, op: providers.OpEmbeddings, serve: (*Gateway).forward},
	{path: "/v1/models", door: &openAIDoor, name: "models", method: http.MethodGet, xAPIKey: true, serve: (*Gateway).serveModels},
	{path: "/v1/messages", door: &messagesDoor, name: "messages", api: "messages", method: http.MethodPost, xAPIKey: true, op: providers.OpChat, serve: (*Gateway).forward},
	{path: "/v1/messages/count_tokens", door: &countTokensDoor, name: "messages.count_tokens", api: "messages", method: http.MethodPost, xAPIKey: true, op: providers.OpChat, serve: (*Gateway).forward},
	{path: "/v1/responses", door: &responsesDoor, name: "responses", api: "responses", method: http.MethodPost, op: providers.OpChat, serve: (*Gateway).forward},
	{path: "/v1/responses/", prefix: true, door: &responsesDoor, name: "responses", api: "responses", serve: (*Gateway).serveStoredResponse},
}

// chatCompletions is the endpoint ServeAccount serves (the console's
// playground).
var chatCompletions = &endpoints[0]

// endpointFor returns the endpoint of path, nil when the gateway does not
// serve it.
func endpointFor(path string) *endpoint {
	for i := range endpoints {
		if ep := &endpoints[i]; path == ep.path || ep.prefix && strings.HasPrefix(path, ep.path) {
			return ep
		}
	}
	return nil
}

// Owns reports whether the gateway serves r's path; other paths belong to
// the next handler.
func (g *Gateway) Owns(r *http.Request) bool { return endpointFor(r.URL.Path) != nil }

// door is the API shape a client speaks, and so how the gateway answers it:
// the error envelope, the event that ends a failed stream, the status its
// clients take as final, the ids of translated answers. OpenAI's chat
// completions (with embeddings and models) is a door like the others.
type door struct {
	// wire is the providers' door: the passthrough to a provider that
	// speaks the shape and the translation for the others. nil for
	// OpenAI's chat completions and embeddings, the shape every adapter
	// takes as it is (providers.Call.Door).
	wire *providers.Door
	// idPrefix starts the ids of translated answers ("chatcmpl-",
	// "msg_"); the request id follows.
	idPrefix string
	// finalStatus is the status of an answer no retry can change (see
	// providers.Door.FinalStatus): 400 for OpenAI's shapes, which no
	// OpenAI SDK and not Codex retries; 424 for Anthropic's Messages,
	// where Claude Code stops at once.
	finalStatus int
	// keyHint says how to send the Agent Router key, for the refusal of a
	// request without one.
	keyHint string
	// errorBody renders an error in the door's envelope; errorEvent the
	// event that ends a failed stream in its dialect (for failures outside
	// a stream translator, such as a recovered panic).
	errorBody  func(status int, typ, code, msg string) []byte
	errorEvent func(dst []byte, typ, code, msg string) []byte
	// refs reads the references to provider-side objects the door's
	// requests may name (references.go).
	refs func(body []byte) objectRefs
}

const bearerHint = "'Authorization: Bearer ar_...'"

var (
	openAIDoor = door{idPrefix: "chatcmpl-", finalStatus: http.StatusBadRequest, keyHint: bearerHint,
		errorBody: openAIErrorBody, errorEvent: providers.ErrorEvent, refs: noRefs}
	messagesDoor    = wireDoor(providers.MessagesDoor, "'x-api-key: ar_...' or "+bearerHint, messagesRefs)
	countTokensDoor = wireDoor(providers.CountTokensDoor, "'x-api-key: ar_...' or "+bearerHint, messagesRefs)
	responsesDoor   = wireDoor(providers.ResponsesDoor, bearerHint, responsesRefs)
)

// wireDoor is the door of a providers.Door: its envelope and events
// (which carry no OpenAI error type), its final status (400 when it names
// none).
func wireDoor(d *providers.Door, keyHint string, refs func([]byte) objectRefs) door {
	final := d.FinalStatus
	if final == 0 {
		final = http.StatusBadRequest
	}
	return door{wire: d, idPrefix: d.IDPrefix, finalStatus: final, keyHint: keyHint, refs: refs,
		errorBody:  func(status int, _, code, msg string) []byte { return d.ErrorBody(status, code, msg) },
		errorEvent: func(dst []byte, _, code, msg string) []byte { return d.ErrorEvent(dst, code, msg) }}
}

// writeError answers in the door's error envelope. Messages must never hold
// key material; callers pass scrubbed text.
func (d *door) writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(d.errorBody(status, typ, code, msg))
}
