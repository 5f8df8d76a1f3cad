// Package gateway is Agent Router's data plane: it authenticates an Agent
// Router API key, reads the requested model, resolves its provider, picks the
// account's BYOK credential or the platform key, forwards the request and
// streams the answer back, and records one request-log entry. It does not
// import Caddy; caddymodule mounts it.
package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/providers"
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
	// Logger receives operational messages; never keys, prompts or bodies.
	Logger *zap.Logger
}

// Gateway serves the data plane. It is safe for concurrent use.
type Gateway struct {
	store     *store.Store
	providers map[string]*ProviderConfig
	declared  map[string]target
	maxBody   int64
	logger    *zap.Logger
	upstreams *transports
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
		upstreams: newTransports(cfg.DialTimeout, cfg.ResponseHeaderTimeout),
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
	return g, nil
}

// Close releases idle upstream connections.
func (g *Gateway) Close() { g.upstreams.close() }

// PlatformKeyConfigured reports whether the platform has a key for provider.
func (g *Gateway) PlatformKeyConfigured(provider string) bool {
	pc := g.providers[provider]
	return pc != nil && pc.APIKey != ""
}

// Owns reports whether the gateway serves r's path; other paths belong to
// the next handler.
func (g *Gateway) Owns(r *http.Request) bool {
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1/embeddings", "/v1/models":
		return true
	}
	return false
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

// credential is what one upstream attempt is sent with.
type credential struct {
	source   string
	key      string
	endpoint providers.Endpoint
	secret   *store.Secret // BYOK only
}

// pickCredential chooses the account's BYOK key for the provider, else the
// platform key. The choice is made once per request, from one snapshot.
func (g *Gateway) pickCredential(snap *store.Snapshot, account, provider string) (credential, bool) {
	pc := g.providers[provider]
	if sec := snap.Credential(account, provider); sec != nil {
		ep := pc.Endpoint
		ep.Organization, ep.Project = "", "" // the platform's org/project never go with a customer's key
		if sec.Extras.BaseURL != "" {
			ep.BaseURL = sec.Extras.BaseURL
		}
		if sec.Extras.APIVersion != "" {
			ep.APIVersion = sec.Extras.APIVersion
		}
		ep.Organization, ep.Project = sec.Extras.Organization, sec.Extras.Project
		return credential{source: SourceBYOK, key: sec.Key(), endpoint: ep, secret: sec}, true
	}
	if pc.APIKey != "" {
		return credential{source: SourcePlatform, key: pc.APIKey, endpoint: pc.Endpoint}, true
	}
	return credential{}, false
}

// ServeHTTP serves a request for which Owns returned true.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := newRequestID(start)
	w.Header()[HeaderRequestID] = []string{id}

	// 1. Authenticate.
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		writeError(w, http.StatusUnauthorized, typeInvalidRequest, CodeMissingAPIKey,
			"missing Agent Router API key: send it as 'Authorization: Bearer ar_...'")
		return
	}
	snap := g.store.Snapshot()
	entry, ok := snap.LookupKey(store.HashAPIKey(token))
	if !ok {
		writeError(w, http.StatusUnauthorized, typeInvalidRequest, CodeInvalidAPIKey,
			"invalid Agent Router API key: it is unknown or has been revoked")
		return
	}
	entry.Touch(start.UnixNano())

	rec := &store.LogRecord{ID: id, Time: start.UTC(), AccountID: entry.AccountID, KeyID: entry.KeyID}
	defer func() {
		rec.LatencyMS = msSince(start)
		g.store.Record(rec)
	}()

	switch r.URL.Path {
	case "/v1/models":
		rec.Endpoint = "models"
		if r.Method != http.MethodGet {
			rec.Status, rec.ErrorCode = http.StatusMethodNotAllowed, CodeMethodNotAllowed
			w.Header()["Allow"] = []string{"GET"}
			writeError(w, rec.Status, typeInvalidRequest, rec.ErrorCode, "method "+r.Method+" is not allowed on /v1/models; use GET")
			return
		}
		rec.Status = http.StatusOK
		g.serveModels(w, snap, entry.AccountID)
		return
	case "/v1/embeddings":
		g.forward(w, r, snap, entry, rec, providers.OpEmbeddings)
	default:
		g.forward(w, r, snap, entry, rec, providers.OpChat)
	}
}

