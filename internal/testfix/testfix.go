// Package testfix holds the test fixtures that tests of several packages
// share: polling for a condition, addresses nothing listens on, the data of
// an event stream, a process's memory, a fake provider that names the key
// it saw. It imports nothing of this module, so every package's tests may
// use it (store's own tests included); fixtures that need a store live in
// store/storetest, and an etcd cluster and its clients in store/etcdtest.
package testfix

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// WaitFor polls cond until it holds and returns how long that took; it
// fails the test when d passes first (d only bounds a broken run). It
// polls every millisecond at first, then every 10 ms, so that a quick
// change is timed closely and a slow one (a cond that sends a request) is
// not hammered.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	pause := time.Millisecond
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(pause)
		pause = min(2*pause, 10*time.Millisecond)
	}
	return time.Since(start)
}

// FreeAddr returns a loopback address ("127.0.0.1:port") on which nothing
// listens: the port was free a moment ago and is closed again.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ClosedURL returns a provider base URL ("http://127.0.0.1:port/v1") on
// which nothing listens: a request to it is refused.
func ClosedURL(t testing.TB) string {
	t.Helper()
	return "http://" + FreeAddr(t) + "/v1"
}

// SSEData returns the payloads of an event stream whose events are each
// one "data: " line, in order; any other event (a comment, an event name,
// several lines) fails the test.
func SSEData(t testing.TB, body []byte) []string {
	t.Helper()
	var out []string
	for _, block := range strings.Split(strings.TrimRight(string(body), "\n"), "\n\n") {
		d, ok := strings.CutPrefix(block, "data: ")
		if !ok {
			t.Fatalf("unexpected stream block %q", block)
		}
		out = append(out, d)
	}
	return out
}

// PeakRSS resets this process's peak resident set and returns a function
// that reads the peak since then and how far it rose above the RSS at the
// reset, in MiB (Linux: clear_refs 5 sets VmHWM to the current RSS). Run
// runtime.GC and debug.FreeOSMemory first to start from a collected heap.
func PeakRSS(t testing.TB) func() (rise, peak float64) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak RSS: %v", err)
	}
	base := procStatusMiB(t, "VmRSS")
	return func() (float64, float64) {
		peak := procStatusMiB(t, "VmHWM")
		return peak - base, peak
	}
}

// procStatusMiB reads a size field of /proc/self/status in MiB.
func procStatusMiB(t testing.TB, field string) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb / 1024
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// KeyTagProvider is an OpenAI-compatible provider whose answer is the tag
// of the key it saw: keys look like "sk-fleet-<tag>-<random>" (any other
// key answers "unknown"). It is closed when the test ends.
func KeyTagProvider(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		tag := "unknown"
		if rest, ok := strings.CutPrefix(key, "sk-fleet-"); ok {
			tag, _, _ = strings.Cut(rest, "-")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`, tag)
	}))
	t.Cleanup(srv.Close)
	return srv
}
