package providers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// reqTestKey is a distinctive key: it must reach the auth header and nowhere
// else.
const reqTestKey = "sk-test-Kq3ZUNIQUEcanary0123456789abcdef"

func TestRegistry(t *testing.T) {
	if len(Names) != 8 || len(registry) != len(Names) {
		t.Fatalf("Names has %d entries, registry %d; want the 8 providers", len(Names), len(registry))
	}
	for _, n := range Names {
		p := Get(n)
		if p == nil || p.Name != n || p.AuthHeader == "" {
			t.Errorf("Get(%q) = %+v", n, p)
			continue
		}
		if n != Azure && !strings.HasPrefix(p.DefaultBaseURL, "https://") {
			t.Errorf("%s: DefaultBaseURL %q is not https", n, p.DefaultBaseURL)
		}
		for i := 1; i < len(p.KeyPrefixes); i++ {
			if len(p.KeyPrefixes[i]) > len(p.KeyPrefixes[i-1]) {
				t.Errorf("%s: KeyPrefixes not longest first: %v", n, p.KeyPrefixes)
			}
		}
	}
	if Get("openrouter") != nil || Get("") != nil {
		t.Error("Get returned a provider for an unknown name")
	}
	if OpChat.String() != "chat.completions" || OpEmbeddings.String() != "embeddings" {
		t.Errorf("Operation names: %s, %s", OpChat, OpEmbeddings)
	}
}

func readReqBody(t *testing.T, req *http.Request) string {
	t.Helper()
	b, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	if req.ContentLength != int64(len(b)) {
		t.Errorf("ContentLength = %d, body is %d bytes", req.ContentLength, len(b))
	}
	// The transport needs GetBody to resend on a redirect or retry.
	if req.GetBody == nil {
		t.Error("GetBody is nil")
	} else if rc, err := req.GetBody(); err != nil {
		t.Error(err)
	} else if again, _ := io.ReadAll(rc); string(again) != string(b) {
		t.Error("GetBody returns another body")
	}
	return string(b)
}

func assertKeyOnlyIn(t *testing.T, req *http.Request, header string) {
	t.Helper()
	if strings.Contains(req.URL.String(), "Kq3ZUNIQUE") {
		t.Errorf("the key is in the URL %s", req.URL)
	}
	for name, vals := range req.Header {
		for _, v := range vals {
			if strings.Contains(v, "Kq3ZUNIQUE") && name != header {
				t.Errorf("the key is in header %s", name)
			}
		}
	}
}

