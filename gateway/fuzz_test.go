package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// FuzzRequestBody sends arbitrary bodies (nesting, invalid UTF-8, repeated
// members, odd models) through the whole request path to a fake provider:
// nothing panics, every refusal is a 4xx in OpenAI's envelope, and
// invalid_json is given exactly to bodies that are not a JSON object of
// valid UTF-8 nested at most MaxJSONDepth deep.
//
//	./xcaddy.sh test ./gateway/ -run XXX -fuzz FuzzRequestBody -fuzztime 60s -parallel 1
func FuzzRequestBody(f *testing.F) {
	s := storetest.Open(f)
	up := providertest.NewOpenAI()
	f.Cleanup(up.Close)
	g, err := gateway.New(gateway.Config{Store: s, Providers: map[string]*gateway.ProviderConfig{
		providers.OpenAI: {APIKey: "sk-platform-" + strings.Repeat("f", 32), Endpoint: providers.Endpoint{BaseURL: up.BaseURL()}},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(g.Close)
	s.CreateAccount("acme", "")
	key, _, err := s.CreateAPIKey("acme", "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-4o-mini","stream":true,"messages":[]}`,
		`{"model":"gpt-4o-mini","x":` + strings.Repeat("[", 200),
		`{"model":"gpt-4o-mini","x":` + strings.Repeat("[", 128) + strings.Repeat("]", 128) + `}`,
		"{\"model\":\"gpt-4o-mini\xff\"}",
		"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"content\":\"\xc3\"}]}",
		`{"model":"gpt-4o-mini","model":"gpt-4o"}`,
		`{"model":"openai/` + strings.Repeat("m", 300) + `"}`,
		`{"model":"\u0067pt-4o-mini"}`,
		`[{"model":"gpt-4o-mini"}]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code == http.StatusOK {
			return
		}
		if w.Code >= 500 && w.Code != http.StatusBadGateway {
			t.Fatalf("status %d for %.100q: %s", w.Code, body, w.Body)
		}
		var env struct {
			Error struct{ Code string } `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error.Code == "" {
			t.Fatalf("status %d without an OpenAI error envelope: %s", w.Code, w.Body)
		}
		if env.Error.Code == gateway.CodeInternal {
			t.Fatalf("a panic was recovered for %.100q", body)
		}
		objectOK := json.Valid(body) && gjson.ParseBytes(body).IsObject() && utf8.Valid(body) && providers.ValidJSON(body)
		if (env.Error.Code == gateway.CodeInvalidJSON) == objectOK {
			// invalid_json also covers a repeated "model" member.
			if !(objectOK && strings.Contains(w.Body.String(), "more than once")) {
				t.Fatalf("invalid_json=%v for %.100q (a valid object: %v): %s", env.Error.Code == gateway.CodeInvalidJSON, body, objectOK, w.Body)
			}
		}
	})
}
