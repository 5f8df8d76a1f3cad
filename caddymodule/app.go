// Package caddymodule is the Caddy glue of Agent Router: the app that owns
// the store across config reloads, the HTTP handler, the Caddyfile directive
// and global option, and the admin API routes. The work happens in gateway,
// admin and store, which do not import Caddy.
package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the agent_router app. It opens the bbolt store (accounts, API keys,
// sealed BYOK credentials, request log) once per process and shares it with
// every agent_router handler and with the admin API, across config reloads.
//
// Without a configured master key it generates one into master.key beside
// the store (mode 0600) and logs where it is; back that file up with the
// store, since sealed credentials cannot be opened without it.
type App struct {
	// Store is the path of the bbolt file. Default:
	// {caddy data dir}/agent_router/agent_router.db. In fleet mode (Etcd
	// set) it holds this instance's request log, usage and "last used"
	// clocks only.
	Store string `json:"store,omitempty"`

	// Etcd, when set, switches on fleet mode: the shared records live in
	// etcd, so that several instances serve the same accounts, API keys
	// and credentials. See EtcdConfig.
	Etcd *EtcdConfig `json:"etcd,omitempty"`

	// MasterKey seals BYOK credentials: 32 bytes, base64 or hex. Keep it out
	// of the config with a placeholder such as {env.AGENT_ROUTER_MASTER_KEY};
	// placeholders are resolved at provision, so the key never lands in
	// autosave.json or GET /config/. Default: a key generated into
	// master.key beside the store.
	MasterKey string `json:"master_key,omitempty"`

	// OldMasterKeys are earlier master keys, for rotating the master key:
	// set master_key to the new key and list the old one here, then start
	// Caddy (a restart, not a reload: the store stays open across
	// reloads). Credentials sealed under an old key are re-sealed under the
	// new one when the store opens, after which the old key can be removed.
	// Placeholders are resolved at provision.
	OldMasterKeys []string `json:"old_master_keys,omitempty"`

	// LogMaxRecords bounds the request log by count. Default: 100000.
	LogMaxRecords int `json:"log_max_records,omitempty"`

	// LogMaxAge bounds the request log by age. Default: 720h (30 days).
	LogMaxAge caddy.Duration `json:"log_max_age,omitempty"`

	// UsageFlushInterval is how often the in-memory usage rollups are
	// written to the store; a crash loses at most this much, a clean stop
	// nothing. Default: 10s.
	UsageFlushInterval caddy.Duration `json:"usage_flush_interval,omitempty"`

	// UsageRetention is how long hourly usage rollups are kept.
	// Default: 2160h (90 days).
	UsageRetention caddy.Duration `json:"usage_retention,omitempty"`

	// BYOKAllowHosts lets BYOK base URLs (set by accounts) reach these
	// destinations even though they are not public: host names as written
	// in the URL, IP addresses or CIDR prefixes. By default a BYOK base URL
	// must resolve to public unicast addresses only, checked when it is
	// saved and again at every connection (so DNS rebinding cannot aim it
	// at Caddy's admin endpoint, a metadata service or the LAN). Platform
	// base URLs in the config are trusted and not checked.
	BYOKAllowHosts []string `json:"byok_allow_hosts,omitempty"`

	// BYOKAllowHTTP accepts http:// BYOK base URLs. Off by default: over
	// http the account's key would travel in clear text.
	BYOKAllowHTTP bool `json:"byok_allow_http,omitempty"`

	// Reconcile sets up the hourly check of the gateway's counts against
	// the providers' own usage and cost records (ReconcileConfig). On by
	// default; it runs only for accounts with a usage-reader key.
	Reconcile *ReconcileConfig `json:"reconcile,omitempty"`

	// Limits tunes budgets and rate limits and sets the operator's
	// defaults per API key and per account (LimitsConfig). The
	// accounts' own budgets and rate limits are set through the admin
	// API and the console.
	Limits *LimitsConfig `json:"limits,omitempty"`

	// limits is the process's limiter (limits.go); providerLimits the
	// BYOK keys' own provider rate limits.
	limits         *ops.LimitsRuntime
	providerLimits *limits.Tracker

	reconciling    *ops.Reconciling // nil when reconciliation is off (reconcile.go)
	reconcileEvery time.Duration

	egress  *egress.Policy
	store   *store.Store
	poolKey string
	logger  *zap.Logger

	handlers *handlerSet
	// prices are the price blocks of this config's handlers, published
	// as the price book when the app starts (prices.go).
	prices *priceOverrides
}

// handlerSet holds the handlers of one config, for the admin API's
// "is a platform key configured" question.
type handlerSet struct {
	mu sync.Mutex
	m  map[*Handler]struct{}
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "agent_router",
		New: func() caddy.Module { return new(App) },
	}
}

