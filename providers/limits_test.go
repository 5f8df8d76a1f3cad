package providers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

func TestSpec(t *testing.T) {
	for _, c := range []struct {
		model     string
		maxOutput int
		ok        bool
	}{
		{"gpt-4o", 16384, true},
		{"gpt-4o-2024-08-06", 16384, true},
		{"gpt-4o-2024-05-13", 4096, true},
		{"claude-sonnet-4-5-20250929", 64000, true},
		{"claude-3-5-haiku-latest", 8192, true},
		{"models/gemini-2.5-pro", 65536, true},
		{"gemini-2.0-flash", 8192, true},
		{"claude-sonnet-4-5-2025", 0, false},
		{"my-finetune", 0, false},
		{"-latest", 0, false},
		{"", 0, false},
	} {
		s, ok := Spec(c.model)
		if ok != c.ok || s.MaxOutput != c.maxOutput {
			t.Errorf("Spec(%q) = %+v, %v; want max output %d, %v", c.model, s, ok, c.maxOutput, c.ok)
		}
		if ok && (s.Context <= s.MaxOutput) {
			t.Errorf("Spec(%q): context %d is not above the max output %d", c.model, s.Context, s.MaxOutput)
		}
	}
	// Every example model of the catalog's providers that need a limit or
	// are translated has its limits.
	for _, p := range []string{OpenAI, Anthropic, Gemini, Cohere} {
		for _, m := range ExampleModels[p] {
			if _, ok := Spec(m); !ok && !strings.HasPrefix(m, "text-embedding-") {
				t.Errorf("no limits for the catalog example %s", m)
			}
		}
	}
}

// A translated request's output limit is clamped to its target's maximum,
// and goes to OpenAI as max_completion_tokens (Claude Code's 32000 to
// gpt-4o, whose maximum is 16,384).
func TestDoorOutputLimit(t *testing.T) {
	msgs := `{"model":"%s","max_tokens":32000,"messages":[{"role":"user","content":"hi"}]}`
	resp := `{"model":"%s","max_output_tokens":32000,"input":"hi"}`
	for _, c := range []struct {
		door        *Door
		body, model string
		provider    string
		field       string
		want        int64
	}{
		{MessagesDoor, msgs, "gpt-4o", OpenAI, "max_completion_tokens", 16384},
		{MessagesDoor, msgs, "gpt-5", OpenAI, "max_completion_tokens", 32000},
		{MessagesDoor, msgs, "my-model", Mistral, "max_tokens", 32000},
		{ResponsesDoor, resp, "gemini-2.0-flash", Gemini, "generationConfig.maxOutputTokens", 8192},
		{ResponsesDoor, resp, "claude-3-5-haiku-20241022", Anthropic, "max_tokens", 8192},
		{MessagesDoor, msgs, "command-a-03-2025", Cohere, "max_tokens", 8000},
	} {
		call := &Call{Model: c.model, Key: "k", Door: c.door, Body: []byte(fmt.Sprintf(c.body, c.model)),
			Endpoint: Endpoint{BaseURL: "https://example.com"}}
		req, err := Get(c.provider).NewCallRequest(t.Context(), call)
		if err != nil {
			t.Fatalf("%s: %v", c.model, err)
		}
		body := readReqBody(t, req)
		if got := gjson.Get(body, c.field); got.Int() != c.want {
			t.Errorf("%s via %s: %s = %s, want %d (%s)", c.model, c.door.API, c.field, got.Raw, c.want, body)
		}
		if c.provider == OpenAI && gjson.Get(body, "max_tokens").Exists() {
			t.Errorf("%s: max_tokens sent to OpenAI: %s", c.model, body)
		}
	}
}
