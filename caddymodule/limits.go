package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// LimitsConfig tunes budgets and rate limits (limits/WIRING.md §6) and
// sets the operator's defaults per API key and per account. The budgets,
// rate limits, spillover and caps of each account are not config: they
// change at run time, through the admin API and the console.
//
// One limiter runs per process, shared by reloads beside the store, so a
// reload keeps its counters and only installs the new defaults. The
// tuning fields are read when it starts: changing them needs a restart
// (a reload that changes them is refused and says so). Single node, the
// counters persist in the store's bbolt file (a restart keeps the
// current windows' spend); in fleet mode they live in etcd under
// /agentrouter/limits/, each instance admitting against slices it leases.
type LimitsConfig struct {
	// ReserveOutputCap bounds the output tokens a request reserves
	// against budgets and tokens per minute (a coding agent's 32k
	// max_tokens must not pin a budget); the settlement charges what was
	// used. Default 4096; -1: no cap.
	ReserveOutputCap int64 `json:"reserve_output_cap,omitempty"`
	// DefaultMaxOutput is the output a reservation assumes when neither
	// the request nor the model says. Default 4096.
	DefaultMaxOutput int64 `json:"default_max_output,omitempty"`
	// BytesPerToken estimates input tokens from the body's size.
	// Default 3.
	BytesPerToken int64 `json:"bytes_per_token,omitempty"`
	// Unpriced is what a request on a model the price book does not
	// know counts against a dollar budget: "refuse" (the default: a hard
	// dollar budget refuses it) or a rate in USD per 1M tokens ("15").
	Unpriced string `json:"unpriced,omitempty"`
	// SliceWait is how long, in fleet mode, a request waits for a new
	// slice of a limit when this instance's ran out. Default 250ms.
	SliceWait caddy.Duration `json:"slice_wait,omitempty"`
	// FlushInterval is how often counters are written to the store or
	// etcd. Default 1s.
	FlushInterval caddy.Duration `json:"flush_interval,omitempty"`
	// ReturnAfter is how long an unused slice stays with an instance
	// before it goes back to the fleet. Default 5s.
	ReturnAfter caddy.Duration `json:"return_after,omitempty"`
	// FailOpen admits requests on a hard limit whose slice ran out while
	// etcd is unreachable. Default: they get 429 with Retry-After 1.
	FailOpen bool `json:"fail_open,omitempty"`

	// RateLimits apply to each API key ("each": "key") or each account
	// ("account"): {"each": "key", "rpm": 600, "tpm": 2000000,
	// "concurrent": 20}.
	RateLimits []ops.DefaultRateLimit `json:"rate_limits,omitempty"`
	// Budgets apply to each account or each key: {"each": "account",
	// "amount_usd": "500", "window": "month", "payer": "platform"}.
	Budgets []ops.DefaultBudget `json:"budgets,omitempty"`
}

func (c *LimitsConfig) defaults() *ops.LimitDefaults {
	if c == nil {
		return &ops.LimitDefaults{}
	}
	return &ops.LimitDefaults{RateLimits: c.RateLimits, Budgets: c.Budgets}
}

// limitsConfig is the limiter's configuration from c.
func (c *LimitsConfig) limitsConfig() (limits.Config, error) {
	var cfg limits.Config
	if c == nil {
		return cfg, nil
	}
	if c.ReserveOutputCap < -1 || c.DefaultMaxOutput < 0 || c.BytesPerToken < 0 {
		return cfg, errors.New("limits: reserve_output_cap (or -1), default_max_output and bytes_per_token must not be negative")
	}
	cfg.ReserveOutputCap, cfg.DefaultMaxOutput, cfg.BytesPerToken = c.ReserveOutputCap, c.DefaultMaxOutput, c.BytesPerToken
	switch c.Unpriced {
	case "", "refuse":
	default:
		p, err := pricing.ParsePrice(c.Unpriced)
		if err != nil || p <= 0 {
			return cfg, fmt.Errorf("limits: unpriced is \"refuse\" or a price in USD per 1M tokens, got %q", c.Unpriced)
		}
		cfg.UnpricedRate = p
	}
	for _, d := range []caddy.Duration{c.SliceWait, c.FlushInterval, c.ReturnAfter} {
		if d < 0 {
			return cfg, errors.New("limits: slice_wait, flush_interval and return_after must not be negative")
		}
	}
	cfg.SliceWait, cfg.FlushInterval, cfg.ReturnAfter = time.Duration(c.SliceWait), time.Duration(c.FlushInterval), time.Duration(c.ReturnAfter)
	cfg.FailOpen = c.FailOpen
	return cfg, nil
}