// forward serves chat completions and embeddings.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, snap *store.Snapshot, entry *store.KeyEntry, rec *store.LogRecord, op providers.Operation) {
	rec.Endpoint = op.String()
	fail := func(status int, typ, code, msg string) {
		rec.Status, rec.ErrorCode = status, code
		writeError(w, status, typ, code, msg)
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
	if !gjson.ValidBytes(body) || len(body) == 0 || body[firstNonSpace(body)] != '{' {
		fail(http.StatusBadRequest, typeInvalidRequest, CodeInvalidJSON, "request body must be a JSON object")
		return
	}
	if repeatsModel(body) {
		// Providers' decoders take the last one; routing and the log would
		// see the first.
		fail(http.StatusBadRequest, typeInvalidRequest, CodeInvalidJSON, `request body names "model" more than once`)
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

	// 3. Resolve the provider.
	t, ok := g.resolve(mr.Str)
	if !ok {
		fail(http.StatusNotFound, typeInvalidRequest, CodeModelNotFound,
			fmt.Sprintf("the model %q is not known to this gateway: use a catalog name, a model declared in the config, or 'provider/model' with one of %s", mr.Str, strings.Join(providers.Names, ", ")))
		return
	}
	rec.Provider, rec.UpstreamModel = t.provider.Name, t.model
	w.Header()[HeaderProvider] = []string{t.provider.Name}
	if !t.provider.Implemented {
		fail(http.StatusNotImplemented, typeInvalidRequest, CodeProviderNotImplemented,
			fmt.Sprintf("provider %s is not implemented yet in this version of Agent Router", t.provider.Name))
		return
	}

	// 4. Pick the credential, once.
	cred, ok := g.pickCredential(snap, entry.AccountID, t.provider.Name)
	if !ok {
		fail(http.StatusBadRequest, typeInvalidRequest, CodeNoCredential,
			fmt.Sprintf("no credential for provider %s: this account has no %s key registered and the platform has none configured", t.provider.Name, t.provider.Name))
		return
	}
	rec.CredentialSource = cred.source
	w.Header()[HeaderCredential] = []string{cred.source}
	if cred.secret != nil {
		rec.CredentialVersion, rec.CredentialFingerprint = cred.secret.Version, cred.secret.Fingerprint
		cred.secret.Touch(time.Now().UnixNano())
	}

	// 5. Forward.
	req, err := t.provider.NewRequest(r.Context(), op, cred.endpoint, cred.key, t.model, body)
	if err != nil {
		fail(http.StatusBadGateway, typeAPI, CodeUpstreamError, "could not build the upstream request: "+scrubString(err.Error(), cred.key))
		return
	}
	resp, err := g.upstreams.forURL(req.URL).RoundTrip(req)
	if err != nil {
		if r.Context().Err() != nil { // the client went away
			rec.Status, rec.ErrorCode = 499, "client_closed_request"
			return
		}
		status, code, msg := http.StatusBadGateway, CodeUpstreamUnreachable, "could not reach "+t.provider.Name
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			status, code, msg = http.StatusGatewayTimeout, CodeUpstreamTimeout, t.provider.Name+" did not answer in time"
		}
		if c := g.logger.Check(zap.WarnLevel, "upstream request failed"); c != nil {
			c.Write(zap.String("request_id", rec.ID), zap.String("provider", t.provider.Name),
				zap.String("credential_source", cred.source), zap.String("error", scrubString(err.Error(), cred.key)))
		}
		fail(status, typeAPI, code, msg)
		return
	}
	defer resp.Body.Close()

	if resp.StatusCode >= 400 {
		g.relayError(w, resp, t.provider.Name, cred, rec)
		return
	}
	copyResponseHeaders(w.Header(), resp.Header)
	rec.Status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	rec.TTFBMS = msSince(rec.Time)
	if isEventStream(resp.Header) {
		relayStream(w, resp.Body)
	} else {
		buf := copyBufs.Get().(*[]byte)
		io.CopyBuffer(writerOnly{w}, resp.Body, *buf)
		copyBufs.Put(buf)
	}
}

