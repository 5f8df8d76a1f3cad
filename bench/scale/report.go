package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// result is what one phase (the almost empty store, the full one) of a mode
// measured.
type result struct {
	accounts, apiKeys int
	// load: the bulk calls, and until every instance served the last
	// account.
	loadCalls              sample // each bulk call's latency
	loadRecords            int
	loadTime, loadServed   time.Duration
	writes                 sample
	writeRate              float64
	rot                    rotations
	hot                    []sample // per instance
	rps                    float64
	startAdmin, startServe time.Duration
	anonLoaded, anonAfter  []int64 // per instance
	etcdAnon               int64
}

// scenario runs one mode: n instances (a fleet when n > 1), the seed
// phase, then the full one.
func scenario(c config, dir, fake, mode string, n, accounts int) ([2]*result, error) {
	var res [2]*result
	mdir := filepath.Join(dir, mode)
	var etcdURL string
	var etcd *proc
	if n > 1 {
		var err error
		logf("%s: starting etcd", mode)
		if etcd, etcdURL, err = startEtcd(c.etcd, mdir); err != nil {
			return res, err
		}
		defer etcd.stop()
	}
	gws := make([]*gateway, n)
	for i := range gws {
		g, err := newGateway(c.caddy, mdir, fmt.Sprintf("gw-%d", i+1), fake, etcdURL)
		if err != nil {
			return res, err
		}
		gws[i] = g
		defer g.stop()
		if err := g.run(); err != nil {
			return res, err
		}
		logf("%s: %s serves http://%s, admin http://%s", mode, g.name, g.site, g.admin)
	}
	t := &tenants{}
	for p, size := range []int{c.seed, accounts} {
		logf("%s: phase %d, %d accounts", mode, p+1, size)
		r, err := phase(c, gws, t, size)
		if err != nil {
			return res, err
		}
		if etcd != nil {
			r.etcdAnon = rssAnon(etcd.pid())
		}
		res[p] = r
	}
	return res, nil
}

// phase loads the store up to size accounts and measures it.
func phase(c config, gws []*gateway, t *tenants, size int) (*result, error) {
	r := &result{accounts: size}
	from := t.count()
	start := time.Now()
	calls, err := bulk(gws, t, from, size-from, c.keys, c.perCall, c.loaders)
	if err != nil {
		return nil, err
	}
	r.loadTime, r.loadCalls, r.loadRecords = time.Since(start), calls, (size-from)*(2+c.keys)
	if err := servedEverywhere(gws, t, size-1, 120*time.Second); err != nil {
		return nil, err
	}
	r.loadServed = time.Since(start)
	logf("  loaded %d accounts in %s (%d calls, p50 %s, max %s), served everywhere after %s", size-from, r.loadTime.Round(time.Millisecond),
		len(calls), ms(calls.pct(50)), ms(calls.pct(100)), r.loadServed.Round(time.Millisecond))
	for _, g := range gws {
		r.anonLoaded = append(r.anonLoaded, rssAnon(g.pid()))
	}
	if r.writes, err = createKeys(gws[0], t, c.writes); err != nil {
		return nil, err
	}
	logf("  key creation p50 %s p99 %s", ms(r.writes.pct(50)), ms(r.writes.pct(99)))
	if r.writeRate, err = writeRate(gws[0], t, c.writeWorkers, c.writeTime); err != nil {
		return nil, err
	}
	logf("  %.0f writes/s", r.writeRate)
	r.apiKeys = size*c.keys + len(r.writes) + int(r.writeRate*c.writeTime.Seconds())
	if r.rot, err = rotate(gws, t, c.rotations); err != nil {
		return nil, err
	}
	logf("  rotation PUT p99 %s, visible on the writer p99 %s, everywhere p99 %s, stale %d", ms(r.rot.put.pct(99)),
		ms(r.rot.writer.pct(99)), ms(r.rot.every.pct(99)), r.rot.stale)
	last := gws[len(gws)-1]
	if r.startAdmin, r.startServe, err = restart(last, t, size-1); err != nil {
		return nil, err
	}
	logf("  restart of %s: admin after %s, serving after %s", last.name, r.startAdmin.Round(time.Millisecond), r.startServe.Round(time.Millisecond))
	for _, g := range gws {
		s, err := hotPath(g, t, c.requests)
		if err != nil {
			return nil, err
		}
		r.hot = append(r.hot, s)
		logf("  hot path on %s: p50 %s p99 %s", g.name, ms(s.pct(50)), ms(s.pct(99)))
	}
	if r.rps, err = throughput(gws[0], t, c.conns, c.throughputTime); err != nil {
		return nil, err
	}
	for _, g := range gws {
		r.anonAfter = append(r.anonAfter, rssAnon(g.pid()))
	}
	return r, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func mb(b int64) string { return fmt.Sprintf("%d MB", b/1e6) }

func mbs(bs []int64) string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprint(b/1e6))
	}
	return strings.Join(out, " / ") + " MB"
}

