// Command bench is Agent Router's load benchmark: it compares the gateway
// with plain Caddy's reverse_proxy (the same binary) and with the upstream
// itself, on loopback, in alternating rounds, and prints one markdown table.
//
//	go run ./bench            # the full run (~4-5 minutes on 2 cores)
//	go run ./bench -quick     # a few seconds per phase, one round
//
// See bench/README.md for what each phase measures and how to read the table.
package main

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type config struct {
	caddyBin     string
	quick        bool
	rounds       int
	warmup       time.Duration
	duration     time.Duration
	conns        int
	rate         float64
	streamRate   float64
	pacedRate    float64
	pace         time.Duration
	streams      int
	slowInterval time.Duration
	slowEvents   int
	ramp         time.Duration
	workers      int
	phases       string
	// profileStreams profiles under (s)'s load instead of (a)'s.
	profileStreams bool
	portBase       int
	outDir         string
	profile        time.Duration
	nice           int
	prefill        int
	// limits puts a budget and a rate limit on the bench account, high
	// enough never to refuse: the gateway admits and settles every request.
	limits bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "fake-upstream" {
		runFake(os.Args[2:])
		return
	}
	cfg := parseFlags()
	os.Exit(run(cfg))
}

func parseFlags() *config {
	c := &config{}
	flag.StringVar(&c.caddyBin, "caddy", "", "Caddy binary with Agent Router (default ./caddy, built with ./xcaddy.sh when missing or older than the sources)")
	flag.BoolVar(&c.quick, "quick", false, "smoke run: one round, 2s per phase, short slow streams (explicit flags still win)")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds; each runs every phase against direct, plain Caddy and the gateway back to back")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "warm-up before each measurement of (a); open-loop phases use at most 500ms")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "measured time per phase, target and round")
	flag.IntVar(&c.conns, "conns", 50, "(a) concurrent connections of the closed loop")
	flag.Float64Var(&c.rate, "rate", 200, "(c) fixed rate, requests/s")
	flag.Float64Var(&c.streamRate, "stream-rate", 200, "(b) streams/s of unpaced streams (time to first event, total time)")
	flag.Float64Var(&c.pacedRate, "paced-rate", 40, "(b) streams/s of paced streams (event delays and gaps)")
	flag.DurationVar(&c.pace, "pace", 5*time.Millisecond, "(b) delay between the fake's events in paced streams")
	flag.IntVar(&c.streams, "streams", 1000, "(d) concurrent slow streams")
	flag.DurationVar(&c.slowInterval, "slow-interval", 500*time.Millisecond, "(d) delay between the events of a slow stream")
	flag.IntVar(&c.slowEvents, "slow-events", 8, "(d) content events per slow stream (held open (events-1) x interval)")
	flag.DurationVar(&c.ramp, "ramp", time.Second, "(d) time over which the slow streams are opened")
	flag.IntVar(&c.workers, "workers", 64, "connections of the open-loop generator (b, c)")
	flag.StringVar(&c.phases, "phases", "a,s,m,b,c,d", "phases to run (f, fleet mode on an embedded etcd, runs only when listed)")
	flag.BoolVar(&c.profileStreams, "profile-streams", false, "with -profile: profile under (s)'s closed loop of streams instead of (a)'s")
	flag.IntVar(&c.portBase, "port-base", 17300, "loopback ports: +1 fake, +2 plain Caddy, +3 gateway, +12/+13 their admin APIs")
	flag.StringVar(&c.outDir, "out", "bench/out", "directory for the table and profiles (relative to the repository root)")
	flag.DurationVar(&c.profile, "profile", 0, "after the rounds, take CPU and allocation profiles of the gateway and plain Caddy under (a) for this long (e.g. 10s)")
	flag.IntVar(&c.prefill, "prefill", 110000, "requests sent through the gateway before the rounds, so its request log is full (default log_max_records: 100000) and it runs in its steady state, pruning; 0 to skip")
	flag.BoolVar(&c.limits, "limits", false, "put a budget (payer all, month) and a rate limit (rpm, tpm, concurrent) on the bench account, never reached: every request is admitted and settled")
	flag.IntVar(&c.nice, "nice", 0, "run the bench and everything it starts at this niceness (0-19), to be polite on a shared machine")
	flag.Parse()
	if c.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rounds", func() { c.rounds = 1 })
		def("warmup", func() { c.warmup = 500 * time.Millisecond })
		def("duration", func() { c.duration = 2 * time.Second })
		def("slow-interval", func() { c.slowInterval = 200 * time.Millisecond })
		def("slow-events", func() { c.slowEvents = 5 })
		def("ramp", func() { c.ramp = 500 * time.Millisecond })
		def("prefill", func() { c.prefill = 0 })
	}
	if c.rounds < 1 || c.duration <= 0 || c.conns < 1 || c.rate <= 0 || c.streamRate <= 0 || c.pacedRate <= 0 ||
		c.workers < 1 || c.streams < 1 || c.prefill < 0 || c.prefill > 10_000_000 || c.slowEvents < 1 || c.rounds > 50 || c.duration > 10*time.Minute {
		fmt.Fprintln(os.Stderr, "bench: a flag is out of range")
		os.Exit(2)
	}
	return c
}

