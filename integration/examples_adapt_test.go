package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// The Caddyfiles the README points to adapt without error or warning, and
// each serves the console on a host that serves nothing else: every page
// of a host shares its origin, and an app proxied beside the console could
// read its pages, its anti-forgery token and new API keys.
func TestExamplesAdapt(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*.Caddyfile"))
	files = append(files, filepath.Join("..", "Caddyfile"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(b, map[string]any{"filename": f})
			if err != nil {
				t.Fatalf("adapting %s: %v", f, err)
			}
			for _, w := range warnings {
				t.Errorf("%s:%d: %s", f, w.Line, w.Message)
			}
			var cfg struct {
				Apps struct {
					HTTP struct {
						Servers map[string]struct {
							Routes []json.RawMessage `json:"routes"`
						} `json:"servers"`
					} `json:"http"`
				} `json:"apps"`
			}
			if err := json.Unmarshal(out, &cfg); err != nil {
				t.Fatal(err)
			}
			for name, srv := range cfg.Apps.HTTP.Servers {
				for i, r := range srv.Routes {
					var route any
					json.Unmarshal(r, &route)
					hs := handlers(route)
					if !hs["agent_router+console"] {
						continue
					}
					for _, other := range []string{"reverse_proxy", "file_server", "php_fastcgi", "templates"} {
						if hs[other] {
							t.Errorf("%s: server %s route %d serves the console beside %s: give the console a host of its own", f, name, i, other)
						}
					}
				}
			}
		})
	}
}

// handlers lists the handlers anywhere under v ("agent_router+console"
// for an agent_router handler that serves the console).
func handlers(v any) map[string]bool {
	out := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if h, ok := x["handler"].(string); ok {
				out[h] = true
				if _, ok := x["console"]; ok && h == "agent_router" {
					out["agent_router+console"] = true
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return out
}
