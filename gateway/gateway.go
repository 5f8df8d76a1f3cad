// Package gateway is Agent Router's data plane, Caddy-free: caddymodule
// mounts it. For each request it owns the whole path from the client to a
// provider and back:
//
//   - the endpoints it serves (endpoints.go: one table of paths, each with
//     its door): OpenAI's chat completions, embeddings and models, and two
//     front doors, Anthropic's Messages (/v1/messages and count_tokens; the
//     key also as x-api-key, errors in Anthropic's envelope) and OpenAI's
//     Responses (/v1/responses, and GET/DELETE of stored responses for the
//     account that created them, responses.go);
//   - authentication of an Agent Router API key against the store's
//     in-memory snapshot, and the request checks (handler.go, checks.go);
//   - the routing plan (the key's profile, the site's aliases and routes)
//     and its attempts (attempt.go): the loop keeps the policy, one
//     function makes one attempt, which picks the account's BYOK
//     credential or the platform key (credential.go) and makes one
//     upstream call (upstream.go, through per-host transports,
//     transport.go, under the egress policy for tenants' base URLs);
//   - the relay of the answer, passed through or translated by the
//     provider's adapter, whole (relay.go) or event by event
//     (streaming.go, keepalive.go), with the provider's headers that may
//     be relayed (headers.go);
//   - one request-log record per request, finished in one place (finish),
//     with its attempts, usage, cost and trace spans (trace.go);
//   - the cost of each metered request (cost.go): the provider's usage
//     priced with the price version the request started under and its
//     payer's contract terms, a BYOK request's shadow platform cost, and
//     X-Agent-Router-Cost on whole answers.
//
// Besides ServeHTTP (API traffic), the console uses three entry points:
// ServeAccount runs a chat request for an account without an API key
// through the same pipeline (the playground; its records say their
// source), ModelsFor lists what /v1/models would for an account and
// profile, and TestCredential checks a provider key with a cheap
// authenticated call through the same upstream call as requests.
//
// Budgets and rate limits hook in around the attempts: admission in
// attempt (before the upstream call; a refused target is skipped like one
// without a credential) and settlement in served, where the usage the
// provider reported reaches the record and is priced (attemptResult.cost).
package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Credential sources, as they appear in headers, logs and metrics.
const (
	SourceBYOK     = "byok"
	SourcePlatform = "platform"
)

// ProviderConfig is the platform's configuration of one provider.
type ProviderConfig struct {
	// APIKey is the platform-managed key; empty when the platform offers
	// none and only BYOK credentials can serve this provider.
	APIKey string
	// Endpoint is where to reach the provider.
	Endpoint providers.Endpoint
	// Models declares model names served by this provider, mapped to the
	// upstream name ("" keeps the name; for Azure, the deployment).
	Models map[string]string
	// Contract is the platform's contract terms with the provider: it
	// prices the requests the platform key serves, and BYOK requests'
	// shadow cost. Nil: list prices.
	Contract *pricing.Contract
}