// signature names the tuning a limiter was started with.
func (c *LimitsConfig) signature() string {
	cfg, _ := c.limitsConfig()
	return fmt.Sprintf("%d/%d/%d/%d/%v/%v/%v/%v", cfg.ReserveOutputCap, cfg.DefaultMaxOutput, cfg.BytesPerToken, cfg.UnpricedRate,
		cfg.SliceWait, cfg.FlushInterval, cfg.ReturnAfter, cfg.FailOpen)
}

// limiters keeps one limiter per store (per process), across reloads.
var limiters = caddy.NewUsagePool()

type pooledLimiter struct {
	rt      *ops.LimitsRuntime
	tracker *limits.Tracker
	backend interface{ Close() error } // the etcd backend, or nil
	etcd    *clientv3.Client           // fleet mode: the store's client
	sig     string
	stop    context.CancelFunc
}

// fleetCloseWait bounds how long, in fleet mode, the last config's
// cleanup waits for the limiter's last writes and the lease's revocation.
// When etcd does not answer a quick probe it does not wait at all: those
// writes cannot land (etcd is gone) and would hold a config load or a
// shutdown for up to twice the limiter's operation timeout. The store's
// close then closes the client under them.
const (
	fleetCloseWait  = 5 * time.Second
	fleetCloseProbe = 300 * time.Millisecond
)

func (p pooledLimiter) Destruct() error {
	p.stop()
	done := make(chan error, 1)
	go func() {
		err := p.rt.Limiter().Close()
		if p.backend != nil {
			if cerr := p.backend.Close(); err == nil {
				err = cerr
			}
		}
		done <- err
	}()
	if p.backend == nil {
		return <-done // single node: the last flush goes to the bbolt file before it closes
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetCloseProbe)
	_, err := p.etcd.Get(ctx, limits.DefaultEtcdPrefix, clientv3.WithCountOnly())
	cancel()
	if err == nil {
		select {
		case err := <-done:
			p.etcd.Close()
			return err
		case <-time.After(fleetCloseWait):
			err = errors.New("no answer within " + fleetCloseWait.String())
		}
	}
	p.etcd.Close() // the writes in flight fail; the goroutine ends on its own
	return fmt.Errorf("limits: etcd did not take the limiter's last writes (%v); up to one flush interval of spend on this instance may be missing from the fleet's counters, and its slices return when its lease expires", err)
}

// limitsPrefix is the etcd prefix of the limiter's counters: beside the
// store's prefix, never under it (the store mirrors its whole prefix):
// /agentrouter/limits/ for the default /agentrouter/v1/, else the store's
// prefix with ".limits/" in place of its last "/" (/ar-test/ →
// /ar-test.limits/), so fleets on one etcd under different prefixes keep
// their counters apart.
func limitsPrefix(storePrefix string) string {
	if storePrefix == "" || storePrefix == store.DefaultFleetPrefix {
		return limits.DefaultEtcdPrefix
	}
	return strings.TrimSuffix(storePrefix, "/") + ".limits/"
}

// provisionLimits starts (or joins) the process's limiter over the store.
func (a *App) provisionLimits(etcd *EtcdConfig) error {
	cfg, err := a.Limits.limitsConfig()
	if err != nil {
		return err
	}
	if err := a.Limits.defaults().Check(); err != nil {
		return fmt.Errorf("limits: %v", err)
	}
	registerLimitsMetrics()
	sig := a.Limits.signature()
	st, logger := a.store, a.logger.Named("limits")
	// Events are logged with the running config's logger (a reload may
	// close the writers of the one that started the limiter).
	eventLogger := func() *zap.Logger {
		if cur := active.Load(); cur != nil && cur.logger != nil {
			return cur.logger.Named("limits")
		}
		return logger
	}
	v, _, err := limiters.LoadOrNew(a.poolKey, func() (caddy.Destructor, error) {
		p := pooledLimiter{tracker: limits.NewTracker(nil), sig: sig}
		if etcd != nil {
			cli, err := etcd.client(logger.Named("etcd"))
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			b, err := limits.NewEtcd(ctx, cli, limits.EtcdOptions{Instance: st.InstanceID(), Prefix: limitsPrefix(st.Fleet().Prefix)})
			cancel()
			if err != nil {
				cli.Close()
				return nil, err
			}
			cfg.Backend, p.backend, p.etcd = b, b, cli
		} else {
			cfg.Backend = limits.NewLocal(st.LimitsKV())
		}
		var rt *ops.LimitsRuntime
		cfg.OnEvent = func(e limits.Event) { limitEvent(eventLogger(), rt, e) }
		lim, err := limits.New(cfg)
		if err != nil {
			if p.backend != nil {
				p.backend.Close()
				p.etcd.Close()
			}
			return nil, err
		}
		rt = ops.NewLimitsRuntime(st, lim)
		var ctx context.Context
		ctx, p.stop = context.WithCancel(context.Background())
		go rt.Run(ctx, func(err error) {
			logger.Error("installing budgets and rate limits failed; the previous ones stay", zap.Error(err))
		})
		p.rt = rt
		return p, nil
	})
	if err != nil {
		return fmt.Errorf("limits: %v", err)
	}
	p := v.(pooledLimiter)
	if p.sig != sig {
		limiters.Delete(a.poolKey)
		return errors.New("limits: the limiter's tuning (reserve_output_cap, unpriced, slice_wait, ...) changed; restart Caddy to apply it (the limiter's counters stay across reloads)")
	}
	a.limits, a.providerLimits = p.rt, p.tracker
	return nil
}

