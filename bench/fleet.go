package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Phase (f), fleet mode: two gateway processes sharing one etcd (embedded
// in this process), against the single-node gateway. The hot path reads
// the same in-memory snapshot in both modes, so (f) should show the same
// cost; it runs only when -phases includes f.

type fleetBench struct {
	etcd    *embed.Etcd
	targets []*target // fleet-1 (where the account was created), fleet-2
	rps     map[string][]float64
	p99     map[string][]float64
}

// startFleet starts etcd and the two fleet gateways on portBase+4/+5
// (admin +14/+15), etcd on +20/+21, and creates the benchmark account
// through fleet-1.
func startFleet(cfg *config, caddyBin, dir, fakeAddr string, global func(string) string, plainBody string) (*fleetBench, error) {
	port := func(off int) int { return cfg.portBase + off }
	for _, off := range []int{4, 5, 14, 15, 20, 21} {
		if err := portFree(port(off)); err != nil {
			return nil, fmt.Errorf("port %d is taken: %v; pick others with -port-base", port(off), err)
		}
	}
	ec := embed.NewConfig()
	ec.Name, ec.Dir = "bench", filepath.Join(dir, "etcd")
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port(20)))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port(21)))
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = "bench=" + pu.String()
	ec.AutoCompactionMode, ec.AutoCompactionRetention = "periodic", "5m"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("starting etcd: %v", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd did not become ready")
	}
	fb := &fleetBench{etcd: e, rps: map[string][]float64{}, p99: map[string][]float64{}}
	const master = "YmVuY2ggZmxlZXQgbWFzdGVyIGtleSwgMzIgYnl0ZXM=" // base64 of 32 bytes
	var procs []*proc
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("fleet-%d", i)
		home := filepath.Join(dir, name)
		if err := os.MkdirAll(home, 0o700); err != nil {
			return fb, err
		}
		admin := fmt.Sprintf("127.0.0.1:%d", port(13+i))
		text := fmt.Sprintf("{\n%s\tagent_router {\n\t\tstore %s\n\t\tmaster_key %s\n\t\tstore etcd {\n\t\t\tendpoints %s\n\t\t\tinstance_id %s\n\t\t}\n\t}\n}\n\nhttp://:%d {\n\tagent_router {\n\t\tprovider openai {\n\t\t\tbase_url http://%s/v1\n\t\t}\n\t}\n}\n",
			global(admin), filepath.Join(home, "agent_router.db"), master, cu.String(), name, port(3+i), fakeAddr)
		path := filepath.Join(home, "Caddyfile")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return fb, err
		}
		env := append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
		p, err := children.start(name, caddyBin, []string{"run", "--config", path, "--adapter", "caddyfile"}, env, admin)
		if err != nil {
			return fb, fmt.Errorf("starting %s: %v", name, err)
		}
		if err := waitHTTP(p, "http://"+admin+"/config/", 20*time.Second); err != nil {
			return fb, err
		}
		procs = append(procs, p)
	}
	apiKey, err := setupAccount("http://" + procs[0].admin + "/agent_router")
	if err != nil {
		return fb, fmt.Errorf("setting up the account on fleet-1: %v\n%s", err, procs[0].tail(20))
	}
	for i, p := range procs {
		a := fmt.Sprintf("127.0.0.1:%d", port(4+i))
		fb.targets = append(fb.targets, &target{name: p.name, addr: a, proc: p, admin: p.admin, vars: p.admin, fakeAddr: fakeAddr,
			plain: buildRequest(a, apiKey, plainBody)})
	}
	// fleet-2 learned the account through etcd.
	c := &client{addr: fb.targets[1].addr, deadline: time.Now().Add(10 * time.Second)}
	if err := c.plain(fb.targets[1].plain); err != nil {
		return fb, fmt.Errorf("fleet-2 does not serve the account created on fleet-1: %v", err)
	}
	c.close()
	return fb, nil
}

func (fb *fleetBench) stop() {
	if fb != nil && fb.etcd != nil {
		fb.etcd.Close()
	}
}

// phaseF runs (a)'s closed loop against t (the single-node gateway or a
// fleet gateway).
func (fb *fleetBench) phaseF(cfg *config, t *target) {
	begin := time.Now().Add(cfg.warmup)
	end := begin.Add(cfg.duration)
	r := closedLoop(t.addr, t.plain, cfg.conns, begin, end)
	rps := float64(len(r.lat)) / cfg.duration.Seconds()
	fb.rps[t.name] = append(fb.rps[t.name], rps)
	fb.p99[t.name] = append(fb.p99[t.name], ms(percentile(r.lat, 99)))
	logf("  (f) %-8s %7.0f req/s  p50 %.2f  p99 %.2f ms  %s", t.name, rps, ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)), r.errs.String())
}

// report is (f)'s section of the output.
func (fb *fleetBench) report(names []string) string {
	var b strings.Builder
	b.WriteString("\nFleet mode (f): (a)'s closed loop, non-streamed, against the single-node gateway and two gateways sharing one etcd (fleet-1 took the admin writes, fleet-2 learned them through the watch); medians of the rounds:\n\n")
	b.WriteString("| target | req/s | p99 ms |\n|---|---|---|\n")
	for _, n := range names {
		if len(fb.rps[n]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f |\n", n, summarize(fb.rps[n]).med, summarize(fb.p99[n]).med)
	}
	return b.String()
}
