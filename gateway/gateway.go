// Package gateway is Agent Router's data plane: it authenticates an Agent
// Router API key, reads the requested model, resolves it through the key's
// routing profile (if any) and the site's aliases and routes to a plan of
// attempts, picks the account's BYOK credential or the platform key for
// each, forwards the request and streams the answer back, and records one
// request-log entry. It does not import Caddy; caddymodule mounts it.
//
// Besides OpenAI's chat completions and embeddings it serves two front
// doors through the same pipeline (providers.Door): Anthropic's Messages
// API (/v1/messages, /v1/messages/count_tokens; the key also as x-api-key,
// errors in Anthropic's envelope) and OpenAI's Responses API
// (/v1/responses, and GET/DELETE of stored responses for the account that
// created them, responses.go). Each passes through to a provider that
// speaks its shape and is translated to chat completions for the others.
//
// Besides ServeHTTP (API traffic), the console uses three entry points:
// ServeAccount runs a chat request for an account without an API key
// through the same pipeline (the playground; its records say their
// source), ModelsFor lists what /v1/models would for an account and
// profile, and TestCredential checks a provider key with a cheap
// authenticated call through the gateway's own upstream transports.
package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Credential sources, as they appear in headers, logs and metrics.
const (
	SourceBYOK     = "byok"
	SourcePlatform = "platform"
)

// Response headers set on every answer the gateway gives.
const (
	HeaderRequestID  = "X-Agent-Router-Request-Id"
	HeaderProvider   = "X-Agent-Router-Provider"
	HeaderCredential = "X-Agent-Router-Credential"
)

// ProviderConfig is the platform's configuration of one provider.
type ProviderConfig struct {
	// APIKey is the platform-managed key; empty when the platform offers
	// none and only BYOK credentials can serve this provider.
	APIKey string
	// Endpoint is where to reach the provider.
	Endpoint providers.Endpoint
	// Models declares model names served by this provider, mapped to the
	// upstream name ("" keeps the name; for Azure, the deployment).
	Models map[string]string
}

// Config configures a Gateway.
type Config struct {
	Store *store.Store
	// Providers holds the platform configuration by provider name. Providers
	// not listed use their defaults and serve only BYOK credentials.
	Providers map[string]*ProviderConfig
	// MaxBody bounds request bodies in bytes. Default: 4 MiB.
	MaxBody int64
	// DialTimeout bounds connecting to a provider. Default: 10s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a provider's response
	// headers. Default: 5m (large non-streamed completions are slow).
	ResponseHeaderTimeout time.Duration
	// Egress decides where tenant-chosen BYOK base URLs may connect. Nil
	// is the strict default: public addresses only.
	Egress *egress.Policy
	// Logger receives operational messages; never keys, prompts or bodies.
	Logger *zap.Logger
	// Routing holds the aliases and routes (fallback chains, splits).
	Routing routing.Config
	// Profiles are named sets of aliases and routes. A request whose API
	// key is bound to a profile resolves its model through the profile's
	// aliases and routes first, then Routing's, then plain models: each
	// profile is compiled over Routing, its names shadowing the site's
	// (a site route whose target is an alias the profile redefines follows
	// the profile's).
	Profiles map[string]routing.Config
	// DefaultMaxTokens bounds the output limit sent to providers that
	// require one (Anthropic) when the client gave none: the target
	// model's maximum from the catalog, at most this; a model the catalog
	// does not know gets this, or 4096. Default: 0, no bound.
	DefaultMaxTokens int
	// BYOKCooldown is how long an account's BYOK key the provider rejected
	// is not sent again (fallback chains skip it; a lone target is
	// answered byok_credential_rejected at once), before one request
	// probes it. Default: 5m.
	BYOKCooldown time.Duration
	// Observe, when set, sees every finished request's record before it is
	// queued for the request log (for metrics and access-log fields). It
	// runs on the request's goroutine and must be quick.
	Observe func(r *http.Request, rec *store.LogRecord)
}

