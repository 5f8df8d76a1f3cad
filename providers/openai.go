package providers

import (
	"bytes"
	"context"
	"net/http"
)

// OpenAI: https://api.openai.com/v1, Authorization: Bearer, optional
// OpenAI-Organization and OpenAI-Project headers (openai-go option/requestoption.go).
// Key families: sk-, sk-proj-, sk-svcacct-, sk-admin- (gitleaks rules/openai.go).
var openAI = register(&Provider{
	Name:           OpenAI,
	DefaultBaseURL: "https://api.openai.com/v1",
	KeyPrefixes:    []string{"sk-svcacct-", "sk-admin-", "sk-proj-", "sk-"},
	AuthHeader:     "Authorization",
	Implemented:    true,
	build:          buildOpenAIShaped,
})

// paths of the OpenAI-shaped operations, relative to the base URL.
func opPath(op Operation) string {
	if op == OpEmbeddings {
		return "/embeddings"
	}
	return "/chat/completions"
}

// buildOpenAIShaped serves every provider whose API is OpenAI's chat
// completions shape with a Bearer key: OpenAI, Mistral, Together, Perplexity.
func buildOpenAIShaped(ctx context.Context, c *Call) (*http.Request, error) {
	body := SetModel(c.Body, c.Model)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint.BaseURL+opPath(c.Op), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = []string{"Bearer " + c.Key}
	req.Header["Content-Type"] = []string{"application/json"}
	if c.Endpoint.Organization != "" {
		req.Header["Openai-Organization"] = []string{c.Endpoint.Organization}
	}
	if c.Endpoint.Project != "" {
		req.Header["Openai-Project"] = []string{c.Endpoint.Project}
	}
	return req, nil
}
