package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/agentrouter/caddy-agentrouter"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// Every caddytest test lives in this package: caddytest runs one in-process
// Caddy per test binary with a fixed admin port.
const (
	adminURL = "http://localhost:2999"
	siteURL  = "http://localhost:9080"
)

var xdgDir string

func TestMain(m *testing.M) {
	// Keep Caddy's autosave.json and data dir out of the user's home, and
	// somewhere the canary test can read them.
	dir, err := os.MkdirTemp("", "agent-router-integration-")
	if err != nil {
		panic(err)
	}
	xdgDir = dir
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one running configuration: Caddy with the gateway, fake providers
// and a fresh store.
type env struct {
	t       *testing.T
	tester  *caddytest.Tester
	dir     string
	openai  *providertest.Server
	azure   *providertest.Server
	mistral *providertest.Server
	client  *http.Client
	options envOptions
}

type envOptions struct {
	platformKey string // AR_TEST_OPENAI_KEY
	azureKey    string // AR_TEST_AZURE_KEY
	maxBody     string
	extraModel  string // an extra "model" line in the openai block
	// openai holds extra lines for the openai provider block (price and
	// contract blocks).
	openai string
	// mistralKey is the platform key for mistral; "none" configures none.
	mistralKey string
	// handler holds extra lines for the agent_router block (aliases,
	// routes, timeouts).
	handler string
	// strictEgress leaves out loopbackEgress: BYOK base URLs get the
	// default policy.
	strictEgress bool
	// global holds extra lines for the global agent_router option.
	global string
	// masterKey is the store's master key (default: a random one).
	masterKey []byte
	// servers holds lines for the global servers block (trusted_proxies).
	servers string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.platformKey == "" {
		o.platformKey = "sk-platform-" + randomAlnum(32)
	}
	if o.azureKey == "" {
		o.azureKey = strings.ToLower(randomHex(32))
	}
	if o.maxBody == "" {
		o.maxBody = "4MiB"
	}
	if o.mistralKey == "" {
		o.mistralKey = randomAlnum(32)
	}
	e := &env{t: t, dir: t.TempDir(), openai: providertest.NewOpenAI(), azure: providertest.NewAzure(), mistral: providertest.NewOpenAI(), options: o,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}}
	t.Cleanup(e.openai.Close)
	t.Cleanup(e.azure.Close)
	t.Cleanup(e.mistral.Close)
	if o.mistralKey == "none" {
		t.Setenv("AR_TEST_MISTRAL_KEY", "")
	} else {
		t.Setenv("AR_TEST_MISTRAL_KEY", o.mistralKey)
	}
	t.Setenv("AR_TEST_OPENAI_KEY", o.platformKey)
	t.Setenv("AR_TEST_AZURE_KEY", o.azureKey)
	if o.masterKey == nil {
		o.masterKey = randomBytes(32)
	}
	t.Setenv("AR_TEST_MASTER_KEY", base64.StdEncoding.EncodeToString(o.masterKey))
	e.tester = caddytest.NewTester(t)
	e.load()
	return e
}

// testCaddyfile is the Caddyfile every integration test loads: caddytest's
// fixed admin port, loopback only, DEBUG logs and an access log in dir (for
// the secret searches), a store in dir sealed with the master key in the
// environment variable masterKeyEnv, the agent_router block's lines and the
// global agent_router option's extra lines.
func testCaddyfile(dir, masterKeyEnv, handler, global string, servers ...string) string {
	srv := ""
	if len(servers) > 0 && servers[0] != "" {
		srv = "\tservers {\n" + servers[0] + "\n\t}\n"
	}
	return fmt.Sprintf(`{
%[5]s	admin localhost:2999
	http_port 9080
	https_port 9443
	grace_period 10s
	skip_install_trust
	default_bind 127.0.0.1
	log {
		output file %[1]s/caddy.log
		level DEBUG
	}
	agent_router {
		store %[1]s/ar.db
		master_key {env.%[2]s}
%[4]s
	}
}

http://localhost:9080 {
	log {
		output file %[1]s/access.log
	}
	agent_router {
%[3]s
	}
	respond "not an agent router path" 404
}
`, dir, masterKeyEnv, handler, global, srv)
}

// loopbackEgress lets BYOK base URLs reach the fake providers, which listen
// on http://127.0.0.1 (by default a BYOK base URL must be public https).
const loopbackEgress = "\t\tbyok_allow_http\n\t\tbyok_allow_hosts 127.0.0.1"

