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
func buildOpenAIShaped(ctx context.Context, op Operation, ep Endpoint, key, model string, body []byte) (*http.Request, error) {
	body = SetModel(body, model)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.BaseURL+opPath(op), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["Authorization"] = []string{"Bearer " + key}
	req.Header["Content-Type"] = []string{"application/json"}
	if ep.Organization != "" {
		req.Header["Openai-Organization"] = []string{ep.Organization}
	}
	if ep.Project != "" {
		req.Header["Openai-Project"] = []string{ep.Project}
	}
	return req, nil
}
