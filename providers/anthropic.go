package providers

// Anthropic: https://api.anthropic.com, POST /v1/messages, x-api-key and
// anthropic-version. Keys are sk-ant-api03-... (admin keys sk-ant-admin01-).
// The Messages translation is not built yet: requests get a clear 501.
var anthropic = register(&Provider{
	Name:           Anthropic,
	DefaultBaseURL: "https://api.anthropic.com",
	KeyPrefixes:    []string{"sk-ant-admin01-", "sk-ant-api03-", "sk-ant-"},
	AuthHeader:     "X-Api-Key",
})
