package providers

import (
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"
)

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