// Gateway serves the data plane. It is safe for concurrent use.
type Gateway struct {
	store     *store.Store
	providers map[string]*ProviderConfig
	declared  map[string]target
	maxBody   int64
	logger    *zap.Logger
	upstreams *transports
	routes    *routing.Table
	// profiles are the compiled routing profiles (each over the site's
	// aliases and routes), profileNames their sorted names.
	profiles     map[string]*routing.Table
	profileNames []string
	// missingProfiles remembers the keys already reported as bound to a
	// profile this config lacks (key id + NUL + profile).
	missingProfiles sync.Map
	// declaredNames are the declared models, sorted, for /v1/models.
	declaredNames []string

	defaultMaxTokens int
	cooldown         time.Duration
	observe          func(r *http.Request, rec *store.LogRecord)
}

// target is a resolved model: which provider, which upstream name.
type target struct {
	provider *providers.Provider
	model    string
}

// New prepares a Gateway from cfg.
func New(cfg Config) (*Gateway, error) {
	if cfg.Store == nil {
		return nil, errors.New("gateway needs a store")
	}
	g := &Gateway{
		store:     cfg.Store,
		providers: make(map[string]*ProviderConfig),
		declared:  make(map[string]target),
		maxBody:   cfg.MaxBody,
		logger:    cfg.Logger,
		upstreams: newTransports(cfg.DialTimeout, cfg.ResponseHeaderTimeout, cfg.Egress),
	}
	if g.maxBody <= 0 {
		g.maxBody = 4 << 20
	}
	if g.logger == nil {
		g.logger = zap.NewNop()
	}
	for name, pc := range cfg.Providers {
		p := providers.Get(name)
		if p == nil {
			return nil, fmt.Errorf("unknown provider %q (supported: %s)", name, strings.Join(providers.Names, ", "))
		}
		if pc == nil {
			pc = &ProviderConfig{}
		}
		g.providers[name] = pc
		for m, up := range pc.Models {
			if prev, dup := g.declared[m]; dup {
				return nil, fmt.Errorf("model %q is declared by both %s and %s", m, prev.provider.Name, name)
			}
			if up == "" {
				up = m
			}
			g.declared[m] = target{p, up}
		}
	}
	for _, name := range providers.Names {
		if g.providers[name] == nil {
			g.providers[name] = &ProviderConfig{}
		}
	}
	g.defaultMaxTokens, g.cooldown, g.observe = cfg.DefaultMaxTokens, cfg.BYOKCooldown, cfg.Observe
	if g.defaultMaxTokens < 0 {
		g.defaultMaxTokens = 0
	}
	if g.cooldown <= 0 {
		g.cooldown = 5 * time.Minute
	}
	for name := range cfg.Routing.Aliases {
		if _, declared := g.declared[name]; declared {
			return nil, fmt.Errorf("alias %q is also a declared model", name)
		}
	}
	for name := range cfg.Routing.Routes {
		if _, declared := g.declared[name]; declared {
			return nil, fmt.Errorf("route %q is also a declared model", name)
		}
	}
	routes, err := routing.Compile(cfg.Routing, g.checkModel)
	if err != nil {
		return nil, err
	}
	g.routes = routes
	g.profiles = make(map[string]*routing.Table, len(cfg.Profiles))
	for name, pcfg := range cfg.Profiles {
		if err := store.ValidateProfileName(name); err != nil || name == "" {
			return nil, fmt.Errorf("routing profile %q: the name must be 1 to 64 letters, digits, '.', '_' or '-'", name)
		}
		for n := range pcfg.Aliases {
			if _, declared := g.declared[n]; declared {
				return nil, fmt.Errorf("profile %s: alias %q is also a declared model", name, n)
			}
		}
		for n := range pcfg.Routes {
			if _, declared := g.declared[n]; declared {
				return nil, fmt.Errorf("profile %s: route %q is also a declared model", name, n)
			}
		}
		t, err := routing.Compile(routing.Overlay(cfg.Routing, pcfg), g.checkModel)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", name, err)
		}
		g.profiles[name] = t
		g.profileNames = append(g.profileNames, name)
	}
	sort.Strings(g.profileNames)
	for m := range g.declared {
		g.declaredNames = append(g.declaredNames, m)
	}
	sort.Strings(g.declaredNames)
	return g, nil
}

// Close releases idle upstream connections.
func (g *Gateway) Close() { g.upstreams.close() }

