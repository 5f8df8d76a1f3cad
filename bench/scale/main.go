// Command scale loads Agent Router to issue 24's size through a real Caddy
// and measures what an operator and a client see: 100,000 accounts, each
// with 5 API keys and an OpenAI BYOK key, created through the admin API by
// bulk calls (POST /agent_router/tenants), single node (bbolt) and as a
// fleet of three Caddy processes on one etcd. The upstream is a fake
// OpenAI in this process that echoes the fingerprint of the key it
// received, so every measured request is checked to be served by its
// account's own key.
//
//	go run ./bench/scale                      # both modes at full size (~15 min, ~6 GB)
//	go run ./bench/scale -mode single         # single node only
//	go run ./bench/scale -accounts 10000      # smaller
//
// For each mode it measures an almost empty store first (-seed accounts),
// then loads the rest and measures again: admin write latency (API key
// creation, durable), admin writes a second, a BYOK rotation's PUT and
// when the data plane serves the new key (on the writing instance, and on
// every instance of a fleet), the hot path's latency (one connection) and
// throughput, the start-up time of a restarted instance until it serves a
// loaded account, and anonymous memory (RssAnon) of each Caddy. It prints
// one markdown table per mode (progress on stderr) and writes them to
// bench/out/scale-<time>.md. See bench/README.md, "Scale".
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type config struct {
	caddy, etcd    string
	modes          string
	accounts       int
	fleetAccounts  int
	seed           int
	keys           int
	perCall        int
	loaders        int
	writes         int
	writeWorkers   int
	writeTime      time.Duration
	rotations      int
	requests       int
	conns          int
	throughputTime time.Duration
	out            string
	keep           bool
}

func main() {
	var c config
	flag.StringVar(&c.caddy, "caddy", "", "Caddy binary with Agent Router (default: go build ./cmd/caddy into the temp dir)")
	flag.StringVar(&c.etcd, "etcd", "", "etcd server binary for fleet mode (default: ./etcd if present, else go build go.etcd.io/etcd/server/v3)")
	flag.StringVar(&c.modes, "mode", "single,fleet", "single (one Caddy, bbolt) and/or fleet (three Caddy processes on one etcd)")
	flag.IntVar(&c.accounts, "accounts", 100000, "accounts to load (each with -keys API keys and an openai BYOK key)")
	flag.IntVar(&c.fleetAccounts, "fleet-accounts", 0, "accounts in fleet mode (default: -accounts)")
	flag.IntVar(&c.seed, "seed", 10, "accounts of the almost empty store measured first")
	flag.IntVar(&c.keys, "keys", 5, "API keys per account")
	flag.IntVar(&c.perCall, "per-call", 1400, "accounts per bulk call (1,400 x 7 records = 9,800, under the 10,000 bound)")
	flag.IntVar(&c.loaders, "loaders", 2, "bulk calls at a time")
	flag.IntVar(&c.writes, "writes", 1000, "API keys created one after the other (admin write latency)")
	flag.IntVar(&c.writeWorkers, "write-workers", 8, "concurrent writers for the writes-a-second measure")
	flag.DurationVar(&c.writeTime, "write-time", 3*time.Second, "how long the writes-a-second measure runs")
	flag.IntVar(&c.rotations, "rotations", 300, "BYOK rotations watched on the data plane")
	flag.IntVar(&c.requests, "requests", 2000, "hot-path requests, one after the other, per instance")
	flag.IntVar(&c.conns, "conns", 16, "connections of the throughput measure")
	flag.DurationVar(&c.throughputTime, "throughput-time", 3*time.Second, "how long the throughput measure runs")
	flag.StringVar(&c.out, "out", "bench/out", "where the table is written")
	flag.BoolVar(&c.keep, "keep", false, "keep the temp dir (stores, Caddyfiles, logs) and print its path")
	flag.Parse()
	if c.fleetAccounts == 0 {
		c.fleetAccounts = c.accounts
	}
	os.Exit(run(c))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func run(c config) int {
	dir, err := os.MkdirTemp("", "ar-scale-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	if c.keep {
		defer logf("kept %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	defer stopChildren()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		stopChildren()
		if !c.keep {
			os.RemoveAll(dir)
		}
		os.Exit(130)
	}()
	if c.caddy == "" {
		logf("building Caddy (./cmd/caddy)")
		if c.caddy, err = build(dir, "caddy", "./cmd/caddy"); err != nil {
			logf("%v", err)
			return 1
		}
	}
	fake, err := startFake()
	if err != nil {
		logf("%v", err)
		return 1
	}
	started := time.Now()
	header := fmt.Sprintf("- date: %s; %d CPUs; load average before: %s\n- command: `go run ./bench/scale %s`\n",
		started.UTC().Format(time.RFC1123), runtime.NumCPU(), loadAvg(), strings.Join(os.Args[1:], " "))
	var report strings.Builder
	for _, mode := range strings.Split(c.modes, ",") {
		var res [2]*result
		switch mode {
		case "single":
			res, err = scenario(c, dir, fake, "single", 1, c.accounts)
		case "fleet":
			if c.etcd == "" {
				if _, e := os.Stat("./etcd"); e == nil {
					c.etcd = "./etcd"
				} else if c.etcd, err = build(dir, "etcd", "go.etcd.io/etcd/server/v3"); err != nil {
					logf("%v", err)
					return 1
				}
			}
			res, err = scenario(c, dir, fake, "fleet", 3, c.fleetAccounts)
		default:
			logf("unknown mode %q: single or fleet", mode)
			return 2
		}
		if err != nil {
			logf("%s: %v", mode, err)
			return 1
		}
		report.WriteString(table(c, mode, res))
	}
	out := header + fmt.Sprintf("- took %s; load average after: %s\n", time.Since(started).Round(time.Second), loadAvg()) + report.String()
	fmt.Print(out)
	if err := os.MkdirAll(c.out, 0o755); err == nil {
		path := filepath.Join(c.out, "scale-"+started.Format("20060102-150405")+".md")
		if os.WriteFile(path, []byte(out), 0o644) == nil {
			logf("wrote %s", path)
		}
	}
	return 0
}