// stores keeps each bbolt file open once per process: during a reload the
// old and new configs overlap, and bbolt's file lock allows one opener.
var stores = caddy.NewUsagePool()

type pooledStore struct {
	*store.Store
	etcd    *clientv3.Client // fleet mode: the client, closed after the store
	etcdSig string           // the settings it was opened with
	peer    *http.Server     // fleet mode: the peer listener, closed first
}

func (p pooledStore) Destruct() error {
	if p.peer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		p.peer.Shutdown(ctx)
		cancel()
	}
	err := p.Store.Close()
	if p.etcd != nil {
		p.etcd.Close()
	}
	return err
}

// active is the running app, for the admin API (whose modules are not tied
// to the app's lifecycle).
var active atomic.Pointer[App]

// Provision opens the store.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.handlers = &handlerSet{m: make(map[*Handler]struct{})}
	a.prices = &priceOverrides{}
	repl := caddy.NewReplacer()
	hosts := make([]string, len(a.BYOKAllowHosts))
	for i, h := range a.BYOKAllowHosts {
		hosts[i] = repl.ReplaceAll(h, "")
	}
	pol, err := egress.New(a.BYOKAllowHTTP, hosts)
	if err != nil {
		return fmt.Errorf("agent_router: %v", err)
	}
	a.egress = pol
	if err := a.provisionReconcile(repl); err != nil {
		return fmt.Errorf("agent_router: %v", err)
	}
	if err := registerReconcileMetrics(ctx); err != nil {
		return err
	}

	path := repl.ReplaceAll(a.Store, "")
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "agent_router", "agent_router.db")
	}
	path, err = filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("resolving store path: %v", err)
	}
	if err := mkdirPrivate(filepath.Dir(path)); err != nil {
		return fmt.Errorf("creating store directory: %v", err)
	}

	var key []byte
	if mk := repl.ReplaceAll(a.MasterKey, ""); mk != "" {
		if key, err = store.ParseMasterKey(mk); err != nil {
			return fmt.Errorf("agent_router master_key: %v", err)
		}
	} else {
		keyPath := filepath.Join(filepath.Dir(path), "master.key")
		var created bool
		if key, created, err = store.LoadOrCreateMasterKey(keyPath); err != nil {
			return err
		}
		if created {
			a.logger.Warn("generated a new master key for sealing BYOK credentials; back it up with the store, or set master_key",
				zap.String("path", keyPath), zap.String("store", path))
		}
	}

	var old [][]byte
	for i, k := range a.OldMasterKeys {
		b, err := store.ParseMasterKey(repl.ReplaceAll(k, ""))
		if err != nil {
			return fmt.Errorf("agent_router old_master_keys[%d]: %v", i, err)
		}
		old = append(old, b)
	}
	var etcdCfg EtcdConfig
	if a.Etcd != nil {
		if etcdCfg, err = a.Etcd.resolved(repl); err != nil {
			return fmt.Errorf("agent_router: %v", err)
		}
	}
	v, _, err := stores.LoadOrNew(path, func() (caddy.Destructor, error) {
		opts := store.Options{
			OldMasterKeys:      old,
			LogMaxRecords:      a.LogMaxRecords,
			LogMaxAge:          time.Duration(a.LogMaxAge),
			UsageFlushInterval: time.Duration(a.UsageFlushInterval),
			UsageRetention:     time.Duration(a.UsageRetention),
		}
		if a.Etcd != nil {
			s, cli, peer, err := etcdCfg.openFleet(path, key, opts, a.logger.Named("etcd"))
			if err != nil {
				return nil, err
			}
			st := s.Fleet()
			a.logger.Info("opened store in fleet mode", zap.String("path", path), zap.Strings("etcd", etcdCfg.Endpoints),
				zap.String("prefix", st.Prefix), zap.String("instance", st.InstanceID), zap.Int64("revision", st.Revision),
				zap.String("master_key_id", s.MasterKeyID()))
			return pooledStore{Store: s, etcd: cli, etcdSig: etcdCfg.signature(), peer: peer}, nil
		}
		s, err := store.Open(path, key, opts)
		if err != nil {
			return nil, err
		}
		a.logger.Info("opened store", zap.String("path", path), zap.String("master_key_id", s.MasterKeyID()))
		return pooledStore{Store: s}, nil
	})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("agent_router: %v", err)
		}
		return fmt.Errorf("agent_router: opening store: %v", err)
	}
	if ps := v.(pooledStore); ps.etcdSig != "" != (a.Etcd != nil) || a.Etcd != nil && ps.etcdSig != etcdCfg.signature() {
		stores.Delete(path)
		return fmt.Errorf("agent_router: the store etcd settings changed; restart Caddy to apply them (the store stays open across reloads)")
	}
	a.poolKey, a.store = path, v.(pooledStore).Store
	var limitsEtcd *EtcdConfig
	if a.Etcd != nil {
		limitsEtcd = &etcdCfg
	}
	if err := a.provisionLimits(limitsEtcd); err != nil {
		a.store = nil
		stores.Delete(path)
		a.poolKey = ""
		return fmt.Errorf("agent_router: %v", err)
	}
	if a.store.MasterKeyID() != store.KeyID(key) {
		return fmt.Errorf("agent_router: the master key changed (id %s, the store was opened with %s); restart Caddy to switch master keys", store.KeyID(key), a.store.MasterKeyID())
	}
	if a.store.Prices().Current() == nil {
		// A store's first price version is the embedded default table,
		// so that requests are priced from the first one on; the
		// config's price blocks follow when it starts.
		if _, _, err := a.store.PublishPrices(pricing.Default()); err != nil {
			return fmt.Errorf("agent_router: %v", err)
		}
	}
	return a.startReconcile()
}