// startLimits installs this config's defaults with the stored sets.
func (a *App) startLimits() error {
	if a.limits == nil {
		return nil
	}
	return a.limits.SetDefaults(a.Limits.defaults())
}

func (a *App) cleanupLimits() {
	if a.limits != nil {
		limiters.Delete(a.poolKey)
		a.limits, a.providerLimits = nil, nil
	}
}

// limitingOf is rt as an ops.Limiting (nil stays nil, not a typed nil).
func limitingOf(rt *ops.LimitsRuntime) ops.Limiting {
	if rt == nil {
		return nil
	}
	return rt
}

// activeLimits is the running app's limiter, for the admin API.
func activeLimits() ops.Limiting {
	if a := active.Load(); a != nil && a.limits != nil {
		return a.limits
	}
	return nil
}

// limitEvent logs a threshold event, counts it and keeps it for the
// console's banner. It runs on the limiter's goroutine: cheap, no I/O
// but the log line.
func limitEvent(logger *zap.Logger, rt *ops.LimitsRuntime, e limits.Event) {
	msg := "budget threshold crossed"
	if e.Kind == limits.EventWouldRefuse {
		msg = "shadow budget would refuse"
	}
	logger.Warn(msg, zap.String("limit_id", e.LimitID), zap.String("account", e.Scope.Account), zap.String("scope", string(e.Scope.Kind)),
		zap.Int("percent", e.Percent), zap.String("spent_usd", e.Spent.String()), zap.String("amount_usd", e.Amount.String()),
		zap.Time("window_start", e.WindowStart))
	pct := strconv.Itoa(e.Percent)
	limitsMetrics.alerts.WithLabelValues(e.Kind.String(), pct).Inc()
	if limitsPerAccount.Load() {
		limitsMetrics.accountAlerts.WithLabelValues(e.Scope.Account, e.Kind.String(), pct).Inc()
	}
	if rt != nil {
		rt.Record(e)
	}
}

// limitsPerAccount is set once a handler asks for per-account metrics.
var limitsPerAccount atomic.Bool

// Budget and rate-limit metrics:
//
//	caddy_agent_router_budget_alerts_total{kind,percent}         threshold / would_refuse events
//	caddy_agent_router_account_budget_alerts_total{account,kind,percent}   only with metrics_per_account
//	caddy_agent_router_limits{kind}                              installed limits by kind (budget, rpm, tpm, concurrent, spillover)
//	caddy_agent_router_limits_exhausted{kind}                    of them, those with nothing left in the current window
//	caddy_agent_router_limit_remaining{account,id,kind}          only with metrics_per_account (nano-USD for budgets)
//	caddy_agent_router_limit_events_dropped_total                events the limiter dropped (queue full)
var limitsMetrics = struct {
	alerts, accountAlerts *prometheus.CounterVec
	status                limitsCollector
	dropped               prometheus.CounterFunc
}{}

