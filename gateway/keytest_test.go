package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// keyTestCase is one provider's fake and what its key test must look like.
type keyTestCase struct {
	provider, kind string
	good, bad      string
	header         string // where the key must arrive
	path           string // the list-models path the fake must see
	rejectStatus   int
}

func keyTestCases() []keyTestCase {
	return []keyTestCase{
		{providers.OpenAI, "openai", canaryOpenAI("tok"), canaryOpenAI("tbad"), "Authorization", "/v1/models", 401},
		{providers.Mistral, "openai", canaryPlain("mok"), canaryPlain("mbad"), "Authorization", "/v1/models", 401},
		{providers.Together, "openai", "tgp_v1_CANARYtok" + randAlnum(30), "tgp_v1_CANARYtbad" + randAlnum(30), "Authorization", "/v1/models", 401},
		{providers.Perplexity, "openai", "pplx-CANARYpok" + randAlnum(40), "pplx-CANARYpbad" + randAlnum(40), "Authorization", "/v1/models", 401},
		{providers.Azure, "azure", canaryPlain("aok"), canaryPlain("abad"), "Api-Key", "/openai/models", 401},
		{providers.Anthropic, "anthropic", "sk-ant-api03-CANARYok" + randAlnum(40), "sk-ant-api03-CANARYbad" + randAlnum(40), "X-Api-Key", "/v1/models", 401},
		{providers.Gemini, "gemini", "AIzaCANARYgok" + randAlnum(26), "AIzaCANARYgbad" + randAlnum(26), "X-Goog-Api-Key", "/v1beta/models", 400},
		{providers.Cohere, "cohere", canaryPlain("cok"), canaryPlain("cbad"), "Authorization", "/v1/models", 401},
	}
}

