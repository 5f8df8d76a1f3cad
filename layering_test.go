package agentrouter_test

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/agentrouter/caddy-agentrouter"

// Caddy's glue lives in caddymodule/ (and the dev main in cmd/caddy); the
// core below it must stay Caddy-free, so that it is testable with httptest
// alone and readable without knowing Caddy (ARCHITECTURE.md, "The house").
// This walks every package of the module but those two, follows its imports
// inside the module, and fails on any import of Caddy itself.
func TestNothingBelowCaddymoduleImportsCaddy(t *testing.T) {
	glue := map[string]bool{module + "/caddymodule": true, module + "/cmd/caddy": true, module: true}
	var pkgs []string
	filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		if matches, _ := filepath.Glob(filepath.Join(path, "*.go")); len(matches) > 0 {
			pkgs = append(pkgs, filepath.ToSlash(path))
		}
		return nil
	})
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages: %v", len(pkgs), pkgs)
	}
	ctx := build.Default
	ctx.BuildTags = []string{"nobadger", "nomysql", "nopgx"}
	seen := map[string][]string{} // package → its imports (with tests)
	var load func(dir string) []string
	load = func(dir string) []string {
		if imps, ok := seen[dir]; ok {
			return imps
		}
		p, err := ctx.ImportDir(dir, 0)
		if err != nil {
			if _, ok := err.(*build.NoGoError); !ok {
				t.Fatalf("%s: %v", dir, err)
			}
		}
		var imps []string
		if p != nil {
			imps = append(append(append(imps, p.Imports...), p.TestImports...), p.XTestImports...)
		}
		seen[dir] = imps
		return imps
	}
	checked := 0
	for _, dir := range pkgs {
		path := module
		if dir != "." {
			path += "/" + dir
		}
		if glue[path] || strings.HasPrefix(dir, "integration") {
			continue // the glue, and the tests that start a real Caddy on purpose
		}
		checked++
		// Walk the package's module-internal import graph (non-test imports
		// of the dependencies, test imports of the package itself).
		stack, visited := []string{dir}, map[string]bool{}
		for len(stack) > 0 {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if visited[d] {
				continue
			}
			visited[d] = true
			for _, imp := range load(d) {
				if strings.HasPrefix(imp, "github.com/caddyserver/") {
					t.Errorf("%s imports %s (through %s): the core below caddymodule must not import Caddy", path, imp, d)
				}
				if rest, ok := strings.CutPrefix(imp, module+"/"); ok && !glue[imp] {
					stack = append(stack, rest)
				} else if glue[imp] {
					t.Errorf("%s imports the Caddy glue %s (through %s)", path, imp, d)
				}
			}
		}
	}
	t.Logf("checked %d packages of %d", checked, len(pkgs))
}
