package providers

import (
	"context"
	"fmt"
	"net/http"
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
