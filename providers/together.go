package providers

import "net/http"

// Together AI: https://api.together.xyz/v1, OpenAI-shaped, Bearer auth. Keys
// start with tgp_v1_ (trufflehog detectors/togetherai); older keys may not.
var together = register(&Provider{
	Name:           Together,
	DefaultBaseURL: "https://api.together.xyz/v1",
	KeyPrefixes:    []string{"tgp_v1_"},
	AuthHeader:     "Authorization",
	Implemented:    true,
	build:          buildOpenAIShaped,
	test:           testOpenAIShaped,
	classify:       classifyTogether,
})

// classifyTogether: Together answers 403 when input + max_tokens exceed the
// context length, a bad request rather than a refused key
// (docs.together.ai/docs/error-codes).
func classifyTogether(status int, _ http.Header, _ []byte) string {
	if status == 403 {
		return ClassBadRequest
	}
	return ""
}
