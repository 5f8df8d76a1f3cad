package providers

// Cohere: https://api.cohere.com, POST /v2/chat, Bearer auth. Keys are 40
// alphanumerics without a prefix. The v2 chat translation is not built yet:
// requests get a clear 501.
var cohere = register(&Provider{
	Name:           Cohere,
	DefaultBaseURL: "https://api.cohere.com",
	AuthHeader:     "Authorization",
})
