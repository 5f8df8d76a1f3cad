package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// The Caddyfiles the README points to adapt without error or warning.
func TestExamplesAdapt(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*.Caddyfile"))
	files = append(files, filepath.Join("..", "Caddyfile"))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(b, map[string]any{"filename": f})
			if err != nil {
				t.Fatalf("adapting %s: %v", f, err)
			}
			for _, w := range warnings {
				t.Errorf("%s:%d: %s", f, w.Line, w.Message)
			}
		})
	}
}