// relayError turns an upstream failure into OpenAI's error envelope, with
// key material scrubbed. A refused BYOK key becomes 502
// byok_credential_rejected (and a refused platform key 502
// platform_credential_rejected) so that neither is mistaken for a bad Agent
// Router key or an outage.
func (g *Gateway) relayError(w http.ResponseWriter, resp *http.Response, provider string, cred credential, rec *store.LogRecord) {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	class := providers.Classify(provider, resp.StatusCode, raw)
	msg := scrubString(providers.ErrorMessage(raw), cred.key)
	// Upstream header values are relayed only in their documented shape:
	// anything else could carry request data (a key) back to the client.
	if v := resp.Header.Get("Retry-After"); validRetryAfter(v) {
		w.Header().Set("Retry-After", v)
	}
	if v := resp.Header.Get("Retry-After-Ms"); validRetryAfterMs(v) {
		w.Header().Set("Retry-After-Ms", v)
	}
	status, typ, code := resp.StatusCode, typeForStatus(resp.StatusCode), CodeUpstreamError
	if c := gjson.GetBytes(raw, "error.code"); c.Type == gjson.String && c.Str != "" {
		code = scrubString(c.Str, cred.key)
	}
	if class == providers.ClassAuth {
		status, typ = http.StatusBadGateway, typeAPI
		if cred.source == SourceBYOK {
			code = CodeBYOKCredentialRejected
			msg = fmt.Sprintf("the %s key registered for this account was rejected by the provider (status %d): %s", provider, resp.StatusCode, msg)
		} else {
			code = CodePlatformCredentialRejected
			msg = fmt.Sprintf("the platform's %s key was rejected by the provider (status %d)", provider, resp.StatusCode)
		}
	} else {
		msg = fmt.Sprintf("%s returned %d: %s", provider, resp.StatusCode, msg)
	}
	rec.Status, rec.ErrorCode = status, code
	writeError(w, status, typ, code, msg)
	if c := g.logger.Check(zap.InfoLevel, "upstream error"); c != nil {
		c.Write(zap.String("request_id", rec.ID), zap.String("provider", provider),
			zap.String("credential_source", cred.source), zap.Int("upstream_status", resp.StatusCode),
			zap.String("class", class))
	}
}

// serveModels lists the models this account can reach: for each provider
// with a BYOK or platform key, its declared and example models.
func (g *Gateway) serveModels(w http.ResponseWriter, snap *store.Snapshot, account string) {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	first := true
	add := func(id, owner string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(`{"id":`)
		b.WriteString(strconv.Quote(id))
		b.WriteString(`,"object":"model","created":0,"owned_by":`)
		b.WriteString(strconv.Quote(owner))
		b.WriteByte('}')
	}
	for _, name := range providers.Names {
		p := providers.Get(name)
		if !p.Implemented {
			continue
		}
		if _, ok := g.pickCredential(snap, account, name); !ok {
			continue
		}
		seen := map[string]bool{}
		for m, t := range g.declared {
			if t.provider.Name == name {
				seen[m] = true
				add(m, name)
			}
		}
		for _, m := range providers.ExampleModels[name] {
			if !seen[m] {
				add(m, name)
			}
		}
	}
	b.WriteString("]}\n")
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}

// --- helpers ---

// maxModelLen bounds the model names the gateway accepts. Real names (Hugging
// Face repository ids, Azure deployments, fine-tune ids) are far shorter.
const maxModelLen = 256

// repeatsModel reports whether the JSON object body has more than one
// top-level "model" member, counting escaped spellings as a provider's JSON
// decoder does. Two byte scans clear almost every body: a second member needs
// a second literal "model" or a \u escape of one of its letters (U+0064 to
// U+006F, all spelled \u006X).
func repeatsModel(body []byte) bool {
	if bytes.Count(body, []byte(`"model"`)) < 2 && !bytes.Contains(body, []byte(`\u006`)) {
		return false
	}
	n := 0
	gjson.GetBytes(body, "@keys").ForEach(func(_, k gjson.Result) bool {
		if k.String() == "model" {
			n++
		}
		return n < 2
	})
	return n > 1
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

func scrubString(s, key string) string { return string(providers.Scrub([]byte(s), key)) }

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// relayed response headers: the content type and the provider's request id
// and rate-limit state, which BYOK users need to see for their own contract.
func copyResponseHeaders(dst, src http.Header) {
	for k, v := range src {
		switch {
		case k == "Retry-After":
			if len(v) == 1 && validRetryAfter(v[0]) {
				dst[k] = v
			}
		case k == "Content-Type", k == "X-Request-Id", k == "Openai-Processing-Ms",
			strings.HasPrefix(k, "X-Ratelimit-"), strings.HasPrefix(k, "Anthropic-Ratelimit-"):
			dst[k] = v
		}
	}
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

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// relayStream copies an event stream as it arrives, flushing after every
// read, so no event is held back.
func relayStream(w http.ResponseWriter, body io.Reader) {
	rc := http.NewResponseController(w)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// writerOnly hides optional interfaces (io.ReaderFrom) so io.CopyBuffer uses
// our buffer.
type writerOnly struct{ io.Writer }

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
