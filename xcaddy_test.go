package agentrouter

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ./xcaddy.sh test adds ./... unless an argument names a package: flags
// alone (-count=1, -v, -run X) must still test every package, not the root
// package only (issue 19: `./xcaddy.sh test -count=1` ran no test and
// exited 0).
func TestXcaddyTestAddsEveryPackage(t *testing.T) {
	// A go on PATH that prints its arguments instead of running them.
	shim := t.TempDir()
	if err := os.WriteFile(filepath.Join(shim, "go"), []byte("#!/bin/sh\necho go \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ args, want string }{
		{"", "./..."},
		{"-count=1", "-count=1 ./..."},
		{"-v", "-v ./..."},
		{"-count 1 -run TestX/sub", "-count 1 -run TestX/sub ./..."},
		{"--run TestX -timeout 20m", "--run TestX -timeout 20m ./..."},
		{"-run=TestX -v", "-run=TestX -v ./..."},
		{"./store/", "./store/"},
		{"-count=1 ./store/ ./admin/", "-count=1 ./store/ ./admin/"},
		{"-run TestX ./integration/", "-run TestX ./integration/"},
		{"-v -args -custom", "-v ./... -args -custom"},
		{"-args ./not-a-package", "./... -args ./not-a-package"},
	} {
		cmd := exec.Command("bash", append([]string{"./xcaddy.sh", "test"}, strings.Fields(c.args)...)...)
		cmd.Env = append(os.Environ(), "PATH="+shim+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("xcaddy.sh test %s: %v\n%s", c.args, err, out)
		}
		got := strings.TrimSpace(string(out))
		want := "go test -tags nobadger,nomysql,nopgx " + c.want
		if got != want {
			t.Errorf("xcaddy.sh test %s:\n got %s\nwant %s", c.args, got, want)
		}
	}
}
