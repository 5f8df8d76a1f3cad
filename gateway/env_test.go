package gateway_test

// Test environment: a real store in a temp dir, one fake provider per
// provider the tests reach, a gateway configured against them and served by
// a real httptest.Server. Every environment also checks, when its test ends,
// that no secret it knows (platform keys, BYOK keys, Agent Router API keys)
// appeared in a response, a log line, a request-log record or the raw
// database file, and that every fake only ever saw its own provider's keys.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// bounded is how long a test waits for something that should happen at once
// before failing; it is a deadlock guard, never a timing assertion.
const bounded = 5 * time.Second

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randAlnum(n int) string {
	b := make([]byte, n)
	for i := range b {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(len(alnum))))
		if err != nil {
			panic(err)
		}
		b[i] = alnum[v.Int64()]
	}
	return string(b)
}

// Canary keys: distinctive enough to grep for anywhere.
func canaryOpenAI(tag string) string { return "sk-proj-CANARY" + tag + randAlnum(40) }

// canaryPlain has no known provider prefix, so only scrubbing by value (not
// by key shape) can hide it.
func canaryPlain(tag string) string { return "CANARY" + tag + randAlnum(26) }

// fake wraps a providertest fake so tests can see when each of its handlers
// returns (a hung request whose context was cancelled) and can take over the
// whole handler for special answers.
type fake struct {
	*providertest.Server
	name     string
	override atomic.Pointer[http.HandlerFunc]
	finished chan string
	active   atomic.Int32
}

func newFake(name, kind string) *fake {
	f := &fake{Server: providertest.NewHandler(kind), name: name, finished: make(chan string, 1024)}
	f.Server.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.active.Add(1)
		defer func() {
			f.active.Add(-1)
			select {
			case f.finished <- r.URL.Path:
			default:
			}
		}()
		if h := f.override.Load(); h != nil {
			(*h)(w, r)
			return
		}
		f.Server.ServeHTTP(w, r)
	}))
	return f
}

// handle replaces the fake's handler (the request is then not recorded).
func (f *fake) handle(h http.HandlerFunc) { f.override.Store(&h) }

func (f *fake) drainFinished() {
	for {
		select {
		case <-f.finished:
		default:
			return
		}
	}
}