// target is one of the three paths under test.
type target struct {
	name     string
	addr     string // where the load goes
	vars     string // expvar endpoint (/debug/vars) of the server process
	proc     *proc  // the server process (the fake for direct)
	admin    string // Caddy's admin API; "" for direct
	fakeAddr string // the fake upstream (its /debug/vars counts connections)
	store    string // the gateway's bbolt file; "" for the others

	// pre-built requests: non-streamed, streamed, paced and slow streams,
	// and an Anthropic Messages stream (phase m)
	plain, stream, paced, slow, messages []byte
}

// prefillNote describes the gateway's state before the rounds, for the header.
var prefillNote = "the gateway started with an empty request log (-prefill 0)"

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	children.stopAll()
	os.Exit(1)
}

func run(cfg *config) int {
	started := time.Now()
	root, err := repoRoot()
	if err != nil {
		die("%v", err)
	}
	if cfg.nice != 0 {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, cfg.nice); err != nil {
			logf("warning: could not set niceness: %v", err)
		}
	}
	if lim, err := raiseFileLimit(); err != nil || lim < uint64(cfg.streams)*2+512 {
		logf("warning: open-file limit %d (%v) may be too low for %d streams; raise `ulimit -n`", lim, err, cfg.streams)
	}
	caddyBin, err := ensureCaddy(root, cfg.caddyBin)
	if err != nil {
		die("%v", err)
	}

	dir, err := os.MkdirTemp("", "agent-router-bench-")
	if err != nil {
		die("%v", err)
	}
	children.dir = dir
	defer children.stopAll()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigc
		logf("\nbench: %v: stopping everything it started", s)
		children.stopAll()
		os.Exit(130)
	}()

	ports := map[string]int{"fake": cfg.portBase + 1, "caddy": cfg.portBase + 2, "gateway": cfg.portBase + 3,
		"caddy admin": cfg.portBase + 12, "gateway admin": cfg.portBase + 13}
	for name, p := range ports {
		if err := portFree(p); err != nil {
			die("port %d (%s) is taken: %v; pick others with -port-base", p, name, err)
		}
	}
	addr := func(name string) string { return fmt.Sprintf("127.0.0.1:%d", ports[name]) }

	// The fake upstream: this program, in a child process.
	self, err := os.Executable()
	if err != nil {
		die("%v", err)
	}
	fake, err := children.start("fake", self, []string{"fake-upstream", "-addr", addr("fake"),
		"-pace", cfg.pace.String(), "-slow-interval", cfg.slowInterval.String(), "-slow-events", fmt.Sprint(cfg.slowEvents)},
		os.Environ(), "")
	if err != nil {
		die("starting the fake upstream: %v", err)
	}
	if err := waitHTTP(fake, "http://"+addr("fake")+"/healthz", 10*time.Second); err != nil {
		die("%v", err)
	}

	// Plain Caddy and the gateway: the same binary, two processes.
	global := func(admin string) string {
		return fmt.Sprintf("\tadmin %s\n\tdefault_bind 127.0.0.1\n\tauto_https off\n\tpersist_config off\n\tgrace_period 2s\n", admin)
	}
	plainCfg := fmt.Sprintf("{\n%s}\n\nhttp://:%d {\n\treverse_proxy %s {\n\t\ttransport http {\n\t\t\tkeepalive_idle_conns_per_host 256\n\t\t}\n\t}\n}\n",
		global(addr("caddy admin")), ports["caddy"], addr("fake"))
	gatewayCfg := fmt.Sprintf("{\n%s\tagent_router {\n\t\tstore %s\n\t}\n}\n\nhttp://:%d {\n\tagent_router {\n\t\tprovider openai {\n\t\t\tbase_url http://%[4]s/v1\n\t\t}\n\t\tprovider anthropic {\n\t\t\tbase_url http://%[4]s\n\t\t}\n\t}\n}\n",
		global(addr("gateway admin")), filepath.Join(dir, "gateway", "agent_router.db"), ports["gateway"], addr("fake"))
	startCaddy := func(name, cfgText, admin string) *proc {
		home := filepath.Join(dir, name)
		if err := os.MkdirAll(home, 0o700); err != nil {
			die("%v", err)
		}
		path := filepath.Join(home, "Caddyfile")
		if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
			die("%v", err)
		}
		env := append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
		p, err := children.start(name, caddyBin, []string{"run", "--config", path, "--adapter", "caddyfile"}, env, admin)
		if err != nil {
			die("starting %s: %v", name, err)
		}
		return p
	}
	caddyProc := startCaddy("caddy", plainCfg, addr("caddy admin"))
	gwProc := startCaddy("gateway", gatewayCfg, addr("gateway admin"))
	for _, p := range []*proc{caddyProc, gwProc} {
		if err := waitHTTP(p, "http://"+p.admin+"/config/", 20*time.Second); err != nil {
			die("%v", err)
		}
	}

	// An account, an API key and a BYOK openai key, through the admin API.
	apiKey, err := setupAccount("http://" + addr("gateway admin") + "/agent_router")
	if err != nil {
		die("setting up the gateway account: %v\n%s", err, gwProc.tail(20))
	}
	if cfg.limits {
		if err := setupLimits("http://" + addr("gateway admin") + "/agent_router"); err != nil {
			die("setting up the bench account's limits: %v\n%s", err, gwProc.tail(20))
		}
	}

	const plainBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"temperature":0.2}`
	// What Claude Code sends, in short: the gateway passes it through.
	const messagesBody = `{"model":"claude-haiku-4-5","max_tokens":1024,"stream":true,"system":[{"type":"text","text":"You are a helpful assistant.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":[{"type":"text","text":"Say hello in one short sentence."}]}]}`
	const streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}],"temperature":0.2}`
	mk := func(name, a string, p *proc, admin, vars string) *target {
		host := a
		return &target{name: name, addr: a, proc: p, admin: admin, vars: vars, fakeAddr: addr("fake"),
			plain:    buildRequest(host, apiKey, plainBody),
			stream:   buildRequest(host, apiKey, streamBody),
			paced:    buildRequest(host, apiKey, strings.Replace(streamBody, `"stream":true`, `"stream":true,`+markerPaced, 1)),
			slow:     buildRequest(host, apiKey, strings.Replace(streamBody, `"stream":true`, `"stream":true,`+markerSlow, 1)),
			messages: buildRequestTo("/v1/messages", host, apiKey, messagesBody),
		}
	}
	targets := map[string]*target{
		tDirect:  mk(tDirect, addr("fake"), fake, "", addr("fake")),
		tCaddy:   mk(tCaddy, addr("caddy"), caddyProc, addr("caddy admin"), addr("caddy admin")),
		tGateway: mk(tGateway, addr("gateway"), gwProc, addr("gateway admin"), addr("gateway admin")),
	}
	targets[tGateway].store = filepath.Join(dir, "gateway", "agent_router.db")
	if err := sanityCheck(targets); err != nil {
		die("sanity check: %v\n--- gateway log:\n%s\n--- caddy log:\n%s", err, gwProc.tail(15), caddyProc.tail(15))
	}
	logf("all three paths answer (the gateway with the account's BYOK key)")

	if cfg.prefill > 0 {
		logf("prefilling the gateway's request log with %s requests", thousands(int64(cfg.prefill)))
		t0 := time.Now()
		n, errs := fill(targets[tGateway].addr, targets[tGateway].plain, cfg.conns, int64(cfg.prefill), 5*time.Minute)
		if n < int64(cfg.prefill)*9/10 {
			die("prefill: only %d of %d requests succeeded: %s", n, cfg.prefill, errs.String())
		}
		time.Sleep(time.Second) // the log writer flushes every 250 ms
		var size int64
		if st, err := os.Stat(targets[tGateway].store); err == nil {
			size = st.Size()
		}
		state := "was at its default cap of 100,000 records, and pruning"
		if n < 100000 {
			state = fmt.Sprintf("held about %s records", thousands(n))
		}
		prefillNote = fmt.Sprintf("the gateway served %s requests before the rounds (%.0f s), so its request log (bbolt file %.0f MB) %s",
			thousands(n), time.Since(t0).Seconds(), float64(size)/1e6, state)
		logf("  %s", prefillNote)
	}
	logf("measuring")

	res := newResults(cfg.rounds)
	res.slowN = cfg.streams
	want := map[string]bool{}
	for _, p := range strings.Split(cfg.phases, ",") {
		want[strings.TrimSpace(p)] = true
	}
	var fleet *fleetBench
	if want["f"] {
		logf("starting the fleet: one etcd, two gateways")
		var err error
		fleet, err = startFleet(cfg, caddyBin, dir, addr("fake"), global, plainBody)
		defer fleet.stop()
		if err != nil {
			die("fleet phase: %v", err)
		}
	}
	loadBefore := loadavg()
	names := []string{tDirect, tCaddy, tGateway}
	pause := func() { time.Sleep(300 * time.Millisecond) }
	for round := 0; round < cfg.rounds; round++ {
		// rotate the order every round, so no path always runs first
		order := append(names[round%3:], names[:round%3]...)
		order = append([]string(nil), order...)
		logf("round %d/%d (order: %s)", round+1, cfg.rounds, strings.Join(order, ", "))
		if want["a"] {
			for _, n := range order {
				phaseA(cfg, res, targets[n], round)
				pause()
			}
		}
		if want["s"] {
			for _, n := range order {
				phaseS(cfg, res, targets[n], round)
				pause()
			}
		}
		if want["m"] {
			for _, n := range order {
				phaseM(cfg, res, targets[n], round)
				pause()
			}
		}
		if want["b"] {
			for _, n := range order {
				phaseB(cfg, res, targets[n], round)
				pause()
			}
			for _, n := range order {
				phaseBEvents(cfg, res, targets[n], round)
				pause()
			}
		}
		if want["c"] {
			for _, n := range order {
				phaseC(cfg, res, targets[n], round)
				pause()
			}
		}
		if want["d"] {
			for _, n := range order {
				if n != tDirect {
					phaseD(cfg, res, targets[n], round)
					pause()
				}
			}
		}
		if fleet != nil {
			for _, t := range []*target{targets[tGateway], fleet.targets[0], fleet.targets[1]} {
				fleet.phaseF(cfg, t)
				pause()
			}
		}
		for _, p := range []*proc{fake, caddyProc, gwProc} {
			if p.exited() {
				die("%s exited during the run: %v\n%s", p.name, p.err, p.tail(20))
			}
		}
	}
	finished := time.Now()
	loadAfter := loadavg()

	outDir := cfg.outDir
	if !filepath.IsAbs(outDir) {
		outDir = filepath.Join(root, outDir)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		die("%v", err)
	}
	stamp := started.UTC().Format("20060102T150405Z")

	var profNote string
	if cfg.profile > 0 {
		profNote = takeProfiles(cfg, caddyBin, []*target{targets[tGateway], targets[tCaddy]}, outDir, stamp)
	}

	var out strings.Builder
	out.WriteString(header(cfg, caddyBin, root, started, finished, loadBefore, loadAfter))
	out.WriteString("\n")
	out.WriteString(res.table())
	out.WriteString("\nCells: median of the rounds (min–max). Ratios and differences are taken within each round, then summarised.\n")
	if e := res.errorLines(); len(e) > 0 {
		out.WriteString("\nErrors:\n")
		for _, l := range e {
			out.WriteString("- " + l + "\n")
		}
	} else {
		out.WriteString("No request failed.\n")
	}
	out.WriteString("\nTargets (gateway against plain Caddy, medians of the rounds):\n")
	for _, v := range res.verdicts() {
		out.WriteString("- " + v + "\n")
	}
	if fleet != nil {
		out.WriteString(fleet.report([]string{tGateway, "fleet-1", "fleet-2"}))
	}
	if profNote != "" {
		out.WriteString("\n" + profNote)
	}
	fmt.Print(out.String())

	path := filepath.Join(outDir, "bench-"+stamp+".md")
	if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
		logf("writing %s: %v", path, err)
	} else {
		os.WriteFile(filepath.Join(outDir, "latest.md"), []byte(out.String()), 0o644)
		logf("wrote %s", path)
	}
	if raw, err := json.MarshalIndent(res.raw(), "", "  "); err == nil {
		os.WriteFile(filepath.Join(outDir, "bench-"+stamp+".json"), raw, 0o644)
	}
	return 0
}

