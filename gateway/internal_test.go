package gateway

// Unit tests of unexported helpers; the behaviour is covered end to end over
// HTTP in gateway_test.go.

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRepeatedMember(t *testing.T) {
	for body, want := range map[string]string{
		`{"model":"a"}`:                                                              "",
		`{"model":"a","model":"b"}`:                                                  "model",
		`{"model":"a","mod\u0065l":"b"}`:                                             "model",
		`{"\u006d\u006F\u0064\u0065\u006c":"a","model":"b"}`:                         "model",
		`{"mod\u0065l":"a"}`:                                                         "",
		`{"model":"a","x":{"model":"b"},"role":"model"}`:                             "",
		`{"model":"a","content":"\u0064\u006f"}`:                                     "",
		`{"model":"a","content":"say \"model\""}`:                                    "",
		`{"model":"a","stream":true,"stream_options":{"include_usage":true}}`:        "",
		`{"model":"a","stream":true,"stream":false}`:                                 "stream",
		`{"stream_options":{},"model":"a","stream_options":{"include_usage":false}}`: "stream_options",
		`{"model":"a","\u0073tream_options":{},"stream_options":{}}`:                 "stream_options",
		`{"model":"a","stream":true,"x":{"stream":1,"stream_options":2}}`:            "",
	} {
		if got := repeatedMember([]byte(body)); got != want {
			t.Errorf("repeatedMember(%s) = %q, want %q", body, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"aé", 3, "aé"}, {"ééé", 5, "éé"}, {"日本", 2, ""},
	} {
		if got := truncate(c.s, c.n); got != c.want || !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
	if got := truncate(strings.Repeat("é", 200), maxModelLen); len(got) != maxModelLen {
		t.Errorf("len %d", len(got))
	}
}

func TestValidRetryAfter(t *testing.T) {
	date := time.Now().UTC().Format(http.TimeFormat)
	for v, want := range map[string]bool{
		"0": true, "20": true, date: true, "Wed, 21 Oct 2015 07:28:00 GMT": true,
		"": false, "-1": false, "1.5": false, " 20": false, "20s": false, "sk-proj-abcdefghijklmnop": false,
		"99999999999": false,
	} {
		if got := validRetryAfter(v); got != want {
			t.Errorf("validRetryAfter(%q) = %v", v, got)
		}
	}
	for v, want := range map[string]bool{"0": true, "1500": true, "1500.5": true, "": false, "-1": false, "NaN": false, "Inf": false, "1e300": false, "x": false} {
		if got := validRetryAfterMs(v); got != want {
			t.Errorf("validRetryAfterMs(%q) = %v", v, got)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestReadAnswerBounded(t *testing.T) {
	for _, tc := range []struct {
		size int64
		hint int64
		ok   bool
	}{
		{0, 0, true}, {10, 10, true}, {100 << 10, -1, true}, {100 << 10, 100 << 10, true},
		{maxResponse, -1, true}, {maxResponse + 1, -1, false}, {maxResponse + 1, maxResponse + 1, false},
	} {
		if tc.hint >= maxAnswerPresize {
			// An announced size beyond the presize bound reserves nothing.
			if bp := acquireAnswerBuf(tc.hint); cap(*bp) >= maxAnswerPresize {
				t.Errorf("hint %d reserved %d bytes", tc.hint, cap(*bp))
			}
		}
		bp := acquireAnswerBuf(tc.hint)
		b, err := readAnswer(bp, io.LimitReader(zeros{}, tc.size))
		if tc.ok && (err != nil || int64(len(b)) != tc.size) {
			t.Errorf("size %d: %d bytes, %v", tc.size, len(b), err)
		}
		if !tc.ok && err == nil {
			t.Errorf("size %d: read whole, want an error", tc.size)
		}
		if tc.hint > 0 && tc.hint < maxAnswerPresize && cap(*bp) <= int(tc.hint) {
			t.Errorf("hint %d: cap %d", tc.hint, cap(*bp))
		}
		releaseAnswerBuf(bp)
	}
}
