package providers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
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

// BenchmarkRequestJSON compares the request body check before (gjson's
// recursive validator alone) and after (depth bound, UTF-8, then gjson).
//
//	./xcaddy.sh test ./providers/ -run XXX -bench RequestJSON -benchmem
func BenchmarkRequestJSON(b *testing.B) {
	chat := `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi in five words."}],"temperature":0.2,"stream":true}`
	// A coding agent's request: a long conversation and tool schemas
	// (many brackets, so the exact depth scan runs).
	var agent strings.Builder
	agent.WriteString(`{"model":"gpt-4o","messages":[`)
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&agent, `{"role":"user","content":"step %d: %s"},`, i, strings.Repeat("lorem ipsum dolor sit amet ", 20))
	}
	agent.WriteString(`{"role":"user","content":"go"}],"tools":[`)
	for i := 0; i < 40; i++ {
		fmt.Fprintf(&agent, `{"type":"function","function":{"name":"t%d","parameters":{"type":"object","properties":{"a":{"type":"array","items":{"type":"object","properties":{"b":{"type":"string"}}}}}}}},`, i)
	}
	agent.WriteString(`{"type":"function","function":{"name":"last","parameters":{}}}]}`)
	for _, c := range []struct{ name, body string }{{"chat", chat}, {"agent", agent.String()}} {
		body := []byte(c.body)
		b.Run(c.name+"/gjson.ValidBytes", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !gjson.ValidBytes(body) {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(c.name+"/CheckRequestJSON", func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if CheckRequestJSON(body) != nil {
					b.Fatal("invalid")
				}
			}
		})
	}
}
