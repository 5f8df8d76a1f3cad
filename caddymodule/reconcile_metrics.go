package caddymodule

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
)

// Reconciliation metrics (in Caddy's registry, beside the gateway's):
//
//	caddy_agent_router_reconcile_runs_total{provider,outcome}               outcome: ok or the failure's reason
//	caddy_agent_router_reconcile_last_run_timestamp_seconds{provider,outcome}  when a run last ended so
//	caddy_agent_router_reconcile_out_of_band_keys{provider}                 keys with a standing out-of-band alert
//	caddy_agent_router_reconcile_leader                                     1 on the instance that runs the schedule
//
// Labels are bounded (two providers, a handful of outcomes); never an
// account or a key.
var reconcileMetrics = struct {
	once      sync.Once
	runs      *prometheus.CounterVec
	lastRun   *prometheus.GaugeVec
	leader    prometheus.Gauge
	outOfBand outOfBandCollector
}{}

func initReconcileMetrics() {
	reconcileMetrics.once.Do(func() {
		opts := func(name, help string) prometheus.Opts {
			return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
		}
		reconcileMetrics.runs = prometheus.NewCounterVec(prometheus.CounterOpts(opts("reconcile_runs_total",
			"Reconciliation runs of one scope (an account's or the platform's usage reader at a provider), by provider and outcome (ok, or why the ledger was left as it was).")),
			[]string{"provider", "outcome"})
		reconcileMetrics.lastRun = prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("reconcile_last_run_timestamp_seconds",
			"When a reconciliation run of the provider last ended with this outcome (unix seconds).")), []string{"provider", "outcome"})
		reconcileMetrics.leader = prometheus.NewGauge(prometheus.GaugeOpts(opts("reconcile_leader",
			"1 on the instance that runs the reconciliation schedule (one per fleet), 0 elsewhere.")))
		reconcileMetrics.outOfBand = outOfBandCollector{desc: prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, metricsSubsystem, "reconcile_out_of_band_keys"),
			"Keys with a standing out-of-band alert (usage the provider recorded that the gateway never sent), by provider, from each scope's last completed run.",
			[]string{"provider"}, nil)}
	})
}

// registerReconcileMetrics adds the collectors to this config's registry.
func registerReconcileMetrics(ctx caddy.Context) error {
	initReconcileMetrics()
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{reconcileMetrics.runs, reconcileMetrics.lastRun, reconcileMetrics.leader, &reconcileMetrics.outOfBand} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// observeRun counts a run.
func observeRun(r reconcile.Result) {
	initReconcileMetrics()
	outcome := "ok"
	if !r.OK {
		outcome = string(r.Reason)
		if outcome == "" {
			outcome = "error"
		}
	}
	reconcileMetrics.runs.WithLabelValues(r.Scope.Provider, outcome).Inc()
	reconcileMetrics.lastRun.WithLabelValues(r.Scope.Provider, outcome).Set(float64(time.Now().Unix()))
	reconcileMetrics.outOfBand.forget()
}

// outOfBandCollector counts the standing alerts at scrape time, from the
// store (so every instance of a fleet reports the same), read at most
// every 30 seconds.
type outOfBandCollector struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	at     time.Time
	counts map[string]int
}

func (c *outOfBandCollector) forget() {
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

func (c *outOfBandCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *outOfBandCollector) Collect(ch chan<- prometheus.Metric) {
	a := active.Load()
	if a == nil || a.store == nil {
		return
	}
	c.mu.Lock()
	if time.Since(c.at) > 30*time.Second {
		c.counts, c.at = map[string]int{}, time.Now()
		runs, err := a.store.AllReconcileRuns()
		if err == nil {
			for _, r := range runs {
				var rec ops.RunRecord
				if json.Unmarshal(r.Result, &rec) == nil && rec.LastOK != nil {
					c.counts[r.Provider] += len(rec.LastOK.Alerts)
				}
			}
		}
	}
	counts := c.counts
	c.mu.Unlock()
	for _, p := range ops.ReaderProviders {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[p]), p)
	}
}
