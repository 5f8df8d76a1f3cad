package providers

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

func decodeMap(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object after the edit: %s: %v", b, err)
	}
	return m
}

func TestJSONEdits(t *testing.T) {
	bodies := []string{
		`{}`, `{"a":1}`, `{"model":"x","stream":true}`, ` { "a" : [1,{"k":"v"}] , "b":"s" } `,
		`{"stream_options":{"include_usage":false},"a":1}`, `{"a":1,"stream_options":null}`,
		`{"nested":{"stream_options":1}}`,
	}
	for _, in := range bodies {
		want := decodeMap(t, []byte(in))

		got := decodeMap(t, SetField([]byte(in), "stream_options", []byte(`{"include_usage":true}`)))
		w := copyMap(want)
		w["stream_options"] = map[string]any{"include_usage": true}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("SetField(%s) = %v, want %v", in, got, w)
		}

		got = decodeMap(t, DeleteField([]byte(in), "a"))
		w = copyMap(want)
		delete(w, "a")
		if !reflect.DeepEqual(got, w) {
			t.Errorf("DeleteField(%s) = %v, want %v", in, got, w)
		}

		got = decodeMap(t, RenameField([]byte(in), "a", "z"))
		w = copyMap(want)
		if v, ok := w["a"]; ok {
			delete(w, "a")
			w["z"] = v
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("RenameField(%s) = %v, want %v", in, got, w)
		}
	}
	// Untouched bytes stay as they were.
	in := `{"model":"m",  "messages":[{"role":"user","content":"é\u00e9"}],"max_tokens":5}`
	if got := string(RenameField([]byte(in), "max_tokens", "max_completion_tokens")); got != `{"max_completion_tokens":5,"model":"m",  "messages":[{"role":"user","content":"é\u00e9"}]}` {
		t.Errorf("rename rewrote other bytes: %s", got)
	}
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func FuzzJSONEdits(f *testing.F) {
	f.Add(`{"a":1,"b":2}`, "a")
	f.Add(`{"stream":true}`, "stream_options")
	f.Fuzz(func(t *testing.T, in, key string) {
		var want map[string]any
		if json.Unmarshal([]byte(in), &want) != nil {
			return
		}
		if key == "" || !utf8.ValidString(key) { // our keys are ASCII constants
			return
		}
		got := decodeMap(t, SetField([]byte(in), key, []byte(`7`)))
		if got[key] != float64(7) {
			t.Fatalf("SetField(%q, %q) = %v", in, key, got)
		}
		got = decodeMap(t, DeleteField([]byte(in), key))
		if _, still := got[key]; still {
			t.Fatalf("DeleteField(%q, %q) = %v", in, key, got)
		}
	})
}