// Start publishes the config's price book (a new price version when its
// prices changed) and makes the app the one the admin API serves.
func (a *App) Start() error {
	t, err := a.prices.table()
	if err != nil {
		return fmt.Errorf("agent_router: price book: %v", err)
	}
	v, changed, err := a.store.PublishPrices(t)
	if err != nil {
		return fmt.Errorf("agent_router: %v", err)
	}
	if err := a.startLimits(); err != nil {
		return fmt.Errorf("agent_router: limits: %v", err)
	}
	if changed {
		a.logger.Info("published a new price book version", zap.String("price_version", v.ID),
			zap.String("parent", v.Parent), zap.Int("changes", len(v.Changes)), zap.String("table", t.Version))
	}
	active.Store(a)
	return nil
}

// Stop hands the admin API over (or to nobody, if no newer app started).
func (a *App) Stop() error {
	active.CompareAndSwap(a, nil)
	return nil
}

// Cleanup releases this config's reference to the store; the last
// reference closes it, after flushing the request log.
func (a *App) Cleanup() error {
	if a.poolKey == "" {
		return nil
	}
	a.stopReconcile() // before the store: the last config's stop ends the schedule
	a.cleanupLimits() // before the store: the limiter flushes into it
	_, err := stores.Delete(a.poolKey)
	a.poolKey, a.store = "", nil
	return err
}

func (a *App) register(h *Handler) {
	a.handlers.mu.Lock()
	a.handlers.m[h] = struct{}{}
	a.handlers.mu.Unlock()
}

func (a *App) unregister(h *Handler) {
	a.handlers.mu.Lock()
	delete(a.handlers.m, h)
	a.handlers.mu.Unlock()
}

// platformKey reports whether any handler of this config has a platform key
// for provider.
func (a *App) platformKey(provider string) bool {
	a.handlers.mu.Lock()
	defer a.handlers.mu.Unlock()
	for h := range a.handlers.m {
		if h.gw != nil && h.gw.PlatformKeyConfigured(provider) {
			return true
		}
	}
	return false
}

// testGateway picks the gateway that tests a key for provider: one whose
// handler has a platform key for it (so its endpoint is the configured
// one), else any; nil when no handler runs.
func (a *App) testGateway(provider string) *gateway.Gateway {
	a.handlers.mu.Lock()
	defer a.handlers.mu.Unlock()
	var fallback *gateway.Gateway
	for h := range a.handlers.m {
		if h.gw == nil {
			continue
		}
		if h.gw.PlatformKeyConfigured(provider) {
			return h.gw
		}
		fallback = h.gw
	}
	return fallback
}

// profiles lists the routing profiles of this config's handlers, sorted
// and without repeats, for the admin API's check of an API key's profile.
func (a *App) profiles() []string {
	a.handlers.mu.Lock()
	defer a.handlers.mu.Unlock()
	var out []string
	for h := range a.handlers.m {
		if h.gw != nil {
			out = append(out, h.gw.Profiles()...)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