// --- phases ---

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

func openWarmup(cfg *config) time.Duration { return min(cfg.warmup, 500*time.Millisecond) }

// (a) non-streamed requests at saturation: a closed loop of cfg.conns.
func phaseA(cfg *config, res *results, t *target, round int) {
	m0, b0, memOK := memStats(t.vars)
	a0 := acceptedConns(t.fakeAddr)
	begin := time.Now().Add(cfg.warmup)
	end := begin.Add(cfg.duration)
	cpu := make(chan [2]time.Duration, 1)
	go func() {
		sleepUntil(begin)
		c0, g0 := cpuTime(t.proc.pid()), cpuTime(os.Getpid())
		sleepUntil(end)
		cpu <- [2]time.Duration{cpuTime(t.proc.pid()) - c0, cpuTime(os.Getpid()) - g0}
	}()
	r := closedLoop(t.addr, t.plain, cfg.conns, begin, end)
	cpus := <-cpu
	used := cpus[0]
	n := len(r.lat)
	rps := float64(n) / cfg.duration.Seconds()
	res.add("a.rps", t.name, round, rps)
	res.add("a.p50", t.name, round, ms(percentile(r.lat, 50)))
	res.add("a.p90", t.name, round, ms(percentile(r.lat, 90)))
	res.add("a.p99", t.name, round, ms(percentile(r.lat, 99)))
	if n > 0 {
		res.add("a.cpu", t.name, round, float64(used.Microseconds())/float64(n))
		res.add("a.gencpu", t.name, round, float64(cpus[1].Microseconds())/float64(n))
	}
	if m1, b1, ok := memStats(t.vars); ok && memOK && r.all > 0 {
		res.add("a.allocs", t.name, round, math.Round(float64(m1-m0)/float64(r.all)))
		res.add("a.kb", t.name, round, float64(b1-b0)/float64(r.all)/1024)
	}
	if a1 := acceptedConns(t.fakeAddr); a0 >= 0 && a1 >= 0 {
		res.add("a.upconns", t.name, round, float64(a1-a0))
	}
	res.addErrors("(a)", t.name, &r.errs)
	logf("  (a) %-8s %7.0f req/s  p50 %.2f  p90 %.2f  p99 %.2f ms  cpu %.0f µs/req  %s", t.name, rps,
		ms(percentile(r.lat, 50)), ms(percentile(r.lat, 90)), ms(percentile(r.lat, 99)),
		float64(used.Microseconds())/math.Max(1, float64(n)), r.errs.String())
}