func registerLimitsMetrics() {
	initLimitsMetrics.Do(func() {
		opts := func(name, help string) prometheus.CounterOpts {
			return prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
		}
		limitsMetrics.alerts = prometheus.NewCounterVec(opts("budget_alerts_total",
			"Budget events: a threshold crossed (kind threshold, percent) or a shadow budget's first would-refuse in a window (kind would_refuse)."), []string{"kind", "percent"})
		limitsMetrics.accountAlerts = prometheus.NewCounterVec(opts("account_budget_alerts_total",
			"Budget events by account (only with metrics_per_account)."), []string{"account", "kind", "percent"})
		name := func(n string) string { return prometheus.BuildFQName(metricsNamespace, metricsSubsystem, n) }
		limitsMetrics.status = limitsCollector{
			count:     prometheus.NewDesc(name("limits"), "Budgets and rate limits installed, by kind.", []string{"kind"}, nil),
			exhausted: prometheus.NewDesc(name("limits_exhausted"), "Installed limits with nothing left in their current window, by kind.", []string{"kind"}, nil),
			remaining: prometheus.NewDesc(name("limit_remaining"), "What a limit has left in its current window (nano-USD for budgets; requests or tokens), by account (only with metrics_per_account).", []string{"account", "id", "kind"}, nil),
		}
		limitsMetrics.dropped = prometheus.NewCounterFunc(opts("limit_events_dropped_total", "Budget events the limiter dropped because its queue was full."), func() float64 {
			if a := active.Load(); a != nil && a.limits != nil {
				return float64(a.limits.Limiter().DroppedEvents())
			}
			return 0
		})
	})
}

var initLimitsMetrics sync.Once

