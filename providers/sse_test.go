package providers

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// refEvents is a plain reading of the event-stream format, to check
// SSEReader against.
func refEvents(in string) []string {
	in = strings.ReplaceAll(in, "\r\n", "\n")
	in = strings.ReplaceAll(in, "\r", "\n")
	var out []string
	var name, data string
	has := false
	lines := strings.Split(in, "\n")
	for i, line := range lines {
		last := i == len(lines)-1
		if line == "" {
			if has {
				out = append(out, name+"|"+data)
			}
			name, data, has = "", "", false
			continue
		}
		if line[0] != ':' {
			field, value, found := strings.Cut(line, ":")
			if found && strings.HasPrefix(value, " ") {
				value = value[1:]
			}
			switch field {
			case "data":
				if has {
					data += "\n"
				}
				data += value
				has = true
			case "event":
				name = value
			}
		}
		if last && has {
			out = append(out, name+"|"+data)
		}
	}
	return out
}

func readAllEvents(t testing.TB, r io.Reader) ([]string, error) {
	sr := NewSSEReader(r)
	var out []string
	for {
		ev, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, string(ev.Name)+"|"+string(ev.Data))
	}
}

var sseCases = []string{
	"data: a\n\ndata: b\n\n",
	"data: a\r\n\r\ndata: b\r\n\r\n",
	"data: a\r\rdata: b\r\r",
	"event: message_start\ndata: {\"x\":1}\n\nevent: ping\ndata: {}\n\n",
	": comment\ndata: one\ndata: two\n\n",
	"data:no-space\n\n",
	"data: unterminated",
	"data: a\n\n\n\n\ndata: b\n",
	"event: e\n\ndata: after-empty-event\n\n",
	"data\n\n",
	"id: 1\nretry: 10\ndata: x\n\n",
	"",
	"\n\n\n",
	"data: " + strings.Repeat("z", 100000) + "\n\n",
}

func TestSSEReader(t *testing.T) {
	for _, in := range sseCases {
		for name, r := range map[string]io.Reader{
			"whole":    strings.NewReader(in),
			"one-byte": iotest.OneByteReader(strings.NewReader(in)),
			"half":     iotest.HalfReader(strings.NewReader(in)),
		} {
			got, err := readAllEvents(t, r)
			if err != nil {
				t.Fatalf("%q (%s): %v", trunc(in), name, err)
			}
			if want := refEvents(in); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
				t.Errorf("%q (%s):\n got %q\nwant %q", trunc(in), name, got, want)
			}
		}
	}
}

func TestSSEReaderLimits(t *testing.T) {
	line := strings.Repeat("x", 1<<20)
	for name, in := range map[string]string{
		"one long line": "data: " + strings.Repeat("x", MaxSSEEvent+10) + "\n\n",
		// Many lines, each short: they add up to one event.
		"many lines": strings.Repeat("data: "+line+"\n", MaxSSEEvent>>20+1) + "\n",
	} {
		sr := NewSSEReader(strings.NewReader(in))
		if _, err := sr.Next(); !errors.Is(err, ErrEventTooLarge) {
			t.Errorf("%s: %v, want ErrEventTooLarge", name, err)
		}
	}
	// Just under the bound is one event.
	in := strings.Repeat("data: "+line+"\n", MaxSSEEvent>>20-1) + "\n"
	ev, err := NewSSEReader(strings.NewReader(in)).Next()
	if err != nil || len(ev.Data) != (MaxSSEEvent>>20-1)*(1<<20+1)-1 {
		t.Errorf("an event under the bound: %d bytes, %v", len(ev.Data), err)
	}
}

func FuzzSSEReader(f *testing.F) {
	for _, c := range sseCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := readAllEvents(t, iotest.HalfReader(bytes.NewReader([]byte(in))))
		if err != nil {
			t.Fatal(err)
		}
		if want := refEvents(in); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("%q:\n got %q\nwant %q", in, got, want)
		}
	})
}

func trunc(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
