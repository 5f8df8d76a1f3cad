package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

func TestFleetBadEndpointFailsProvisioningQuickly(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA}, 32))
	start := time.Now()
	err := provisionApp(t, &App{Store: filepath.Join(t.TempDir(), "ar.db"), MasterKey: key,
		Etcd: &EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: caddy.Duration(time.Second)}})
	if err == nil || !strings.Contains(err.Error(), "etcd at http://127.0.0.1:1") || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("unreachable etcd: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if err := provisionApp(t, &App{MasterKey: key, Etcd: &EtcdConfig{Endpoints: []string{"10.0.0.1:2379"}}}); err == nil || !strings.Contains(err.Error(), "http(s)://") {
		t.Fatalf("endpoint without scheme: %v", err)
	}
}

func migrateFlags(t *testing.T, args ...string) caddycmd.Flags {
	fs := pflag.NewFlagSet("migrate", pflag.ContinueOnError)
	fs.String("from", "", "")
	fs.String("to", "etcd", "")
	fs.String("endpoints", "", "")
	fs.String("prefix", store.DefaultFleetPrefix, "")
	fs.String("master-key", "", "")
	fs.String("username", "", "")
	fs.String("ca", "", "")
	fs.String("cert", "", "")
	fs.String("key", "", "")
	fs.Int("batch", 100, "")
	fs.Duration("dial-timeout", 5*time.Second, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return caddycmd.Flags{FlagSet: fs}
}

// TestFleetMigrateThenServe: a single-node store migrated with the command
// (twice: re-running is safe) is served by an app in fleet mode.
func TestFleetMigrateThenServe(t *testing.T) {
	mk := bytes.Repeat([]byte{0xC}, 32)
	key := base64.StdEncoding.EncodeToString(mk)
	src := filepath.Join(t.TempDir(), "single.db")
	s, err := store.Open(src, mk, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateAccount("acme", "Acme")
	secret := "sk-proj-migrated" + strings.Repeat("m", 40)
	if _, err := s.PutCredential("acme", "openai", secret, "m", store.Extras{}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	c := etcdtest.Start(t, 1)
	args := []string{"--from", src, "--endpoints", c.Endpoint(0), "--master-key", key, "--prefix", "/ar-test/"}
	for run := 0; run < 2; run++ {
		if code, err := cmdMigrate(migrateFlags(t, args...)); err != nil || code != 0 {
			t.Fatalf("migrate run %d: %d %v", run, code, err)
		}
	}
	if _, err := cmdMigrate(migrateFlags(t, "--from", src, "--endpoints", c.Endpoint(0), "--to", "postgres")); err == nil {
		t.Fatal("--to postgres accepted")
	}

	a := &App{Store: filepath.Join(t.TempDir(), "local.db"), MasterKey: key,
		Etcd: &EtcdConfig{Endpoints: []string{c.Endpoint(0)}, Prefix: "/ar-test/", InstanceID: "gw-1", PeerListen: "127.0.0.1:0"}}
	if err := provisionApp(t, a); err != nil {
		t.Fatal(err)
	}
	cleaned := false
	defer func() {
		if !cleaned {
			a.Cleanup()
		}
	}()
	checkPeerListener(t, a, c.Endpoint(0), mk)
	if cr := a.store.Snapshot().Credential("acme", "openai"); cr == nil || cr.Key() != secret {
		t.Fatal("the migrated credential is not served")
	}
	if st := a.store.Fleet(); !st.Enabled || st.InstanceID != "gw-1" || st.Prefix != "/ar-test/" {
		t.Fatalf("fleet status %+v", st)
	}

	// add-user in fleet mode writes to etcd, and the running app sees it.
	if code, err := cmdAddUser(addUserFlags(t, "--endpoints", c.Endpoint(0), "--prefix", "/ar-test/", "--master-key", key,
		"--account", "acme", "--email", "owner@acme.test")); err != nil || code != 0 {
		t.Fatalf("add-user in fleet mode: %d %v", code, err)
	}
	waitUsers := time.Now()
	for {
		users, _ := a.store.Users("acme")
		if len(users) == 1 && users[0].Email == "owner@acme.test" {
			break
		}
		if time.Since(waitUsers) > 2*time.Second {
			t.Fatalf("the user added in etcd is not seen: %+v", users)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := cmdAddUser(addUserFlags(t, "--endpoints", c.Endpoint(0), "--account", "acme", "--email", "x@acme.test")); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("fleet add-user without a master key: %v", err)
	}

	// The peer listener lives as long as the store: the last config's
	// cleanup closes it.
	peer := peerAddress(t, a.store, "gw-1")
	a.Cleanup()
	cleaned = true
	if conn, err := net.DialTimeout("tcp", peer, time.Second); err == nil {
		conn.Close()
		t.Error("the peer listener is still open after the store closed")
	}
}

func peerAddress(t *testing.T, s *store.Store, id string) string {
	t.Helper()
	for _, m := range s.Members() {
		if m.ID == id {
			return m.PeerAddress
		}
	}
	t.Fatalf("member %s not registered: %+v", id, s.Members())
	return ""
}

// checkPeerListener: the app's peer listener (peer_listen 127.0.0.1:0)
// is registered with its bound address, refuses a request without a
// signature, and answers another member of the fleet (same master key),
// whose fleet-wide read then includes this instance's records.
func checkPeerListener(t *testing.T, a *App, endpoint string, master []byte) {
	t.Helper()
	a.store.Record(&store.LogRecord{ID: "000000000000000000000001", Time: time.Now().UTC(), AccountID: "acme", Status: 200})
	a.store.FlushLog()
	other, err := store.OpenFleet(filepath.Join(t.TempDir(), "other.db"), master, store.Options{},
		store.FleetOptions{Client: etcdtest.Client(t, endpoint), Prefix: "/ar-test/", InstanceID: "gw-2"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	deadline := time.Now().Add(3 * time.Second)
	for len(other.Members()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	peer := peerAddress(t, other, "gw-1")
	if strings.HasSuffix(peer, ":0") {
		t.Fatalf("registered peer address %q", peer)
	}
	resp, err := http.Post("http://"+peer+"/agent_router/fleet/local/logs", "application/json", strings.NewReader(`{"AccountID":"acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(raw), "acme") {
		t.Errorf("unsigned peer request: %d %s", resp.StatusCode, raw)
	}
	recs, _, missing, err := ops.FleetLogs(context.Background(), other, store.LogFilter{AccountID: "acme", Limit: 10})
	if err != nil || len(missing) != 0 || len(recs) != 1 || recs[0].Instance != "gw-1" {
		t.Errorf("another member's fleet-wide read: %+v, missing %+v, %v", recs, missing, err)
	}
}

func TestFleetPeerSettings(t *testing.T) {
	repl := caddy.NewReplacer()
	for _, tc := range []struct {
		cfg  EtcdConfig
		want string // "" ok, else part of the error
		addr string
	}{
		{EtcdConfig{PeerListen: "10.0.1.1:7444"}, "", "10.0.1.1:7444"},
		{EtcdConfig{PeerListen: ":7444", PeerAddress: "gw-1.internal:7444"}, "", "gw-1.internal:7444"},
		{EtcdConfig{PeerListen: ":7444"}, "set peer_address", ""},
		{EtcdConfig{PeerListen: "0.0.0.0:7444"}, "set peer_address", ""},
		{EtcdConfig{PeerListen: "7444"}, "host:port", ""},
		{EtcdConfig{PeerAddress: "gw-1.internal:7444"}, "needs peer_listen", ""},
		{EtcdConfig{AdminAddress: "10.0.1.1:2019"}, "admin_address is no longer used", ""},
	} {
		tc.cfg.Endpoints = []string{"https://10.0.0.1:2379"}
		r, err := tc.cfg.resolved(repl)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error naming %q", tc.cfg, err, tc.want)
		case tc.want == "" && r.PeerAddress != tc.addr:
			t.Errorf("%+v: peer address %q, want %q", tc.cfg, r.PeerAddress, tc.addr)
		}
	}
}