// TestCredentialEveryProvider tests a good key, a bad key and an
// unreachable endpoint for every provider kind, through the gateway's own
// transports, and checks that no key reaches a result or a log line.
func TestCredentialEveryProvider(t *testing.T) {
	cases := keyTestCases()
	s := storetest.Open(t)
	var logs syncBuffer
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&logs), zapcore.DebugLevel))

	live := map[string]*gateway.ProviderConfig{}
	dead := map[string]*gateway.ProviderConfig{}
	fakes := map[string]*providertest.Server{}
	for _, c := range cases {
		f := providertest.New(c.kind)
		t.Cleanup(f.Close)
		f.AcceptOnly(c.good)
		fakes[c.provider] = f
		live[c.provider] = &gateway.ProviderConfig{Endpoint: providers.Endpoint{BaseURL: f.BaseURL()}}
		dead[c.provider] = &gateway.ProviderConfig{Endpoint: providers.Endpoint{BaseURL: testfix.ClosedURL(t)}}
	}
	g, err := gateway.New(gateway.Config{Store: s, Providers: live, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	gDead, err := gateway.New(gateway.Config{Store: s, Providers: dead, Logger: logger, DialTimeout: bounded})
	if err != nil {
		t.Fatal(err)
	}
	defer gDead.Close()

	var results []gateway.TestResult
	ctx := context.Background()
	for _, c := range cases {
		t.Run(c.provider, func(t *testing.T) {
			f := fakes[c.provider]
			f.Reset()

			r := g.TestCredential(ctx, c.provider, c.good, store.Extras{})
			results = append(results, r)
			if r.Outcome != providers.TestOK || r.Status != 200 || r.Message != "" || r.LatencyMS <= 0 {
				t.Errorf("good key: %+v", r)
			}
			last, ok := f.Last()
			if !ok || last.Method != http.MethodGet || last.Path != c.path || last.Credential != c.good || last.CredentialHeader != c.header {
				t.Errorf("fake saw %s %s with %s in %q, want GET %s with the key in %s", last.Method, last.Path,
					providers.Mask(last.Credential), last.CredentialHeader, c.path, c.header)
			}
			if c.provider == providers.Anthropic && last.Header.Get("Anthropic-Version") == "" {
				t.Error("anthropic test without anthropic-version")
			}

			r = g.TestCredential(ctx, c.provider, c.bad, store.Extras{})
			results = append(results, r)
			if r.Outcome != providers.TestRejected || r.Status != c.rejectStatus || r.Message == "" {
				t.Errorf("bad key: %+v", r)
			}
			if last, _ := f.Last(); last.Credential != c.bad {
				t.Errorf("the bad key did not reach the fake")
			}

			r = gDead.TestCredential(ctx, c.provider, c.good, store.Extras{})
			results = append(results, r)
			if r.Outcome != providers.TestUnreachable || r.Status != 0 || !strings.Contains(r.Message, c.provider) {
				t.Errorf("unreachable: %+v", r)
			}
		})
	}

	// The canary: no key, whole or in part, in any result or log line.
	out, _ := json.Marshal(results)
	for _, c := range cases {
		for _, k := range []string{c.good, c.bad} {
			if w := leak(out, k); w != "" {
				t.Errorf("%s key leaked into a result (%q): %s", c.provider, w, out)
			}
			if w := leak(logs.Bytes(), k); w != "" {
				t.Errorf("%s key leaked into the log (%q)", c.provider, w)
			}
		}
	}
}

// The endpoint: a BYOK base URL and api_version in extras win over the
// platform's; OpenAI's organization and project go with the key; answers
// that say nothing about the key are errors, not rejections.
func TestCredentialEndpointAndErrors(t *testing.T) {
	s := storetest.Open(t)
	platform, own := providertest.New("openai"), providertest.New("openai")
	azure := providertest.New("azure")
	defer platform.Close()
	defer own.Close()
	defer azure.Close()
	loopback, err := egress.New(true, []string{"127.0.0.1"}) // where the fakes listen
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{Store: s, Egress: loopback, Providers: map[string]*gateway.ProviderConfig{
		providers.OpenAI: {Endpoint: providers.Endpoint{BaseURL: platform.BaseURL(), Organization: "org-platform"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	key := canaryOpenAI("ep")

	r := g.TestCredential(ctx, providers.OpenAI, key, store.Extras{BaseURL: own.BaseURL(), Organization: "org-own", Project: "proj-own"})
	if r.Outcome != providers.TestOK || len(platform.Records()) != 0 {
		t.Fatalf("%+v; platform fake got %d requests", r, len(platform.Records()))
	}
	last, _ := own.Last()
	if last.Header.Get("Openai-Organization") != "org-own" || last.Header.Get("Openai-Project") != "proj-own" {
		t.Errorf("headers %v", last.Header)
	}
	// Without extras: the platform endpoint, without the platform's organization.
	if r := g.TestCredential(ctx, providers.OpenAI, key, store.Extras{}); r.Outcome != providers.TestOK {
		t.Errorf("%+v", r)
	}
	if last, _ := platform.Last(); last.Header.Get("Openai-Organization") != "" {
		t.Errorf("the platform's organization went with a customer key")
	}

	// Azure: classic api-version and v1.
	if r := g.TestCredential(ctx, providers.Azure, key, store.Extras{BaseURL: azure.BaseURL(), APIVersion: "2024-10-21"}); r.Outcome != providers.TestOK {
		t.Errorf("azure classic: %+v", r)
	}
	if last, _ := azure.Last(); last.Path != "/openai/models" || last.Query != "api-version=2024-10-21" {
		t.Errorf("azure classic: %s?%s", last.Path, last.Query)
	}
	if r := g.TestCredential(ctx, providers.Azure, key, store.Extras{BaseURL: azure.BaseURL(), APIVersion: "v1"}); r.Outcome != providers.TestOK {
		t.Errorf("azure v1: %+v", r)
	}
	if last, _ := azure.Last(); last.Path != "/openai/v1/models" {
		t.Errorf("azure v1: %s", last.Path)
	}
	// Azure without a resource endpoint cannot be tested.
	if r := g.TestCredential(ctx, providers.Azure, key, store.Extras{}); r.Outcome != providers.TestError || !strings.Contains(r.Message, "base_url") {
		t.Errorf("azure without base_url: %+v", r)
	}

	// Rate limits and outages are errors with the status; the echoed key is scrubbed.
	for _, status := range []int{429, 500, 503} {
		own.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Status: status, Body: `{"error":{"message":"busy, key ` + key + `"}}`}
		})
		r := g.TestCredential(ctx, providers.OpenAI, key, store.Extras{BaseURL: own.BaseURL()})
		if r.Outcome != providers.TestError || r.Status != status || leak([]byte(r.Message), key) != "" || !strings.Contains(r.Message, "busy") {
			t.Errorf("status %d: %+v", status, r)
		}
	}
	if r := g.TestCredential(ctx, "openia", key, store.Extras{}); r.Outcome != providers.TestError {
		t.Errorf("unknown provider: %+v", r)
	}
	if r := g.TestCredential(ctx, providers.OpenAI, "", store.Extras{}); r.Outcome != providers.TestError {
		t.Errorf("empty key: %+v", r)
	}
}

// TestCredentialGuardedBaseURL: testing a key whose base URL leads to an
// internal address (by default policy) never connects there.
func TestCredentialGuardedBaseURL(t *testing.T) {
	s := storetest.Open(t)
	fake := providertest.New("openai")
	defer fake.Close()
	g, err := gateway.New(gateway.Config{Store: s}) // the strict default
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r := g.TestCredential(context.Background(), providers.OpenAI, canaryOpenAI("guard"), store.Extras{BaseURL: fake.BaseURL()})
	if r.Outcome != providers.TestUnreachable || !strings.Contains(r.Message, "may not reach") {
		t.Errorf("%+v", r)
	}
	if n := len(fake.Records()); n != 0 {
		t.Errorf("the internal address got %d requests", n)
	}
}