// config renders the Caddyfile for the current options.
func (e *env) config() string {
	extra := ""
	if e.options.extraModel != "" {
		extra = "\n\t\t\tmodel " + e.options.extraModel
	}
	if e.options.openai != "" {
		extra += "\n" + e.options.openai
	}
	global := loopbackEgress
	if e.options.strictEgress {
		global = ""
	}
	if e.options.global != "" {
		global += "\n" + e.options.global
	}
	return testCaddyfile(e.dir, "AR_TEST_MASTER_KEY", fmt.Sprintf(`		provider openai {
			api_key {env.AR_TEST_OPENAI_KEY}
			base_url %[1]s%[4]s
		}
		provider azure {
			api_key {env.AR_TEST_AZURE_KEY}
			base_url %[2]s
			model my-gpt deploy-1
		}
		provider mistral {
			api_key {env.AR_TEST_MISTRAL_KEY}
			base_url %[5]s
		}
		max_body %[3]s
%[6]s`, e.openai.BaseURL(), e.azure.BaseURL(), e.options.maxBody, extra, e.mistral.BaseURL(), e.options.handler), global, e.options.servers)
}

func (e *env) load() {
	e.t.Helper()
	e.tester.InitServer(e.config(), "caddyfile")
	// The old config's server closes its idle connections as it stops: a
	// POST on one of them fails with EOF (and is not retried), so start
	// afresh.
	e.client.CloseIdleConnections()
}

// admin calls the admin API and decodes a JSON answer into out (if given).
func (e *env) admin(method, path string, body any, out any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, adminURL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, b
}

func (e *env) mustAdmin(method, path string, body any, want int, out any) []byte {
	e.t.Helper()
	code, b := e.admin(method, path, body, out)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, b)
	}
	return b
}

func (e *env) createAccount(id string) {
	e.t.Helper()
	e.mustAdmin("POST", "/agent_router/accounts", map[string]string{"id": id, "name": id + " Inc"}, 201, nil)
}

type createdKey struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

func (e *env) createKey(account, name string) createdKey {
	e.t.Helper()
	var k createdKey
	e.mustAdmin("POST", "/agent_router/accounts/"+account+"/keys", map[string]string{"name": name}, 201, &k)
	if !strings.HasPrefix(k.Key, "ar_") {
		e.t.Fatalf("created key %q lacks the ar_ prefix", k.Key)
	}
	return k
}

func (e *env) putBYOK(account, provider string, body map[string]string) map[string]any {
	e.t.Helper()
	var st map[string]any
	e.mustAdmin("PUT", "/agent_router/accounts/"+account+"/byok/"+provider, body, 200, &st)
	return st
}

// chatResult is one data-plane answer.
type chatResult struct {
	status int
	header http.Header
	body   []byte
}

// chat sends a chat completion with tag in the user message, so the fake's
// record can be matched to this request.
func (e *env) chat(apiKey, model, tag string, stream bool) chatResult {
	e.t.Helper()
	r, err := e.tryChat(apiKey, model, tag, stream)
	if err != nil {
		e.t.Fatalf("chat: %v", err)
	}
	return r
}

func (e *env) tryChat(apiKey, model, tag string, stream bool) (chatResult, error) {
	body := fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":%q}]}`, model, stream, tag)
	req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return chatResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return chatResult{resp.StatusCode, resp.Header, b}, err
}

// recordFor finds the fake's record of the request tagged tag.
func recordFor(t *testing.T, fake *providertest.Server, tag string) providertest.Record {
	t.Helper()
	for _, r := range fake.Records() {
		if bytes.Contains(r.Body, []byte(`"`+tag+`"`)) {
			return r
		}
	}
	t.Fatalf("the fake got no request tagged %q", tag)
	return providertest.Record{}
}

func errorCode(b []byte) string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(b, &env)
	return env.Error.Code
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randomAlnum(n int) string {
	const set = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := randomBytes(n)
	for i := range b {
		b[i] = set[int(b[i])%len(set)]
	}
	return string(b)
}

func randomHex(n int) string {
	const set = "0123456789abcdef"
	b := randomBytes(n)
	for i := range b {
		b[i] = set[int(b[i])%len(set)]
	}
	return string(b)
}
