package providers

import (
	"context"
	"net/http"
	"testing"
)

func TestNewTestRequest(t *testing.T) {
	const key = "k-0123456789abcdef"
	cases := []struct {
		provider string
		ep       Endpoint
		url      string
		header   string
		value    string
	}{
		{OpenAI, Endpoint{}, "https://api.openai.com/v1/models", "Authorization", "Bearer " + key},
		{OpenAI, Endpoint{BaseURL: "https://eu.api.openai.com/v1/"}, "https://eu.api.openai.com/v1/models", "Authorization", "Bearer " + key},
		{Mistral, Endpoint{}, "https://api.mistral.ai/v1/models", "Authorization", "Bearer " + key},
		{Together, Endpoint{}, "https://api.together.xyz/v1/models", "Authorization", "Bearer " + key},
		{Perplexity, Endpoint{}, "https://api.perplexity.ai/models", "Authorization", "Bearer " + key},
		{Anthropic, Endpoint{}, "https://api.anthropic.com/v1/models", "X-Api-Key", key},
		{Anthropic, Endpoint{BaseURL: "https://proxy.example/v1"}, "https://proxy.example/v1/models", "X-Api-Key", key},
		{Gemini, Endpoint{}, "https://generativelanguage.googleapis.com/v1beta/models", "X-Goog-Api-Key", key},
		{Gemini, Endpoint{BaseURL: "https://g.example/v1beta"}, "https://g.example/v1beta/models", "X-Goog-Api-Key", key},
		{Cohere, Endpoint{}, "https://api.cohere.com/v1/models", "Authorization", "Bearer " + key},
		{Azure, Endpoint{BaseURL: "https://acme.openai.azure.com"}, "https://acme.openai.azure.com/openai/models?api-version=" + DefaultAzureAPIVersion, "Api-Key", key},
		{Azure, Endpoint{BaseURL: "https://acme.openai.azure.com", APIVersion: "v1"}, "https://acme.openai.azure.com/openai/v1/models", "Api-Key", key},
	}
	for _, c := range cases {
		req, err := Get(c.provider).NewTestRequest(context.Background(), c.ep, key)
		if err != nil {
			t.Errorf("%s: %v", c.provider, err)
			continue
		}
		if req.Method != http.MethodGet || req.URL.String() != c.url || req.Header.Get(c.header) != c.value || req.Body != nil {
			t.Errorf("%s: %s %s %s=%q", c.provider, req.Method, req.URL, c.header, req.Header.Get(c.header))
		}
		if req.URL.Query().Get("key") != "" {
			t.Errorf("%s: key in the URL", c.provider)
		}
		if c.provider == Anthropic && req.Header.Get("Anthropic-Version") != AnthropicVersion {
			t.Errorf("anthropic-version missing")
		}
	}
	if _, err := Get(Azure).NewTestRequest(context.Background(), Endpoint{}, key); err == nil {
		t.Error("azure without base_url built a request")
	}
}