func (f *fake) close() {
	f.CloseClientConnections()
	f.Close()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

type options struct {
	maxBody       int64
	headerTimeout time.Duration
	// configure edits the provider configuration before the gateway is built.
	configure func(e *env, p map[string]*gateway.ProviderConfig)
	// routing is the gateway's aliases and routes.
	routing routing.Config
	// wrap, when set, wraps the gateway's ResponseWriter (to break it).
	wrap func(http.ResponseWriter) http.ResponseWriter
	// observe is the gateway's Observe hook.
	observe func(*http.Request, *store.LogRecord)
	// egress is the policy for BYOK base URLs; nil allows http and
	// 127.0.0.1, where the fakes listen (strict is tested on its own).
	egress *egress.Policy
	// profiles are the gateway's routing profiles.
	profiles map[string]routing.Config
	// prices is the gateway's price book (nil: the embedded default).
	prices *pricing.Registry
	// limits and providerLimits are the gateway's budgets and rate limits
	// and its BYOK keys' provider limits (nil: none).
	limits         *limits.Limiter
	providerLimits *limits.Tracker
}

type env struct {
	s      *store.Store
	g      *gateway.Gateway
	srv    *httptest.Server
	dbPath string

	openai, mistral, together, perplexity, azure, anthropic *fake
	fakes                                                   []*fake

	platformOpenAI, platformTogether, platformPerplexity, platformAzure, platformAnthropic string

	logBuf   *syncBuffer
	observed *observer.ObservedLogs

	mu      sync.Mutex
	secrets []string
	keysFor map[string]map[string]bool // provider -> keys it may receive
	seen    bytes.Buffer               // every response header and body the client got
	ids     map[string]bool

	inflight atomic.Int32
	lastCL   atomic.Int64 // Content-Length of the last request the gateway got
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	e := &env{
		platformOpenAI:     canaryOpenAI("gw"),
		platformTogether:   "tgp_v1_CANARYtg" + randAlnum(30),
		platformPerplexity: "pplx-CANARYpp" + randAlnum(40),
		platformAzure:      canaryPlain("az"),
		platformAnthropic:  "sk-ant-api03-CANARYan" + randAlnum(40),
		keysFor:            map[string]map[string]bool{},
		ids:                map[string]bool{},
	}
	e.openai = newFake(providers.OpenAI, "openai")
	e.mistral = newFake(providers.Mistral, "openai")
	e.together = newFake(providers.Together, "openai")
	e.perplexity = newFake(providers.Perplexity, "openai")
	e.azure = newFake(providers.Azure, "azure")
	e.anthropic = newFake(providers.Anthropic, "anthropic")
	e.fakes = []*fake{e.openai, e.mistral, e.together, e.perplexity, e.azure, e.anthropic}
	for _, f := range []*fake{e.mistral, e.together, e.perplexity} {
		f.StreamUsageAlways() // as the real ones do
	}
	for p, k := range map[string]string{
		providers.OpenAI: e.platformOpenAI, providers.Together: e.platformTogether,
		providers.Perplexity: e.platformPerplexity, providers.Azure: e.platformAzure,
		providers.Anthropic: e.platformAnthropic,
	} {
		e.addSecret(p, k)
	}

	e.dbPath = filepath.Join(t.TempDir(), "ar.db")
	e.s = storetest.OpenWith(t, e.dbPath, storetest.MasterKey(t), store.Options{})

	pcs := map[string]*gateway.ProviderConfig{
		providers.OpenAI: {APIKey: e.platformOpenAI, Endpoint: providers.Endpoint{
			BaseURL: e.openai.BaseURL(), Organization: "org-platform", Project: "proj-platform"}},
		// No platform key: only BYOK credentials can reach Mistral.
		providers.Mistral:    {Endpoint: providers.Endpoint{BaseURL: e.mistral.BaseURL()}},
		providers.Together:   {APIKey: e.platformTogether, Endpoint: providers.Endpoint{BaseURL: e.together.BaseURL()}},
		providers.Perplexity: {APIKey: e.platformPerplexity, Endpoint: providers.Endpoint{BaseURL: e.perplexity.BaseURL()}},
		providers.Azure: {APIKey: e.platformAzure, Endpoint: providers.Endpoint{BaseURL: e.azure.BaseURL()},
			Models: map[string]string{"my-gpt": "deploy-1"}},
		// Anthropic is translated; its fake speaks the Messages API.
		providers.Anthropic: {APIKey: e.platformAnthropic, Endpoint: providers.Endpoint{BaseURL: e.anthropic.BaseURL()}},
	}
	if o.configure != nil {
		o.configure(e, pcs)
	}

	if o.egress == nil {
		var err error
		if o.egress, err = egress.New(true, []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	e.logBuf = &syncBuffer{}
	jsonCore := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(e.logBuf), zapcore.DebugLevel)
	obsCore, observed := observer.New(zapcore.DebugLevel)
	e.observed = observed

	g, err := gateway.New(gateway.Config{
		Store: e.s, Providers: pcs, MaxBody: o.maxBody, ResponseHeaderTimeout: o.headerTimeout, Routing: o.routing, Profiles: o.profiles,
		Logger: zap.New(zapcore.NewTee(jsonCore, obsCore)), Egress: o.egress, Observe: o.observe, Prices: o.prices,
		Limits: o.limits, ProviderLimits: o.providerLimits,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.g = g
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.inflight.Add(1)
		defer e.inflight.Add(-1)
		e.lastCL.Store(r.ContentLength)
		if o.wrap != nil {
			w = o.wrap(w)
		}
		if r.URL.Path == playgroundPath {
			// The console's playground, as the console calls it: the
			// account (and optional key and profile) come from the
			// session, never from an Agent Router API key.
			g.ServeAccount(w, r, gateway.AccountRequest{AccountID: r.Header.Get("X-Test-Account"),
				KeyID: r.Header.Get("X-Test-Key-Id"), Profile: r.Header.Get("X-Test-Profile"), Source: "console"})
			return
		}
		if g.Owns(r) {
			g.ServeHTTP(w, r)
		} else {
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() { e.finish(t) })
	return e
}

func (e *env) addSecret(provider, key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets = append(e.secrets, key)
	if provider != "" {
		if e.keysFor[provider] == nil {
			e.keysFor[provider] = map[string]bool{}
		}
		e.keysFor[provider][key] = true
	}
}

// account creates an account and returns n API keys for it.
func (e *env) account(t testing.TB, id string, n int) ([]string, []store.APIKey) {
	t.Helper()
	if _, err := e.s.CreateAccount(id, "Account "+id); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var descs []store.APIKey
	for i := 0; i < n; i++ {
		k, d, err := e.s.CreateAPIKey(id, fmt.Sprintf("key %d", i))
		if err != nil {
			t.Fatal(err)
		}
		e.addSecret("", k)
		keys, descs = append(keys, k), append(descs, d)
	}
	return keys, descs
}

func (e *env) putCred(t testing.TB, account, provider, key string, extras store.Extras) store.Credential {
	t.Helper()
	e.addSecret(provider, key)
	c, err := e.s.PutCredential(account, provider, key, providers.Mask(key), extras)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitIdle waits until the gateway has returned from every request, so that
// their request-log records are queued.
func (e *env) waitIdle(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(bounded)
	for e.inflight.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("gateway still serving %d requests", e.inflight.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *env) records(t testing.TB, account string) []store.LogRecord {
	t.Helper()
	e.waitIdle(t)
	e.s.FlushLog()
	recs, _, err := e.s.Logs(store.LogFilter{AccountID: account, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func (e *env) record(t testing.TB, id string) store.LogRecord {
	t.Helper()
	e.waitIdle(t)
	e.s.FlushLog()
	r, err := e.s.Log(id)
	if err != nil {
		t.Fatalf("request %s has no request-log record: %v", id, err)
	}
	return r
}

// reply is one answer the client got.
type reply struct {
	status int
	header http.Header
	body   []byte
	id     string
}

func (r *reply) String() string {
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

func (e *env) observe(h http.Header, body []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	h.Write(&e.seen)
	e.seen.Write(body)
	e.seen.WriteByte('\n')
}

// try sends one request and reads the whole answer; safe from any goroutine.
func (e *env) try(ctx context.Context, method, path, key string, body io.Reader, mod ...func(*http.Request)) (*reply, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, body)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, m := range mod {
		m(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	e.observe(resp.Header, b)
	if err != nil {
		return nil, err
	}
	r := &reply{status: resp.StatusCode, header: resp.Header, body: b, id: resp.Header.Get(gateway.HeaderRequestID)}
	if err := e.checkID(r.id); err != nil {
		return r, err
	}
	return r, nil
}

// checkID: every answer carries a request id, 24 hex digits, never reused.
func (e *env) checkID(id string) error {
	if len(id) != 24 || strings.Trim(id, "0123456789abcdef") != "" {
		return fmt.Errorf("answer has request id %q, want 24 hex digits", id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ids[id] {
		return fmt.Errorf("request id %s used twice", id)
	}
	e.ids[id] = true
	return nil
}

func (e *env) do(t testing.TB, method, path, key string, body io.Reader, mod ...func(*http.Request)) *reply {
	t.Helper()
	r, err := e.try(context.Background(), method, path, key, body, mod...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (e *env) post(t testing.TB, path, key, body string) *reply {
	t.Helper()
	return e.do(t, http.MethodPost, path, key, strings.NewReader(body))
}

// playgroundPath is where the test server calls ServeAccount.
const playgroundPath = "/test/playground"

// playground sends body through ServeAccount for account (and the optional
// key id and profile).
func (e *env) playground(t testing.TB, account, keyID, profile, body string) *reply {
	t.Helper()
	return e.do(t, http.MethodPost, playgroundPath, "", strings.NewReader(body), func(q *http.Request) {
		q.Header.Set("X-Test-Account", account)
		if keyID != "" {
			q.Header.Set("X-Test-Key-Id", keyID)
		}
		if profile != "" {
			q.Header.Set("X-Test-Profile", profile)
		}
	})
}

func chatBody(model string) string {
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"say hi"}],"temperature":0.2}`, model)
}

func (e *env) chat(t testing.TB, key, model string) *reply {
	t.Helper()
	return e.post(t, "/v1/chat/completions", key, chatBody(model))
}

// expectOK checks a 200 relayed with the given provider and credential source.
func expectOK(t testing.TB, r *reply, provider, source string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("got %v, want 200", r)
	}
	if got := r.header.Get(gateway.HeaderProvider); got != provider {
		t.Errorf("%s = %q, want %q", gateway.HeaderProvider, got, provider)
	}
	if got := r.header.Get(gateway.HeaderCredential); got != source {
		t.Errorf("%s = %q, want %q", gateway.HeaderCredential, got, source)
	}
}

type errDetail struct {
	Message, Type, Code string
}

// expectError checks OpenAI's error envelope, exactly
// {"error":{"message","type","param","code"}}, the status, the code and that
// the message holds every given fragment.
func expectError(t testing.TB, r *reply, status int, code string, contains ...string) errDetail {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d (%s)", r.status, status, r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &outer); err != nil || len(outer) != 1 || outer["error"] == nil {
		t.Fatalf("not an OpenAI error envelope: %s", r.body)
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(outer["error"], &inner); err != nil {
		t.Fatalf("error is not an object: %s", r.body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := inner[k]; !ok {
			t.Errorf("error envelope lacks %q: %s", k, r.body)
		}
	}
	if len(inner) != 4 {
		t.Errorf("error envelope has %d fields, want 4: %s", len(inner), r.body)
	}
	if p := string(inner["param"]); p != "null" {
		t.Errorf("param = %s, want null", p)
	}
	var d errDetail
	json.Unmarshal(inner["message"], &d.Message)
	json.Unmarshal(inner["type"], &d.Type)
	json.Unmarshal(inner["code"], &d.Code)
	if d.Code != code {
		t.Errorf("code %q, want %q (%s)", d.Code, code, r.body)
	}
	if d.Type == "" || d.Message == "" {
		t.Errorf("empty type or message: %s", r.body)
	}
	for _, c := range contains {
		if !strings.Contains(d.Message, c) {
			t.Errorf("message %q does not mention %q", d.Message, c)
		}
	}
	return d
}

// expectNoUpstream checks that no fake received anything.
func (e *env) expectNoUpstream(t testing.TB) {
	t.Helper()
	for _, f := range e.fakes {
		if n := len(f.Records()); n != 0 {
			t.Errorf("fake %s received %d requests, want none", f.name, n)
		}
	}
}

// finish shuts everything down and checks the secret invariants.
func (e *env) finish(t *testing.T) {
	// Cut every connection first, so that a handler stuck on a hung
	// provider (a failing test) cannot hold up the shutdown.
	e.srv.CloseClientConnections()
	for _, f := range e.fakes {
		f.CloseClientConnections()
	}
	e.srv.Close()
	e.g.Close()
	for _, f := range e.fakes {
		f.close()
	}

	// Each fake saw only credentials that belong to its provider.
	for _, f := range e.fakes {
		for _, r := range f.Records() {
			if r.Credential != "" && !e.keysFor[f.name][r.Credential] && e.isSecret(r.Credential) {
				t.Errorf("fake %s received a credential of another provider (%s)", f.name, providers.Mask(r.Credential))
			}
			if strings.Contains(r.Header.Get("Authorization"), store.APIKeyPrefix) {
				t.Errorf("fake %s received the client's Agent Router key", f.name)
			}
		}
	}

	e.s.FlushLog()
	recs, _, err := e.s.Logs(store.LogFilter{Limit: 1000})
	if err != nil {
		t.Error(err)
	}
	recJSON, _ := json.Marshal(recs)
	if err := e.s.Close(); err != nil {
		t.Error(err)
	}
	db, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Error(err)
	}
	var obs bytes.Buffer
	for _, en := range e.observed.AllUntimed() {
		fmt.Fprintf(&obs, "%s %v\n", en.Message, en.ContextMap())
	}
	e.mu.Lock()
	seen := e.seen.Bytes()
	secrets := append([]string(nil), e.secrets...)
	e.mu.Unlock()
	for _, where := range []struct {
		name string
		b    []byte
	}{
		{"a response", seen},
		{"a log line", e.logBuf.Bytes()},
		{"an observed log entry", obs.Bytes()},
		{"a request-log record", recJSON},
		{"the database file", db},
	} {
		for _, s := range secrets {
			if w := leak(where.b, s); w != "" {
				t.Errorf("secret %s leaked into %s (window %q)", providers.Mask(s), where.name, w)
			}
		}
	}
}

func (e *env) isSecret(k string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.secrets {
		if s == k {
			return true
		}
	}
	return false
}

// leak returns the first 12-character window of secret found in b, or "".
// Twelve characters is the window providers.Scrub redacts, so a partial echo
// counts as a leak too.
func leak(b []byte, secret string) string {
	if bytes.Contains(b, []byte(secret)) {
		return secret[:12] + "…"
	}
	for i := 0; i+12 <= len(secret); i++ {
		if w := secret[i : i+12]; bytes.Contains(b, []byte(w)) {
			return w
		}
	}
	return ""
}
