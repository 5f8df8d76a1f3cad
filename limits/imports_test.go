package limits

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestNoCaddyNoHTTP: the package stays below the gateway. It imports
// neither Caddy (not even through a dependency) nor net/http (its own
// files; the etcd client's gRPC brings net/http in underneath, as it does
// for the store), nor the gateway's packages.
func TestNoCaddyNoHTTP(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports " "}}|{{join .Deps " "}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports, deps, _ := strings.Cut(strings.TrimSpace(string(out)), "|")
	own := strings.Fields(imports)
	if !slices.Contains(own, "github.com/agentrouter/caddy-agentrouter/pricing") {
		t.Fatalf("go list did not list the imports: %v", own)
	}
	for _, imp := range own {
		if imp == "net/http" || strings.Contains(imp, "caddy-agentrouter/") && !strings.HasSuffix(imp, "/pricing") {
			t.Errorf("limits imports %s", imp)
		}
	}
	for _, dep := range strings.Fields(deps) {
		if strings.Contains(dep, "caddyserver") {
			t.Errorf("limits depends on %s", dep)
		}
	}
}
