package providers

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// refDepth is the nesting depth of valid JSON b, by encoding/json's tokens.
func refDepth(b []byte) int {
	d := json.NewDecoder(bytes.NewReader(b))
	depth, max := 0, 0
	for {
		tok, err := d.Token()
		if err != nil {
			return max
		}
		switch tok {
		case json.Delim('['), json.Delim('{'):
			if depth++; depth > max {
				max = depth
			}
		case json.Delim(']'), json.Delim('}'):
			depth--
		}
	}
}

var jsonSeeds = []string{
	`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`,
	`{"a":"[[[[{{{{\"]]]"}`,
	strings.Repeat("[", MaxJSONDepth) + strings.Repeat("]", MaxJSONDepth),
	strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1),
	`{"x":` + strings.Repeat(`{"y":`, MaxJSONDepth) + "1" + strings.Repeat("}", MaxJSONDepth+1),
	"{\"model\":\"gpt\xff\"}",
	"{\"s\":\"\xed\xa0\x80\"}",
	`{"s":"\ud800"}`,
	`]]]]][[[[[`,
	`"\\"`,
	``,
}

func TestCheckRequestJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkAgainstReference(t, []byte(s))
	}
}

func FuzzCheckRequestJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkAgainstReference(t, b) })
}

// checkAgainstReference: CheckRequestJSON accepts exactly the valid UTF-8,
// valid JSON nested at most MaxJSONDepth deep, by encoding/json's
// (iterative) reading; and ValidJSON the same without the UTF-8 rule.
func checkAgainstReference(t *testing.T, b []byte) {
	valid := json.Valid(b)
	deep := valid && refDepth(b) > MaxJSONDepth
	want := valid && !deep && utf8.Valid(b)
	if got := CheckRequestJSON(b) == nil; got != want {
		t.Fatalf("CheckRequestJSON(%.80q) ok=%v, want %v (json.Valid %v, deep %v, utf8 %v)", b, got, want, valid, deep, utf8.Valid(b))
	}
	// gjson and encoding/json differ on invalid UTF-8 inside strings only
	// in what they replace it with; both accept it.
	if utf8.Valid(b) {
		if got := ValidJSON(b); got != (valid && !deep) {
			t.Fatalf("ValidJSON(%.80q) = %v, want %v", b, got, valid && !deep)
		}
	}
}
