package caddymodule

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Metrics live in Caddy's Prometheus registry, served by Caddy's own
// /metrics. Each config load gets a new registry, so the collectors are
// package-level, created once, and registered again on every provision
// (AlreadyRegistered is fine): counters keep counting across reloads
// (reference/caddy-engineering.md §6, caddy-ratelimit's metrics.go).
//
// Labels are bounded: provider, credential source, status class, error
// class, and the served model only for answers the provider accepted (an
// arbitrary client-chosen name never becomes a label). Accounts get their
// own series only with metrics_per_account.
var metrics = struct {
	once             sync.Once
	requests         *prometheus.CounterVec
	tokens           *prometheus.CounterVec
	upstreamDuration *prometheus.HistogramVec
	ttfb             *prometheus.HistogramVec
	fallbacks        *prometheus.CounterVec
	rejections       *prometheus.CounterVec
	logDropped       prometheus.CounterFunc
	accountRequests  *prometheus.CounterVec
	accountTokens    *prometheus.CounterVec
	cost             *prometheus.CounterVec
	shadowCost       *prometheus.CounterVec
	unpriced         *prometheus.CounterVec
	accountCost      *prometheus.CounterVec
	fleet            fleetCollector
}{}

const metricsNamespace, metricsSubsystem = "caddy", "agent_router"

func initMetrics() {
	metrics.once.Do(func() {
		opts := func(name, help string) prometheus.Opts {
			return prometheus.Opts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}
		}
		metrics.requests = prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
			"Gateway requests by provider, served model, credential source (byok or platform), status class and front door (api: chat, embeddings, messages, responses).")),
			[]string{"provider", "model", "credential_source", "status_class", "api"})
		metrics.tokens = prometheus.NewCounterVec(prometheus.CounterOpts(opts("tokens_total",
			"Tokens reported by providers, by provider, model, credential source, type (prompt or completion) and front door (api).")),
			[]string{"provider", "model", "credential_source", "type", "api"})
		buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
		metrics.upstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "upstream_duration_seconds", Help: "Duration of each upstream attempt, to the end of the answer.", Buckets: buckets},
			[]string{"provider", "credential_source"})
		metrics.ttfb = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem,
			Name: "time_to_first_byte_seconds", Help: "Time from the request's arrival to the first byte of the answer.", Buckets: buckets},
			[]string{"provider", "credential_source"})
		metrics.fallbacks = prometheus.NewCounterVec(prometheus.CounterOpts(opts("fallbacks_total",
			"Moves from a failed attempt to the next target of a route.")), []string{"from_provider", "to_provider"})
		metrics.rejections = prometheus.NewCounterVec(prometheus.CounterOpts(opts("credential_rejections_total",
			"Provider refusals (401/403) of a credential, by provider and credential source.")), []string{"provider", "credential_source"})
		metrics.logDropped = prometheus.NewCounterFunc(prometheus.CounterOpts(opts("request_log_dropped_total",
			"Request-log records dropped because the write queue was full.")), func() float64 {
			if a := active.Load(); a != nil && a.store != nil {
				return float64(a.store.DroppedLogRecords())
			}
			return 0
		})
		metrics.accountRequests = prometheus.NewCounterVec(prometheus.CounterOpts(opts("account_requests_total",
			"Gateway requests by account (only with metrics_per_account).")), []string{"account", "provider", "credential_source", "status_class"})
		metrics.accountTokens = prometheus.NewCounterVec(prometheus.CounterOpts(opts("account_tokens_total",
			"Tokens by account (only with metrics_per_account).")), []string{"account", "provider", "credential_source", "type"})
		metrics.cost = prometheus.NewCounterVec(prometheus.CounterOpts(opts("cost_usd_total",
			"Cost of the requests priced, in USD, by provider and who paid (credential_source: byok, the account's own contract; platform).")),
			[]string{"provider", "credential_source"})
		metrics.shadowCost = prometheus.NewCounterVec(prometheus.CounterOpts(opts("shadow_cost_usd_total",
			"What BYOK requests would have cost on the platform's price book and contract, in USD, by provider.")), []string{"provider"})
		metrics.unpriced = prometheus.NewCounterVec(prometheus.CounterOpts(opts("unpriced_requests_total",
			"Requests whose cost is unknown (never counted as 0), by provider, credential source and reason (no_price_for_model, no_usage, ...).")),
			[]string{"provider", "credential_source", "reason"})
		metrics.accountCost = prometheus.NewCounterVec(prometheus.CounterOpts(opts("account_cost_usd_total",
			"Cost of the requests priced, in USD, by account (only with metrics_per_account).")), []string{"account", "provider", "credential_source"})
		name := func(n string) string { return prometheus.BuildFQName(metricsNamespace, metricsSubsystem, n) }
		metrics.fleet = fleetCollector{
			reachable: prometheus.NewDesc(name("fleet_etcd_reachable"),
				"Fleet mode: 1 while etcd answers this instance, 0 during an outage (requests are served from the last snapshot, admin writes refused).", nil, nil),
			outages: prometheus.NewDesc(name("fleet_etcd_outages_total"),
				"Fleet mode: etcd outages this instance saw since it started.", nil, nil),
		}
	})
}

