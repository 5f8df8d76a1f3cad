package admin_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// --- harness ---

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randAlnum(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return string(b)
}

// harness is one store served through a real HTTP server the way Caddy's
// admin endpoint serves the API. It keeps every response body, and at
// cleanup checks that no registered secret appears in any of them or in the
// raw bytes of the closed bbolt file.
type harness struct {
	t      *testing.T
	s      *store.Store
	dbPath string
	srv    *httptest.Server
	client *http.Client

	mu          sync.Mutex
	bodies      []string
	secrets     []string // never in a response body or the store file
	fileSecrets []string // never in the store file
}

// caddyAdmin mirrors caddymodule/adminapi.go and Caddy's admin error
// handling: an *admin.Error keeps its status, anything else is a 500, and
// the body is {"error": "<message>"}.
func caddyAdmin(api *admin.API) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := api.ServeHTTP(w, r)
		if err == nil {
			return
		}
		status := http.StatusInternalServerError
		var ae *admin.Error
		if errors.As(err, &ae) {
			status = ae.Status
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
	})
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessPK(t, func(p string) bool { return p == "openai" })
}

// newHarnessPK is newHarness with the given PlatformKey function.
func newHarnessPK(t *testing.T, platformKey func(string) bool) *harness {
	t.Helper()
	return newHarnessWith(t, func(api *admin.API) { api.PlatformKey = platformKey })
}

// newHarnessWith is newHarness with the API's functions set by configure.
func newHarnessWith(t *testing.T, configure func(*admin.API)) *harness {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "ar.db")
	s := storetest.OpenWith(t, dbPath, storetest.MasterKey(t), store.Options{})
	api := &admin.API{
		Store:       func() *store.Store { return s },
		PlatformKey: func(p string) bool { return p == "openai" },
	}
	if configure != nil {
		configure(api)
	}
	srv := httptest.NewServer(caddyAdmin(api))
	h := &harness{t: t, s: s, dbPath: dbPath, srv: srv, client: srv.Client()}
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
		h.checkSecrets()
	})
	return h
}

// secret registers a value that must never appear in a response body or in
// the store file, and returns it.
func (h *harness) secret(v string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, v)
	return v
}

// apiKey registers an Agent Router API key: it is shown once, in the create
// response, but must never be written to the store file (only its hash is).
func (h *harness) apiKey(v string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fileSecrets = append(h.fileSecrets, v)
	return v
}