// Profiles lists the routing profiles of this gateway's config, sorted.
func (g *Gateway) Profiles() []string { return append([]string(nil), g.profileNames...) }

// PlatformKeyConfigured reports whether the platform has a key for provider.
func (g *Gateway) PlatformKeyConfigured(provider string) bool {
	pc := g.providers[provider]
	return pc != nil && pc.APIKey != ""
}

// Owns reports whether the gateway serves r's path; other paths belong to
// the next handler.
func (g *Gateway) Owns(r *http.Request) bool {
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/messages", "/v1/messages/count_tokens", "/v1/responses":
		return true
	}
	return strings.HasPrefix(r.URL.Path, "/v1/responses/")
}

// doorFor returns the front door of a path: nil for chat completions,
// embeddings and models (OpenAI's own shapes).
func doorFor(path string) *providers.Door {
	switch {
	case path == "/v1/messages":
		return providers.MessagesDoor
	case path == "/v1/messages/count_tokens":
		return providers.CountTokensDoor
	case path == "/v1/responses" || strings.HasPrefix(path, "/v1/responses/"):
		return providers.ResponsesDoor
	}
	return nil
}

// resolve maps a requested model to a provider and upstream model name:
// models declared in the config first, then exact catalog IDs (so that
// Together's "openai/gpt-oss-120b" is not read as OpenAI), then an explicit
// "provider/" prefix, then the catalog's prefix rules.
func (g *Gateway) resolve(model string) (target, bool) {
	if t, ok := g.declared[model]; ok {
		return t, true
	}
	if !providers.IsKnownModel(model) {
		if name, rest, ok := providers.SplitProviderPrefix(model); ok {
			if t, ok := g.declared[rest]; ok && t.provider.Name == name {
				return t, true
			}
			return target{providers.Get(name), rest}, true
		}
	}
	if name, ok := providers.CatalogProvider(model); ok {
		return target{providers.Get(name), model}, true
	}
	return target{}, false
}

// ServeHTTP serves a request for which Owns returned true.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := newRequestID(start)
	w.Header()[HeaderRequestID] = []string{id}

	door := doorFor(r.URL.Path)

	// 1. Authenticate. Anthropic's SDKs and Claude Code send the key as
	// x-api-key or as a Bearer token: the Messages door takes either, and
	// so does /v1/models (Claude Code's model discovery).
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok && (door != nil && door.API == "messages" || r.URL.Path == "/v1/models") {
		token = strings.TrimSpace(r.Header.Get("X-Api-Key"))
		ok = token != ""
	}
	if !ok {
		how := "'Authorization: Bearer ar_...'"
		if door != nil && door.API == "messages" {
			how = "'x-api-key: ar_...' or 'Authorization: Bearer ar_...'"
		}
		writeDoorError(w, door, http.StatusUnauthorized, typeInvalidRequest, CodeMissingAPIKey,
			"missing Agent Router API key: send it as "+how)
		return
	}
	snap := g.store.Snapshot()
	entry, ok := snap.LookupKey(store.HashAPIKey(token))
	if !ok {
		writeDoorError(w, door, http.StatusUnauthorized, typeInvalidRequest, CodeInvalidAPIKey,
			"invalid Agent Router API key: it is unknown or has been revoked")
		return
	}
	entry.Touch(start.UnixNano())
	c := caller{account: entry.AccountID, keyID: entry.KeyID, door: door}
	c.profile, c.routes = g.keyRoutes(entry)
	g.serve(w, r, snap, &c, start, id, r.URL.Path)
}

// AccountRequest says on whose behalf ServeAccount serves a request.
type AccountRequest struct {
	// AccountID is the account the request is made for and billed to. The
	// caller has authorized it (the console: the session's account).
	AccountID string
	// KeyID optionally names one of the account's API keys (key_...): the
	// request-log record is attributed to it and, unless Profile is set,
	// its routing profile applies. The key itself is neither needed nor
	// exposed.
	KeyID string
	// Profile optionally names a routing profile of the running config to
	// resolve the model through; it overrides the key's. An unknown name is
	// refused (400 profile_not_found).
	Profile string
	// Source is recorded in the request log, e.g. "console" (at most 32
	// bytes are kept).
	Source string
}

