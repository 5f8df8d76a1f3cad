package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Gemini's function declarations take an OpenAPI subset of JSON Schema,
// not JSON Schema: a client's tool schemas are scrubbed down to it here.

// geminiParameters turns a function's JSON schema into the OpenAPI subset
// Gemini takes in functionDeclarations.parameters. A schema whose object has
// no properties is left out: Gemini refuses "properties: should be
// non-empty for OBJECT type".
func geminiParameters(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep numbers as written
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not valid JSON: %s", jsonMessage(err))
	}
	root, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("must be a JSON schema object")
	}
	s := geminiSchema{budget: 10000}
	for _, k := range []string{"$defs", "definitions"} {
		if d, ok := root[k].(map[string]any); ok {
			if s.defs == nil {
				s.defs = map[string]map[string]any{}
			}
			for name, def := range d {
				if m, ok := def.(map[string]any); ok {
					s.defs["#/"+k+"/"+name] = m
				}
			}
		}
	}
	out := s.scrub(root, 0)
	if _, ok := out["type"]; !ok {
		out["type"] = "object"
	}
	if props, _ := out["properties"].(map[string]any); len(props) == 0 {
		return nil, nil
	}
	return json.Marshal(out)
}

// geminiSchema scrubs JSON schemas down to what Gemini's Schema accepts
// (go-genai types.go Schema; LiteLLM and Bifrost strip the same). Kept:
// type, format (string: enum, date-time; number: float, double, int32,
// int64), title, description, nullable, enum (strings only), properties,
// required (only names that are properties), items, anyOf, minItems,
// maxItems, minLength, maxLength, pattern, minimum, maximum,
// minProperties, maxProperties, default, example, propertyOrdering.
// Rewritten: a type list ["x","null"] becomes type x + nullable; anyOf
// [x, {"type":"null"}] becomes x + nullable; oneOf becomes anyOf; a
// one-element allOf is merged; const (string) becomes a one-value enum;
// $ref to #/$defs or #/definitions is inlined (depth 16). Dropped:
// everything else, notably additionalProperties, $schema, $id, $defs,
// definitions, strict, examples, exclusiveMinimum/Maximum, multipleOf,
// uniqueItems, patternProperties, not, if/then/else, readOnly/writeOnly.
type geminiSchema struct {
	defs   map[string]map[string]any
	budget int // nodes left, so a $ref graph cannot blow up
}

const geminiSchemaDepth = 16

var geminiSchemaCopied = []string{"title", "description", "nullable", "minItems", "maxItems", "minLength", "maxLength",
	"pattern", "minimum", "maximum", "minProperties", "maxProperties", "default", "example", "propertyOrdering"}

func (s *geminiSchema) scrubAny(v any, depth int) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return s.scrub(m, depth)
	}
	return map[string]any{}
}

func (s *geminiSchema) scrub(in map[string]any, depth int) map[string]any {
	out := map[string]any{}
	s.budget--
	if depth > geminiSchemaDepth || s.budget < 0 {
		return out
	}
	if def, ok := s.ref(in); ok {
		return s.scrub(def, depth+1)
	}
	if all, ok := in["allOf"].([]any); ok && len(all) == 1 {
		for k, v := range s.scrubAny(all[0], depth+1) {
			out[k] = v
		}
	}
	geminiSchemaType(in, out)
	for _, k := range geminiSchemaCopied {
		if v, ok := in[k]; ok {
			if k == "nullable" && out["nullable"] == true {
				continue
			}
			out[k] = v
		}
	}
	s.scrubChildren(in, out, depth)
	s.scrubAlternatives(in, out, depth)
	geminiSchemaEnum(in, out)
	geminiSchemaRequired(in, out)
	return out
}

