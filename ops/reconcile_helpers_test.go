package ops_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// The reconciliation's end-to-end harness: a real store, the real gateway
// served over loopback HTTP with an account's BYOK keys, the fake OpenAI
// and Anthropic with their organisation admin APIs as the providers, and
// the operations over them. Requests go through the gateway; the fakes
// record what they served; the reconciler reads the fakes' admin APIs and
// the store's credential usage, and writes the ledger into the store.

const (
	recAccount       = "acme"
	openAIAdmin      = "sk-admin-RECcanaryOPENAIadminKEY0123456789abcdef"
	anthropicAdmin   = "sk-ant-admin01-RECcanaryANTHROPICadminKEY0123456789"
	openAIPlatform   = "sk-proj-PLATFORMplatformPLATFORM0123456789abcdefXy"
	anthropicPlatfrm = "sk-ant-api03-PLATFORMplatformPLATFORM0123456789abcdefQQ"
)

type recEnv struct {
	t      testing.TB
	s      *store.Store
	path   string
	gw     *gateway.Gateway
	srv    *httptest.Server
	fakes  map[string]*providertest.AdminServer
	admin  map[string]string // admin key by provider
	byok   map[string]string // the account's BYOK key by provider
	apiKey string
	o      *ops.Ops

	mu      sync.Mutex
	results []reconcile.Result
}

