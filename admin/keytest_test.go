package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

type testOut struct {
	Provider         string  `json:"provider"`
	Tested           string  `json:"tested"`
	Outcome          string  `json:"outcome"`
	Status           int     `json:"status"`
	Message          string  `json:"message"`
	LatencyMS        float64 `json:"latency_ms"`
	CredentialStatus string  `json:"credential_status"`
}

// The key test, wired to a real gateway whose OpenAI and Anthropic endpoints
// are fake providers: a pasted key is tested without being saved, the
// stored key's health follows the result, and no key reaches a response,
// the gateway's log or the store file.
func TestBYOKTest(t *testing.T) {
	openai, anthropic := providertest.New("openai"), providertest.New("anthropic")
	defer openai.Close()
	defer anthropic.Close()
	obsCore, logs := observer.New(zapcore.DebugLevel)
	var g *gateway.Gateway
	h := newHarnessWith(t, func(api *admin.API) {
		// The fakes listen on http://127.0.0.1: the operator allows it,
		// for saving and testing (admin) and for dialing (gateway).
		loopback, err := egress.New(true, []string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		api.Egress = func() *egress.Policy { return loopback }
		g, err = gateway.New(gateway.Config{Store: api.Store(), Logger: zap.New(obsCore), Egress: loopback, Providers: map[string]*gateway.ProviderConfig{
			providers.OpenAI:    {Endpoint: providers.Endpoint{BaseURL: openai.BaseURL()}},
			providers.Anthropic: {Endpoint: providers.Endpoint{BaseURL: anthropic.BaseURL()}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		api.TestCredential = g.TestCredential
	})
	defer g.Close()
	h.createAccount("acme")
	good := h.secret("sk-proj-CANARYgood" + randAlnum(t, 40))
	bad := h.secret("sk-proj-CANARYbad" + randAlnum(t, 40))
	openai.AcceptOnly(good)
	const url = "/agent_router/accounts/acme/byok/openai/test"

	// A pasted key: tested, not saved.
	var out testOut
	h.ok("POST", url, keyBody(good), http.StatusOK, &out)
	if out.Provider != "openai" || out.Tested != "pasted" || out.Outcome != "ok" || out.Status != 200 || out.CredentialStatus != "" {
		t.Errorf("pasted good key: %+v", out)
	}
	if last, _ := openai.Last(); last.Credential != good || last.Path != "/v1/models" {
		t.Errorf("fake saw %s %s", last.Path, providers.Mask(last.Credential))
	}
	if st := h.byokList("acme")[0]; st.Status != "not_configured" {
		t.Errorf("a tested key was saved: %+v", st)
	}
	h.ok("POST", url, keyBody(bad), http.StatusOK, &out)
	if out.Outcome != "rejected" || out.Status != 401 || out.Message == "" {
		t.Errorf("pasted bad key: %+v", out)
	}
	// With extras, checked as PUT checks them.
	h.ok("POST", url, `{"api_key":`+jsonStr(good)+`,"base_url":`+jsonStr(testfix.ClosedURL(t))+`}`, http.StatusOK, &out)
	if out.Outcome != "unreachable" || out.Status != 0 {
		t.Errorf("unreachable base_url: %+v", out)
	}
	h.fail("POST", url, keyBody("sk-ant-api03-"+randAlnum(t, 40)), http.StatusBadRequest, "looks like a key for anthropic")
	h.fail("POST", url, `{"api_key":`+jsonStr(good)+`,"api_version":"2024-10-21"}`, http.StatusBadRequest, "api_version can be set only for azure")
	h.fail("POST", "/agent_router/accounts/acme/byok/azure/test", keyBody(randAlnum(t, 32)), http.StatusBadRequest, "azure credentials need base_url")
	h.fail("POST", url, `{"base_url":"https://eu.api.openai.com/v1"}`, http.StatusBadRequest, "go with a pasted api_key")
	h.fail("POST", url, `{"api_key":"x","byok_only":true}`, http.StatusBadRequest, "unknown field")

	// The stored key: none yet.
	h.fail("POST", url, "", http.StatusNotFound, "has no openai key registered")
	h.fail("POST", "/agent_router/accounts/nobody/byok/openai/test", "", http.StatusNotFound, "not found")
	h.fail("POST", "/agent_router/accounts/acme/byok/openia/test", "", http.StatusNotFound, "unknown provider")
	h.fail("GET", url, "", http.StatusMethodNotAllowed, "POST")

	// A stored key the provider rejects is marked invalid by the test...
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai", keyBody(bad), http.StatusOK, nil)
	h.fail("POST", url, keyBody(providers.Mask(bad)), http.StatusBadRequest, "masked")
	h.ok("POST", url, "", http.StatusOK, &out)
	if out.Tested != "stored" || out.Outcome != "rejected" || out.CredentialStatus != "invalid" {
		t.Errorf("stored bad key: %+v", out)
	}
	if st := h.byokList("acme")[0]; st.Status != "invalid" || st.InvalidReason == "" {
		t.Errorf("after a rejected test: %+v", st)
	}
	// ...and a successful test clears the mark.
	openai.AcceptOnly(good, bad)
	h.ok("POST", url, "{}", http.StatusOK, &out)
	if out.Outcome != "ok" || out.CredentialStatus != "active" {
		t.Errorf("stored key accepted: %+v", out)
	}
	if st := h.byokList("acme")[0]; st.Status != "active" || st.InvalidSince != nil {
		t.Errorf("after a successful test: %+v", st)
	}
	if n := openai.Count(bad); n != 3 {
		t.Errorf("the fake saw the stored key %d times, want 3", n)
	}

	// Anthropic, stored with its own header.
	ant := h.secret("sk-ant-api03-CANARYant" + randAlnum(t, 60))
	h.ok("PUT", "/agent_router/accounts/acme/byok/anthropic", keyBody(ant), http.StatusOK, nil)
	h.ok("POST", "/agent_router/accounts/acme/byok/anthropic/test", "", http.StatusOK, &out)
	if last, _ := anthropic.Last(); out.Outcome != "ok" || last.CredentialHeader != "X-Api-Key" || last.Credential != ant {
		t.Errorf("anthropic: %+v via %s", out, last.CredentialHeader)
	}

	// No key in the gateway's log (responses and the store file are checked
	// by the harness at cleanup).
	for _, e := range logs.AllUntimed() {
		for _, v := range e.ContextMap() {
			s, _ := v.(string)
			for _, k := range []string{good, bad, ant} {
				if strings.Contains(s, k) || strings.Contains(s, k[len(k)-20:]) {
					t.Errorf("key in log line %q", e.Message)
				}
			}
		}
	}
}

// Without a running gateway the route says why.
func TestBYOKTestWithoutGateway(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	h.fail("POST", "/agent_router/accounts/acme/byok/openai/test", keyBody("sk-proj-"+randAlnum(t, 40)), http.StatusServiceUnavailable, "no agent_router handler")
}
