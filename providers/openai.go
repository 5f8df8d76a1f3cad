package providers

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
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
	build:          buildOpenAI,
	test:           testOpenAIShaped,
	speaks:         func(api string, _ Endpoint) bool { return api == ResponsesDoor.API },
})

// paths of the OpenAI-shaped operations, relative to the base URL.
func opPath(op Operation) string {
	if op == OpEmbeddings {
		return "/embeddings"
	}
	return "/chat/completions"
}

// buildOpenAI adds OpenAI's own request rules to the OpenAI-shaped build:
// streamed requests ask for usage, and max_tokens becomes
// max_completion_tokens for the models that refuse the former, and in
// every request a door wrote (the current name, which every chat model
// takes; a client's own body keeps what it sent).
func buildOpenAI(ctx context.Context, c *Call) (*http.Request, error) {
	if r := c.doorHub(); r != nil && r.MaxTokens != nil {
		r.MaxTokens, r.MaxCompletionTokens = nil, r.MaxTokens
	}
	body, err := c.wireBody(false)
	if err != nil {
		return nil, err
	}
	if c.Op == OpChat {
		body = askStreamUsage(c, body)
		if needsMaxCompletionTokens(c.Model) {
			body = RenameField(body, "max_tokens", "max_completion_tokens")
		}
	}
	return newOpenAIShapedRequest(ctx, c, body)
}

// askStreamUsage makes a streamed request ask for the usage chunk, so every
// stream is metered; the passthrough translator removes that chunk again
// when the client did not ask for it (openai-go ChatCompletionStreamOptionsParam:
// usage is streamed only with include_usage).
func askStreamUsage(c *Call, body []byte) []byte {
	if !c.Stream || c.IncludeUsage {
		return body
	}
	if so := gjson.GetBytes(body, "stream_options"); so.IsObject() {
		return SetField(body, "stream_options", SetField([]byte(so.Raw), "include_usage", []byte("true")))
	}
	return SetField(body, "stream_options", []byte(`{"include_usage":true}`))
}

// needsMaxCompletionTokens: max_tokens "is not compatible with o-series
// models" and the gpt-5 family (openai-go chatcompletion.go, MaxTokens doc).
func needsMaxCompletionTokens(model string) bool {
	return len(model) >= 2 && model[0] == 'o' && model[1] >= '1' && model[1] <= '9' ||
		strings.HasPrefix(model, "gpt-5")
}

// buildOpenAIShaped serves the providers whose API is OpenAI's chat
// completions shape with a Bearer key and no rules of their own (Together).
func buildOpenAIShaped(ctx context.Context, c *Call) (*http.Request, error) {
	body, err := c.wireBody(false)
	if err != nil {
		return nil, err
	}
	return newOpenAIShapedRequest(ctx, c, body)
}

func newOpenAIShapedRequest(ctx context.Context, c *Call, body []byte) (*http.Request, error) {
	body = SetModel(body, c.Model)
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
