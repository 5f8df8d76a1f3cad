package caddymodule

import (
	"encoding/base64"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

func addUserFlags(t *testing.T, args ...string) caddycmd.Flags {
	t.Helper()
	fs := pflag.NewFlagSet("add-user", pflag.ContinueOnError)
	fs.String("account", "", "")
	fs.String("email", "", "")
	fs.String("role", store.RoleOwner, "")
	fs.Bool("create-account", false, "")
	fs.String("store", "", "")
	fs.String("master-key", "", "")
	fs.String("site", "http://localhost:8080", "")
	fs.String("endpoints", "", "")
	fs.String("prefix", store.DefaultFleetPrefix, "")
	fs.String("username", "", "")
	fs.String("ca", "", "")
	fs.String("cert", "", "")
	fs.String("key", "", "")
	fs.Duration("dial-timeout", 5*time.Second, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return caddycmd.Flags{FlagSet: fs}
}

func TestAddUserCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ar.db")
	mk := storetest.MasterKey(t)
	key := base64.StdEncoding.EncodeToString(mk)
	base := []string{"--store", path, "--master-key", key}

	if _, err := cmdAddUser(addUserFlags(t, append(base, "--account", "acme", "--email", "o@acme.test")...)); err == nil || !strings.Contains(err.Error(), "--create-account") {
		t.Fatalf("missing account: %v", err)
	}
	if _, err := cmdAddUser(addUserFlags(t, append(base, "--account", "acme", "--email", "o@acme.test", "--role", "root")...)); err == nil {
		t.Fatal("bad role accepted")
	}
	if code, err := cmdAddUser(addUserFlags(t, append(base, "--account", "acme", "--create-account", "--email", "o@acme.test")...)); err != nil || code != 0 {
		t.Fatalf("add-user: %d %v", code, err)
	}
	// While the store is open (Caddy running), the command points to the
	// admin API.
	s, err := store.Open(path, mk, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	users, _ := s.Users("acme")
	if len(users) != 1 || users[0].Email != "o@acme.test" || users[0].Role != store.RoleOwner {
		t.Fatalf("users %+v", users)
	}
	_, err = cmdAddUser(addUserFlags(t, append(base, "--account", "acme", "--email", "m@acme.test", "--role", "member")...))
	if err == nil || !strings.Contains(err.Error(), "running Caddy") || !strings.Contains(err.Error(), "/agent_router/accounts/acme/users") {
		t.Fatalf("locked store: %v", err)
	}
	if strings.Contains(err.Error(), `/agent_router/accounts -d`) {
		t.Fatalf("suggests creating an account that was not asked for: %v", err)
	}
	// With --create-account the hint has both calls, the account's first:
	// run them as printed against the admin API on the open store.
	_, err = cmdAddUser(addUserFlags(t, append(base, "--account", "globex", "--create-account", "--email", "o'neil@globex.test")...))
	if err == nil {
		t.Fatal("add-user on a locked store succeeded")
	}
	calls := regexp.MustCompile(`curl -X POST localhost:2019(\S+) -d '((?:[^']|'\\'')*)'`).FindAllStringSubmatch(err.Error(), -1)
	if len(calls) != 2 || calls[0][1] != "/agent_router/accounts" || calls[1][1] != "/agent_router/accounts/globex/users" {
		t.Fatalf("want the account call, then the user call: %v", err)
	}
	api := &admin.API{Store: func() *store.Store { return s }}
	for _, c := range calls {
		body := strings.ReplaceAll(c[2], `'\''`, "'")
		req := httptest.NewRequest("POST", "http://localhost:2019"+c[1], strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		if err := api.ServeHTTP(rec, req); err != nil || rec.Code != 201 {
			t.Fatalf("%s %s: %d %v %s", c[1], body, rec.Code, err, rec.Body)
		}
	}
	if users, _ := s.Users("globex"); len(users) != 1 || users[0].Email != "o'neil@globex.test" {
		t.Fatalf("globex users after the suggested calls: %+v", users)
	}
	// The admin port follows the root Caddyfile's variable.
	t.Setenv("AGENT_ROUTER_ADMIN_PORT", "2020")
	_, err = cmdAddUser(addUserFlags(t, append(base, "--account", "acme", "--email", "x@acme.test")...))
	if err == nil || !strings.Contains(err.Error(), "curl -X POST localhost:2020/agent_router/accounts/acme/users") {
		t.Fatalf("admin port from the environment: %v", err)
	}
	s.Close()
}