// ServeAccount serves a chat-completions request (the body in r, streamed
// or not) for an account without an Agent Router API key, through the same
// path as API traffic: routing plan, BYOK-or-platform credential, attempts,
// relay, request log (with acc.Source), usage and metrics. The answer is
// OpenAI's, with the same X-Agent-Router-* headers. An unknown account or a
// key of another account is answered 404 (account_not_found /
// api_key_not_found) and not logged, like a refused API key.
func (g *Gateway) ServeAccount(w http.ResponseWriter, r *http.Request, acc AccountRequest) {
	start := time.Now()
	id := newRequestID(start)
	w.Header()[HeaderRequestID] = []string{id}
	snap := g.store.Snapshot()
	if acc.AccountID == "" || !snap.HasAccount(acc.AccountID) {
		writeError(w, http.StatusNotFound, typeInvalidRequest, CodeAccountNotFound, "no such account")
		return
	}
	c := caller{account: acc.AccountID, source: truncate(acc.Source, 32), routes: g.routes}
	if acc.KeyID != "" {
		entry, ok := snap.KeyByID(acc.KeyID)
		if !ok || entry.AccountID != acc.AccountID {
			writeError(w, http.StatusNotFound, typeInvalidRequest, CodeAPIKeyNotFound, "no such API key in this account")
			return
		}
		c.keyID = entry.KeyID
		c.profile, c.routes = g.keyRoutes(entry)
	}
	if acc.Profile != "" {
		t, ok := g.profiles[acc.Profile]
		if !ok {
			writeError(w, http.StatusBadRequest, typeInvalidRequest, CodeProfileNotFound,
				fmt.Sprintf("no routing profile %q in the running config (profiles: %s)", truncate(acc.Profile, 64), strings.Join(g.profileNames, ", ")))
			return
		}
		c.profile, c.routes = acc.Profile, t
	}
	g.serve(w, r, snap, &c, start, id, "/v1/chat/completions")
}

// caller is who a request is served for, once authenticated.
type caller struct {
	account, keyID string
	// source is "" for API traffic, "console" for the playground.
	source string
	// profile is the routing profile applied ("" for none) and routes the
	// compiled table to plan with: the profile's (which includes the
	// site's aliases and routes) or the site's.
	profile string
	routes  *routing.Table
	// door is the front door the request came in by (nil: OpenAI's chat
	// completions, embeddings or models).
	door *providers.Door
}

// keyRoutes returns the routing table for a key: its profile's, or the
// site's when it has none or names one the running config lacks (a reload
// removed it). The latter is logged once per key and profile, and the key
// keeps working. A map lookup: no allocation, no store read.
func (g *Gateway) keyRoutes(e *store.KeyEntry) (string, *routing.Table) {
	if e.Profile == "" {
		return "", g.routes
	}
	if t, ok := g.profiles[e.Profile]; ok {
		return e.Profile, t
	}
	if _, warned := g.missingProfiles.LoadOrStore(e.KeyID+"\x00"+e.Profile, struct{}{}); !warned {
		g.logger.Warn("api key is bound to a routing profile the running config does not have; serving it with the site's aliases and routes",
			zap.String("key_id", e.KeyID), zap.String("account", e.AccountID), zap.String("profile", e.Profile),
			zap.Strings("profiles", g.profileNames))
	}
	return "", g.routes
}

