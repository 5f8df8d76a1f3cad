package caddymodule

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
)

// ReconcileConfig sets up reconciliation: every Interval, on one instance
// of a fleet (an etcd lease elects it; single-node, the one instance),
// the gateway's own counts of what it sent with each key are checked
// against the providers' own usage and cost records of the same keys,
// read with the usage-reader (admin) keys accounts register (admin API:
// /agent_router/accounts/{id}/usage_readers/{provider}; console: the
// BYOK page). The ledger is read at
// /agent_router/accounts/{id}/reconciliation and on the console's
// Monitoring → Reconciliation page. Nothing runs for an account without
// a usage reader.
//
// Admin keys go only to AdminURLs, never following a redirect, over a
// client whose dialer applies the BYOK egress policy (byok_allow_hosts,
// byok_allow_http): public addresses over https unless allowed.
type ReconcileConfig struct {
	// Disabled turns reconciliation off: no scheduled runs, and runs on
	// demand and usage-reader tests answer 503. Usage readers can still
	// be registered and removed.
	Disabled bool `json:"disabled,omitempty"`
	// Interval between scheduled runs. Default: 1h.
	Interval caddy.Duration `json:"interval,omitempty"`
	// Days is the window of a scheduled run, in UTC days ending today (a
	// run on demand may ask for up to 31). Default: 3.
	Days int `json:"days,omitempty"`
	// Lateness is how long after an hour ends the providers' figures for
	// it may still change: until then a difference is "pending". Default:
	// 24h.
	Lateness caddy.Duration `json:"lateness,omitempty"`
	// OutOfBandTokens is how many tokens a provider may record on a key in
	// an hour beyond what the gateway sent with it before the hour is
	// out-of-band use. Default: 0 (tokens must match exactly).
	OutOfBandTokens int64 `json:"out_of_band_tokens,omitempty"`
	// CostTolerancePPM is how far a day's cost may differ and still
	// match, in parts per million. Default: 10000 (1 %).
	CostTolerancePPM int64 `json:"cost_tolerance_ppm,omitempty"`
	// AdminURLs are the providers' admin API roots, by provider. Default:
	// https://api.openai.com and https://api.anthropic.com.
	AdminURLs map[string]string `json:"admin_urls,omitempty"`
	// ElectionTTL is the lease of the fleet's election: how long a dead
	// leader holds the schedule before another instance takes it over.
	// Default: 15s.
	ElectionTTL caddy.Duration `json:"election_ttl,omitempty"`
	// Timeout bounds one admin request. Default: 60s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

const defaultReconcileInterval = time.Hour

// reconciling builds the app's reconciliation from the config: nil when
// it is off.
func (a *App) provisionReconcile(repl *caddy.Replacer) error {
	rc := a.Reconcile
	if rc == nil {
		rc = &ReconcileConfig{}
	}
	if rc.Disabled {
		a.reconciling = nil
		return nil
	}
	if rc.Days < 0 || rc.Days > reconcile.MaxDays {
		return fmt.Errorf("reconcile days: 1 to %d, got %d", reconcile.MaxDays, rc.Days)
	}
	urls := map[string]string{}
	for p, u := range rc.AdminURLs {
		if err := ops.CheckReaderProvider(p); err != nil {
			return fmt.Errorf("reconcile admin_url: %v", err)
		}
		u = strings.TrimRight(repl.ReplaceAll(u, ""), "/")
		if err := a.egress.CheckURL(u); err != nil {
			return fmt.Errorf("reconcile admin_url %s: %v", p, err)
		}
		urls[p] = u
	}
	timeout := time.Duration(rc.Timeout)
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	// The admin client dials through the egress policy and never through
	// an environment proxy (which would resolve names where the policy
	// cannot see them); reconcile's readers refuse redirects.
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{
		Proxy: nil, DialContext: a.egress.Dialer(dialer), MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: timeout, ForceAttemptHTTP2: true,
	}}
	logger := a.logger.Named("reconcile")
	a.reconciling = &ops.Reconciling{
		NewReader: func(provider, key string) (reconcile.Reader, error) {
			o := reconcile.Options{HTTPClient: client, BaseURL: urls[provider]}
			if provider == "anthropic" {
				return reconcile.NewAnthropic(key, o)
			}
			return reconcile.NewOpenAI(key, o)
		},
		Platform: a.platformCredentials,
		Tolerance: reconcile.Tolerance{Lateness: time.Duration(rc.Lateness), OutOfBandTokens: rc.OutOfBandTokens,
			CostPPM: rc.CostTolerancePPM},
		Days:     rc.Days,
		OnResult: func(r reconcile.Result) { reportRun(logger, r) },
	}
	a.reconcileEvery = time.Duration(rc.Interval)
	if a.reconcileEvery <= 0 {
		a.reconcileEvery = defaultReconcileInterval
	}
	return nil
}

