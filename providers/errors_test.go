package providers

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	quota := `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`
	quotaType := `{"error":{"message":"quota","type":"insufficient_quota"}}`
	rate := `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`
	for _, tc := range []struct {
		provider string
		status   int
		body     string
		want     string
	}{
		{OpenAI, 401, `{"error":{"message":"Incorrect API key"}}`, ClassAuth},
		{OpenAI, 403, ``, ClassAuth},
		{Anthropic, 401, ``, ClassAuth},
		{Gemini, 403, ``, ClassAuth},
		{Mistral, 401, ``, ClassAuth},
		{Together, 401, ``, ClassAuth},
		{Together, 403, `{"error":{"message":"Input validation error: inputs tokens + max_new_tokens must be <= 8193"}}`, ClassBadRequest},
		{Perplexity, 403, ``, ClassAuth},
		{Cohere, 498, `{"message":"invalid api token"}`, ClassAuth},
		{Together, 402, ``, ClassQuota},
		{Anthropic, 402, `{"type":"error","error":{"type":"billing_error"}}`, ClassQuota},
		{OpenAI, 429, quota, ClassQuota},
		{OpenAI, 429, quotaType, ClassQuota},
		{Azure, 429, quota, ClassQuota},
		{OpenAI, 429, rate, ClassRateLimit},
		{OpenAI, 429, ``, ClassRateLimit},
		{Mistral, 429, `not json`, ClassRateLimit},
		{Anthropic, 529, `{"type":"error","error":{"type":"overloaded_error"}}`, ClassOverloaded},
		{Gemini, 503, ``, ClassOverloaded},
		{Together, 503, ``, ClassOverloaded},
		{OpenAI, 500, ``, ClassServer},
		{OpenAI, 502, ``, ClassServer},
		{OpenAI, 504, ``, ClassServer},
		{Cohere, 599, ``, ClassServer},
		{OpenAI, 400, `{"error":{"message":"bad"}}`, ClassBadRequest},
		{OpenAI, 404, ``, ClassBadRequest},
		{Mistral, 422, ``, ClassBadRequest},
		{OpenAI, 413, ``, ClassBadRequest},
	} {
		if got := Classify(tc.provider, tc.status, []byte(tc.body)); got != tc.want {
			t.Errorf("Classify(%s, %d, %.40s) = %s, want %s", tc.provider, tc.status, tc.body, got, tc.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	long := strings.Repeat("x", 250)
	for _, tc := range []struct{ name, body, want string }{
		{"openai", `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}`, "Incorrect API key provided."},
		{"anthropic", `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, "invalid x-api-key"},
		{"gemini", `{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}`, "API key not valid. Please pass a valid API key."},
		{"mistral", `{"object":"error","message":"Unauthorized","type":"invalid_request_error","param":null,"code":null}`, "Unauthorized"},
		{"cohere", `{"id":"abc","message":"invalid api token"}`, "invalid api token"},
		{"error string", `{"error":"model not found"}`, "model not found"},
		{"detail", `{"detail":"Not Found"}`, "Not Found"},
		{"empty message falls through", `{"error":{"message":""},"message":"fallback"}`, "fallback"},
		{"non-string message falls through", `{"message":{"detail":[1]},"detail":"422 detail"}`, "422 detail"},
		{"plain text", "  upstream connect error or disconnect/reset before headers\n", "upstream connect error or disconnect/reset before headers"},
		{"html", "<html><body>Bad Gateway</body></html>", "<html><body>Bad Gateway</body></html>"},
		{"long text is cut", long, long[:200]},
		{"empty", "", ""},
	} {
		if got := ErrorMessage([]byte(tc.body)); got != tc.want {
			t.Errorf("%s: ErrorMessage = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestScrub(t *testing.T) {
	azureKey := "0f1e2d3c4b5a69788796a5b4c3d2e1f0" // 32 hex, no prefix
	mistralKey := "Xq7PlmTq2VbN8rK3sJ5hD1fG6yU0eW4o"
	openaiKey := "sk-proj-" + keyChars(keyURLSafe, 60, 40) + "T3BlbkFJ" + keyChars(keyURLSafe, 20, 41)
	for _, tc := range []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{"exact secret", "Incorrect API key provided: " + mistralKey + ". Check it.", []string{mistralKey},
			"Incorrect API key provided: [REDACTED]. Check it."},
		{"secret twice", azureKey + " / " + azureKey, []string{azureKey}, "[REDACTED] / [REDACTED]"},
		{"12-character window", "key '" + azureKey[10:22] + "' is invalid", []string{azureKey},
			"key '[REDACTED]' is invalid"},
		{"a longer echoed piece goes entirely", "key '" + mistralKey[3:27] + "' is invalid", []string{mistralKey},
			"key '[REDACTED]' is invalid"},
		{"the start of the key", "key " + mistralKey[:20] + "... is invalid", []string{mistralKey},
			"key [REDACTED]... is invalid"},
		{"the end of the key", "key ..." + azureKey[14:] + " is invalid", []string{azureKey},
			"key ...[REDACTED] is invalid"},
		{"eleven characters are left alone", "id " + azureKey[0:11] + " ok", []string{azureKey},
			"id " + azureKey[0:11] + " ok"},
		{"short secret only exactly", "abc123 and abc12", []string{"abc123"}, "[REDACTED] and abc12"},
		{"empty secret ignored", "nothing here", []string{""}, "nothing here"},
		{"several secrets", mistralKey + " " + azureKey, []string{mistralKey, azureKey}, "[REDACTED] [REDACTED]"},
		{"openai echo with stars", `Incorrect API key provided: sk-proj-abc***************wxyz.`, nil,
			`Incorrect API key provided: [REDACTED]***************wxyz.`},
		{"our own key sent", "bad key " + openaiKey, []string{openaiKey}, "bad key [REDACTED]"},
		{"openai shape", `{"message":"sk-` + keyChars(keyAlnum, 48, 1) + `"}`, nil, `{"message":"[REDACTED]"}`},
		{"anthropic shape", "x-api-key sk-ant-api03-" + keyChars(keyURLSafe, 93, 2) + "AA rejected", nil, "x-api-key [REDACTED] rejected"},
		{"gemini AIza shape", "key=AIza" + keyChars(keyURLSafe, 35, 3) + "&alt=sse", nil, "key=[REDACTED]&alt=sse"},
		{"gemini AQ. shape", "key AQ.Ab8RN6" + keyChars(keyURLSafe, 40, 4) + " expired", nil, "key [REDACTED] expired"},
		{"perplexity shape", "(pplx-" + keyChars(keyAlnum, 48, 5) + ")", nil, "([REDACTED])"},
		{"together shape", "'tgp_v1_" + keyChars(keyURLSafe, 43, 6) + "'", nil, "'[REDACTED]'"},
		{"agent router shape", "Bearer ar_" + keyChars(keyURLSafe, 43, 7), nil, "Bearer [REDACTED]"},
		{"url-encoded quote before a key", "%22sk-" + keyChars(keyAlnum, 30, 8) + "%22", nil, "%22[REDACTED]%22"},
		{"ordinary error text", "The model `gpt-4o-mini` does not exist or you do not have access to it.", nil,
			"The model `gpt-4o-mini` does not exist or you do not have access to it."},
		{"rate limit text", "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000.", nil,
			"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000."},
		{"words ending in sk", "Use a task-management or risk-assessment-framework tool; disk-quota-exceeded.", nil,
			"Use a task-management or risk-assessment-framework tool; disk-quota-exceeded."},
		{"identifiers ending in ar", "parameter similar_models_are_not_supported and linear_interpolation_is_disabled", nil,
			"parameter similar_models_are_not_supported and linear_interpolation_is_disabled"},
		{"FAQ link", "see the FAQ.troubleshooting-guide page", nil, "see the FAQ.troubleshooting-guide page"},
		{"short sk-", "sk-1234 is not a key", nil, "sk-1234 is not a key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := string(Scrub([]byte(tc.in), tc.secrets...))
			if got != tc.want {
				t.Errorf("Scrub(%q)\n= %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// Whatever piece of a secret an upstream echoes, no 12 characters of it
// survive scrubbing.
func TestScrubLeavesNoPieceOfTheSecret(t *testing.T) {
	secret := "Zr8" + keyChars(keyAlnum, 37, 50) // 40 characters, no known prefix
	for start := 0; start < len(secret); start++ {
		for end := start + 12; end <= len(secret); end++ {
			in := "error: key \"" + secret[start:end] + "\" rejected"
			out := string(Scrub([]byte(in), secret))
			if out != "error: key \"[REDACTED]\" rejected" {
				t.Fatalf("Scrub(%q) = %q", in, out)
			}
		}
	}
}