func newRecEnv(t testing.TB) *recEnv {
	t.Helper()
	e := &recEnv{t: t, fakes: map[string]*providertest.AdminServer{"openai": providertest.NewOpenAIAdmin(), "anthropic": providertest.NewAnthropicAdmin()},
		admin: map[string]string{"openai": openAIAdmin, "anthropic": anthropicAdmin}, byok: map[string]string{}}
	for p, f := range e.fakes {
		t.Cleanup(f.Close)
		f.AddAdminKey(e.admin[p])
	}
	mk := make([]byte, store.MasterKeySize)
	rand.Read(mk)
	e.path = filepath.Join(t.TempDir(), "ar.db")
	s, err := store.Open(e.path, mk, store.Options{LogFlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.s = s
	if _, err := s.CreateAccount(recAccount, "Acme"); err != nil {
		t.Fatal(err)
	}
	if e.apiKey, _, err = s.CreateAPIKey(recAccount, "ci"); err != nil {
		t.Fatal(err)
	}
	pol, _ := egress.New(true, []string{"127.0.0.1"})
	e.gw, err = gateway.New(gateway.Config{Store: s, Egress: pol, Providers: map[string]*gateway.ProviderConfig{
		"openai":    {APIKey: openAIPlatform, Endpoint: providers.Endpoint{BaseURL: e.fakes["openai"].BaseURL()}},
		"anthropic": {APIKey: anthropicPlatfrm, Endpoint: providers.Endpoint{BaseURL: e.fakes["anthropic"].BaseURL()}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.gw.Close)
	e.srv = httptest.NewServer(e.gw)
	t.Cleanup(e.srv.Close)
	// The fakes know the platform keys as keys of the platform's
	// organisation.
	e.fakes["openai"].AddKey(openAIPlatform, providertest.AdminKey{Name: "platform"})
	e.fakes["anthropic"].AddKey(anthropicPlatfrm, providertest.AdminKey{Name: "platform"})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DialContext: pol.Dialer(&net.Dialer{Timeout: 5 * time.Second})}}
	e.o = &ops.Ops{Store: s, Egress: func() *egress.Policy { return pol }, Reconcile: &ops.Reconciling{
		NewReader: func(provider, key string) (reconcile.Reader, error) {
			o := reconcile.Options{HTTPClient: client, BaseURL: e.fakes[provider].URL, BaseDelay: time.Millisecond, MaxDelay: 50 * time.Millisecond}
			if provider == "anthropic" {
				return reconcile.NewAnthropic(key, o)
			}
			return reconcile.NewOpenAI(key, o)
		},
		Platform: func(provider string) []reconcile.Credential {
			if fp, masked := e.gw.PlatformKeyID(provider); fp != "" {
				return []reconcile.Credential{{Fingerprint: fp, Masked: masked}}
			}
			return nil
		},
		OnResult: func(r reconcile.Result) { e.mu.Lock(); e.results = append(e.results, r); e.mu.Unlock() },
	}}
	return e
}

// byokKey registers a BYOK key n for provider with the account (through
// the operations) and with the fake organisation (in project or
// workspace ws).
func (e *recEnv) byokKey(provider string, n int, k providertest.AdminKey) string {
	e.t.Helper()
	var key string
	if provider == "anthropic" {
		key = fmt.Sprintf("sk-ant-api03-%sBYOK%04dAcmeAcme0123456789abcdefXQ", strings.Repeat("Ab3", 10), n)
	} else {
		key = fmt.Sprintf("sk-proj-%sBYOK%04dAcmeAcme0123456789abcdefZW", strings.Repeat("Cd7", 10), n)
	}
	e.fakes[provider].AddKey(key, k)
	if _, err := e.o.SaveBYOK(recAccount, provider, ops.BYOKInput{APIKey: &key}); err != nil {
		e.t.Fatal(err)
	}
	e.byok[provider] = key
	return key
}

func (e *recEnv) reader(provider string) {
	e.t.Helper()
	key := e.admin[provider]
	if _, err := e.o.SaveUsageReader(recAccount, provider, ops.UsageReaderInput{APIKey: &key}); err != nil {
		e.t.Fatal(err)
	}
}

// send makes one request through the gateway: OpenAI's chat completions
// door for openai, Anthropic's Messages door for anthropic.
func (e *recEnv) send(provider, model string, stream bool) {
	e.t.Helper()
	var req *http.Request
	if provider == "anthropic" {
		body := fmt.Sprintf(`{"model":%q,"max_tokens":64,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, model, stream)
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/v1/messages", strings.NewReader(body))
		req.Header.Set("X-Api-Key", e.apiKey)
		req.Header.Set("Anthropic-Version", "2023-06-01")
	} else {
		body := fmt.Sprintf(`{"model":%q,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, model, stream)
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("%s %s through the gateway: %d %s", provider, model, resp.StatusCode, b)
	}
	if got := resp.Header.Get(gateway.HeaderCredential); got != "byok" && e.byok[provider] != "" {
		e.t.Fatalf("served with %q, want byok", got)
	}
}

// run reconciles the account's provider now.
func (e *recEnv) run(account, provider string, days int) reconcile.Result {
	e.t.Helper()
	e.s.SyncLog()
	res, err := e.o.RunReconcile(context.Background(), account, provider, days)
	if err != nil {
		e.t.Fatalf("run %s: %v", provider, err)
	}
	return res
}

// ledger is the account's ledger of provider over the last 3 days.
func (e *recEnv) ledger(account, provider string) []reconcile.Row {
	e.t.Helper()
	v, err := e.o.Reconciliation(context.Background(), account, ops.ReconciliationQuery{Provider: provider})
	if err != nil {
		e.t.Fatal(err)
	}
	return v.Rows
}

func (e *recEnv) ledgerJSON(account, provider string) string {
	b, _ := json.Marshal(e.ledger(account, provider))
	return string(b)
}

// awayFromTheHour waits until the current UTC hour has at least d left,
// so requests sent next land in one hour on both sides.
func awayFromTheHour(t *testing.T, d time.Duration) {
	left := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour))
	if left < d {
		t.Logf("waiting %v for the next hour", left.Round(time.Millisecond))
		time.Sleep(left + 100*time.Millisecond)
	}
}

func modelsOf(provider string) [2]string {
	if provider == "anthropic" {
		return [2]string{"claude-haiku-4-5", "claude-sonnet-4-5"}
	}
	return [2]string{"gpt-4o-mini", "gpt-4.1-nano"}
}
