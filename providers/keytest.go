package providers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Outcomes of a key test (TestResult.Outcome).
const (
	// TestOK: the provider accepted the key.
	TestOK = "ok"
	// TestRejected: the provider refused the key (401/403, Gemini's 400
	// API_KEY_INVALID, Cohere's 498): the key is wrong, revoked or lacks
	// access.
	TestRejected = "rejected"
	// TestUnreachable: no answer (connection refused, DNS, TLS, timeout).
	TestUnreachable = "unreachable"
	// TestError: an answer that says nothing about the key (429, 5xx, an
	// unexpected 404 from a wrong base URL...), or a test that could not be
	// built.
	TestError = "error"
)

// TestResult is the answer to a key test: a cheap authenticated call (list
// models) made with the key.
type TestResult struct {
	// Outcome is ok, rejected, unreachable or error.
	Outcome string `json:"outcome"`
	// Status is the provider's HTTP status; 0 when it did not answer.
	Status int `json:"status,omitempty"`
	// Message explains a failure in words: the provider's own message,
	// scrubbed of key material. Empty on success.
	Message string `json:"message,omitempty"`
	// LatencyMS is how long the provider took to answer, in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
}

// NewTestRequest builds the key test's request for this provider: an
// authenticated, free GET that lists models (reference/providers.md §10):
// OpenAI, Mistral, Together and Perplexity GET {base}/models with a Bearer
// key; Anthropic GET /v1/models with x-api-key and anthropic-version;
// Gemini GET /v1beta/models with x-goog-api-key; Cohere GET /v1/models;
// Azure GET {endpoint}/openai/models?api-version=… (or /openai/v1/models
// for api_version v1). ep.BaseURL defaults to the provider's.
func (p *Provider) NewTestRequest(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	if p.test == nil {
		return nil, fmt.Errorf("%s: %w", p.Name, ErrNotImplemented)
	}
	if ep.BaseURL == "" {
		ep.BaseURL = p.DefaultBaseURL
	}
	ep.BaseURL = strings.TrimRight(ep.BaseURL, "/")
	return p.test(ctx, ep, key)
}

// testOpenAIShaped lists models the OpenAI way: GET {base}/models, Bearer,
// and OpenAI's organization and project headers when set.
func testOpenAIShaped(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.BaseURL+"/models", nil)
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = []string{"Bearer " + key}
	if ep.Organization != "" {
		req.Header["Openai-Organization"] = []string{ep.Organization}
	}
	if ep.Project != "" {
		req.Header["Openai-Project"] = []string{ep.Project}
	}
	return req, nil
}

// testAnthropic: GET /v1/models (a base URL ending in /v1 works too, as
// for messages), x-api-key and anthropic-version.
func testAnthropic(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	u := ep.BaseURL
	if strings.HasSuffix(u, "/v1") {
		u += "/models"
	} else {
		u += "/v1/models"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header["X-Api-Key"] = []string{key}
	req.Header["Anthropic-Version"] = []string{AnthropicVersion}
	return req, nil
}

// testGemini: GET /v1beta/models with x-goog-api-key (never ?key=, which
// would put the key in URLs and logs).
func testGemini(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	base := ep.BaseURL
	if !strings.HasSuffix(base, "/v1beta") && !strings.HasSuffix(base, "/v1") {
		base += "/" + geminiAPIVersion
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/models", nil)
	if err != nil {
		return nil, err
	}
	req.Header["X-Goog-Api-Key"] = []string{key}
	return req, nil
}

// testCohere: GET /v1/models, Bearer.
func testCohere(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ep.BaseURL+"/v1/models", nil)
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = []string{"Bearer " + key}
	req.Header["Accept"] = []string{"application/json"}
	return req, nil
}

// testAzure: the resource's model list, GET /openai/models?api-version=…
// (classic) or /openai/v1/models (api_version v1), with the api-key header.
func testAzure(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	if ep.BaseURL == "" {
		return nil, errAzureEndpoint
	}
	version := ep.APIVersion
	if version == "" {
		version = DefaultAzureAPIVersion
	}
	u := ep.BaseURL + "/openai/models?api-version=" + url.QueryEscape(version)
	if version == "v1" {
		u = ep.BaseURL + "/openai/v1/models"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header["Api-Key"] = []string{key}
	return req, nil
}
