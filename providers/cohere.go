package providers

import "net/http"

// Cohere: https://api.cohere.com, POST /v2/chat, Bearer auth. Keys are 40
// alphanumerics without a prefix. The v2 chat translation is not built yet:
// requests get a clear 501.
var cohere = register(&Provider{
	Name:           Cohere,
	DefaultBaseURL: "https://api.cohere.com",
	AuthHeader:     "Authorization",
	classify:       classifyCohere,
})

// classifyCohere: Cohere answers 498 for an invalid token (cohere-go
// error_codes.go).
func classifyCohere(status int, _ http.Header, _ []byte) string {
	if status == 498 {
		return ClassAuth
	}
	return ""
}