// (s) unpaced streams at saturation: a closed loop of cfg.conns, each
// sending its next stream when the previous one reached [DONE]. What a
// stream costs the server (CPU, allocations) shows here, where (b)'s fixed
// rate hides it.
func phaseS(cfg *config, res *results, t *target, round int) {
	closedStreamPhase(cfg, res, t, round, "s", "(s) streams", t.stream)
}

// (m) unpaced Anthropic Messages streams at saturation, as (s): POST
// /v1/messages passed through to an Anthropic-shaped upstream (the gateway
// relays each event as sent and reads its usage), so its cost per stream
// compares with (s)'s chat passthrough.
func phaseM(cfg *config, res *results, t *target, round int) {
	closedStreamPhase(cfg, res, t, round, "m", "(m) messages streams", t.messages)
}

// closedStreamPhase runs a closed loop of streams built by stream and
// records its results under the phase's key.
func closedStreamPhase(cfg *config, res *results, t *target, round int, key, label string, stream []byte) {
	m0, b0, memOK := memStats(t.vars)
	begin := time.Now().Add(cfg.warmup)
	end := begin.Add(cfg.duration)
	cpu := make(chan time.Duration, 1)
	go func() {
		sleepUntil(begin)
		c0 := cpuTime(t.proc.pid())
		sleepUntil(end)
		cpu <- cpuTime(t.proc.pid()) - c0
	}()
	r := closedStreams(t.addr, stream, cfg.conns, begin, end)
	used := <-cpu
	n := len(r.lat)
	rps := float64(n) / cfg.duration.Seconds()
	res.add(key+".rps", t.name, round, rps)
	res.add(key+".p50", t.name, round, ms(percentile(r.lat, 50)))
	res.add(key+".p99", t.name, round, ms(percentile(r.lat, 99)))
	if n > 0 {
		res.add(key+".cpu", t.name, round, float64(used.Microseconds())/float64(n))
	}
	if m1, b1, ok := memStats(t.vars); ok && memOK && r.all > 0 {
		res.add(key+".allocs", t.name, round, math.Round(float64(m1-m0)/float64(r.all)))
		res.add(key+".kb", t.name, round, float64(b1-b0)/float64(r.all)/1024)
	}
	res.addErrors(label, t.name, &r.errs)
	logf("  (%s) %-8s %7.0f streams/s  p50 %.2f  p99 %.2f ms  cpu %.0f µs/stream  %s", key, t.name, rps,
		ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)), float64(used.Microseconds())/math.Max(1, float64(n)), r.errs.String())
}