// table is one mode's markdown table.
func table(c config, mode string, res [2]*result) string {
	fleet := len(res[1].hot) > 1
	var b strings.Builder
	what := "single node: one Caddy, bbolt"
	if fleet {
		what = fmt.Sprintf("fleet: %d Caddy processes on one etcd member (max_txn_ops %d)", len(res[1].hot), maxTxnOps)
	}
	full := res[1]
	fmt.Fprintf(&b, "\n### %s\n\n", what)
	fmt.Fprintf(&b, "| measure | %d accounts | %d accounts, %d API keys, %d BYOK keys | target |\n|---|---:|---:|---|\n",
		res[0].accounts, full.accounts, full.apiKeys, full.accounts)
	row := func(name string, f func(r *result) string, target string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, f(res[0]), f(full), target)
	}
	row(fmt.Sprintf("bulk load (%d accounts a call, %d calls at a time)", c.perCall, c.loaders), func(r *result) string {
		return fmt.Sprintf("%.1f s (%.0f records/s; %d calls, p50 %.2f s, max %.2f s)", r.loadTime.Seconds(), float64(r.loadRecords)/r.loadTime.Seconds(),
			len(r.loadCalls), r.loadCalls.pct(50).Seconds(), r.loadCalls.pct(100).Seconds())
	}, "< 1 min")
	if fleet {
		row("… until every instance serves the last account", func(r *result) string { return fmt.Sprintf("%.1f s", r.loadServed.Seconds()) }, "")
	}
	row(fmt.Sprintf("admin writes a second (key creation, %d at a time)", c.writeWorkers), func(r *result) string { return fmt.Sprintf("%.0f", r.writeRate) }, "≥ 500/s (or bulk)")
	row(fmt.Sprintf("admin write p50 / p99 / max (key creation, one at a time, %d)", c.writes), func(r *result) string {
		return fmt.Sprintf("%s / %s / %s", ms(r.writes.pct(50)), ms(r.writes.pct(99)), ms(slices.Max(r.writes)))
	}, "p99 ≤ 10 ms")
	row(fmt.Sprintf("BYOK rotation PUT p50 / p99 (%d)", c.rotations), func(r *result) string {
		return fmt.Sprintf("%s / %s", ms(r.rot.put.pct(50)), ms(r.rot.put.pct(99)))
	}, "")
	row("rotation visible on the writing instance's data plane p50 / p99", func(r *result) string {
		return fmt.Sprintf("%s / %s", ms(r.rot.writer.pct(50)), ms(r.rot.writer.pct(99)))
	}, "p99 ≤ 10 ms")
	if fleet {
		row("rotation visible on every instance p50 / p99 / max", func(r *result) string {
			return fmt.Sprintf("%s / %s / %s", ms(r.rot.every.pct(50)), ms(r.rot.every.pct(99)), ms(slices.Max(r.rot.every)))
		}, "p99 ≤ 50 ms")
	}
	row("requests after the PUT returned served with the old key", func(r *result) string { return fmt.Sprint(r.rot.stale) }, "0")
	row(fmt.Sprintf("hot path p50 / p99, one connection (%d requests%s)", c.requests, map[bool]string{true: ", per instance"}[fleet]), func(r *result) string {
		var out []string
		for _, s := range r.hot {
			out = append(out, fmt.Sprintf("%s / %s", ms(s.pct(50)), ms(s.pct(99))))
		}
		return strings.Join(out, "; ")
	}, "p50 unchanged")
	row(fmt.Sprintf("throughput, %d connections, random accounts", c.conns), func(r *result) string { return fmt.Sprintf("%.0f req/s", r.rps) }, "")
	row("restart: admin endpoint up / serving a loaded account", func(r *result) string {
		return fmt.Sprintf("%.2f s / %.2f s", r.startAdmin.Seconds(), r.startServe.Seconds())
	}, "≤ 10 s")
	row("anonymous memory (RssAnon) after loading"+map[bool]string{true: ", per instance"}[fleet], func(r *result) string { return mbs(r.anonLoaded) }, "≤ 1 GB")
	row("… after the restart and the measures", func(r *result) string { return mbs(r.anonAfter) }, "≤ 1 GB")
	if fleet {
		row("etcd's RssAnon", func(r *result) string { return mb(r.etcdAnon) }, "")
	}
	return b.String()
}