// registerLimitsCollectors adds the collectors to a config's registry.
func registerLimitsCollectors(reg *prometheus.Registry, perAccount bool) error {
	registerLimitsMetrics()
	cs := []prometheus.Collector{limitsMetrics.alerts, &limitsMetrics.status, limitsMetrics.dropped}
	if perAccount {
		limitsPerAccount.Store(true)
		cs = append(cs, limitsMetrics.accountAlerts)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// limitsCollector reads the limiter's Status at scrape time.
type limitsCollector struct {
	count, exhausted, remaining *prometheus.Desc
}

func (c *limitsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.exhausted
	ch <- c.remaining
}

func (c *limitsCollector) Collect(ch chan<- prometheus.Metric) {
	a := active.Load()
	if a == nil || a.limits == nil {
		return
	}
	counts, exhausted := map[string]int{}, map[string]int{}
	perAccount := limitsPerAccount.Load()
	for _, s := range a.limits.Status() {
		kind := s.KindStr
		counts[kind]++
		if s.Remaining <= 0 {
			exhausted[kind]++
		}
		if perAccount {
			ch <- prometheus.MustNewConstMetric(c.remaining, prometheus.GaugeValue, float64(s.Remaining), s.Account, s.ID, kind)
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n), k)
		ch <- prometheus.MustNewConstMetric(c.exhausted, prometheus.GaugeValue, float64(exhausted[k]), k)
	}
}

// unmarshalLimits reads the global option's limits block:
//
//	limits {
//		reserve_output_cap <tokens>|off  # output a reservation assumes at most; default 4096
//		default_max_output <tokens>      # when neither the request nor the model says; default 4096
//		bytes_per_token    <n>           # input estimate from the body size; default 3
//		unpriced           refuse|<usd per 1M tokens>   # default refuse
//		slice_wait         <duration>    # fleet: a request's wait for a new slice; default 250ms
//		flush_interval     <duration>    # default 1s
//		return_after       <duration>    # fleet: an idle slice goes back; default 5s
//		fail_open                        # admit when etcd is gone and a slice ran out
//		rate_limit each_key|each_account [rpm <n>] [tpm <n>] [concurrent <n>]     # repeatable
//		budget     each_account|each_key <usd> day|week|month|rolling <hours> [payer platform|byok|all] [mode hard|soft|shadow] [alerts <pct>...]   # repeatable
//	}
func unmarshalLimits(d *caddyfile.Dispenser) (*LimitsConfig, error) {
	lc := &LimitsConfig{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		switch opt {
		case "fail_open":
			if len(args) != 0 {
				return nil, d.ArgErr()
			}
			lc.FailOpen = true
		case "rate_limit":
			r, err := parseDefaultRate(args)
			if err != nil {
				return nil, d.Errf("limits rate_limit: %v", err)
			}
			lc.RateLimits = append(lc.RateLimits, r)
		case "budget":
			b, err := parseDefaultBudget(args)
			if err != nil {
				return nil, d.Errf("limits budget: %v", err)
			}
			lc.Budgets = append(lc.Budgets, b)
		case "reserve_output_cap", "default_max_output", "bytes_per_token":
			if len(args) != 1 {
				return nil, d.ArgErr()
			}
			var n int64 = -1
			if !(opt == "reserve_output_cap" && args[0] == "off") {
				v, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil || v <= 0 {
					return nil, d.Errf("limits %s: a positive number, got %q", opt, args[0])
				}
				n = v
			}
			*map[string]*int64{"reserve_output_cap": &lc.ReserveOutputCap, "default_max_output": &lc.DefaultMaxOutput, "bytes_per_token": &lc.BytesPerToken}[opt] = n
		case "unpriced":
			if len(args) != 1 {
				return nil, d.ArgErr()
			}
			lc.Unpriced = args[0]
		case "slice_wait", "flush_interval", "return_after":
			if len(args) != 1 {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil || dur <= 0 {
				return nil, d.Errf("limits %s: invalid duration %q", opt, args[0])
			}
			*map[string]*caddy.Duration{"slice_wait": &lc.SliceWait, "flush_interval": &lc.FlushInterval, "return_after": &lc.ReturnAfter}[opt] = caddy.Duration(dur)
		default:
			return nil, d.Errf("limits: unrecognized option %s", opt)
		}
	}
	if _, err := lc.limitsConfig(); err != nil {
		return nil, d.Err(err.Error())
	}
	if err := lc.defaults().Check(); err != nil {
		return nil, d.Errf("limits: %v", err)
	}
	return lc, nil
}

func eachOf(arg string) (string, error) {
	switch arg {
	case "each_key":
		return "key", nil
	case "each_account":
		return "account", nil
	}
	return "", fmt.Errorf("want each_key or each_account, got %q", arg)
}

// parseDefaultRate reads "each_key rpm 600 tpm 2000000 concurrent 20".
func parseDefaultRate(args []string) (ops.DefaultRateLimit, error) {
	var r ops.DefaultRateLimit
	if len(args) < 3 || len(args)%2 == 0 {
		return r, errors.New("want each_key|each_account followed by rpm, tpm or concurrent and a number")
	}
	each, err := eachOf(args[0])
	if err != nil {
		return r, err
	}
	r.Each = each
	for i := 1; i < len(args); i += 2 {
		n, err := strconv.ParseInt(args[i+1], 10, 64)
		if err != nil || n <= 0 {
			return r, fmt.Errorf("%s: a positive number, got %q", args[i], args[i+1])
		}
		switch args[i] {
		case "rpm":
			r.RPM = n
		case "tpm":
			r.TPM = n
		case "concurrent":
			r.Concurrent = n
		default:
			return r, fmt.Errorf("unknown field %q (rpm, tpm, concurrent)", args[i])
		}
	}
	return r, nil
}

// parseDefaultBudget reads "each_account 500 month payer platform mode
// hard alerts 50 80 100" (rolling: "rolling 24").
func parseDefaultBudget(args []string) (ops.DefaultBudget, error) {
	var b ops.DefaultBudget
	if len(args) < 3 {
		return b, errors.New("want each_account|each_key <usd> <window> [payer …] [mode …] [alerts …]")
	}
	each, err := eachOf(args[0])
	if err != nil {
		return b, err
	}
	b.Each = each
	amt, err := limits.ParseUSD(args[1])
	if err != nil {
		return b, fmt.Errorf("amount %q: %v", args[1], err)
	}
	b.Amount, b.Window = amt, limits.WindowKind(args[2])
	rest := args[3:]
	if b.Window == limits.WindowRolling {
		if len(rest) == 0 {
			return b, errors.New("rolling: want the hours after it (rolling 24)")
		}
		h, err := strconv.Atoi(rest[0])
		if err != nil {
			return b, fmt.Errorf("rolling hours %q: not a number", rest[0])
		}
		b.RollingHours, rest = h, rest[1:]
	}
	for len(rest) > 0 {
		switch rest[0] {
		case "payer", "mode":
			if len(rest) < 2 {
				return b, fmt.Errorf("%s: want a value", rest[0])
			}
			if rest[0] == "payer" {
				b.Payer = limits.Payer(rest[1])
			} else {
				b.Mode = limits.Mode(rest[1])
			}
			rest = rest[2:]
		case "alerts":
			rest = rest[1:]
			for len(rest) > 0 {
				n, err := strconv.Atoi(rest[0])
				if err != nil {
					break
				}
				b.Alerts, rest = append(b.Alerts, n), rest[1:]
			}
			if len(b.Alerts) == 0 {
				return b, errors.New("alerts: want one or more percentages (alerts 50 80 100)")
			}
		default:
			return b, fmt.Errorf("unknown field %q (payer, mode, alerts)", rest[0])
		}
	}
	return b, nil
}