// Config configures a Gateway.
type Config struct {
	// Store holds the accounts, API keys, BYOK credentials, stored
	// responses' owners and the request log: each request reads its
	// in-memory snapshot, and its record is queued to it.
	Store *store.Store
	// Providers holds the platform configuration by provider name. Providers
	// not listed use their defaults and serve only BYOK credentials.
	Providers map[string]*ProviderConfig
	// MaxBody bounds request bodies in bytes. Default: 4 MiB.
	MaxBody int64
	// DialTimeout bounds connecting to a provider. Default: 10s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a provider's response
	// headers. Default: 5m (large non-streamed completions are slow).
	ResponseHeaderTimeout time.Duration
	// Egress decides where tenant-chosen BYOK base URLs may connect. Nil
	// is the strict default: public addresses only.
	Egress *egress.Policy
	// Logger receives operational messages; never keys, prompts or bodies.
	Logger *zap.Logger
	// Routing holds the aliases and routes (fallback chains, splits).
	Routing routing.Config
	// Profiles are named sets of aliases and routes. A request whose API
	// key is bound to a profile resolves its model through the profile's
	// aliases and routes first, then Routing's, then plain models: each
	// profile is compiled over Routing, its names shadowing the site's
	// (a site route whose target is an alias the profile redefines follows
	// the profile's).
	Profiles map[string]routing.Config
	// DefaultMaxTokens bounds the output limit sent to providers that
	// require one (Anthropic) when the client gave none: the target
	// model's maximum from the catalog, at most this; a model the catalog
	// does not know gets this, or 4096. Default: 0, no bound.
	DefaultMaxTokens int
	// BYOKCooldown is how long an account's BYOK key the provider rejected
	// is not sent again (fallback chains skip it; a lone target is
	// answered byok_credential_rejected at once), before one request
	// probes it. Default: 5m.
	BYOKCooldown time.Duration
	// Prices is the price book: each request is priced with the version
	// current when it started. Nil: the store's (Store.Prices), or when
	// that has no version yet, a book of the embedded default prices.
	Prices *pricing.Registry
	// Observe, when set, sees every finished request's record before it is
	// queued for the request log (for metrics and access-log fields). It
	// runs on the request's goroutine and must be quick.
	Observe func(r *http.Request, rec *store.LogRecord)
	// Limits admits each attempt against the accounts' budgets, spillover
	// allowances and rate limits (after the credential is chosen, before
	// the upstream call) and settles it with the request's real cost. It
	// is one per process, shared across reloads (its counters must not
	// restart); whoever builds it installs the set. Nil: no budgets or
	// rate limits.
	Limits *limits.Limiter
	// ProviderLimits tracks each BYOK key's own provider rate limit from
	// the provider's answers, so a key the provider would refuse is not
	// sent a request (the next target serves, or a 429 with the
	// provider's reset). One per process, like Limits. Nil: none.
	ProviderLimits *limits.Tracker
}

// Gateway is the data plane of one config (see the package doc for what it
// owns): ServeHTTP for the endpoints Owns reports, ServeAccount, ModelsFor
// and TestCredential for the console. New compiles it once; it is safe for
// concurrent use, and Close releases its upstream connections when a
// reload replaces it.
type Gateway struct {
	store     *store.Store
	providers map[string]*ProviderConfig
	declared  map[string]target
	maxBody   int64
	logger    *zap.Logger
	upstreams *transports
	routes    *routing.Table
	// profiles are the compiled routing profiles (each over the site's
	// aliases and routes), profileNames their sorted names.
	profiles     map[string]*routing.Table
	profileNames []string
	// missingProfiles remembers the keys already reported as bound to a
	// profile this config lacks (key id + NUL + profile).
	missingProfiles sync.Map
	// declaredNames are the declared models, sorted, for /v1/models.
	declaredNames []string

	defaultMaxTokens int
	cooldown         time.Duration
	observe          func(r *http.Request, rec *store.LogRecord)
	prices           *pricing.Registry
	// limits and providerLimits are Config's (nil: none).
	limits         *limits.Limiter
	providerLimits *limits.Tracker
}

// target is a resolved model: which provider, which upstream name.
type target struct {
	provider *providers.Provider
	model    string
}

// New prepares a Gateway from cfg: the providers' platform configuration
// and declared models, the routing table and each profile's, compiled
// once. A model declared twice, an alias or route that shadows a declared
// model, an unknown provider or a route whose targets resolve to nothing
// is refused.
func New(cfg Config) (*Gateway, error) {
	if cfg.Store == nil {
		return nil, errors.New("gateway needs a store")
	}
	g := &Gateway{
		store:     cfg.Store,
		providers: make(map[string]*ProviderConfig),
		declared:  make(map[string]target),
		maxBody:   cfg.MaxBody,
		logger:    cfg.Logger,
		upstreams: newTransports(cfg.DialTimeout, cfg.ResponseHeaderTimeout, cfg.Egress),

		defaultMaxTokens: max(cfg.DefaultMaxTokens, 0),
		cooldown:         cfg.BYOKCooldown,
		observe:          cfg.Observe,
		prices:           cfg.Prices,
		limits:           cfg.Limits,
		providerLimits:   cfg.ProviderLimits,
	}
	if g.prices == nil && cfg.Store.Prices().Current() != nil {
		g.prices = cfg.Store.Prices()
	}
	if g.prices == nil {
		g.prices = pricing.NewRegistry()
		if _, _, err := g.prices.Publish(pricing.Default()); err != nil {
			return nil, fmt.Errorf("price book: %w", err)
		}
	}
	if g.maxBody <= 0 {
		g.maxBody = 4 << 20
	}
	if g.logger == nil {
		g.logger = zap.NewNop()
	}
	if g.cooldown <= 0 {
		g.cooldown = 5 * time.Minute
	}
	if err := g.declareProviders(cfg.Providers); err != nil {
		return nil, err
	}
	if err := g.compileRouting(cfg.Routing, cfg.Profiles); err != nil {
		return nil, err
	}
	return g, nil
}

