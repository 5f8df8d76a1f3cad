package providers

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// MaxJSONDepth bounds how deeply the JSON the gateway parses may nest:
// request bodies, whole answers and stream events. Real requests stay far
// below it (a tool's JSON schema nests a few dozen levels at most); without
// it, a body of a few MiB of '[' would drive a recursive validator through
// millions of stack frames.
const MaxJSONDepth = 128

// ValidJSON reports whether b is one valid JSON value nested at most
// MaxJSONDepth deep. The depth is checked before any recursive parse, so
// no input makes it recurse deeper than that.
func ValidJSON(b []byte) bool { return shallow(b) && gjson.ValidBytes(b) }

// CheckRequestJSON is ValidJSON that also requires valid UTF-8, as
// providers do of requests (RFC 8259 section 8.1), and says what is wrong
// in words for the client.
func CheckRequestJSON(b []byte) error {
	switch {
	case !shallow(b):
		return errTooDeep
	case !utf8.Valid(b):
		return errNotUTF8
	case !gjson.ValidBytes(b):
		return errNotJSON
	}
	return nil
}

var (
	errTooDeep = fmt.Errorf("request body nests deeper than %d levels of arrays and objects", MaxJSONDepth)
	errNotUTF8 = errors.New("request body is not valid UTF-8")
	errNotJSON = errors.New("request body must be a JSON object, and it is not valid JSON")
)

// shallow reports whether b nests at most MaxJSONDepth deep. Counting the
// openers (vectorised) clears almost every input; only inputs with more
// than MaxJSONDepth of them are scanned byte by byte. The scan follows
// strings as a JSON parser does, so a parser validating b never goes
// deeper than the depth found here before it fails or succeeds.
func shallow(b []byte) bool {
	if bytes.Count(b, []byte{'['})+bytes.Count(b, []byte{'{'}) <= MaxJSONDepth {
		return true
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// Jump to the closing quote: one not preceded by an odd run
			// of backslashes. Strings are most of a body, and IndexByte
			// crosses them many bytes at a time.
			for {
				j := bytes.IndexByte(b[i+1:], '"')
				if j < 0 {
					return true // unterminated: the validator refuses it
				}
				i += j + 1
				n := 0
				for k := i - 1; k >= 0 && b[k] == '\\'; k-- {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
		case '[', '{':
			if depth++; depth > MaxJSONDepth {
				return false
			}
		case ']', '}':
			if depth > 0 {
				depth--
			}
		}
	}
	return true
}
