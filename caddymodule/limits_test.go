package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// startApp provisions and starts an App as Caddy would (a reload starts
// the new config before it stops the old one).
func startApp(t *testing.T, a *App) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := a.Provision(ctx); err != nil {
		a.Cleanup()
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		a.Cleanup()
		t.Fatal(err)
	}
}

func admitN(lim *limits.Limiter, account, key string, n int) (admitted int) {
	for range n {
		var res limits.Reservation
		if d := lim.Admit(&limits.Request{Account: account, APIKey: key, Provider: "openai", Model: "gpt-4o-mini"}, &res); d.Allowed() {
			admitted++
			res.Release()
		}
	}
	return admitted
}

func waitStatus(t *testing.T, rt *ops.LimitsRuntime, id string) limits.Status {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range rt.Status() {
			if s.ID == id {
				return s
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("limit %s was never installed", id)
	return limits.Status{}
}

// TestLimiterAcrossReloads: one limiter per process, kept by a reload
// (its counters too); a reload installs the new defaults; a new key gets
// the per-key default without a write of limits; changed tuning needs a
// restart.
func TestLimiterAcrossReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ar.db")
	cfg := func(rpm int64) *LimitsConfig {
		return &LimitsConfig{RateLimits: []ops.DefaultRateLimit{{Each: "key", RPM: rpm}}}
	}
	a := &App{Store: path, Limits: cfg(2)}
	startApp(t, a)
	if _, err := a.store.CreateAccount("acme", ""); err != nil {
		t.Fatal(err)
	}
	_, k, err := a.store.CreateAPIKey("acme", "ci")
	if err != nil {
		t.Fatal(err)
	}
	id := ops.ReservedLimitPrefix + "rate-0." + k.ID
	if s := waitStatus(t, a.limits, id); s.Limit != 2 || s.Kind != limits.KindRPM {
		t.Fatalf("per-key default: %+v", s)
	}
	lim := a.limits.Limiter()
	if got := admitN(lim, "acme", k.ID, 3); got != 2 {
		t.Fatalf("rpm 2 admitted %d of 3", got)
	}

	// A reload: the new config starts before the old one stops.
	b := &App{Store: path, Limits: cfg(2)}
	startApp(t, b)
	a.Stop()
	a.Cleanup()
	if b.limits.Limiter() != lim {
		t.Fatal("a reload started a second limiter")
	}
	if got := admitN(lim, "acme", k.ID, 1); got != 0 {
		t.Fatal("a reload reset the counters")
	}
	// A reload with a higher default: installed, the spend kept.
	c := &App{Store: path, Limits: cfg(5)}
	startApp(t, c)
	b.Stop()
	b.Cleanup()
	if got := admitN(lim, "acme", k.ID, 5); got != 3 {
		t.Fatalf("after rpm 2 → 5 with 2 used, admitted %d of 5", got)
	}
	// A reload that changes the tuning is refused, saying why.
	d := &App{Store: path, Limits: &LimitsConfig{ReserveOutputCap: 100}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := d.Provision(ctx); err == nil || !strings.Contains(err.Error(), "restart Caddy") {
		t.Fatalf("changed tuning: %v", err)
	}
	d.Cleanup()
	if c.limits.Limiter() != lim || admitN(lim, "acme", k.ID, 1) != 0 {
		t.Fatal("a refused reload disturbed the running limiter")
	}
	c.Stop()
	c.Cleanup()
}

// TestLimitEventsCountedAndKept: a budget's threshold crossing is a
// counter, a log line and an event the account's page shows.
func TestLimitEventsCountedAndKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ar.db")
	a := &App{Store: path, Limits: &LimitsConfig{Budgets: []ops.DefaultBudget{{Each: "account", Amount: limits.MustUSD("1"), Window: limits.WindowDay, Alerts: []int{50}}}}}
	startApp(t, a)
	defer func() { a.Stop(); a.Cleanup() }()
	if _, err := a.store.CreateAccount("evt", ""); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a.limits, ops.ReservedLimitPrefix+"budget-0")
	limitsPerAccount.Store(false) // no handler here asked for per-account series
	reg := prometheus.NewRegistry()
	if err := registerLimitsCollectors(reg, false); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(limitsMetrics.alerts.WithLabelValues("threshold", "50"))
	var res limits.Reservation
	lim := a.limits.Limiter()
	if d := lim.Admit(&limits.Request{Account: "evt", Provider: "openai", Model: "gpt-4o-mini", Payer: limits.PayerPlatform,
		Book: a.store.Prices().Current().Book(), BodyBytes: 30, MaxTokens: 10}, &res); !d.Allowed() {
		t.Fatalf("refused: %+v", d)
	}
	res.Settle(limits.Actual{Tokens: 100, Reported: true, Cost: limits.MustUSD("0.6"), Priced: true})
	deadline := time.Now().Add(5 * time.Second)
	for len(a.limits.Events("evt")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no event kept for the account")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if e := a.limits.Events("evt")[0]; e.Percent != 50 || e.LimitID != ops.ReservedLimitPrefix+"budget-0" {
		t.Fatalf("event %+v", e)
	}
	if got := testutil.ToFloat64(limitsMetrics.alerts.WithLabelValues("threshold", "50")) - before; got != 1 {
		t.Fatalf("budget_alerts_total{threshold,50} moved by %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "caddy_agent_router_limits"); err != nil || n == 0 {
		t.Fatalf("limits gauge: %d series, %v", n, err)
	}
	if n, _ := testutil.GatherAndCount(reg, "caddy_agent_router_limit_remaining"); n != 0 {
		t.Fatal("per-account series without metrics_per_account")
	}
}

// TestFleetLimiter: in fleet mode the limiter's counters live in etcd
// beside the store's prefix (not under it), under the instance's id.
func TestFleetLimiter(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := &App{Store: filepath.Join(t.TempDir(), "local.db"), MasterKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xD}, 32)),
		Etcd:   &EtcdConfig{Endpoints: []string{c.Endpoint(0)}, Prefix: "/ar-lim/", InstanceID: "gw-7", PeerListen: "127.0.0.1:0"},
		Limits: &LimitsConfig{FlushInterval: caddy.Duration(50 * time.Millisecond), RateLimits: []ops.DefaultRateLimit{{Each: "account", RPM: 100}}}}
	startApp(t, a)
	defer func() { a.Stop(); a.Cleanup() }()
	if _, err := a.store.CreateAccount("acme", ""); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a.limits, ops.ReservedLimitPrefix+"rate-0")
	if got := admitN(a.limits.Limiter(), "acme", "", 3); got != 3 {
		t.Fatalf("admitted %d of 3", got)
	}
	cli := etcdtest.Client(t, c.Endpoint(0))
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := cli.Get(context.Background(), "/ar-lim.limits/r/acme/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err == nil && len(resp.Kvs) > 0 {
			if !strings.Contains(string(resp.Kvs[0].Key), "gw-7") && len(resp.Kvs) == 1 {
				t.Fatalf("counter key without the instance id: %s", resp.Kvs[0].Key)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no counter under /ar-lim.limits/ (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, _ := cli.Get(context.Background(), "/ar-lim/limits/", clientv3.WithPrefix(), clientv3.WithCountOnly()); resp.Count != 0 {
		t.Fatal("limiter keys under the store's prefix")
	}
}

// TestFleetLimiterCloseWithEtcdGone: the last config's cleanup does not
// wait on a limiter whose etcd is gone (it used to hold a config load for
// the limiter's flush and lease revocation timeouts, 5 s each).
func TestFleetLimiterCloseWithEtcdGone(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := &App{Store: filepath.Join(t.TempDir(), "local.db"), MasterKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xE}, 32)),
		Etcd:   &EtcdConfig{Endpoints: []string{c.Endpoint(0)}, Prefix: "/ar-gone/", InstanceID: "gw-8", PeerListen: "127.0.0.1:0"},
		Limits: &LimitsConfig{RateLimits: []ops.DefaultRateLimit{{Each: "account", RPM: 100}}}}
	startApp(t, a)
	if _, err := a.store.CreateAccount("acme", ""); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, a.limits, ops.ReservedLimitPrefix+"rate-0")
	admitN(a.limits.Limiter(), "acme", "", 3)
	c.Stop(0)
	a.Stop()
	start := time.Now()
	a.cleanupLimits()
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("the limiter's cleanup with etcd gone took %v", d)
	}
	a.Cleanup()
}