// serve runs the shared pipeline for an authenticated caller: one
// request-log record, then the endpoint named by path.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, snap *store.Snapshot, c *caller, start time.Time, id, path string) {
	rec := &store.LogRecord{ID: id, Time: start.UTC(), AccountID: c.account, KeyID: c.keyID, Profile: c.profile, Source: c.source}
	defer func() {
		if v := recover(); v != nil {
			g.recovered(w, c.door, rec, v)
		}
		rec.LatencyMS = msSince(start)
		if g.observe != nil {
			g.safeObserve(r, rec)
		}
		g.store.Record(rec) // the record is read-only from here on
	}()

	switch path {
	case "/v1/models":
		rec.Endpoint = "models"
		if r.Method != http.MethodGet {
			rec.Status, rec.ErrorCode = http.StatusMethodNotAllowed, CodeMethodNotAllowed
			w.Header()["Allow"] = []string{"GET"}
			writeError(w, rec.Status, typeInvalidRequest, rec.ErrorCode, "method "+r.Method+" is not allowed on /v1/models; use GET")
			return
		}
		rec.Status = http.StatusOK
		g.serveModels(w, snap, c)
		return
	case "/v1/embeddings":
		g.forward(w, r, snap, c, rec, providers.OpEmbeddings)
	case "/v1/messages", "/v1/messages/count_tokens", "/v1/responses":
		g.forward(w, r, snap, c, rec, providers.OpChat)
	default:
		if strings.HasPrefix(path, "/v1/responses/") {
			g.serveStoredResponse(w, r, snap, c, rec)
			return
		}
		g.forward(w, r, snap, c, rec, providers.OpChat)
	}
}

// forward serves chat completions and embeddings.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, snap *store.Snapshot, c *caller, rec *store.LogRecord, op providers.Operation) {
	rec.Endpoint, rec.API = op.String(), "chat"
	if op == providers.OpEmbeddings {
		rec.API = "embeddings"
	}
	if c.door != nil {
		rec.API, rec.Endpoint = c.door.API, strings.TrimPrefix(strings.ReplaceAll(r.URL.Path, "/", "."), ".v1.")
	}
	fail := func(status int, typ, code, msg string) {
		rec.Status, rec.ErrorCode = status, code
		writeDoorError(w, c.door, status, typ, code, msg)
	}
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = []string{"POST"}
		fail(http.StatusMethodNotAllowed, typeInvalidRequest, CodeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path+"; use POST")
		return
	}

	// 2. Read the body once, bounded.
	body, err := readBody(r, g.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(http.StatusRequestEntityTooLarge, typeInvalidRequest, CodeRequestTooLarge,
				fmt.Sprintf("request body is larger than the limit of %d bytes", g.maxBody))
			return
		}
		fail(http.StatusBadRequest, typeInvalidRequest, CodeInvalidJSON, "could not read the request body")
		return
	}
	if len(body) == 0 || body[firstNonSpace(body)] != '{' {
		fail(http.StatusBadRequest, typeInvalidRequest, CodeInvalidJSON, "request body must be a JSON object")
		return
	}
	if err := providers.CheckRequestJSON(body); err != nil {
		fail(http.StatusBadRequest, typeInvalidRequest, CodeInvalidJSON, err.Error())
		return
	}
	if name := repeatedMember(body); name != "" {
		// Providers' decoders take the last one; routing, metering and the
		// log would see the first.
		fail(http.StatusBadRequest, typeInvalidRequest, CodeInvalidJSON, `request body names "`+name+`" more than once`)
		return
	}
	mr := gjson.GetBytes(body, "model")
	if mr.Type != gjson.String || mr.Str == "" {
		fail(http.StatusBadRequest, typeInvalidRequest, CodeMissingModel, "request body must name a model: {\"model\": \"...\"}")
		return
	}
	if len(mr.Str) > maxModelLen {
		// The name is client data kept in every request-log record and
		// quoted in errors: never store, echo or forward it in full.
		rec.Model = truncate(mr.Str, maxModelLen)
		fail(http.StatusNotFound, typeInvalidRequest, CodeModelNotFound,
			fmt.Sprintf("the model name is too long (%d bytes; model names are at most %d)", len(mr.Str), maxModelLen))
		return
	}
	rec.Model = mr.Str
	rec.Stream = gjson.GetBytes(body, "stream").Bool()

	g.serveAttempts(w, r, snap, c, rec, op, body, mr.Str)
}

// ModelInfo is one model an account can ask for.
type ModelInfo struct {
	// ID is the name to send as "model".
	ID string `json:"id"`
	// Provider serves the model; "" for an alias or a route, whose targets
	// may span providers.
	Provider string `json:"provider,omitempty"`
	// OwnedBy is /v1/models' owned_by: the provider, or "agent_router" for
	// an alias or a route.
	OwnedBy string `json:"owned_by"`
}