// (b) unpaced streams at a fixed rate: time to the first event and to [DONE].
func phaseB(cfg *config, res *results, t *target, round int) {
	r := openLoop(t.addr, t.stream, cfg.streamRate, cfg.workers, openWarmup(cfg), cfg.duration, true, false)
	res.add("b.ttfb50", t.name, round, ms(percentile(r.ttfb, 50)))
	res.add("b.ttfb99", t.name, round, ms(percentile(r.ttfb, 99)))
	res.add("b.total50", t.name, round, ms(percentile(r.total, 50)))
	res.add("b.total99", t.name, round, ms(percentile(r.total, 99)))
	res.addErrors("(b) streams", t.name, &r.errs)
	res.addLate("(b) streams", t.name, r)
	logf("  (b) %-8s %d streams  first event p50 %.2f p99 %.2f ms  [DONE] p50 %.2f p99 %.2f ms  %s", t.name, len(r.ttfb),
		ms(percentile(r.ttfb, 50)), ms(percentile(r.ttfb, 99)), ms(percentile(r.total, 50)), ms(percentile(r.total, 99)), r.errs.String())
}

// (b) paced streams: per-event delay from the fake's write to the client's
// read, and the gaps between events.
func phaseBEvents(cfg *config, res *results, t *target, round int) {
	r := openLoop(t.addr, t.paced, cfg.pacedRate, cfg.workers, openWarmup(cfg), cfg.duration, true, true)
	d, g := r.events.delays, r.events.gaps
	res.add("e.delay50", t.name, round, ms(percentile(d, 50)))
	res.add("e.delay99", t.name, round, ms(percentile(d, 99)))
	res.add("e.delaymax", t.name, round, ms(percentile(d, 100)))
	res.add("e.gap99", t.name, round, ms(percentile(g, 99)))
	res.add("e.gapmax", t.name, round, ms(percentile(g, 100)))
	if len(d) > 0 {
		over := 0
		for _, x := range d {
			if x > time.Millisecond {
				over++
			}
		}
		res.add("e.over1", t.name, round, 100*float64(over)/float64(len(d)))
	}
	res.addErrors("(b) paced streams", t.name, &r.errs)
	res.addLate("(b) paced streams", t.name, r)
	logf("  (b) %-8s %d paced events  delay p50 %.3f p99 %.3f max %.3f ms  gap p99 %.2f max %.2f ms  %s", t.name, len(d),
		ms(percentile(d, 50)), ms(percentile(d, 99)), ms(percentile(d, 100)), ms(percentile(g, 99)), ms(percentile(g, 100)), r.errs.String())
}

