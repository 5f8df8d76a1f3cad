package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A silent stream gets keepalive comments; a busy one none; nothing is
// written after stop.
func TestKeepalive(t *testing.T) {
	old := keepaliveInterval
	keepaliveInterval = 20 * time.Millisecond
	defer func() { keepaliveInterval = old }()

	rec := httptest.NewRecorder()
	k := startKeepalive(rec, []byte(": ping\n\n"))
	time.Sleep(75 * time.Millisecond)
	k.Write([]byte("data: x\n\n"))
	http.NewResponseController(k).Flush()
	k.stop()
	body := rec.Body.String()
	if n := strings.Count(body, ": ping\n\n"); n < 2 || !strings.HasSuffix(body, "data: x\n\n") {
		t.Errorf("silent stream: %d keepalives in %q", n, body)
	}
	if !rec.Flushed {
		t.Error("keepalives were not flushed")
	}
	after := rec.Body.Len()
	time.Sleep(50 * time.Millisecond)
	if rec.Body.Len() != after {
		t.Error("a keepalive was written after stop")
	}

	keepaliveInterval = 200 * time.Millisecond // generous: the machine may be busy
	rec = httptest.NewRecorder()
	k = startKeepalive(rec, []byte(": ping\n\n"))
	for i := 0; i < 30; i++ {
		k.Write([]byte("data: y\n\n"))
		time.Sleep(5 * time.Millisecond)
	}
	k.stop()
	if strings.Contains(rec.Body.String(), ": ping") {
		t.Errorf("a busy stream got keepalives: %q", rec.Body.String())
	}
}
