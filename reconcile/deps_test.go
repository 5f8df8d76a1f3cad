package reconcile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCaddyFreeAndServerFree: the package is a client of the providers'
// admin APIs and a pure comparison. It imports neither Caddy nor the
// store, the gateway or the providers package (the wiring joins them), and
// serves no HTTP.
func TestCaddyFreeAndServerFree(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.Contains(dep, "caddyserver") || strings.HasSuffix(dep, "/store") || strings.HasSuffix(dep, "/gateway") ||
			strings.HasSuffix(dep, "/providers") || strings.HasSuffix(dep, "/admin") || strings.HasSuffix(dep, "/console") {
			t.Errorf("reconcile depends on %s", dep)
		}
	}
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		for _, s := range []string{"http.Server", "ListenAndServe", "http.Handle", "httptest", "log.", "zap."} {
			if strings.Contains(string(b), s) {
				t.Errorf("%s uses %s: the package serves nothing and logs nothing", f, s)
			}
		}
	}
}
