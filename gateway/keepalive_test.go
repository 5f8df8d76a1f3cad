package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A silent stream gets keepalive comments; a busy one none; nothing is
// written after stop. The decision is driven by a pinned clock (a loaded
// machine cannot make a busy stream look silent); the goroutine is checked
// with a bound, not a sleep.
func TestKeepalive(t *testing.T) {
	old := keepaliveInterval
	keepaliveInterval = 20 * time.Millisecond
	defer func() { keepaliveInterval = old }()

	clock := time.Unix(1_700_000_000, 0)
	rec := httptest.NewRecorder()
	k := &keepaliveWriter{ResponseWriter: rec, rc: http.NewResponseController(rec),
		event: []byte(": ping\n\n"), now: func() time.Time { return clock }, last: clock}
	for i := 0; i < 30; i++ { // busy: an event every 5 ms
		clock = clock.Add(5 * time.Millisecond)
		k.Write([]byte("data: y\n\n"))
		if wait := k.tick(); wait != 20*time.Millisecond {
			t.Fatalf("after a write the next look is in %v, want the whole interval", wait)
		}
	}
	if strings.Contains(rec.Body.String(), ": ping") {
		t.Fatalf("a busy stream got keepalives: %q", rec.Body.String())
	}
	clock = clock.Add(15 * time.Millisecond)
	if wait := k.tick(); wait != 5*time.Millisecond || strings.Contains(rec.Body.String(), ": ping") {
		t.Fatalf("15 ms of silence: wait %v, body %q", wait, rec.Body.String())
	}
	clock = clock.Add(5 * time.Millisecond)
	k.tick()
	if !strings.HasSuffix(rec.Body.String(), "data: y\n\n: ping\n\n") || !rec.Flushed {
		t.Fatalf("20 ms of silence: no flushed keepalive in %q", rec.Body.String())
	}

	// The goroutine: a silent stream gets keepalives until stop, then nothing.
	rec = httptest.NewRecorder()
	k = startKeepalive(rec, []byte(": ping\n\n"))
	pings := func() int {
		k.mu.Lock()
		defer k.mu.Unlock()
		return strings.Count(rec.Body.String(), ": ping\n\n")
	}
	for deadline := time.Now().Add(10 * time.Second); pings() < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("silent stream: %d keepalives in 10 s", pings())
		}
	}
	k.Write([]byte("data: x\n\n"))
	http.NewResponseController(k).Flush()
	k.stop()
	after := rec.Body.Len()
	time.Sleep(50 * time.Millisecond)
	if rec.Body.Len() != after || !strings.Contains(rec.Body.String(), "data: x\n\n") {
		t.Errorf("a keepalive was written after stop: %q", rec.Body.String())
	}
}
