package caddymodule

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/console"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves Agent Router's data plane (package gateway) on a site:
// OpenAI's POST /v1/chat/completions (streamed or not), POST /v1/embeddings
// and GET /v1/models; Anthropic's Messages, POST /v1/messages and
// /v1/messages/count_tokens; and OpenAI's Responses, POST /v1/responses with
// GET and DELETE of the stored responses an account created. With console,
// it also serves the Agent Router Console under /console/. Other paths pass
// to the next handler, so reverse_proxy, file_server and the rest keep
// working on the same site.
//
// Clients authenticate with an Agent Router API key (Authorization: Bearer
// ar_..., or x-api-key on the Messages API, as Anthropic's clients send it).
// The handler resolves the requested model (through the key's routing
// profile, the site's aliases and routes) and sends the request with the
// account's BYOK key for that provider when it has one, else with the
// platform key configured here, translating it when the provider does not
// speak the client's API. Errors are answered in the envelope of the
// client's API (OpenAI's {"error":{"message","type","param","code"}},
// Anthropic's on the Messages API), since that is what its clients parse;
// they are written by the handler rather than returned to handle_errors.
// Every answer carries X-Agent-Router-Request-Id, and forwarded ones
// X-Agent-Router-Provider and X-Agent-Router-Credential (byok or platform).
type Handler struct {
	// Providers is the platform's configuration of each provider, by name
	// (openai, anthropic, gemini, azure, mistral, together, perplexity,
	// cohere). A provider without an entry uses its default endpoint and is
	// served only with BYOK credentials.
	Providers map[string]*ProviderConfig `json:"providers,omitempty"`

	// MaxBody bounds a request body, in bytes; larger ones get 413.
	// Default: 4194304 (4 MiB).
	MaxBody int64 `json:"max_body,omitempty"`

	// DialTimeout bounds connecting to a provider. Default: 10s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`

	// ResponseHeaderTimeout bounds the wait for a provider's response
	// headers (the whole answer, for non-streamed requests). Default: 5m.
	ResponseHeaderTimeout caddy.Duration `json:"response_header_timeout,omitempty"`

	// Aliases map a logical model name to a model ("provider/model" works),
	// another alias or a route. They are applied before routing and before
	// the credential is chosen, so an alias to another provider's model uses
	// that provider's BYOK key for the account.
	Aliases map[string]string `json:"aliases,omitempty"`

	// Routes map a logical model name to an ordered list of targets: a
	// fallback chain (the default) or a weighted split, each target with a
	// credential pin (auto, byok or platform).
	Routes map[string]*RouteConfig `json:"routes,omitempty"`

	// Console, when present, serves the Agent Router Console under
	// /console/ on this site (see ConsoleConfig). JSON: "console": {}.
	Console *ConsoleConfig `json:"console,omitempty"`

	// Profiles are named routing profiles: sets of aliases and routes that
	// apply to the requests of API keys bound to them (an API key's
	// "profile", set through the admin API). Such a request resolves its
	// model through the profile's aliases and routes first, then the
	// handler's, then plain models; a profile's name shadows a handler
	// alias or route of the same name. A key bound to a profile that is no
	// longer configured is served as if unbound (and logged once).
	Profiles map[string]*ProfileConfig `json:"profiles,omitempty"`

	// DefaultMaxTokens bounds the output limit (max_tokens) the gateway
	// sends to providers that require one (Anthropic) when a request gives
	// none: the target model's maximum output from the built-in catalog
	// (64000 for claude-sonnet-4-5), at most this many tokens. A model the
	// catalog does not know gets this value, or 4096. A limit the client
	// gives is kept, at most the model's maximum. Default: no bound.
	DefaultMaxTokens int `json:"default_max_tokens,omitempty"`

	// BYOKCooldown is how long the gateway stops sending an account's BYOK
	// key after the provider rejected it (401/403): fallback chains skip
	// it, and a request with no other target is answered
	// byok_credential_rejected at once. After it, one request probes the
	// key again. Replacing the key ends it at once. Default: 5m.
	BYOKCooldown caddy.Duration `json:"byok_cooldown,omitempty"`

	// MetricsPerAccount adds per-account series
	// (caddy_agent_router_account_requests_total and
	// caddy_agent_router_account_tokens_total). Off by default: the label
	// grows with the number of accounts.
	MetricsPerAccount bool `json:"metrics_per_account,omitempty"`

	gw      *gateway.Gateway
	console *console.Handler
	app     *App
	logger  *zap.Logger
	// accessLogger is the server's access logger ("http.log.access"),
	// for the entries of requests that carry a key (accesslog.go).
	accessLogger *zap.Logger
}

