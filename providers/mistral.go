package providers

// Mistral: https://api.mistral.ai/v1, OpenAI-shaped, Bearer auth. Keys are 32
// alphanumerics without a prefix (trufflehog detectors/mistral).
var mistral = register(&Provider{
	Name:           Mistral,
	DefaultBaseURL: "https://api.mistral.ai/v1",
	AuthHeader:     "Authorization",
	Implemented:    true,
	build:          buildOpenAIShaped,
})