// ModelsFor lists what GET /v1/models answers for the account: for each
// provider it can reach with a BYOK or the platform key, the models declared
// in the config and the catalog's examples; then every alias and route, the
// named profile's included (an unknown or empty profile lists the site's).
func (g *Gateway) ModelsFor(accountID, profile string) []ModelInfo {
	routes := g.routes
	if t, ok := g.profiles[profile]; ok {
		routes = t
	}
	return g.modelsFor(g.store.Snapshot(), accountID, routes)
}

func (g *Gateway) modelsFor(snap *store.Snapshot, account string, routes *routing.Table) []ModelInfo {
	var out []ModelInfo
	for _, name := range providers.Names {
		p := providers.Get(name)
		if !p.Implemented {
			continue
		}
		if _, reason := g.pickCredential(snap, account, name, routing.PinAuto, false, time.Time{}); reason != "" {
			continue
		}
		seen := map[string]bool{}
		for _, m := range g.declaredNames {
			if g.declared[m].provider.Name == name {
				seen[m] = true
				out = append(out, ModelInfo{ID: m, Provider: name, OwnedBy: name})
			}
		}
		for _, m := range providers.ExampleModels[name] {
			if !seen[m] {
				out = append(out, ModelInfo{ID: m, Provider: name, OwnedBy: name})
			}
		}
	}
	for _, name := range routes.Names() {
		out = append(out, ModelInfo{ID: name, OwnedBy: "agent_router"})
	}
	return out
}

// serveModels answers GET /v1/models with ModelsFor's list.
func (g *Gateway) serveModels(w http.ResponseWriter, snap *store.Snapshot, c *caller) {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i, m := range g.modelsFor(snap, c.account, c.routes) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":`)
		b.WriteString(strconv.Quote(m.ID))
		b.WriteString(`,"object":"model","created":0,"owned_by":`)
		b.WriteString(strconv.Quote(m.OwnedBy))
		b.WriteByte('}')
	}
	b.WriteString("]}\n")
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}

// recovered answers a request whose handling panicked: a 500 in OpenAI's
// envelope when nothing was sent yet, an error event when a stream had
// begun. The panic is logged once with its type and stack, never its value
// (which could hold request data or key material).
func (g *Gateway) recovered(w http.ResponseWriter, door *providers.Door, rec *store.LogRecord, v any) {
	g.logger.Error("recovered from a panic while serving a request",
		zap.String("request_id", rec.ID), zap.String("panic_type", fmt.Sprintf("%T", v)), zap.StackSkip("stack", 2))
	switch {
	case rec.Status == 0:
		rec.Status, rec.ErrorCode = http.StatusInternalServerError, CodeInternal
		writeDoorError(w, door, rec.Status, typeAPI, CodeInternal, "the gateway failed while serving this request; it has been logged as "+rec.ID)
	case rec.Stream && rec.Status < 300:
		rec.ErrorCode = CodeInternal
		if door != nil {
			w.Write(door.ErrorEvent(nil, CodeInternal, "the gateway failed during the stream"))
		} else {
			w.Write(providers.ErrorEvent(nil, typeAPI, CodeInternal, "the gateway failed during the stream"))
		}
		http.NewResponseController(w).Flush()
	default:
		rec.ErrorCode = CodeInternal
	}
}

// safeObserve runs the observer (metrics, access-log fields) so that a
// failure there cannot take the request or the process with it.
func (g *Gateway) safeObserve(r *http.Request, rec *store.LogRecord) {
	defer func() {
		if v := recover(); v != nil {
			g.logger.Error("recovered from a panic while recording a request's metrics",
				zap.String("request_id", rec.ID), zap.String("panic_type", fmt.Sprintf("%T", v)), zap.StackSkip("stack", 2))
		}
	}()
	g.observe(r, rec)
}

// --- helpers ---

// maxModelLen bounds the model names the gateway accepts. Real names (Hugging
// Face repository ids, Azure deployments, fine-tune ids) are far shorter.
const maxModelLen = 256

// readMembers are the top-level members the gateway itself reads: routing
// by "model", metering by "stream" and "stream_options" (a stream that
// asked for no usage chunk is made to ask for one).
var readMembers = [...]string{"model", "stream", "stream_options"}

