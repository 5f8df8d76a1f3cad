package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
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

// TestFleetMaxTxnOps: store etcd's max_txn_ops sets how many records a
// bulk creation takes in fleet mode (max_txn_ops / 3; 42 by default), a
// call of several MiB goes through when etcd allows it, and a value above
// etcd's own makes a large call fail as too large, with nothing created.
func TestFleetMaxTxnOps(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xD}, 32))
	open := func(c *etcdtest.Cluster, id string, maxOps int) *App {
		a := &App{Store: filepath.Join(t.TempDir(), id+".db"), MasterKey: key,
			Etcd: &EtcdConfig{Endpoints: []string{c.Endpoint(0)}, InstanceID: id, MaxTxnOps: maxOps}}
		if err := provisionApp(t, a); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Cleanup() })
		return a
	}
	tenant := func(id string, keys int) []ops.TenantInput {
		in := ops.TenantInput{ID: id, Keys: make([]ops.KeyInput, keys)}
		for i := range in.Keys {
			in.Keys[i].Name = "key " + strings.Repeat("k", 60)
		}
		return []ops.TenantInput{in}
	}

	big := etcdtest.StartWith(t, 1, etcdtest.Limits{MaxTxnOps: 30000, MaxRequestBytes: 8 << 20})
	raised := open(big, "raised", 30000)
	if n := raised.store.BulkLimit(); n != store.MaxBulkRecords {
		t.Fatalf("max_txn_ops 30000: a call takes %d records, want %d", n, store.MaxBulkRecords)
	}
	// 10,000 records, about 4 MiB in one etcd request: above the etcd
	// client's default 2 MiB.
	made, err := (&ops.Ops{Store: raised.store}).CreateTenants(tenant("big", store.MaxBulkRecords-1))
	if err != nil || len(made) != 1 || len(made[0].Keys) != store.MaxBulkRecords-1 {
		t.Fatalf("a call of %d records: %v", store.MaxBulkRecords, err)
	}
	if def := open(big, "default", 0); def.store.BulkLimit() != 42 {
		t.Errorf("default max_txn_ops: a call takes %d records, want 42", def.store.BulkLimit())
	}

	small := etcdtest.Start(t, 1) // etcd's default --max-txn-ops 128
	over := open(small, "over", 600)
	if _, err := (&ops.Ops{Store: over.store}).CreateTenants(tenant("t", 150)); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("a call etcd refuses: %v, want ErrTooLarge", err)
	}
	if _, err := over.store.Account("t"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused call created its account: %v", err)
	}
}

// TestMaxTxnOpsCaddyfile: max_txn_ops takes one positive number; the JSON
// twin refuses a negative one.
func TestMaxTxnOpsCaddyfile(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"1024", ""}, {"0", "positive number"}, {"-5", "positive number"}, {"many", `"many"`}, {"", "wrong argument count"},
	} {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("agent_router {\n store etcd {\n endpoints http://127.0.0.1:2379\n max_txn_ops " + tc.value + "\n }\n}"))
		switch {
		case tc.want == "" && (err != nil || a.Etcd == nil || a.Etcd.MaxTxnOps != 1024):
			t.Errorf("max_txn_ops %s: %v %+v", tc.value, err, a.Etcd)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("max_txn_ops %q: %v, want an error with %q", tc.value, err, tc.want)
		}
	}
	c := EtcdConfig{Endpoints: []string{"http://127.0.0.1:2379"}, MaxTxnOps: -1}
	if _, err := c.resolved(caddy.NewReplacer()); err == nil || !strings.Contains(err.Error(), "max_txn_ops") {
		t.Errorf("JSON max_txn_ops -1: %v", err)
	}
}