// (c) non-streamed requests at a fixed rate, below saturation.
func phaseC(cfg *config, res *results, t *target, round int) {
	c0 := cpuTime(t.proc.pid())
	r := openLoop(t.addr, t.plain, cfg.rate, cfg.workers, openWarmup(cfg), cfg.duration, false, false)
	used := cpuTime(t.proc.pid()) - c0
	res.add("c.p50", t.name, round, ms(percentile(r.lat, 50)))
	res.add("c.p99", t.name, round, ms(percentile(r.lat, 99)))
	if r.sent > 0 {
		res.add("c.cpu", t.name, round, float64(used.Microseconds())/float64(r.sent))
	}
	res.addErrors("(c)", t.name, &r.errs)
	res.addLate("(c)", t.name, r)
	logf("  (c) %-8s %d requests at %.0f/s  p50 %.3f  p99 %.3f ms  %s", t.name, len(r.lat), cfg.rate,
		ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)), r.errs.String())
}

// (d) peak RSS of the proxy while cfg.streams slow streams are open.
func phaseD(cfg *config, res *results, t *target, round int) {
	pid := t.proc.pid()
	base := memKB(pid)
	hwmOK := resetHWM(pid)
	var peak memInfo
	limit := cfg.ramp + cfg.slowInterval*time.Duration(cfg.slowEvents) + 30*time.Second
	r := slowStreams(t.addr, t.slow, cfg.streams, cfg.ramp, limit, func() {
		m := memKB(pid)
		peak.rss, peak.anon, peak.file = max(peak.rss, m.rss), max(peak.anon, m.anon), max(peak.file, m.file)
	})
	if m := memKB(pid); hwmOK && m.hwm > peak.rss {
		peak.rss = m.hwm
	}
	mb := func(kb int64) float64 { return float64(kb) * 1024 / 1e6 }
	res.add("d.open", t.name, round, float64(r.maxOpen))
	res.add("d.base", t.name, round, mb(base.rss))
	res.add("d.peak", t.name, round, mb(peak.rss))
	res.add("d.growth", t.name, round, mb(peak.rss-base.rss))
	res.add("d.anon", t.name, round, mb(peak.anon))
	res.add("d.file", t.name, round, mb(peak.file))
	if t.store != "" {
		if st, err := os.Stat(t.store); err == nil {
			res.add("d.store", t.name, round, float64(st.Size())/1e6)
		}
	}
	res.addErrors("(d) slow streams", t.name, &r.errs)
	logf("  (d) %-8s %d/%d streams open at once (for %.1fs), %d completed  RSS %.1f MB before, peak %.1f MB (anonymous %.1f, files %.1f)  %s",
		t.name, r.maxOpen, cfg.streams, r.allOpen.Seconds(), r.ok, mb(base.rss), mb(peak.rss), mb(peak.anon), mb(peak.file), r.errs.String())
}

// --- errors and late sends, noted under the table ---

