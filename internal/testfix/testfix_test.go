package testfix

import (
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// fatal records a fixture's Fatalf and stops the goroutine, as testing does.
type fatal struct {
	testing.TB
	msg string
}

func (f *fatal) Helper() {}
func (f *fatal) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs fn against a recording TB and returns what it failed with.
func failure(t *testing.T, fn func(tb testing.TB)) string {
	f := &fatal{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); fn(f) }()
	<-done
	return f.msg
}

func TestSSEDataKeepsEveryEventAndRefusesOtherBlocks(t *testing.T) {
	if got := SSEData(t, []byte("data: 1\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n")); !slices.Equal(got, []string{"1", `{"a":2}`, "[DONE]"}) {
		t.Errorf("data: %q", got)
	}
	for _, body := range []string{"data: 1\n\n: keepalive\n\ndata: 2\n\n", "event: x\ndata: 1\n\n"} {
		if msg := failure(t, func(tb testing.TB) { SSEData(tb, []byte(body)) }); !strings.Contains(msg, "unexpected stream block") {
			t.Errorf("%q: %q", body, msg)
		}
	}
}

func TestWaitForTimesAndBounds(t *testing.T) {
	start := time.Now()
	d := WaitFor(t, time.Second, "soon", func() bool { return time.Since(start) > 30*time.Millisecond })
	if d < 30*time.Millisecond || d > time.Second {
		t.Errorf("took %v", d)
	}
	if msg := failure(t, func(tb testing.TB) { WaitFor(tb, 20*time.Millisecond, "never", func() bool { return false }) }); msg != "never: not within 20ms" {
		t.Errorf("%q", msg)
	}
}

func TestClosedURLRefuses(t *testing.T) {
	u := ClosedURL(t)
	if !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.HasSuffix(u, "/v1") {
		t.Fatalf("%q", u)
	}
	if resp, err := http.Get(u + "/models"); err == nil {
		resp.Body.Close()
		t.Fatalf("%s answered %d", u, resp.StatusCode)
	}
}
