package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Golden tests for the OpenAI-shaped adapters (openai, azure, mistral,
// together, perplexity), from fixtures under testdata/openai/: what the
// client sends → the native request (each case file holds its expected
// request); a native stream → what the client receives (golden files, see
// golden_test.go). Fixtures are hand-written from the providers'
// documented formats (reference/providers.md §2, §5-§8).

type oaRequestCase struct {
	Provider     string `json:"provider"`
	Model        string `json:"model"`
	Stream       bool   `json:"stream"`
	IncludeUsage bool   `json:"include_usage"`
	Endpoint     struct {
		BaseURL      string `json:"base_url"`
		APIVersion   string `json:"api_version"`
		Organization string `json:"organization"`
		Project      string `json:"project"`
	} `json:"endpoint"`
	Body json.RawMessage `json:"body"`
	Want struct {
		URL           string            `json:"url"`
		Headers       map[string]string `json:"headers"`
		AbsentHeaders []string          `json:"absent_headers"`
		Body          json.RawMessage   `json:"body"`
	} `json:"want"`
}

func TestOpenAIShapedGoldenRequests(t *testing.T) {
	files, _ := filepath.Glob("testdata/openai/request_*.json")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var c oaRequestCase
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			call := &Call{Op: OpChat, Key: "KEY", Model: c.Model, Body: c.Body, Stream: c.Stream, IncludeUsage: c.IncludeUsage,
				Endpoint: Endpoint{BaseURL: c.Endpoint.BaseURL, APIVersion: c.Endpoint.APIVersion, Organization: c.Endpoint.Organization, Project: c.Endpoint.Project}}
			req, err := Get(c.Provider).NewCallRequest(context.Background(), call)
			if err != nil {
				t.Fatal(err)
			}
			if req.URL.String() != c.Want.URL {
				t.Errorf("url %s, want %s", req.URL, c.Want.URL)
			}
			if strings.Contains(req.URL.String(), "KEY") {
				t.Error("the key is in the URL")
			}
			for h, v := range c.Want.Headers {
				if got := req.Header.Get(h); got != v {
					t.Errorf("header %s = %q, want %q", h, got, v)
				}
			}
			for _, h := range c.Want.AbsentHeaders {
				if req.Header.Get(h) != "" {
					t.Errorf("header %s should be absent", h)
				}
			}
			body, _ := io.ReadAll(req.Body)
			var got, want any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("upstream body is not JSON: %s", body)
			}
			json.Unmarshal(c.Want.Body, &want)
			// Mistral's rewritten tool-call ids are hashes: check they are
			// valid and paired, then compare the rest.
			if ids := collectIDs(got); len(ids) > 0 && strings.Contains(string(c.Want.Body), "MISTRAL_ID") {
				for _, id := range ids {
					if !validMistralID(id) || id != ids[0] {
						t.Fatalf("tool-call ids %v: not one valid 9-alphanumeric id", ids)
					}
				}
				json.Unmarshal([]byte(strings.ReplaceAll(string(c.Want.Body), "MISTRAL_ID", ids[0])), &want)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("upstream body\n got %s\nwant %s", g, w)
			}
		})
	}
}

// collectIDs returns the tool-call ids and tool_call_ids of a chat body.
func collectIDs(body any) []string {
	var ids []string
	m, _ := body.(map[string]any)
	msgs, _ := m["messages"].([]any)
	for _, msg := range msgs {
		mm, _ := msg.(map[string]any)
		if id, ok := mm["tool_call_id"].(string); ok {
			ids = append(ids, id)
		}
		calls, _ := mm["tool_calls"].([]any)
		for _, tc := range calls {
			if id, ok := tc.(map[string]any)["id"].(string); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func TestOpenAIShapedGoldenStreams(t *testing.T) {
	files, _ := filepath.Glob("testdata/openai/stream_*.sse")
	var inputs []string
	for _, f := range files {
		if !strings.Contains(f, ".want.") {
			inputs = append(inputs, f)
		}
	}
	if len(inputs) == 0 {
		t.Fatal("no fixtures")
	}
	for _, in := range inputs {
		provider := strings.SplitN(strings.TrimPrefix(filepath.Base(in), "stream_"), "_", 2)[0]
		for _, incl := range []bool{false, true} {
			wantFile := strings.TrimSuffix(in, ".sse") + ".want.sse"
			if incl {
				wantFile = strings.TrimSuffix(in, ".sse") + ".include_usage.want.sse"
			}
			if _, err := os.Stat(wantFile); err != nil {
				continue // no golden for this variant
			}
			t.Run(filepath.Base(wantFile), func(t *testing.T) {
				tr := Get(provider).NewStream(&Call{Stream: true, IncludeUsage: incl})
				out, err := feedStream(tr, bytes.NewReader(fixture(t, strings.TrimPrefix(in, "testdata/"))), nil)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, strings.TrimPrefix(wantFile, "testdata/"), out, false)
				if u := tr.Usage(); !u.Reported() {
					t.Error("the stream's usage was not read")
				}
			})
		}
	}
	// The usage the client did not see is still metered, in OpenAI terms.
	raw, _ := os.ReadFile("testdata/openai/stream_openai_usage.sse")
	tr := Get(OpenAI).NewStream(&Call{Stream: true})
	sr := NewSSEReader(strings.NewReader(string(raw)))
	for {
		ev, err := sr.Next()
		if err != nil {
			break
		}
		tr.Event(nil, ev)
	}
	if u := tr.Usage(); u.PromptTokens != 9 || u.CompletionTokens != 2 || u.TotalTokens != 11 || u.CachedTokens != 4 {
		t.Errorf("metered usage %+v", u)
	}
}
