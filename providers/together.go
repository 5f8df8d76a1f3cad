package providers

// Together AI: https://api.together.xyz/v1, OpenAI-shaped, Bearer auth. Keys
// start with tgp_v1_ (trufflehog detectors/togetherai); older keys may not.
var together = register(&Provider{
	Name:           Together,
	DefaultBaseURL: "https://api.together.xyz/v1",
	KeyPrefixes:    []string{"tgp_v1_"},
	AuthHeader:     "Authorization",
	Implemented:    true,
	build:          buildOpenAIShaped,
})