func (r *results) addErrors(phase, target string, e *errCounter) {
	if s := e.String(); s != "" {
		r.notes = append(r.notes, fmt.Sprintf("%s %s: %s", phase, targetLabels[target], s))
	}
}

func (r *results) addLate(phase, target string, o *openResult) {
	if o.sent > 0 && float64(o.late)/float64(o.sent) > 0.01 {
		r.notes = append(r.notes, fmt.Sprintf("%s %s: the generator was behind schedule for %d of %d sends (latency counted from the due time)",
			phase, targetLabels[target], o.late, o.sent))
	}
}

func (r *results) errorLines() []string { return r.notes }

func (r *results) raw() map[string]map[string][]*float64 {
	out := map[string]map[string][]*float64{}
	for m, byT := range r.v {
		out[m] = map[string][]*float64{}
		for t, vs := range byT {
			for _, v := range vs {
				if math.IsNaN(v) {
					out[m][t] = append(out[m][t], nil)
				} else {
					v := v
					out[m][t] = append(out[m][t], &v)
				}
			}
		}
	}
	return out
}

// --- setup ---

func setupAccount(admin string) (string, error) {
	code, b, err := adminCall("POST", admin+"/accounts", `{"id":"bench","name":"Benchmark"}`)
	if err != nil || code != http.StatusCreated {
		return "", fmt.Errorf("POST /accounts: %d %s %v", code, b, err)
	}
	code, b, err = adminCall("POST", admin+"/accounts/bench/keys", `{"name":"bench"}`)
	if err != nil || code != http.StatusCreated {
		return "", fmt.Errorf("POST /accounts/bench/keys: %d %s %v", code, b, err)
	}
	var k struct{ Key string }
	if err := json.Unmarshal(b, &k); err != nil || k.Key == "" {
		return "", fmt.Errorf("no key in the answer: %s", b)
	}
	code, b, err = adminCall("PUT", admin+"/accounts/bench/byok/openai", `{"api_key":"sk-proj-benchBYOKkey0123456789abcdefABCDEF"}`)
	if err != nil || code != http.StatusOK {
		return "", fmt.Errorf("PUT /accounts/bench/byok/openai: %d %s %v", code, b, err)
	}
	code, b, err = adminCall("PUT", admin+"/accounts/bench/byok/anthropic", `{"api_key":"sk-ant-api03-benchBYOKkey0123456789abcdefABCDEF0123456789abcdefABCDEF0123456789abcdefABCDEF0123456789AA"}`)
	if err != nil || code != http.StatusOK {
		return "", fmt.Errorf("PUT /accounts/bench/byok/anthropic: %d %s %v", code, b, err)
	}
	return k.Key, nil
}

// setupLimits puts a budget and a rate limit on the bench account that
// the bench never reaches, so that every request goes through admission
// and settlement.
func setupLimits(admin string) error {
	for path, body := range map[string]string{
		"/accounts/bench/budgets/bench-month": `{"scope":"account","amount_usd":"1000000","window":"month","payer":"all"}`,
		"/accounts/bench/rate_limits/bench":   `{"scope":"account","rpm":10000000,"tpm":100000000000,"concurrent":100000}`,
	} {
		if code, b, err := adminCall("PUT", admin+path, body); err != nil || code != http.StatusOK {
			return fmt.Errorf("PUT %s: %d %s %v", path, code, b, err)
		}
	}
	return nil
}