// registerMetrics adds the collectors to this config's registry.
func registerMetrics(ctx caddy.Context, perAccount bool) error {
	initMetrics()
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	cs := []prometheus.Collector{metrics.requests, metrics.tokens, metrics.upstreamDuration, metrics.ttfb,
		metrics.fallbacks, metrics.rejections, metrics.logDropped, metrics.fleet,
		metrics.cost, metrics.shadowCost, metrics.unpriced}
	if perAccount {
		cs = append(cs, metrics.accountRequests, metrics.accountTokens, metrics.accountCost)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return registerLimitsCollectors(reg, perAccount)
}

// fleetCollector exports etcd's reachability in fleet mode, and nothing
// single-node: the store's own view (store.FleetStatus), read at scrape
// time.
type fleetCollector struct{ reachable, outages *prometheus.Desc }

func (c fleetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.reachable; ch <- c.outages }

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	a := active.Load()
	if a == nil || a.store == nil {
		return
	}
	st := a.store.Fleet()
	if !st.Enabled || st.EtcdReachable == nil {
		return
	}
	up := 0.0
	if *st.EtcdReachable {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.reachable, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.outages, prometheus.CounterValue, float64(st.EtcdOutages))
}

func statusClass(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	case status >= 200:
		return "2xx"
	}
	return "other"
}