func TestNewRequestOpenAIShaped(t *testing.T) {
	chat := `{"model":"alias","messages":[{"role":"user","content":"hi"}],"stream":true}`
	for _, tc := range []struct {
		name     string
		provider string
		op       Operation
		ep       Endpoint
		model    string
		wantURL  string
		wantBody string
		org, prj string
	}{
		{"openai chat, default base", OpenAI, OpChat, Endpoint{}, "gpt-4o",
			"https://api.openai.com/v1/chat/completions", strings.Replace(chat, "alias", "gpt-4o", 1), "", ""},
		{"openai embeddings", OpenAI, OpEmbeddings, Endpoint{}, "text-embedding-3-small",
			"https://api.openai.com/v1/embeddings", `{"model":"text-embedding-3-small","input":"x"}`, "", ""},
		{"openai org and project", OpenAI, OpChat, Endpoint{Organization: "org-123", Project: "proj_456"}, "gpt-4o",
			"https://api.openai.com/v1/chat/completions", strings.Replace(chat, "alias", "gpt-4o", 1), "org-123", "proj_456"},
		{"openai org only", OpenAI, OpChat, Endpoint{Organization: "org-123"}, "gpt-4o",
			"https://api.openai.com/v1/chat/completions", strings.Replace(chat, "alias", "gpt-4o", 1), "org-123", ""},
		{"openai regional base, trailing slash", OpenAI, OpChat, Endpoint{BaseURL: "https://eu.api.openai.com/v1/"}, "gpt-4o",
			"https://eu.api.openai.com/v1/chat/completions", strings.Replace(chat, "alias", "gpt-4o", 1), "", ""},
		{"mistral", Mistral, OpChat, Endpoint{}, "mistral-large-latest",
			"https://api.mistral.ai/v1/chat/completions", strings.Replace(chat, "alias", "mistral-large-latest", 1), "", ""},
		{"mistral embeddings", Mistral, OpEmbeddings, Endpoint{}, "mistral-embed",
			"https://api.mistral.ai/v1/embeddings", `{"model":"mistral-embed","input":"x"}`, "", ""},
		{"together", Together, OpChat, Endpoint{}, "openai/gpt-oss-120b",
			"https://api.together.xyz/v1/chat/completions", strings.Replace(chat, "alias", "openai/gpt-oss-120b", 1), "", ""},
		{"together, base from config", Together, OpChat, Endpoint{BaseURL: "http://127.0.0.1:9999/v1"}, "meta-llama/Llama-3.3-70B-Instruct-Turbo",
			"http://127.0.0.1:9999/v1/chat/completions", strings.Replace(chat, "alias", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 1), "", ""},
		{"perplexity (no /v1)", Perplexity, OpChat, Endpoint{}, "sonar",
			"https://api.perplexity.ai/chat/completions", strings.Replace(chat, "alias", "sonar", 1), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := chat
			if tc.op == OpEmbeddings {
				body = `{"model":"alias","input":"x"}`
			}
			req, err := Get(tc.provider).NewRequest(context.Background(), tc.op, tc.ep, reqTestKey, tc.model, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != http.MethodPost || req.URL.String() != tc.wantURL {
				t.Errorf("%s %s, want POST %s", req.Method, req.URL, tc.wantURL)
			}
			if got := req.Header.Get("Authorization"); got != "Bearer "+reqTestKey {
				t.Errorf("Authorization = %q", got)
			}
			if got := req.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := req.Header.Get("OpenAI-Organization"); got != tc.org {
				t.Errorf("OpenAI-Organization = %q, want %q", got, tc.org)
			}
			if got := req.Header.Get("OpenAI-Project"); got != tc.prj {
				t.Errorf("OpenAI-Project = %q, want %q", got, tc.prj)
			}
			if _, ok := req.Header["Openai-Organization"]; ok != (tc.org != "") {
				t.Errorf("OpenAI-Organization header present = %v with org %q", ok, tc.org)
			}
			if _, ok := req.Header["Openai-Project"]; ok != (tc.prj != "") {
				t.Errorf("OpenAI-Project header present = %v with project %q", ok, tc.prj)
			}
			if req.Header.Get("Api-Key") != "" || req.Header.Get("X-Api-Key") != "" {
				t.Error("a Bearer provider got another auth header")
			}
			assertKeyOnlyIn(t, req, "Authorization")
			if got := readReqBody(t, req); got != tc.wantBody {
				t.Errorf("body = %s\nwant %s", got, tc.wantBody)
			}
		})
	}
}

func TestNewRequestKeepsContext(t *testing.T) {
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, "v")
	for _, p := range []string{OpenAI, Azure} {
		req, err := Get(p).NewRequest(ctx, OpChat, Endpoint{BaseURL: "https://r.openai.azure.com"}, reqTestKey, "m", []byte(`{"model":"m"}`))
		if err != nil {
			t.Fatal(err)
		}
		if req.Context().Value(ctxKey{}) != "v" {
			t.Errorf("%s: request does not carry the caller's context", p)
		}
	}
}

