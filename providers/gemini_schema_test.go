package providers

import (
	"bytes"
	"strings"
	"testing"
)

// Each rule of the scrubber, one schema at a time: what a property's schema
// becomes in Gemini's subset.
func TestGeminiSchemaScrub(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"kept keywords", `{"type":"string","title":"T","description":"d","minLength":1,"maxLength":9,"pattern":"^a","default":"a","example":"b"}`,
			`{"type":"string","title":"T","description":"d","minLength":1,"maxLength":9,"pattern":"^a","default":"a","example":"b"}`},
		{"dropped keywords", `{"type":"object","additionalProperties":false,"$schema":"x","$id":"y","examples":[1],"not":{},"properties":{"b":{"type":"integer","multipleOf":2,"exclusiveMinimum":0}}}`,
			`{"type":"object","properties":{"b":{"type":"integer"}}}`},
		{"type list with null", `{"type":["string","null"]}`, `{"type":"string","nullable":true}`},
		{"only null", `{"type":["null"]}`, `{"type":"null"}`},
		{"optional as anyOf", `{"anyOf":[{"type":"integer"},{"type":"null"}],"description":"n"}`, `{"type":"integer","nullable":true,"description":"n"}`},
		{"oneOf becomes anyOf", `{"oneOf":[{"type":"integer"},{"type":"string"}]}`, `{"anyOf":[{"type":"integer"},{"type":"string"}]}`},
		{"one allOf merged", `{"allOf":[{"type":"string","description":"inner"}],"description":"outer"}`, `{"type":"string","description":"outer"}`},
		{"string const", `{"const":"x"}`, `{"type":"string","enum":["x"]}`},
		{"enum of numbers dropped", `{"type":"integer","enum":[1,2]}`, `{"type":"integer"}`},
		{"formats by type", `{"type":"object","properties":{"s":{"type":"string","format":"date-time"},"u":{"type":"string","format":"uri"},"n":{"type":"number","format":"double"},"i":{"type":"integer","format":"int8"}}}`,
			`{"type":"object","properties":{"s":{"type":"string","format":"date-time"},"u":{"type":"string"},"n":{"type":"number","format":"double"},"i":{"type":"integer"}}}`},
		{"required names of properties only", `{"type":"object","properties":{"a":{"type":"string"}},"required":["a","b",3]}`,
			`{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}`},
		{"tuple items", `{"type":"array","items":[{"type":"string"},{"type":"integer"}]}`, `{"type":"array","items":{"type":"string"}}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := geminiParameters([]byte(`{"type":"object","properties":{"p":` + c.in + `}}`))
			if err != nil {
				t.Fatal(err)
			}
			want := `{"type":"object","properties":{"p":` + c.want + `}}`
			if !bytes.Equal(canonicalJSON(t, got), canonicalJSON(t, []byte(want))) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// $refs are inlined (with the referring schema's keywords on top), a cycle
// stops at the depth bound, and what is not a schema object is refused.
func TestGeminiSchemaRefs(t *testing.T) {
	got, err := geminiParameters([]byte(`{"type":"object","$defs":{"A":{"type":"string","description":"a"}},"definitions":{"B":{"type":"integer"}},
		"properties":{"x":{"$ref":"#/$defs/A","description":"mine"},"y":{"$ref":"#/definitions/B"},"z":{"$ref":"#/elsewhere"}}}`))
	want := `{"type":"object","properties":{"x":{"type":"string","description":"mine"},"y":{"type":"integer"},"z":{}}}`
	if err != nil || !bytes.Equal(canonicalJSON(t, got), canonicalJSON(t, []byte(want))) {
		t.Errorf("got %s, %v\nwant %s", got, err, want)
	}
	cycle, err := geminiParameters([]byte(`{"type":"object","$defs":{"N":{"type":"object","properties":{"next":{"$ref":"#/$defs/N"}}}},"properties":{"n":{"$ref":"#/$defs/N"}}}`))
	if err != nil || strings.Count(string(cycle), "next") > geminiSchemaDepth {
		t.Errorf("cycle: %s, %v", cycle, err)
	}
	for _, in := range []string{`{"type":"object"}`, `{"type":"object","properties":{}}`, `null`, ``} {
		if got, err := geminiParameters([]byte(in)); got != nil || err != nil {
			t.Errorf("%q: %s, %v; want it left out", in, got, err)
		}
	}
	for _, in := range []string{`[1]`, `"s"`, `{"type":`} {
		if _, err := geminiParameters([]byte(in)); err == nil {
			t.Errorf("%q was taken", in)
		}
	}
}
