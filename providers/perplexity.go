package providers

// Perplexity: https://api.perplexity.ai (no /v1), OpenAI-shaped, Bearer auth.
// Keys are pplx- and 48 alphanumerics (gitleaks rules/perplexity.go).
var perplexity = register(&Provider{
	Name:           Perplexity,
	DefaultBaseURL: "https://api.perplexity.ai",
	KeyPrefixes:    []string{"pplx-"},
	AuthHeader:     "Authorization",
	Implemented:    true,
	build:          buildOpenAIShaped,
	test:           testOpenAIShaped,
})
