package providers

import (
	"context"
	"net/http"
)

// Perplexity: https://api.perplexity.ai (no /v1), OpenAI-shaped, Bearer auth.
// Keys are pplx- and 48 alphanumerics (gitleaks rules/perplexity.go).
var perplexity = register(&Provider{
	Name:           Perplexity,
	DefaultBaseURL: "https://api.perplexity.ai",
	KeyPrefixes:    []string{"pplx-"},
	AuthHeader:     "Authorization",
	Implemented:    true,
	build:          buildPerplexity,
	test:           testOpenAIShaped,
})

// buildPerplexity is the OpenAI-shaped build. Perplexity's models search
// the web on every request, so a door's web search needs nothing more, and
// is not reported as left out.
func buildPerplexity(ctx context.Context, c *Call) (*http.Request, error) {
	body, err := c.wireBody(true)
	if err != nil {
		return nil, err
	}
	return newOpenAIShapedRequest(ctx, c, body)
}
