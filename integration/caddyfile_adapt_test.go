package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	// The Caddyfile adapter, the standard directives, and Agent Router's
	// agent_router directive and global option.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/agentrouter/caddy-agentrouter/caddymodule"
)

// caddyfileSeparator is the line between a golden file's Caddyfile and its
// expected output.
var caddyfileSeparator = regexp.MustCompile(`(?m)^----------\r?$`)

// TestCaddyfileAdaptToJSON adapts every caddyfile_adapt/*.caddyfiletest, as
// Caddy's own caddytest/integration does: the Caddyfile, a line of exactly
// "----------", then either the expected JSON (pretty, tab-indented) or, when
// it does not start with '{', a string the adapt error must contain.
func TestCaddyfileAdaptToJSON(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("caddyfile_adapt", "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no caddyfile_adapt/*.caddyfiletest files")
	}
	for _, path := range files {
		filename := filepath.Base(path)
		t.Run(filename, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(data), "\r\n", "\n")
			parts := caddyfileSeparator.Split(text, -1)
			if len(parts) != 2 {
				t.Fatalf("want one separator line (----------), found %d", len(parts)-1)
			}
			// the trailing newline matches what the Caddyfile formatter expects
			caddyfileInput := strings.TrimSpace(parts[0]) + "\n"
			expected := strings.TrimSpace(parts[1])

			if strings.HasPrefix(expected, "{") {
				if !caddytest.CompareAdapt(t, filename, caddyfileInput, "caddyfile", expected) {
					t.Errorf("adapted JSON of %s differs from the expected JSON (diff printed above)", filename)
				}
				return
			}

			_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileInput), nil)
			if err == nil {
				t.Fatalf("adapting %s succeeded, want an error containing %q", filename, expected)
			}
			if !strings.Contains(err.Error(), expected) {
				t.Errorf("adapt error\n%v\ndoes not contain\n%s", err, expected)
			}
		})
	}
}

// The root Caddyfile takes its ports from the environment, with 8080 and
// 2019 as the defaults (issue 19: changing them meant editing the file).
func TestRootCaddyfilePorts(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	adapt := func() string {
		t.Helper()
		out, warn, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": "Caddyfile"})
		if err != nil {
			t.Fatalf("adapting the root Caddyfile: %v", err)
		}
		if len(warn) > 0 {
			t.Errorf("warnings: %v", warn)
		}
		return string(out)
	}
	for _, c := range []struct{ http, admin string }{{"", ""}, {"18181", "12345"}} {
		t.Setenv("AGENT_ROUTER_HTTP_PORT", c.http)
		t.Setenv("AGENT_ROUTER_ADMIN_PORT", c.admin)
		if c.http == "" {
			os.Unsetenv("AGENT_ROUTER_HTTP_PORT")
			os.Unsetenv("AGENT_ROUTER_ADMIN_PORT")
			c.http, c.admin = "8080", "2019"
		}
		js := adapt()
		for _, want := range []string{`"listen":"localhost:` + c.admin + `"`, `"listen":["127.0.0.1:` + c.http + `","[::1]:` + c.http + `"]`, `"host":["localhost"]`} {
			if !strings.Contains(js, want) {
				t.Errorf("ports %s/%s: %s not in\n%s", c.http, c.admin, want, js)
			}
		}
	}
}
