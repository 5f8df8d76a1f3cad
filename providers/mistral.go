package providers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"

	"github.com/tidwall/gjson"
)

// Mistral: https://api.mistral.ai/v1, OpenAI-shaped, Bearer auth. Keys are 32
// alphanumerics without a prefix (trufflehog detectors/mistral). It streams
// usage on its final chunk without being asked, and rejects tool-call ids
// that are not 9 alphanumerics (langchain-ai/langchain#24668).
var mistral = register(&Provider{
	Name:           Mistral,
	DefaultBaseURL: "https://api.mistral.ai/v1",
	AuthHeader:     "Authorization",
	Implemented:    true,
	build:          buildMistral,
	test:           testOpenAIShaped,
})

func buildMistral(ctx context.Context, c *Call) (*http.Request, error) {
	body, err := c.wireBody(false)
	if err != nil {
		return nil, err
	}
	if c.Op == OpChat {
		// Mistral takes max_tokens only (Portkey mistral-ai/chatComplete.ts).
		body = RenameField(body, "max_completion_tokens", "max_tokens")
		body = rewriteToolCallIDs(body)
	}
	return newOpenAIShapedRequest(ctx, c, body)
}

// rewriteToolCallIDs maps every tool-call id in the history that Mistral
// would reject (a conversation begun on another provider has ids such as
// "call_abc123..." or "toolu_...") to 9 alphanumerics derived from it, in
// both the assistant's tool_calls and the tool messages' tool_call_id, so
// the pairs still match. The mapping is a hash, so the same history maps
// the same way on every request and nothing needs mapping back: the client
// keeps its own ids, and ids Mistral issues are already valid.
func rewriteToolCallIDs(body []byte) []byte {
	msgs := gjson.GetBytes(body, "messages")
	if !msgs.IsArray() || !bytes.Contains(body, []byte("tool_call")) {
		return body
	}
	needs := false
	msgs.ForEach(func(_, m gjson.Result) bool {
		m.Get("tool_calls").ForEach(func(_, tc gjson.Result) bool {
			if id := tc.Get("id"); id.Exists() && !validMistralID(id.String()) {
				needs = true
			}
			return !needs
		})
		if id := m.Get("tool_call_id"); id.Exists() && !validMistralID(id.String()) {
			needs = true
		}
		return !needs
	})
	if !needs {
		return body
	}
	var list []map[string]json.RawMessage
	if json.Unmarshal([]byte(msgs.Raw), &list) != nil {
		return body
	}
	for _, m := range list {
		if raw, ok := m["tool_call_id"]; ok {
			var id string
			if json.Unmarshal(raw, &id) == nil && !validMistralID(id) {
				m["tool_call_id"], _ = json.Marshal(mistralID(id))
			}
		}
		if raw, ok := m["tool_calls"]; ok {
			var calls []map[string]json.RawMessage
			if json.Unmarshal(raw, &calls) == nil {
				for _, tc := range calls {
					var id string
					if json.Unmarshal(tc["id"], &id) == nil && !validMistralID(id) {
						tc["id"], _ = json.Marshal(mistralID(id))
					}
				}
				m["tool_calls"], _ = json.Marshal(calls)
			}
		}
	}
	out, err := json.Marshal(list)
	if err != nil {
		return body
	}
	return SetField(body, "messages", out)
}

func validMistralID(id string) bool {
	if len(id) != 9 {
		return false
	}
	for i := 0; i < 9; i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// mistralID derives a valid id from any id: 9 base62 digits of its SHA-256.
func mistralID(id string) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	h := sha256.Sum256([]byte(id))
	out := make([]byte, 9)
	for i := range out {
		out[i] = digits[int(h[i])%len(digits)]
	}
	return string(out)
}