// platformCredentials are the platform keys the running handlers hold for
// provider, by fingerprint (the reconciliation of the platform's own
// contract).
func (a *App) platformCredentials(provider string) []reconcile.Credential {
	a.handlers.mu.Lock()
	defer a.handlers.mu.Unlock()
	seen := map[string]bool{}
	var out []reconcile.Credential
	for h := range a.handlers.m {
		if h.gw == nil {
			continue
		}
		if fp, masked := h.gw.PlatformKeyID(provider); fp != "" && !seen[fp] {
			seen[fp] = true
			out = append(out, reconcile.Credential{Fingerprint: fp, Masked: masked})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	return out
}

// reportRun writes a run's log lines and metrics: one line per run, and a
// warning per out-of-band alert (never a key: fingerprints and the
// provider's key ids only).
func reportRun(logger *zap.Logger, r reconcile.Result) {
	observeRun(r)
	scope := []zap.Field{zap.String("account", r.Scope.Account), zap.String("provider", r.Scope.Provider),
		zap.Time("from", r.Window.From), zap.Time("to", r.Window.To)}
	if !r.OK {
		logger.Warn("reconciliation failed; the ledger is unchanged", append(scope, zap.String("reason", string(r.Reason)),
			zap.String("error", r.Error))...)
		return
	}
	logger.Info("reconciled", append(scope, zap.Int("rows", r.Rows), zap.Any("counts", r.Counts),
		zap.Float64("duration_ms", r.DurationMS))...)
	for _, al := range r.Alerts {
		logger.Warn("out-of-band use of a key: the provider recorded usage the gateway never sent",
			zap.String("account", al.Account), zap.String("provider", al.Provider),
			zap.String("credential_fingerprint", al.Credential), zap.String("provider_key_id", al.KeyID),
			zap.Time("first_hour", al.First), zap.Time("last_hour", al.Last), zap.Int("hours", al.Hours),
			zap.Int64("excess_tokens", al.ExcessTokens), zap.Int64("excess_requests", al.ExcessRequests))
	}
}

// schedules runs the reconciliation schedule once per open store, across
// config reloads (kept in step with the stores pool).
var schedules = caddy.NewUsagePool()

type runningSchedule struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (r runningSchedule) Destruct() error {
	r.cancel()
	<-r.done
	return nil
}

// startReconcile starts the schedule of the app's store (once per store:
// the pool counts the configs that share it).
func (a *App) startReconcile() error {
	_, _, err := schedules.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		ctx, cancel := context.WithCancel(context.Background())
		s := a.store
		sc := &ops.Schedule{Store: s, Current: currentSchedule, Leading: setLeading}
		if a.Reconcile != nil && a.Reconcile.ElectionTTL > 0 {
			sc.TTL = time.Duration(a.Reconcile.ElectionTTL)
		}
		done := make(chan struct{})
		go func() { defer close(done); sc.Run(ctx) }()
		return runningSchedule{cancel, done}, nil
	})
	return err
}

// stopReconcile releases this config's hold on the schedule (the last
// config stops it, before the store closes).
func (a *App) stopReconcile() {
	if a.poolKey != "" {
		schedules.Delete(a.poolKey)
	}
}

// currentSchedule is the running app's reconciliation and interval; nil
// operations while none runs or it is off.
func currentSchedule() (*ops.Ops, time.Duration) {
	a := active.Load()
	if a == nil || a.store == nil || a.reconciling == nil {
		return nil, defaultReconcileInterval
	}
	return &ops.Ops{Store: a.store, Reconcile: a.reconciling}, a.reconcileEvery
}

// activeReconciling is the running app's reconciliation, for the admin
// API (nil while none runs or it is off).
func activeReconciling() *ops.Reconciling {
	if a := active.Load(); a != nil {
		return a.reconciling
	}
	return nil
}

// unmarshalReconcile reads the global option's reconcile block:
//
//	reconcile off
//	reconcile {
//		interval           <duration>     # default 1h
//		days               <n>            # window of a scheduled run, 1 to 31; default 3
//		lateness           <duration>     # provider data final after; default 24h
//		out_of_band_tokens <n>            # default 0
//		cost_tolerance_ppm <n>            # default 10000 (1 %)
//		admin_url          <provider> <url>   # openai, anthropic
//		election_ttl       <duration>     # default 15s
//		timeout            <duration>     # one admin request; default 60s
//	}
func unmarshalReconcile(d *caddyfile.Dispenser) (*ReconcileConfig, error) {
	rc := &ReconcileConfig{}
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return nil, d.Err("reconcile: want 'reconcile off' or a block")
		}
		rc.Disabled = true
		return rc, nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		switch opt {
		case "admin_url":
			if len(args) != 2 {
				return nil, d.Err("reconcile admin_url: want 'admin_url <provider> <url>'")
			}
			if err := ops.CheckReaderProvider(args[0]); err != nil {
				return nil, d.Errf("reconcile admin_url: %v", err)
			}
			if rc.AdminURLs == nil {
				rc.AdminURLs = map[string]string{}
			}
			rc.AdminURLs[args[0]] = args[1]
			continue
		}
		if len(args) != 1 {
			return nil, d.ArgErr()
		}
		v := args[0]
		switch opt {
		case "interval", "lateness", "election_ttl", "timeout":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return nil, d.Errf("reconcile %s: invalid duration %q", opt, v)
			}
			*map[string]*caddy.Duration{"interval": &rc.Interval, "lateness": &rc.Lateness,
				"election_ttl": &rc.ElectionTTL, "timeout": &rc.Timeout}[opt] = caddy.Duration(dur)
		case "days":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > reconcile.MaxDays {
				return nil, d.Errf("reconcile days: a number from 1 to %d, got %q", reconcile.MaxDays, v)
			}
			rc.Days = n
		case "out_of_band_tokens", "cost_tolerance_ppm":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return nil, d.Errf("reconcile %s: a number of 0 or more, got %q", opt, v)
			}
			if opt == "out_of_band_tokens" {
				rc.OutOfBandTokens = n
			} else {
				rc.CostTolerancePPM = n
			}
		default:
			return nil, d.Errf("reconcile: unrecognized option %s", opt)
		}
	}
	return rc, nil
}

// setLeading tells the leader metric whether this instance runs a
// schedule (counted: while a store is replaced by another, the old
// schedule stops after the new one started).
func setLeading(on bool) {
	initReconcileMetrics()
	if on {
		reconcileMetrics.leader.Inc()
	} else {
		reconcileMetrics.leader.Dec()
	}
}
