package providers

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
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

func TestSetModel(t *testing.T) {
	for _, tc := range []struct {
		name, body, model, want string
	}{
		{"replace", `{"model":"gpt-4o","messages":[]}`, "gpt-4o-mini",
			`{"model":"gpt-4o-mini","messages":[]}`},
		{"model last, formatting kept", "{\n  \"messages\": [ {\"role\":\"user\",\"content\":\"hi\"} ],\n  \"stream\": true,\n  \"model\" :  \"alias\"\n}\n", "meta-llama/Llama-3.3-70B-Instruct-Turbo",
			"{\n  \"messages\": [ {\"role\":\"user\",\"content\":\"hi\"} ],\n  \"stream\": true,\n  \"model\" :  \"meta-llama/Llama-3.3-70B-Instruct-Turbo\"\n}\n"},
		{"shorter", `{"model":"together/openai/gpt-oss-120b","n":1}`, "openai/gpt-oss-120b",
			`{"model":"openai/gpt-oss-120b","n":1}`},
		{"escaped old value", `{"model":"a\"b\\c","n":1}`, "plain",
			`{"model":"plain","n":1}`},
		{"escaping new value", `{"model":"x","n":1}`, `we"ird\model` + "\n",
			`{"model":"we\"ird\\model\n","n":1}`},
		{"non-ASCII model", `{"model":"x"}`, "modèle-日本",
			`{"model":"modèle-日本"}`},
		{"nested models untouched", `{"metadata":{"model":"keep-1"},"tools":[{"model":"keep-2"}],"model":"old","extra":{"model":"keep-3"}}`, "new",
			`{"metadata":{"model":"keep-1"},"tools":[{"model":"keep-2"}],"model":"new","extra":{"model":"keep-3"}}`},
		{"the word model in values untouched", `{"content":"\"model\":\"old\"","model":"old"}`, "new",
			`{"content":"\"model\":\"old\"","model":"new"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SetModel([]byte(tc.body), tc.model)
			if string(got) != tc.want {
				t.Fatalf("SetModel =\n%s\nwant\n%s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatalf("result is not valid JSON: %s", got)
			}
			if m := gjson.GetBytes(got, "model").String(); m != tc.model {
				t.Fatalf("model reads back as %q, want %q", m, tc.model)
			}
		})
	}
}

func TestSetModelLeavesBodyAlone(t *testing.T) {
	for _, tc := range []struct{ name, body, model string }{
		{"same model", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, "gpt-4o"},
		{"same model, escaped form", `{"model":"gpt\u002d4o"}`, "gpt-4o"},
		{"no model", `{"messages":[{"model":"nested"}]}`, "gpt-4o"},
		{"model not a string", `{"model":42,"messages":[]}`, "gpt-4o"},
		{"model null", `{"model":null}`, "gpt-4o"},
		{"model object", `{"model":{"name":"x"}}`, "gpt-4o"},
		{"not an object", `["model","x"]`, "gpt-4o"},
		{"empty", ``, "gpt-4o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			got := SetModel(body, tc.model)
			if string(got) != tc.body {
				t.Fatalf("SetModel changed the body: %s", got)
			}
			if len(body) > 0 && &got[0] != &body[0] {
				t.Fatal("SetModel copied a body it did not change")
			}
		})
	}

	// Rewriting never writes into the caller's slice, even with spare
	// capacity behind it.
	body := append(make([]byte, 0, 256), `{"model":"old","n":1}`...)
	for _, m := range []string{"a-much-longer-model-name", "x", "new"} {
		SetModel(body, m)
	}
	if string(body) != `{"model":"old","n":1}` || string(body[:cap(body)][len(body):len(body)+8]) != "\x00\x00\x00\x00\x00\x00\x00\x00" {
		t.Fatalf("SetModel modified its input: %q", body[:cap(body)])
	}
}
