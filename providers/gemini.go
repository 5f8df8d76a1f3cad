package providers

// Gemini (AI Studio): https://generativelanguage.googleapis.com, the key in
// the x-goog-api-key header (never ?key=). Keys were AIza + 35 characters;
// since 2026 new keys start with AQ. (reports of IQ. too). The
// generateContent translation is not built yet: requests get a clear 501.
var gemini = register(&Provider{
	Name:           Gemini,
	DefaultBaseURL: "https://generativelanguage.googleapis.com",
	KeyPrefixes:    []string{"AIza", "AQ.", "IQ."},
	AuthHeader:     "X-Goog-Api-Key",
})