// observe records a finished request in the metrics and in Caddy's access
// log entry for it.
func (h *Handler) observe(r *http.Request, rec *store.LogRecord) {
	// Only names a provider accepted become label values (client-chosen
	// names would grow the series without bound), and only valid UTF-8
	// ones: Prometheus refuses anything else with a panic.
	model := "-"
	if rec.Status >= 200 && rec.Status < 300 && rec.UpstreamModel != "" && len(rec.UpstreamModel) <= 128 && utf8.ValidString(rec.UpstreamModel) {
		model = rec.UpstreamModel
	}
	sc := statusClass(rec.Status)
	api := store.APIOf(rec) // one of four values the gateway sets
	metrics.requests.WithLabelValues(rec.Provider, model, rec.CredentialSource, sc, api).Inc()
	if rec.PromptTokens > 0 || rec.CompletionTokens > 0 {
		metrics.tokens.WithLabelValues(rec.Provider, model, rec.CredentialSource, "prompt", api).Add(float64(rec.PromptTokens))
		metrics.tokens.WithLabelValues(rec.Provider, model, rec.CredentialSource, "completion", api).Add(float64(rec.CompletionTokens))
	}
	if rec.TTFBMS > 0 {
		metrics.ttfb.WithLabelValues(rec.Provider, rec.CredentialSource).Observe(rec.TTFBMS / 1000)
	}
	var prev *store.Attempt
	for i := range rec.Attempts {
		a := &rec.Attempts[i]
		if a.Skipped != "" {
			continue
		}
		metrics.upstreamDuration.WithLabelValues(a.Provider, a.CredentialSource).Observe(a.DurationMS / 1000)
		if a.ErrorClass == "auth" {
			metrics.rejections.WithLabelValues(a.Provider, a.CredentialSource).Inc()
		}
		if prev != nil && prev.ErrorClass != "" {
			metrics.fallbacks.WithLabelValues(prev.Provider, a.Provider).Inc()
		}
		prev = a
	}
	observeCost(rec, h.MetricsPerAccount)
	if h.MetricsPerAccount {
		metrics.accountRequests.WithLabelValues(rec.AccountID, rec.Provider, rec.CredentialSource, sc).Inc()
		if rec.PromptTokens > 0 || rec.CompletionTokens > 0 {
			metrics.accountTokens.WithLabelValues(rec.AccountID, rec.Provider, rec.CredentialSource, "prompt").Add(float64(rec.PromptTokens))
			metrics.accountTokens.WithLabelValues(rec.AccountID, rec.Provider, rec.CredentialSource, "completion").Add(float64(rec.CompletionTokens))
		}
	}

	// Caddy's access log entry for this request gets the gateway's fields
	// (when access logs are on), under one "agent_router" object: the
	// record itself marshals them, so a request whose server logs nothing
	// pays for nothing, and one that does pays no copy.
	if srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); srv != nil && srv.Logs == nil {
		return
	}
	if a, ok := r.Context().Value(accessEntryKey{}).(*accessEntry); ok {
		a.rec = rec // the handler writes this request's entry (accesslog.go)
		return
	}
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.Object("agent_router", (*accessFields)(rec)))
	}
}

// observeCost counts a request's cost: by provider and payer (no model
// label: the cost of a model is the request log's and the rollups'), a
// BYOK request's shadow cost, or the request as unpriced with its reason
// (a bounded word the gateway sets).
func observeCost(rec *store.LogRecord, perAccount bool) {
	c := &rec.Cost
	switch {
	case c.IsZero():
	case c.Unpriced:
		metrics.unpriced.WithLabelValues(rec.Provider, rec.CredentialSource, c.Reason.String()).Inc()
	default:
		usd := float64(c.NanoUSD) / 1e9
		metrics.cost.WithLabelValues(rec.Provider, rec.CredentialSource).Add(usd)
		if perAccount {
			metrics.accountCost.WithLabelValues(rec.AccountID, rec.Provider, rec.CredentialSource).Add(usd)
		}
	}
	if s := &rec.ShadowCost; s.Priced() {
		metrics.shadowCost.WithLabelValues(rec.Provider).Add(float64(s.NanoUSD) / 1e9)
	}
}

// accessFields is a finished request's record as access-log fields. The
// record is read-only once observed, so the access log may read it after
// the handler returned.
type accessFields store.LogRecord

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (f *accessFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("request_id", f.ID)
	enc.AddString("account", f.AccountID)
	enc.AddString("key_id", f.KeyID)
	enc.AddString("provider", f.Provider)
	enc.AddString("model", f.Model)
	enc.AddString("upstream_model", f.UpstreamModel)
	enc.AddString("credential_source", f.CredentialSource)
	enc.AddInt("attempts", len(f.Attempts))
	enc.AddInt64("prompt_tokens", f.PromptTokens)
	enc.AddInt64("completion_tokens", f.CompletionTokens)
	enc.AddString("error_code", f.ErrorCode)
	enc.AddString("profile", f.Profile)
	enc.AddString("source", f.Source)
	enc.AddString("api", store.APIOf((*store.LogRecord)(f)))
	if len(f.Omitted) > 0 {
		enc.AddString("omitted", strings.Join(f.Omitted, ","))
	}
	if c := &f.Cost; !c.IsZero() {
		enc.AddString("cost_usd", c.USD())
		enc.AddString("price_version", c.Version)
		if c.Unpriced {
			enc.AddString("unpriced", c.Reason.String())
		}
	}
	return nil
}
