package providers

import (
	"context"
	"testing"

	"github.com/tidwall/gjson"
)

// One data URL rule: Anthropic's adapter and Gemini's read the same inline
// images the same way, and refuse the same malformed ones.
func TestDataURLRule(t *testing.T) {
	for _, c := range []struct {
		url, mediaType, data string
	}{
		{"data:image/png;base64,AAA", "image/png", "AAA"},
		{"data:image/png;charset=binary;base64,AAA", "image/png", "AAA"},
		{"data:application/pdf;base64,JVBE", "application/pdf", "JVBE"},
		{"data:image/png;base64,", "", ""},
		{"data:png;base64,AAA", "", ""},
		{"data:;base64,AAA", "", ""},
		{"data:image/png,AAA", "", ""},
		{"data:image/png;base64", "", ""},
		{"https://example.com/a.png", "", ""},
	} {
		mt, data, ok := splitDataURL(c.url)
		if ok != (c.mediaType != "") || mt != c.mediaType || data != c.data {
			t.Errorf("splitDataURL(%q) = %q, %q, %v; want %q, %q", c.url, mt, data, ok, c.mediaType, c.data)
		}
		if !ok {
			if c.url[0] == 'h' {
				continue
			}
			body := []byte(`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + c.url + `"}}]}]}`)
			for _, p := range []string{Anthropic, Gemini} {
				call := &Call{Op: OpChat, Key: "k", Model: "m", Body: body}
				if _, err := Get(p).NewCallRequest(context.Background(), call); err == nil {
					t.Errorf("%s took the data URL %q", p, c.url)
				}
			}
			continue
		}
		body := []byte(`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + c.url + `"}}]}]}`)
		req, err := Get(Anthropic).NewCallRequest(context.Background(), &Call{Op: OpChat, Key: "k", Model: "m", Body: body})
		if err != nil {
			t.Fatalf("anthropic, %q: %v", c.url, err)
		}
		src := gjson.Get(readReqBody(t, req), "messages.0.content.0.source")
		req, err = Get(Gemini).NewCallRequest(context.Background(), &Call{Op: OpChat, Key: "k", Model: "m", Body: body})
		if err != nil {
			t.Fatalf("gemini, %q: %v", c.url, err)
		}
		inline := gjson.Get(readReqBody(t, req), "contents.0.parts.0.inlineData")
		if src.Get("media_type").Str != c.mediaType || src.Get("data").Str != c.data ||
			inline.Get("mimeType").Str != c.mediaType || inline.Get("data").Str != c.data {
			t.Errorf("%q: anthropic %s, gemini %s", c.url, src.Raw, inline.Raw)
		}
	}
}
