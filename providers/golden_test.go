package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// The golden harness every adapter's tests share. Fixtures and golden files
// live under testdata/<provider>/: an input (request_x.json, response_x.json,
// stream_x.sse) beside what the code makes of it (*.want.*). The native
// fixtures were written from each provider's documented formats and
// reviewed; the golden files are the code's output, reviewed.
//
//	go test ./providers/ -update
//
// rewrites every golden file from the code's output (JSON in canonical
// form); review the diff before committing it.
var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the code's output")

// fixture returns testdata/<path>.
func fixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canonicalJSON re-encodes b with sorted keys, two-space indentation and
// numbers as written, so that JSON compares by value and goldens diff well.
func canonicalJSON(t testing.TB, b []byte) []byte {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, b)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// golden compares got with the golden file testdata/<path>: as JSON, by
// value, when asJSON; byte for byte otherwise. Under -update it writes got
// there instead (JSON in canonical form).
func golden(t *testing.T, path string, got []byte, asJSON bool) {
	t.Helper()
	file := filepath.Join("testdata", path)
	if asJSON {
		got = canonicalJSON(t, got)
	}
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if asJSON {
		want = canonicalJSON(t, want)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// requestSnapshot renders an upstream request for a golden file (method,
// URL, every header and the JSON body), and returns the body too.
func requestSnapshot(t *testing.T, req *http.Request) (snapshot []byte, body string) {
	t.Helper()
	body = readReqBody(t, req)
	headers := map[string]string{}
	for k, v := range req.Header {
		headers[k] = strings.Join(v, ", ")
	}
	b, err := json.Marshal(map[string]any{
		"method": req.Method, "url": req.URL.String(), "headers": headers, "body": json.RawMessage(body),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, body
}

// feedStream feeds data, an upstream event stream, through tr the way the
// gateway does: event by event through the SSE reader, then End. It stops
// at the first error (the reader's, Event's or End's) and returns what the
// client received until then; each, when set, sees what every call wrote.
func feedStream(tr StreamTranslator, data io.Reader, each func(piece []byte)) ([]byte, error) {
	r := NewSSEReader(data)
	var out []byte
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		n := len(out)
		out, err = tr.Event(out, ev)
		if each != nil {
			each(out[n:])
		}
		if err != nil {
			return out, err
		}
	}
	n := len(out)
	out, err := tr.End(out)
	if each != nil {
		each(out[n:])
	}
	return out, err
}

// checkChunks checks that out is what an OpenAI client can read: events of
// one "data:" line each, every one a chat.completion.chunk of c (its id,
// its created time, a model, which is model when given, and a list of
// choices), and data: [DONE] last if at all.
func checkChunks(t testing.TB, c *Call, model string, out []byte) {
	t.Helper()
	if len(out) == 0 {
		return
	}
	if !bytes.HasSuffix(out, []byte("\n\n")) {
		t.Fatalf("the output does not end with a blank line: %q", out)
	}
	events := strings.Split(strings.TrimSuffix(string(out), "\n\n"), "\n\n")
	for i, e := range events {
		d, ok := strings.CutPrefix(e, "data: ")
		if !ok || strings.ContainsAny(d, "\n\r") {
			t.Fatalf("event %d is not one data line: %q", i, e)
		}
		if d == "[DONE]" {
			if i != len(events)-1 {
				t.Fatalf("[DONE] is not last:\n%s", out)
			}
			continue
		}
		r := gjson.Parse(d)
		if !gjson.Valid(d) || !r.IsObject() {
			t.Fatalf("event %d is not a JSON object: %s", i, d)
		}
		res := gjson.GetMany(d, "id", "object", "created", "model", "choices")
		if res[0].Str != c.ID || res[1].Str != "chat.completion.chunk" || res[2].Int() != c.Created || res[3].Str == "" ||
			model != "" && res[3].Str != model || !res[4].IsArray() {
			t.Fatalf("event %d is not a chunk of the call: %s", i, d)
		}
	}
}

// addFixtures adds each fixture matching testdata/<glob> (not the golden
// files) as a fuzz seed, followed by the seed's other arguments.
func addFixtures(f *testing.F, glob string, args ...any) {
	paths, _ := filepath.Glob(filepath.Join("testdata", glob))
	sort.Strings(paths)
	for _, p := range paths {
		if strings.Contains(filepath.Base(p), ".want.") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]any{b}, args...)...)
	}
}

// send builds c's upstream request for provider, sends it (to a fake
// provider) and returns the answer.
func send(t *testing.T, provider string, c *Call) (*http.Response, []byte) {
	t.Helper()
	req, err := Get(provider).NewCallRequest(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// buildOrRefuse builds c's upstream request for provider, for the fuzz
// targets: it returns the request's body, or the *RequestError it was
// refused with (the client's 400). Any other error fails t.
func buildOrRefuse(t *testing.T, provider string, c *Call) ([]byte, *RequestError) {
	t.Helper()
	req, err := Get(provider).NewCallRequest(context.Background(), c)
	if err != nil {
		var re *RequestError
		if !errors.As(err, &re) {
			t.Fatalf("error %v is not a *RequestError", err)
		}
		return nil, re
	}
	b, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, nil
}