// sanityCheck sends one request of each kind to each path before measuring.
func sanityCheck(targets map[string]*target) error {
	for _, name := range []string{tDirect, tCaddy, tGateway} {
		t := targets[name]
		c := &client{addr: t.addr, deadline: time.Now().Add(20 * time.Second)}
		if err := c.plain(t.plain); err != nil {
			return fmt.Errorf("%s, non-streamed: %v", name, err)
		}
		for kind, req := range map[string][]byte{"streamed": t.stream, "paced": t.paced} {
			st, err := c.stream(req, time.Now(), nil, nil)
			if err != nil {
				return fmt.Errorf("%s, %s: %v", name, kind, err)
			}
			if st.events != streamEvents+2 {
				return fmt.Errorf("%s, %s: %d events, want %d", name, kind, st.events, streamEvents+2)
			}
		}
		c.close()
	}
	// The gateway must serve with the BYOK key, not fail over to anything.
	req, _ := http.NewRequest("POST", "http://"+targets[tGateway].addr+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[]}`))
	_, auth, _ := strings.Cut(string(targets[tGateway].plain), "Authorization: ")
	auth, _, _ = strings.Cut(auth, "\r\n")
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Agent-Router-Credential") != "byok" {
		return fmt.Errorf("gateway answered %d with credential %q, want 200 byok", resp.StatusCode, resp.Header.Get("X-Agent-Router-Credential"))
	}
	return nil
}

// repoRoot finds the module root from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/agentrouter/caddy-agentrouter")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the caddy-agentrouter repository (go run ./bench)")
		}
		dir = parent
	}
}

// ensureCaddy returns the Caddy binary to run, building ./caddy with
// ./xcaddy.sh when it is missing or older than the sources that go into it.
func ensureCaddy(root, explicit string) (string, error) {
	bin := explicit
	if bin == "" {
		bin = filepath.Join(root, "caddy")
		why := ""
		st, err := os.Stat(bin)
		if err != nil {
			why = "missing"
		} else if p, t := newestSource(root); t.After(st.ModTime()) {
			why = "older than " + p
		}
		if why != "" {
			logf("building ./caddy with ./xcaddy.sh (./caddy is %s)", why)
			cmd := exec.Command(filepath.Join(root, "xcaddy.sh"))
			cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return "", fmt.Errorf("./xcaddy.sh: %v (or pass -caddy with a built binary)", err)
			}
		}
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return "", err
	}
	out, err := exec.Command(bin, "list-modules").Output()
	if err != nil {
		return "", fmt.Errorf("%s list-modules: %v", bin, err)
	}
	if !bytes.Contains(out, []byte("http.handlers.agent_router")) {
		return "", fmt.Errorf("%s has no agent_router module", bin)
	}
	return bin, nil
}

// newestSource is the newest file that goes into the binary: non-test Go
// files of the module outside bench/, integration/, cmd/ and examples/,
// go.mod, go.sum and xcaddy.sh.
func newestSource(root string) (string, time.Time) {
	var newest time.Time
	var path string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bench", "integration", "cmd", "examples", "testdata", "providertest", "node_modules":
				if p != root {
					return filepath.SkipDir
				}
			}
			return nil
		}
		n := d.Name()
		if (strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go")) || n == "go.mod" || n == "go.sum" || n == "xcaddy.sh" {
			if info, err := d.Info(); err == nil && info.ModTime().After(newest) {
				newest, path = info.ModTime(), p
			}
		}
		return nil
	})
	rel, _ := filepath.Rel(root, path)
	return rel, newest
}

// --- the header: when, where, what ---

func header(cfg *config, caddyBin, root string, started, finished time.Time, loadBefore, loadAfter string) string {
	var b strings.Builder
	b.WriteString("## Agent Router load benchmark\n\n")
	fmt.Fprintf(&b, "- date: %s (took %s)\n", started.UTC().Format("Mon Jan _2 15:04:05 UTC 2006"), finished.Sub(started).Round(time.Second))
	fmt.Fprintf(&b, "- machine: %d × %s, %s RAM, Linux %s; load average %s before, %s after\n",
		runtime.NumCPU(), cpuModel(), memTotal(), osRelease(), loadBefore, loadAfter)
	caddyInfo := "unknown"
	if bi, err := buildinfo.ReadFile(caddyBin); err == nil {
		cv := "?"
		for _, d := range bi.Deps {
			if d.Path == "github.com/caddyserver/caddy/v2" {
				cv = d.Version
			}
		}
		caddyInfo = fmt.Sprintf("Caddy %s built with %s", cv, bi.GoVersion)
	}
	commit := "unknown"
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(&b, "- software: %s (the same binary for plain Caddy and the gateway); bench built with %s; source at commit %s plus the working tree\n",
		caddyInfo, runtime.Version(), commit)
	fmt.Fprintf(&b, "- method: %d round(s), each running every phase against direct, plain Caddy and the gateway back to back (order rotating); %s measured per phase, target and round; load generator, fake upstream and proxies share the same cores\n",
		cfg.rounds, cfg.duration)
	fmt.Fprintf(&b, "- (a) non-streamed, closed loop, %d connections, %s warm-up · (b) streams of 20 events + finish + [DONE]: unpaced at %.0f/s, and paced %s apart at %.0f/s · (c) non-streamed, open loop at %.0f req/s · (d) %s slow streams (an event every %s, held %s), opened over %s\n",
		cfg.conns, cfg.warmup, cfg.streamRate, cfg.pace, cfg.pacedRate, cfg.rate, thousands(int64(cfg.streams)), cfg.slowInterval,
		cfg.slowInterval*time.Duration(cfg.slowEvents-1), cfg.ramp)
	fmt.Fprintf(&b, "- state: %s\n", prefillNote)
	if cfg.limits {
		b.WriteString("- limits: the bench account has a budget (payer all, a month) and a rate limit (rpm, tpm, concurrent) it never reaches: every gateway request is admitted and settled (-limits)\n")
	}
	return b.String()
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			return fmt.Sprintf("%.1f GiB", float64(kbField(l))/(1<<20))
		}
	}
	return "?"
}

func osRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