// ProviderConfig is the platform's configuration of one provider.
type ProviderConfig struct {
	// APIKey is the platform-managed key, used for accounts without a BYOK
	// key for this provider. Use a placeholder such as {env.OPENAI_API_KEY}:
	// it is resolved at provision, so the key never lands in autosave.json or
	// GET /config/. Optional: without it only BYOK credentials serve.
	APIKey string `json:"api_key,omitempty"`

	// BaseURL is the provider's API root. Default: the provider's public
	// endpoint (https://api.openai.com/v1 and so on). Required for azure,
	// as https://{resource}.openai.azure.com. Placeholders are resolved.
	BaseURL string `json:"base_url,omitempty"`

	// APIVersion is Azure's api-version, such as 2024-10-21, or v1 for
	// Azure's v1 API. Default: 2024-10-21.
	APIVersion string `json:"api_version,omitempty"`

	// Organization and Project are sent as OpenAI-Organization and
	// OpenAI-Project with the platform key (openai only).
	Organization string `json:"organization,omitempty"`
	Project      string `json:"project,omitempty"`

	// Models declares model names this provider serves, mapped to the
	// upstream model name ("" keeps the name). For azure, map each model
	// name to its deployment. Declared names take precedence over the
	// built-in catalog.
	Models map[string]string `json:"models,omitempty"`

	// Prices override the price book's list prices for this provider's
	// models, for every payer: each names a model (a catalog name or
	// alias, or a model the book lacks — a fine-tune, an Azure deployment
	// — which it then adds) and any of its prices, decimal strings in USD
	// per 1M tokens: "standard" {input, cache_read, cache_write_5m,
	// cache_write_1h, output, reasoning}, "batch", "flex", "priority",
	// "long_context" {above, standard, ...}; "source", "note",
	// "fees_not_priced". Prices outside plausible bounds (a per-token
	// price typed as per 1M, a negative one) are refused with the model
	// and field named. The book is one per process and fleet: every
	// handler's prices are merged, and a change publishes a new price
	// version when the config starts. `caddy agent-router import-prices`
	// writes these from LiteLLM's price file.
	Prices []pricing.Override `json:"prices,omitempty"`

	// Contract is the platform's contract terms with this provider, each
	// from its effective_from on (unset: from the start): a
	// "discount_percent" off the list price, explicit "rates" per model,
	// or both. They price the requests the platform key serves, and what
	// BYOK requests would have cost the platform (their shadow cost). An
	// account's own terms are set on its BYOK credential instead.
	Contract []pricing.ContractTerm `json:"contract,omitempty"`
}