// declareProviders takes the platform's provider configuration and the
// models it declares; providers it does not list serve BYOK keys only.
func (g *Gateway) declareProviders(pcs map[string]*ProviderConfig) error {
	for name, pc := range pcs {
		p := providers.Get(name)
		if p == nil {
			return fmt.Errorf("unknown provider %q (supported: %s)", name, strings.Join(providers.Names, ", "))
		}
		if pc == nil {
			pc = &ProviderConfig{}
		}
		g.providers[name] = pc
		for m, up := range pc.Models {
			if prev, dup := g.declared[m]; dup {
				return fmt.Errorf("model %q is declared by both %s and %s", m, prev.provider.Name, name)
			}
			if up == "" {
				up = m
			}
			g.declared[m] = target{p, up}
		}
	}
	for _, name := range providers.Names {
		if g.providers[name] == nil {
			g.providers[name] = &ProviderConfig{}
		}
	}
	for m := range g.declared {
		g.declaredNames = append(g.declaredNames, m)
	}
	sort.Strings(g.declaredNames)
	return nil
}

// compileRouting compiles the site's aliases and routes, and each profile
// over them.
func (g *Gateway) compileRouting(site routing.Config, profiles map[string]routing.Config) error {
	if err := g.checkShadowing("", site); err != nil {
		return err
	}
	routes, err := routing.Compile(site, g.checkModel)
	if err != nil {
		return err
	}
	g.routes = routes
	g.profiles = make(map[string]*routing.Table, len(profiles))
	for name, pcfg := range profiles {
		if err := store.ValidateProfileName(name); err != nil || name == "" {
			return fmt.Errorf("routing profile %q: the name must be 1 to 64 letters, digits, '.', '_' or '-'", name)
		}
		if err := g.checkShadowing("profile "+name+": ", pcfg); err != nil {
			return err
		}
		t, err := routing.Compile(routing.Overlay(site, pcfg), g.checkModel)
		if err != nil {
			return fmt.Errorf("profile %s: %w", name, err)
		}
		g.profiles[name] = t
		g.profileNames = append(g.profileNames, name)
	}
	sort.Strings(g.profileNames)
	return nil
}

// checkShadowing refuses an alias or route named like a declared model.
func (g *Gateway) checkShadowing(where string, cfg routing.Config) error {
	for name := range cfg.Aliases {
		if _, declared := g.declared[name]; declared {
			return fmt.Errorf("%salias %q is also a declared model", where, name)
		}
	}
	for name := range cfg.Routes {
		if _, declared := g.declared[name]; declared {
			return fmt.Errorf("%sroute %q is also a declared model", where, name)
		}
	}
	return nil
}

// Close releases idle upstream connections.
func (g *Gateway) Close() { g.upstreams.close() }

// Profiles lists the routing profiles of this gateway's config, sorted.
func (g *Gateway) Profiles() []string { return append([]string(nil), g.profileNames...) }

// PlatformKeyConfigured reports whether the platform has a key for provider.
func (g *Gateway) PlatformKeyConfigured(provider string) bool {
	pc := g.providers[provider]
	return pc != nil && pc.APIKey != ""
}

// resolve maps a requested model to a provider and upstream model name:
// models declared in the config first, then exact catalog IDs (so that
// Together's "openai/gpt-oss-120b" is not read as OpenAI), then an explicit
// "provider/" prefix, then the catalog's prefix rules.
func (g *Gateway) resolve(model string) (target, bool) {
	if t, ok := g.declared[model]; ok {
		return t, true
	}
	if !providers.IsKnownModel(model) {
		if name, rest, ok := providers.SplitProviderPrefix(model); ok {
			if t, ok := g.declared[rest]; ok && t.provider.Name == name {
				return t, true
			}
			return target{providers.Get(name), rest}, true
		}
	}
	if name, ok := providers.CatalogProvider(model); ok {
		return target{providers.Get(name), model}, true
	}
	return target{}, false
}

// checkModel explains a routing target that resolves to no provider.
func (g *Gateway) checkModel(model string) error {
	return providers.CheckModel(model, func(m string) bool { _, ok := g.declared[m]; return ok })
}