func TestNewRequestAzure(t *testing.T) {
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name     string
		op       Operation
		ep       Endpoint
		model    string
		wantURL  string
		wantBody string
	}{
		{"classic, default api-version", OpChat, Endpoint{BaseURL: "https://acme.openai.azure.com"}, "prod-gpt4o",
			"https://acme.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21", body},
		{"classic, trailing slash", OpChat, Endpoint{BaseURL: "https://acme.openai.azure.com/"}, "prod-gpt4o",
			"https://acme.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=" + DefaultAzureAPIVersion, body},
		{"classic, configured api-version", OpChat, Endpoint{BaseURL: "https://acme.openai.azure.com", APIVersion: "2025-04-01-preview"}, "prod-gpt4o",
			"https://acme.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2025-04-01-preview", body},
		{"classic embeddings", OpEmbeddings, Endpoint{BaseURL: "https://acme.openai.azure.com"}, "embed-small",
			"https://acme.openai.azure.com/openai/deployments/embed-small/embeddings?api-version=2024-10-21", body},
		{"classic, deployment escaped", OpChat, Endpoint{BaseURL: "https://acme.openai.azure.com"}, "my deploy/x?y",
			"https://acme.openai.azure.com/openai/deployments/my%20deploy%2Fx%3Fy/chat/completions?api-version=2024-10-21", body},
		{"classic, api-version escaped", OpChat, Endpoint{BaseURL: "https://acme.openai.azure.com", APIVersion: "a&b=c"}, "d",
			"https://acme.openai.azure.com/openai/deployments/d/chat/completions?api-version=a%26b%3Dc", body},
		{"v1", OpChat, Endpoint{BaseURL: "https://acme.openai.azure.com", APIVersion: "v1"}, "prod-gpt4o",
			"https://acme.openai.azure.com/openai/v1/chat/completions", strings.Replace(body, `"gpt-4o"`, `"prod-gpt4o"`, 1)},
		{"v1 embeddings", OpEmbeddings, Endpoint{BaseURL: "https://acme.openai.azure.com", APIVersion: "v1"}, "embed-small",
			"https://acme.openai.azure.com/openai/v1/embeddings", strings.Replace(body, `"gpt-4o"`, `"embed-small"`, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := Get(Azure).NewRequest(context.Background(), tc.op, tc.ep, reqTestKey, tc.model, []byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != http.MethodPost || req.URL.String() != tc.wantURL {
				t.Errorf("%s %s\nwant POST %s", req.Method, req.URL, tc.wantURL)
			}
			if got := req.Header.Get("api-key"); got != reqTestKey {
				t.Errorf("api-key = %q", got)
			}
			if _, ok := req.Header["Authorization"]; ok {
				t.Error("azure request has an Authorization header")
			}
			if got := req.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			if req.Header.Get("OpenAI-Organization") != "" {
				t.Error("azure request has OpenAI headers")
			}
			assertKeyOnlyIn(t, req, "Api-Key")
			if got := readReqBody(t, req); got != tc.wantBody {
				t.Errorf("body = %s\nwant %s", got, tc.wantBody)
			}
		})
	}

	_, err := Get(Azure).NewRequest(context.Background(), OpChat, Endpoint{}, reqTestKey, "d", []byte(body))
	if err == nil || !strings.Contains(err.Error(), "base_url") {
		t.Errorf("azure without base_url: %v, want an error naming base_url", err)
	} else if strings.Contains(err.Error(), "Kq3ZUNIQUE") {
		t.Errorf("error leaks the key: %v", err)
	}
}

func TestAllProvidersImplemented(t *testing.T) {
	for _, p := range Names {
		if !Get(p).Implemented {
			t.Errorf("%s is not marked implemented", p)
		}
	}
	// A provider without an adapter refuses to build requests, naming
	// itself and not the key.
	stub := &Provider{Name: "stub"}
	req, err := stub.NewRequest(context.Background(), OpChat, Endpoint{}, reqTestKey, "m", []byte(`{"model":"m"}`))
	if req != nil || !errors.Is(err, ErrNotImplemented) || !strings.Contains(err.Error(), "stub") || strings.Contains(err.Error(), "Kq3ZUNIQUE") {
		t.Errorf("stub: NewRequest = %v, %v", req, err)
	}
}