// repeatedMember returns a member of readMembers that the JSON object body
// names more than once (counting escaped spellings, as a provider's decoder
// does), or "". Providers read the last copy and gjson the first, so a
// repeat would let a client route, log or meter one request as another.
// Two byte scans clear almost every body: a repeat needs a second literal
// "model" or "stream… key, or a \u00 escape.
func repeatedMember(body []byte) string {
	if !bytes.Contains(body, []byte(`\u00`)) && bytes.Count(body, []byte(`"model"`)) < 2 && bytes.Count(body, []byte(`"stream`)) < 2 {
		return ""
	}
	var n [len(readMembers)]int
	repeated := ""
	gjson.GetBytes(body, "@keys").ForEach(func(_, k gjson.Result) bool {
		for i, m := range readMembers {
			if k.String() == m {
				if n[i]++; n[i] > 1 {
					repeated = m
					return false
				}
			}
		}
		return true
	})
	return repeated
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	t := strings.TrimSpace(h[len(p):])
	return t, t != ""
}

func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, &http.MaxBytesError{Limit: max}
	}
	n := r.ContentLength
	if n < 0 {
		n = 512
	}
	buf := bytes.NewBuffer(make([]byte, 0, n+1))
	_, err := buf.ReadFrom(http.MaxBytesReader(nil, r.Body, max))
	return buf.Bytes(), err
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return i
		}
	}
	return 0
}

// scrub removes from upstream text what the client must not see: the key
// that served (and anything shaped like a key) and, when the platform's key
// served, the platform's account ids (its OpenAI organization and project).
// A BYOK tenant sees its own.
func (c *credential) scrub(s string) string {
	b := providers.Scrub([]byte(s), c.key)
	if c.source == SourcePlatform {
		b = providers.ScrubAccountIDs(b, c.endpoint.Organization, c.endpoint.Project)
	}
	return string(b)
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// relayed response headers: the provider's request id and rate-limit
// state, which BYOK users need to see for their own contract. Values are
// relayed only when they look like what they are (short tokens, numbers,
// durations, dates), so nothing from the request can ride back in them.
func copyResponseHeaders(dst, src http.Header) {
	for k, v := range src {
		if len(v) != 1 {
			continue
		}
		switch {
		case k == "Retry-After":
			if validRetryAfter(v[0]) {
				dst[k] = v
			}
		case k == "X-Request-Id", k == "Request-Id", k == "Openai-Processing-Ms",
			strings.HasPrefix(k, "X-Ratelimit-"), strings.HasPrefix(k, "Anthropic-Ratelimit-"):
			if validHeaderToken(v[0]) {
				dst[k] = v
			}
		}
	}
}

// validHeaderToken accepts short values of id, number, duration and date
// characters.
func validHeaderToken(v string) bool {
	if v == "" || len(v) > 80 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:+ TZ", c) >= 0) {
			return false
		}
	}
	return true
}

// validRetryAfter reports whether v is a Retry-After value: delay-seconds or
// an HTTP-date (RFC 9110, section 10.2.3).
func validRetryAfter(v string) bool {
	if v == "" {
		return false
	}
	if _, err := strconv.ParseUint(v, 10, 32); err == nil {
		return true
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// validRetryAfterMs reports whether v is a Retry-After-Ms value: a
// non-negative number of milliseconds.
func validRetryAfterMs(v string) bool {
	f, err := strconv.ParseFloat(v, 64)
	return err == nil && f >= 0 && f < 1e12
}

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return strings.HasPrefix(ct, "text/event-stream")
}

// request ids: 16 hex digits of the start time in nanoseconds and 8 of a
// process-wide counter, so they sort by time and never repeat in a process.
var reqCounter atomic.Uint32

func newRequestID(t time.Time) string {
	const hexd = "0123456789abcdef"
	var b [24]byte
	ns, c := uint64(t.UnixNano()), reqCounter.Add(1)
	for i := 15; i >= 0; i-- {
		b[i] = hexd[ns&0xf]
		ns >>= 4
	}
	for i := 23; i >= 16; i-- {
		b[i] = hexd[c&0xf]
		c >>= 4
	}
	return string(b[:])
}