// ref returns the definition a $ref names (#/$defs/x, #/definitions/x),
// with the referring schema's own keywords (a description, say) on top.
func (s *geminiSchema) ref(in map[string]any) (map[string]any, bool) {
	ref, ok := in["$ref"].(string)
	if !ok {
		return nil, false
	}
	def, ok := s.defs[ref]
	if !ok {
		return nil, false
	}
	merged := make(map[string]any, len(def)+len(in))
	for k, v := range def {
		merged[k] = v
	}
	for k, v := range in {
		if k != "$ref" {
			merged[k] = v
		}
	}
	return merged, true
}

// geminiSchemaType sets type: a list ["x", "null"] is x and nullable.
func geminiSchemaType(in, out map[string]any) {
	switch t := in["type"].(type) {
	case string:
		out["type"] = t
	case []any:
		for _, x := range t {
			if x == "null" {
				out["nullable"] = true
			} else if name, ok := x.(string); ok && out["type"] == nil {
				out["type"] = name
			}
		}
		if out["type"] == nil && out["nullable"] == true {
			out["type"] = "null"
			delete(out, "nullable")
		}
	}
}

// scrubChildren scrubs properties and items (of a tuple, the first: Gemini
// has one items schema).
func (s *geminiSchema) scrubChildren(in, out map[string]any, depth int) {
	if props, ok := in["properties"].(map[string]any); ok {
		scrubbed := make(map[string]any, len(props))
		for name, p := range props {
			scrubbed[name] = s.scrubAny(p, depth+1)
		}
		if len(scrubbed) > 0 {
			out["properties"] = scrubbed
		}
	}
	switch items := in["items"].(type) {
	case map[string]any:
		out["items"] = s.scrub(items, depth+1)
	case []any:
		if len(items) > 0 {
			out["items"] = s.scrubAny(items[0], depth+1)
		}
	}
}

// scrubAlternatives turns anyOf and oneOf into anyOf, except Optional[x] as
// pydantic writes it, anyOf [x, {"type": "null"}], which is x and nullable.
func (s *geminiSchema) scrubAlternatives(in, out map[string]any, depth int) {
	var alts []any
	for _, k := range []string{"anyOf", "oneOf"} {
		if list, ok := in[k].([]any); ok {
			for _, x := range list {
				alts = append(alts, s.scrubAny(x, depth+1))
			}
		}
	}
	if len(alts) == 2 {
		for i, x := range alts {
			if m := x.(map[string]any); len(m) == 1 && m["type"] == "null" {
				for k, v := range alts[1-i].(map[string]any) {
					if _, set := out[k]; !set {
						out[k] = v
					}
				}
				out["nullable"] = true
				return
			}
		}
	}
	if len(alts) > 0 {
		out["anyOf"] = alts
	}
}

// geminiSchemaEnum keeps an enum of strings (a string const is a one-value
// enum; Gemini takes enums of strings only) and the formats Gemini knows for
// the type.
func geminiSchemaEnum(in, out map[string]any) {
	if enum, ok := in["enum"].([]any); ok && geminiAllStrings(enum) {
		out["enum"] = enum
	} else if c, ok := in["const"].(string); ok {
		out["enum"] = []any{c}
	}
	if out["enum"] != nil && out["type"] == nil {
		out["type"] = "string"
	}
	if f, ok := in["format"].(string); ok {
		switch out["type"] {
		case "string":
			if f == "enum" || f == "date-time" {
				out["format"] = f
			}
		case "number", "integer":
			if f == "float" || f == "double" || f == "int32" || f == "int64" {
				out["format"] = f
			}
		}
	}
}

// geminiSchemaRequired keeps the required names that are properties.
func geminiSchemaRequired(in, out map[string]any) {
	req, ok := in["required"].([]any)
	if !ok {
		return
	}
	props, _ := out["properties"].(map[string]any)
	var keep []any
	for _, r := range req {
		if name, ok := r.(string); ok && props[name] != nil {
			keep = append(keep, name)
		}
	}
	if len(keep) > 0 {
		out["required"] = keep
	}
}

func geminiAllStrings(list []any) bool {
	for _, x := range list {
		if _, ok := x.(string); !ok {
			return false
		}
	}
	return len(list) > 0
}