// RouteConfig is one route: a logical model served by several targets.
type RouteConfig struct {
	// Strategy is "fallback" (try the targets in order; the default) or
	// "split" (pick one target by weight for each request, then fall back
	// through the others, heaviest first).
	Strategy string `json:"strategy,omitempty"`

	// Targets are the models to try. Each has a model ("provider/model",
	// an alias or another route work too), a credential pin — "auto" (the
	// account's BYOK key if it has one, else the platform key; the default),
	// "byok" (only the account's key; skipped when it has none) or
	// "platform" (only the platform key) — and, for splits, a weight (any
	// non-negative numbers; they need not sum to 100).
	Targets []routing.Target `json:"targets"`

	// RetryOn lists the error classes that move a request to the next
	// target: auth, rate_limit, quota, overloaded, server, bad_request,
	// timeout, connect. Default: rate_limit, quota, overloaded, server,
	// timeout, connect. A failure moves on only before the first byte has
	// been sent to the client.
	RetryOn []string `json:"retry_on,omitempty"`

	// MaxAttempts caps the attempts of one request. Default: all targets.
	MaxAttempts int `json:"max_attempts,omitempty"`

	// Timeout bounds the wait for an answer across all the attempts of one
	// request: until a provider's response headers arrive. It never cuts a
	// stream that has begun. Default: none beyond the handler's own
	// timeouts.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// ProfileConfig is one routing profile: aliases and routes with the same
// meaning and syntax as the handler's own.
type ProfileConfig struct {
	// Aliases map a logical model name to a model, alias or route.
	Aliases map[string]string `json:"aliases,omitempty"`
	// Routes map a logical model name to a route.
	Routes map[string]*RouteConfig `json:"routes,omitempty"`
}

func (h *Handler) routingConfig() routing.Config { return toRouting(h.Aliases, h.Routes) }

// profilesConfig converts the profiles for the gateway.
func (h *Handler) profilesConfig() map[string]routing.Config {
	if len(h.Profiles) == 0 {
		return nil
	}
	out := make(map[string]routing.Config, len(h.Profiles))
	for name, p := range h.Profiles {
		if p == nil {
			p = &ProfileConfig{}
		}
		out[name] = toRouting(p.Aliases, p.Routes)
	}
	return out
}

func toRouting(aliases map[string]string, routes map[string]*RouteConfig) routing.Config {
	cfg := routing.Config{Aliases: aliases, Routes: make(map[string]*routing.Route, len(routes))}
	for name, rc := range routes {
		if rc == nil {
			cfg.Routes[name] = nil
			continue
		}
		cfg.Routes[name] = &routing.Route{Strategy: rc.Strategy, Targets: rc.Targets, RetryOn: rc.RetryOn,
			MaxAttempts: rc.MaxAttempts, Timeout: time.Duration(rc.Timeout)}
	}
	return cfg
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.agent_router",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves placeholders and builds the gateway.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.accessLogger = ctx.Logger(httpApp{}).Named("log.access")
	appIface, err := ctx.App("agent_router")
	if err != nil {
		return fmt.Errorf("loading agent_router app: %v", err)
	}
	h.app = appIface.(*App)
	if h.app.store == nil {
		return fmt.Errorf("agent_router app has no store")
	}

	repl := caddy.NewReplacer()
	cfgs := make(map[string]*gateway.ProviderConfig, len(h.Providers))
	var overrides []pricing.Override
	names := make([]string, 0, len(h.Providers))
	for name := range h.Providers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pc := h.Providers[name]
		if providers.Get(name) == nil {
			return fmt.Errorf("provider %q is not supported (supported: %v)", name, providers.Names)
		}
		if pc == nil {
			pc = &ProviderConfig{}
		}
		gc := &gateway.ProviderConfig{
			APIKey: providers.NormalizeKey(repl.ReplaceAll(pc.APIKey, "")),
			Endpoint: providers.Endpoint{
				BaseURL:      repl.ReplaceAll(pc.BaseURL, ""),
				APIVersion:   repl.ReplaceAll(pc.APIVersion, ""),
				Organization: repl.ReplaceAll(pc.Organization, ""),
				Project:      repl.ReplaceAll(pc.Project, ""),
			},
			Models: pc.Models,
		}
		for _, o := range pc.Prices {
			if o.Provider != "" && o.Provider != name {
				return fmt.Errorf("provider %s: price %s names provider %q: a price belongs to the provider block it is in", name, o.Model, o.Provider)
			}
			o.Provider = name
			overrides = append(overrides, o)
		}
		if gc.Contract, err = platformContract(name, pc.Contract); err != nil {
			return err
		}
		if name == providers.Azure && gc.Endpoint.BaseURL == "" && len(pc.Models) > 0 {
			return fmt.Errorf("provider azure: base_url is required (https://{resource}.openai.azure.com)")
		}
		if pc.APIKey != "" && gc.APIKey == "" {
			h.logger.Warn("platform key is empty after resolving placeholders; only BYOK credentials will serve this provider",
				zap.String("provider", name))
		}
		cfgs[name] = gc
	}
	if err := h.app.prices.add(overrides); err != nil {
		return fmt.Errorf("price book: %v", err)
	}
	h.gw, err = gateway.New(gateway.Config{
		Store:                 h.app.store,
		Providers:             cfgs,
		MaxBody:               h.MaxBody,
		DialTimeout:           time.Duration(h.DialTimeout),
		ResponseHeaderTimeout: time.Duration(h.ResponseHeaderTimeout),
		Logger:                h.logger,
		Egress:                h.app.egress,
		Routing:               h.routingConfig(),
		Profiles:              h.profilesConfig(),
		DefaultMaxTokens:      h.DefaultMaxTokens,
		BYOKCooldown:          time.Duration(h.BYOKCooldown),
		Observe:               h.observe,
		Prices:                h.app.store.Prices(),
		Limits:                h.app.limits.Limiter(),
		ProviderLimits:        h.app.providerLimits,
	})
	if err != nil {
		return err
	}
	if err := h.provisionConsole(); err != nil {
		return err
	}
	if err := registerMetrics(ctx, h.MetricsPerAccount); err != nil {
		return err
	}
	h.app.register(h)
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if h.MaxBody < 0 {
		return fmt.Errorf("max_body must not be negative")
	}
	return nil
}

// Cleanup closes idle upstream connections.
func (h *Handler) Cleanup() error {
	if h.app != nil {
		h.app.unregister(h)
	}
	if h.gw != nil {
		h.gw.Close()
	}
	return nil
}

// ServeHTTP serves the data-plane paths (and, with console, /console/) and
// passes the rest on. A request that carries an Agent Router key where
// Caddy's access log would show it gets its access-log entry written here,
// the key REDACTED (accesslog.go).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.console != nil && console.Owns(r) {
		h.console.ServeHTTP(w, r)
		return nil
	}
	owned := h.gw.Owns(r)
	entry, w, r := h.takeAccessEntry(w, r, owned)
	if entry != nil {
		defer func() { entry.write(h.accessLogger) }()
	}
	if !owned {
		err := next.ServeHTTP(w, r)
		if entry != nil {
			entry.err = err
		}
		return err
	}
	h.gw.ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