func (h *harness) checkSecrets() {
	raw, err := os.ReadFile(h.dbPath)
	if err != nil {
		h.t.Fatalf("reading store file: %v", err)
	}
	if len(raw) == 0 {
		h.t.Fatal("store file is empty")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bodies) == 0 {
		h.t.Fatal("no response bodies captured")
	}
	for _, sec := range h.secrets {
		for i, b := range h.bodies {
			if strings.Contains(b, sec) {
				h.t.Errorf("secret %.12s… appears in response body #%d: %s", sec, i, b)
			}
		}
	}
	for _, sec := range append(h.secrets, h.fileSecrets...) {
		for _, form := range []string{sec, base64.StdEncoding.EncodeToString([]byte(sec))} {
			if bytes.Contains(raw, []byte(form)) {
				h.t.Errorf("secret %.12s… appears in the raw store file (as %.16s…)", sec, form)
			}
		}
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; body "" sends no body.
func (h *harness) do(method, path, body string) response {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return h.send(req)
}

func (h *harness) send(req *http.Request) response {
	h.t.Helper()
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	h.mu.Unlock()
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// ok sends a request, requires status want and decodes the JSON body into
// out (when out is not nil).
func (h *harness) ok(method, path, body string, want int, out any) response {
	h.t.Helper()
	r := h.do(method, path, body)
	if r.status != want {
		h.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	if out != nil {
		// Decode into a zero value: omitempty fields absent from this
		// response must not keep an earlier response's values.
		reflect.ValueOf(out).Elem().SetZero()
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			h.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
		}
		if err := json.Unmarshal(r.body, out); err != nil {
			h.t.Fatalf("%s %s: decoding %s: %v", method, path, r.body, err)
		}
	}
	return r
}

// fail sends a request, requires status want and Caddy's {"error": "..."}
// body whose message contains every one of substrs, and returns the message.
func (h *harness) fail(method, path, body string, want int, substrs ...string) string {
	h.t.Helper()
	return h.checkErr(method+" "+path, h.do(method, path, body), want, substrs...)
}

func (h *harness) checkErr(what string, r response, want int, substrs ...string) string {
	h.t.Helper()
	if r.status != want {
		h.t.Fatalf("%s: status %d, want %d; body %s", what, r.status, want, r.body)
	}
	var e map[string]any
	if err := json.Unmarshal(r.body, &e); err != nil {
		h.t.Fatalf("%s: error body is not JSON: %s", what, r.body)
	}
	msg, ok := e["error"].(string)
	if !ok || len(e) != 1 || msg == "" {
		h.t.Fatalf("%s: error body is not {\"error\": \"...\"}: %s", what, r.body)
	}
	for _, sub := range substrs {
		if !strings.Contains(msg, sub) {
			h.t.Errorf("%s: error %q does not contain %q", what, msg, sub)
		}
	}
	return msg
}

func (h *harness) createAccount(id string) {
	h.t.Helper()
	h.ok("POST", "/agent_router/accounts", `{"id":"`+id+`","name":"`+id+` Inc"}`, http.StatusCreated, nil)
}

func jsonStr(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// --- accounts ---

type accountOut struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func TestAccounts(t *testing.T) {
	h := newHarness(t)
	before := time.Now().Add(-time.Minute)

	var acme accountOut
	h.ok("POST", "/agent_router/accounts", `{"id":"acme","name":"Acme Corp"}`, http.StatusCreated, &acme)
	if acme.ID != "acme" || acme.Name != "Acme Corp" || acme.CreatedAt.Before(before) || acme.CreatedAt.After(time.Now().Add(time.Minute)) {
		t.Fatalf("created account = %+v", acme)
	}
	var raw map[string]any
	h.ok("GET", "/agent_router/accounts/acme", "", http.StatusOK, &raw)
	for _, f := range []string{"id", "name", "created_at"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("account JSON lacks %q: %v", f, raw)
		}
	}

	// The longest valid id, dots, underscores and dashes.
	long := strings.Repeat("z", 64)
	h.createAccount(long)
	h.createAccount("b.c_d-e")

	h.fail("POST", "/agent_router/accounts", `{"id":"acme","name":"Again"}`, http.StatusConflict, `"acme"`, "already exists")
	h.fail("POST", "/agent_router/accounts", `{"name":"No Id"}`, http.StatusBadRequest, "account id is required")
	h.fail("POST", "/agent_router/accounts", `{"id":"","name":"Empty"}`, http.StatusBadRequest, "account id is required")
	for _, id := range []string{"has space", "a/b", strings.Repeat("a", 65), "-lead", ".lead", "_lead", "ünï", "a\nb"} {
		h.fail("POST", "/agent_router/accounts", `{"id":`+jsonStr(id)+`}`, http.StatusBadRequest, "account id must be 1-64 characters")
	}
	h.fail("POST", "/agent_router/accounts", `{"id":"x","name":`+jsonStr(strings.Repeat("n", 201))+`}`, http.StatusBadRequest, "longer than 200")
	h.fail("POST", "/agent_router/accounts", `{"id":"x","nmae":"typo"}`, http.StatusBadRequest, "invalid JSON body", `unknown field "nmae"`)
	h.fail("POST", "/agent_router/accounts", `{"id":7}`, http.StatusBadRequest, `field "id" must be string`)

	// Malformed JSON: the message says where, never echoes what was sent.
	for _, body := range []string{
		`{"id":"x", "name": SENTINELvalue}`,
		`{"id":"x", "name": "SENTINELvalue`,
		`{"id":"x" "name":"SENTINELvalue"}`,
		`SENTINELvalue`,
	} {
		msg := h.fail("POST", "/agent_router/accounts", body, http.StatusBadRequest, "invalid JSON body")
		if strings.Contains(msg, "SENTINEL") {
			t.Errorf("malformed-JSON error echoes the body: %q", msg)
		}
	}
	h.fail("POST", "/agent_router/accounts", "", http.StatusBadRequest, "request body is empty")
	h.fail("POST", "/agent_router/accounts", "  \n", http.StatusBadRequest, "request body is empty")
	h.fail("POST", "/agent_router/accounts", `["acme"]`, http.StatusBadRequest, "JSON object")
	h.fail("POST", "/agent_router/accounts", `"acme"`, http.StatusBadRequest, "JSON object")
	// Trailing data after the object is not silently ignored.
	h.fail("POST", "/agent_router/accounts", `{"id":"trail"} {"id":"other"}`, http.StatusBadRequest, "invalid JSON body")
	h.fail("POST", "/agent_router/accounts", `{"id":"trail"} garbage`, http.StatusBadRequest, "invalid JSON body")
	h.fail("POST", "/agent_router/accounts", `{"id":"trail"}}`, http.StatusBadRequest, "invalid JSON body")
	h.fail("POST", "/agent_router/accounts", `{"id":"trail"} 5`, http.StatusBadRequest, "invalid JSON body", "unexpected data after the JSON object")
	h.fail("POST", "/agent_router/accounts", `{"id":"trail"} "SENTINEL"`, http.StatusBadRequest, "unexpected data after the JSON object")
	// An oversized body is refused as such, not as malformed JSON.
	h.fail("POST", "/agent_router/accounts", `{"id":"big","name":"`+strings.Repeat("n", 70<<10)+`"}`, http.StatusRequestEntityTooLarge, "larger than 64 KiB")
	h.fail("GET", "/agent_router/accounts/big", "", http.StatusNotFound)
	h.fail("GET", "/agent_router/accounts/trail", "", http.StatusNotFound)
	h.fail("GET", "/agent_router/accounts/other", "", http.StatusNotFound)
	// Trailing whitespace is fine.
	h.ok("POST", "/agent_router/accounts", "{\"id\":\"ws\"}\n\n", http.StatusCreated, nil)

	var list []accountOut
	h.ok("GET", "/agent_router/accounts", "", http.StatusOK, &list)
	var ids []string
	for _, a := range list {
		ids = append(ids, a.ID)
	}
	if got, want := strings.Join(ids, ","), "acme,b.c_d-e,ws,"+long; got != want {
		t.Fatalf("account list = %s, want %s", got, want)
	}
	if !list[0].CreatedAt.Equal(acme.CreatedAt) || list[0].Name != "Acme Corp" {
		t.Errorf("listed acme = %+v, created %+v", list[0], acme)
	}

	var one accountOut
	h.ok("GET", "/agent_router/accounts/acme", "", http.StatusOK, &one)
	if one.ID != "acme" || one.Name != "Acme Corp" || !one.CreatedAt.Equal(acme.CreatedAt) {
		t.Errorf("GET acme = %+v, want %+v", one, acme)
	}
	h.fail("GET", "/agent_router/accounts/nope", "", http.StatusNotFound, `"nope"`, "not found")

	r := h.ok("DELETE", "/agent_router/accounts/acme", "", http.StatusNoContent, nil)
	if len(r.body) != 0 {
		t.Errorf("DELETE body = %q, want empty", r.body)
	}
	h.fail("GET", "/agent_router/accounts/acme", "", http.StatusNotFound, "not found")
	h.fail("DELETE", "/agent_router/accounts/acme", "", http.StatusNotFound, "not found")
	// The id can be used again.
	h.createAccount("acme")

	// Wrong methods: 405 with an Allow header listing what works.
	for _, c := range []struct{ method, path, allow string }{
		{"PUT", "/agent_router/accounts", "GET, POST"},
		{"DELETE", "/agent_router/accounts", "GET, POST"},
		{"PATCH", "/agent_router/accounts/acme", "GET, DELETE"},
		{"POST", "/agent_router/accounts/acme", "GET, DELETE"},
		{"PUT", "/agent_router/accounts/acme/keys", "GET, POST"},
		{"GET", "/agent_router/accounts/acme/keys/key_0", "PATCH, DELETE"},
		{"POST", "/agent_router/accounts/acme/byok", "GET"},
		{"HEAD", "/agent_router/accounts/acme/byok/openai", "GET, POST, PUT, PATCH, DELETE"},
		{"POST", "/agent_router/providers", "GET"},
		{"DELETE", "/agent_router/logs", "GET"},
		{"DELETE", "/agent_router/logs/x", "GET"},
		{"HEAD", "/agent_router/accounts", "GET, POST"},
	} {
		r := h.do(c.method, c.path, "")
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: status %d, want 405", c.method, c.path, r.status)
			continue
		}
		if got := r.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
		if c.method != "HEAD" {
			h.checkErr(c.method+" "+c.path, r, http.StatusMethodNotAllowed, "method "+c.method+" not allowed", c.allow)
		}
	}
}

func TestDeleteAccountRevokesEverything(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	h.createAccount("globex")
	var k1, k2 struct {
		Key string `json:"key"`
	}
	h.ok("POST", "/agent_router/accounts/acme/keys", `{"name":"a"}`, http.StatusCreated, &k1)
	h.ok("POST", "/agent_router/accounts/globex/keys", `{"name":"g"}`, http.StatusCreated, &k2)
	h.apiKey(k1.Key)
	h.apiKey(k2.Key)
	byok := h.secret("sk-proj-DELacct" + randAlnum(t, 40))
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai", `{"api_key":`+jsonStr(byok)+`}`, http.StatusOK, nil)
	h.ok("PUT", "/agent_router/accounts/globex/byok/openai", `{"api_key":`+jsonStr(h.secret("sk-proj-DELkeep"+randAlnum(t, 40)))+`}`, http.StatusOK, nil)

	h.ok("DELETE", "/agent_router/accounts/acme", "", http.StatusNoContent, nil)
	sn := h.s.Snapshot()
	if _, ok := sn.LookupKey(store.HashAPIKey(k1.Key)); ok {
		t.Error("deleted account's API key still authenticates")
	}
	if c := sn.Credential("acme", "openai"); c != nil {
		t.Error("deleted account's BYOK credential is still in the snapshot")
	}
	if _, ok := sn.LookupKey(store.HashAPIKey(k2.Key)); !ok {
		t.Error("another account's key was revoked")
	}
	if sn.Credential("globex", "openai") == nil {
		t.Error("another account's credential was removed")
	}
	h.fail("GET", "/agent_router/accounts/acme/keys", "", http.StatusNotFound, "not found")
	h.fail("GET", "/agent_router/accounts/acme/byok", "", http.StatusNotFound, "not found")

	// Recreating the id does not resurrect anything.
	h.createAccount("acme")
	var keys []map[string]any
	h.ok("GET", "/agent_router/accounts/acme/keys", "", http.StatusOK, &keys)
	if len(keys) != 0 {
		t.Errorf("recreated account has keys: %v", keys)
	}
	var st []ops.BYOKStatus
	h.ok("GET", "/agent_router/accounts/acme/byok", "", http.StatusOK, &st)
	for _, s := range st {
		if s.Status != "not_configured" {
			t.Errorf("recreated account has %s credential: %+v", s.Provider, s)
		}
	}
}

// --- API keys ---

type keyOut struct {
	ID         string     `json:"id"`
	Account    string     `json:"account"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Profile    *string    `json:"profile"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	Key        string     `json:"key"`
}

func TestAPIKeys(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	h.createAccount("globex")

	var k1 keyOut
	r := h.ok("POST", "/agent_router/accounts/acme/keys", `{"name":"ci"}`, http.StatusCreated, &k1)
	h.apiKey(k1.Key)
	if !strings.HasPrefix(k1.Key, store.APIKeyPrefix) || len(k1.Key) < 40 {
		t.Fatalf("created key %.6s… does not look like an Agent Router key", k1.Key)
	}
	if n := strings.Count(string(r.body), k1.Key); n != 1 {
		t.Errorf("plaintext key appears %d times in the create response, want once", n)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("create key Cache-Control = %q, want no-store", cc)
	}
	if !strings.HasPrefix(k1.ID, "key_") || k1.Account != "acme" || k1.Name != "ci" || k1.CreatedAt.IsZero() || k1.LastUsedAt != nil {
		t.Errorf("created key = %+v", k1)
	}
	if k1.Prefix == "" || !strings.HasPrefix(k1.Key, k1.Prefix) || len(k1.Prefix) >= len(k1.Key)/2 {
		t.Errorf("prefix %q is not a short prefix of the key", k1.Prefix)
	}
	entry, ok := h.s.Snapshot().LookupKey(store.HashAPIKey(k1.Key))
	if !ok || entry.KeyID != k1.ID || entry.AccountID != "acme" {
		t.Fatalf("snapshot lookup of the new key = %+v, %v", entry, ok)
	}

	// A second key; an empty object is fine (the name is optional).
	var k2 keyOut
	h.ok("POST", "/agent_router/accounts/acme/keys", `{}`, http.StatusCreated, &k2)
	h.apiKey(k2.Key)
	if k2.Key == k1.Key || k2.ID == k1.ID {
		t.Fatal("two keys share a value or id")
	}
	// So is no body at all.
	var k3 keyOut
	h.ok("POST", "/agent_router/accounts/acme/keys", "", http.StatusCreated, &k3)
	h.apiKey(k3.Key)
	if k3.Name != "" || k3.Key == k2.Key {
		t.Fatalf("key from an empty body: %+v", k3)
	}
	h.ok("DELETE", "/agent_router/accounts/acme/keys/"+k3.ID, "", http.StatusNoContent, nil)
	var g keyOut
	h.ok("POST", "/agent_router/accounts/globex/keys", `{"name":"globex"}`, http.StatusCreated, &g)
	h.apiKey(g.Key)

	// Mark the first key used; the list shows it.
	used := time.Now().Add(-time.Hour).Truncate(time.Second)
	entry.Touch(used.UnixNano())

	r = h.ok("GET", "/agent_router/accounts/acme/keys", "", http.StatusOK, nil)
	for _, k := range []string{k1.Key, k2.Key, g.Key} {
		if strings.Contains(string(r.body), k) {
			t.Fatal("key list contains a plaintext key")
		}
	}
	var raw []map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 {
		t.Fatalf("acme has %d keys listed, want 2: %s", len(raw), r.body)
	}
	for _, k := range raw {
		for _, f := range []string{"id", "name", "prefix", "created_at", "last_used_at"} {
			if _, ok := k[f]; !ok {
				t.Errorf("listed key lacks %q: %v", f, k)
			}
		}
		if _, ok := k["key"]; ok {
			t.Errorf("listed key has a \"key\" field: %v", k)
		}
	}
	var list []keyOut
	_ = json.Unmarshal(r.body, &list)
	if list[0].ID != k1.ID || list[1].ID != k2.ID {
		t.Errorf("key list order = %s, %s; want %s, %s", list[0].ID, list[1].ID, k1.ID, k2.ID)
	}
	if list[0].LastUsedAt == nil || !list[0].LastUsedAt.Equal(used) {
		t.Errorf("last_used_at = %v, want %v", list[0].LastUsedAt, used)
	}
	if list[1].LastUsedAt != nil || list[0].Prefix != k1.Prefix || list[0].Name != "ci" {
		t.Errorf("listed keys = %+v", list)
	}

	// Rejections.
	h.fail("POST", "/agent_router/accounts/nope/keys", `{"name":"x"}`, http.StatusNotFound, `"nope"`, "not found")
	h.fail("GET", "/agent_router/accounts/nope/keys", "", http.StatusNotFound, `"nope"`, "not found")
	h.fail("DELETE", "/agent_router/accounts/nope/keys/"+k1.ID, "", http.StatusNotFound, "not found")
	h.fail("DELETE", "/agent_router/accounts/acme/keys/key_0000000000000000", "", http.StatusNotFound, "key_0000000000000000", "not found")
	// Another account's key id is "not found", and the key keeps working.
	h.fail("DELETE", "/agent_router/accounts/acme/keys/"+g.ID, "", http.StatusNotFound, "not found")
	if _, ok := h.s.Snapshot().LookupKey(store.HashAPIKey(g.Key)); !ok {
		t.Fatal("another account's key stopped authenticating")
	}
	h.fail("POST", "/agent_router/accounts/acme/keys", `{"name":`+jsonStr(strings.Repeat("n", 201))+`}`, http.StatusBadRequest, "longer than 200")
	h.fail("POST", "/agent_router/accounts/acme/keys", `{"label":"x"}`, http.StatusBadRequest, `unknown field "label"`)
	h.fail("POST", "/agent_router/accounts/acme/keys", `{"name":`, http.StatusBadRequest, "invalid JSON body")

	// Revoke: 204, gone from the snapshot at once, gone from the list.
	r = h.ok("DELETE", "/agent_router/accounts/acme/keys/"+k1.ID, "", http.StatusNoContent, nil)
	if len(r.body) != 0 {
		t.Errorf("revoke body = %q", r.body)
	}
	if _, ok := h.s.Snapshot().LookupKey(store.HashAPIKey(k1.Key)); ok {
		t.Fatal("revoked key still authenticates")
	}
	if _, ok := h.s.Snapshot().LookupKey(store.HashAPIKey(k2.Key)); !ok {
		t.Fatal("revoking one key revoked another")
	}
	list = nil
	h.ok("GET", "/agent_router/accounts/acme/keys", "", http.StatusOK, &list)
	if len(list) != 1 || list[0].ID != k2.ID {
		t.Errorf("after revoke, keys = %+v", list)
	}
	h.fail("DELETE", "/agent_router/accounts/acme/keys/"+k1.ID, "", http.StatusNotFound, "not found")
}

// --- providers ---

func TestProviders(t *testing.T) {
	h := newHarness(t)
	var list []ops.ProviderInfo
	h.ok("GET", "/agent_router/providers", "", http.StatusOK, &list)
	var raw []map[string]any
	h.ok("GET", "/agent_router/providers", "", http.StatusOK, &raw)
	want := []string{"openai", "anthropic", "gemini", "azure", "mistral", "together", "perplexity", "cohere"}
	if len(list) != len(want) {
		t.Fatalf("%d providers, want %d: %+v", len(list), len(want), list)
	}
	for i, p := range list {
		if p.Name != want[i] {
			t.Errorf("provider %d = %s, want %s", i, p.Name, want[i])
		}
		for _, f := range []string{"name", "implemented", "platform_key"} {
			if _, ok := raw[i][f]; !ok {
				t.Errorf("provider %s lacks %q: %v", p.Name, f, raw[i])
			}
		}
		if p.Implemented != providers.Get(p.Name).Implemented {
			t.Errorf("%s implemented = %v, registry says %v", p.Name, p.Implemented, providers.Get(p.Name).Implemented)
		}
		if p.PlatformKey != (p.Name == "openai") {
			t.Errorf("%s platform_key = %v", p.Name, p.PlatformKey)
		}
		if p.DefaultBaseURL != providers.Get(p.Name).DefaultBaseURL {
			t.Errorf("%s default_base_url = %q", p.Name, p.DefaultBaseURL)
		}
	}
	if !list[0].Implemented {
		t.Error("openai is not implemented?")
	}
}

// --- routing ---

func TestUnknownRoutes(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	for _, p := range []string{
		"/agent_router/nope",
		"/agent_router/",
		"/agent_router/accounts/x/y/z/w",
		"/agent_router/accounts/acme/y/z/w",
		"/agent_router/accounts/acme/other",
		"/agent_router/accounts/acme/other/x",
		"/agent_router/accounts//keys",
		"/agent_router/accounts/acme//keys",
		"/agent_router/providers/openai",
		"/agent_router/logs/a/b",
		"/agent_router/accounts/acme/keys/k/extra",
	} {
		h.fail("GET", p, "", http.StatusNotFound, "no such route")
	}
	// Trailing slashes are tolerated.
	var accts []accountOut
	h.ok("GET", "/agent_router/accounts/", "", http.StatusOK, &accts)
	if len(accts) != 1 {
		t.Errorf("accounts = %+v", accts)
	}

	// An escaped slash belongs to its segment: it is not a path separator,
	// and segments are unescaped exactly once.
	h.fail("GET", "/agent_router/accounts/acme%2Fkeys", "", http.StatusNotFound, `"acme/keys"`, "not found")
	h.fail("GET", "/agent_router/accounts/acme%2Fbyok%2Fopenai", "", http.StatusNotFound, "not found")
	h.fail("GET", "/agent_router/accounts/acme%2525", "", http.StatusNotFound, `"acme%25"`, "not found")
	h.fail("GET", "/agent_router/accounts/%25zz", "", http.StatusNotFound, `"%zz"`, "not found")
	var one accountOut
	h.ok("GET", "/agent_router/accounts/%61cme", "", http.StatusOK, &one)
	if one.ID != "acme" {
		t.Errorf("escaped id lookup = %+v", one)
	}
}

func TestStoreNotRunning(t *testing.T) {
	api := &admin.API{Store: func() *store.Store { return nil }, PlatformKey: func(string) bool { return true }}
	srv := httptest.NewServer(caddyAdmin(api))
	defer srv.Close()
	h := &harness{t: t, srv: srv, client: srv.Client()}
	for _, c := range []struct{ method, path string }{
		{"GET", "/agent_router/accounts"},
		{"POST", "/agent_router/accounts"},
		{"GET", "/agent_router/providers"},
		{"GET", "/agent_router/logs"},
		{"PUT", "/agent_router/accounts/acme/byok/openai"},
		{"GET", "/agent_router/nope"},
	} {
		h.fail(c.method, c.path, "", http.StatusServiceUnavailable, "agent_router is not running")
	}
}
