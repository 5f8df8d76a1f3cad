package caddymodule

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("agent_router", parseHandler)
	// Run before respond (and so before reverse_proxy, file_server and
	// the rest) so users need no order line: a site's catch-all respond or
	// reverse_proxy still serves every path the gateway does not own.
	httpcaddyfile.RegisterDirectiveOrder("agent_router", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterGlobalOption("agent_router", parseGlobal)
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	agent_router {
//		provider <name> {
//			api_key      <key>           # platform key, e.g. {env.OPENAI_API_KEY}
//			base_url     <url>
//			api_version  <version>       # azure
//			organization <org>           # openai
//			project      <project>       # openai
//			model        <name> [<upstream name or azure deployment>]
//			price <model> {              # override the price book (USD per 1M tokens; repeatable)
//				input 2.50
//				cache_read 1.25
//				cache_write_5m 3.125
//				cache_write_1h 5
//				output 10
//				reasoning 10             # only where priced apart from output
//				batch|flex|priority { input … output … }
//				long_context <above tokens> { input … output … }
//				source <text>
//				note <text>
//				fees_not_priced <text>
//			}
//			contract [<effective_from>] { # the platform's own terms with the provider (repeatable)
//				discount <percent>
//				rate <model> { input … output … }
//				note <text>
//			}
//		}
//		alias <name> <model>                 # a model-name override
//		route <name> {                       # a fallback chain or a split
//			strategy     fallback|split      # default fallback
//			to           <model> [auto|byok|platform] [weight <n>]
//			retry_on     <class>...          # default rate_limit quota overloaded server timeout connect
//			max_attempts <n>
//			timeout      <duration>
//		}
//		profile <name> {                     # a routing profile for the API keys bound to it
//			alias <name> <model>             # same syntax as above; repeatable
//			route <name> { ... }             # same syntax as above; repeatable
//		}
//		max_body                <size>       # default 4MiB
//		dial_timeout            <duration>   # default 10s
//		response_header_timeout <duration>   # default 5m
//		default_max_tokens      <n>          # bound on the output limit filled in when a request gives none (default: the model's maximum)
//		byok_cooldown           <duration>   # how long a rejected BYOK key is not sent; default 5m
//		metrics_per_account                  # add per-account metric series
//		console [{                           # serve the Agent Router Console under /console/
//			session_idle <duration>          # default 12h
//			session_max  <duration>          # default 168h
//			invite_ttl   <duration>          # default 72h
//			external_url <origin>            # behind a TLS-terminating proxy not in trusted_proxies
//		}]
//	}
//
// provider may repeat, once per provider name; model, alias, route, profile
// and to may repeat. A model names a catalog model, a declared model,
// "provider/model", an alias or a route. Inside a profile, alias and route
// targets may also name the handler's aliases and routes, and a profile's
// alias or route may reuse (shadow) a handler name. An API key is bound to a
// profile through the admin API (POST or PATCH
// /agent_router/accounts/{id}/keys with {"profile": "<name>"}).
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var lines nameLines
	profileLines := map[string]*nameLines{}
	for d.NextBlock(0) {
		switch d.Val() {
		case "provider":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			if providers.Get(name) == nil {
				return d.Errf("unknown provider %q (supported: %v)", name, providers.Names)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if h.Providers == nil {
				h.Providers = make(map[string]*ProviderConfig)
			}
			if _, dup := h.Providers[name]; dup {
				return d.Errf("provider %s is configured twice", name)
			}
			pc := new(ProviderConfig)
			if err := pc.unmarshal(d, name); err != nil {
				return err
			}
			h.Providers[name] = pc
		case "max_body":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := humanize.ParseBytes(d.Val())
			if err != nil || n == 0 || n > math.MaxInt64 {
				return d.Errf("max_body: invalid size %q", d.Val())
			}
			h.MaxBody = int64(n)
			if d.NextArg() {
				return d.ArgErr()
			}
		case "dial_timeout", "response_header_timeout", "byok_cooldown":
			opt := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("%s: invalid duration %q", opt, d.Val())
			}
			switch opt {
			case "dial_timeout":
				h.DialTimeout = caddy.Duration(dur)
			case "response_header_timeout":
				h.ResponseHeaderTimeout = caddy.Duration(dur)
			default:
				h.BYOKCooldown = caddy.Duration(dur)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "metrics_per_account":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.MetricsPerAccount = true
		case "console":
			if h.Console != nil {
				return d.Errf("console is configured twice")
			}
			h.Console = new(ConsoleConfig)
			if err := h.Console.unmarshal(d); err != nil {
				return err
			}
		case "default_max_tokens":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return d.Errf("default_max_tokens: must be a positive number, got %q", d.Val())
			}
			h.DefaultMaxTokens = n
			if d.NextArg() {
				return d.ArgErr()
			}
		case "alias":
			if err := unmarshalAlias(d, &h.Aliases, &lines); err != nil {
				return err
			}
		case "route":
			if err := unmarshalRouteLine(d, &h.Routes, &lines); err != nil {
				return err
			}
		case "profile":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.Errf("profile: want 'profile <name> { alias ... route ... }'")
			}
			name := args[0]
			if err := store.ValidateProfileName(name); err != nil {
				return d.Errf("profile %q: the name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
			}
			if _, dup := h.Profiles[name]; dup {
				return d.Errf("profile %s is defined twice", name)
			}
			pl := &nameLines{}
			p := &ProfileConfig{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "alias":
					if err := unmarshalAlias(d, &p.Aliases, pl); err != nil {
						return err
					}
				case "route":
					if err := unmarshalRouteLine(d, &p.Routes, pl); err != nil {
						return err
					}
				default:
					return d.Errf("profile %s: unrecognized option %s (use alias or route)", name, d.Val())
				}
			}
			if h.Profiles == nil {
				h.Profiles = make(map[string]*ProfileConfig)
			}
			h.Profiles[name], profileLines[name] = p, pl
		default:
			return d.Errf("unrecognized agent_router option: %s", d.Val())
		}
	}
	if err := h.checkRouting(lines); err != nil {
		return err
	}
	return h.checkProfiles(profileLines)
}

// unmarshalAlias reads 'alias <name> <model>' into *aliases.
func unmarshalAlias(d *caddyfile.Dispenser, aliases *map[string]string, lines *nameLines) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("alias: want 'alias <name> <model>', got %d arguments", len(args))
	}
	if err := lines.claim(d, args[0]); err != nil {
		return err
	}
	if *aliases == nil {
		*aliases = make(map[string]string)
	}
	(*aliases)[args[0]] = args[1]
	return nil
}

// unmarshalRouteLine reads 'route <name> { ... }' into *routes.
func unmarshalRouteLine(d *caddyfile.Dispenser, routes *map[string]*RouteConfig, lines *nameLines) error {
	args := d.RemainingArgs()
	if len(args) != 1 {
		return d.Errf("route: want 'route <name> { ... }'")
	}
	if err := lines.claim(d, args[0]); err != nil {
		return err
	}
	rc, err := unmarshalRoute(d, args[0])
	if err != nil {
		return err
	}
	if *routes == nil {
		*routes = make(map[string]*RouteConfig)
	}
	(*routes)[args[0]] = rc
	return nil
}

// nameLines remembers where each alias and route was defined, so routing
// errors found once the whole block is read (cycles, unknown models) point
// at the line at fault.
type nameLines struct {
	file  string
	lines map[string]int
}

func (n *nameLines) claim(d *caddyfile.Dispenser, name string) error {
	if n.lines == nil {
		n.lines = make(map[string]int)
	}
	if line, dup := n.lines[name]; dup {
		return d.Errf("%q is already defined as an alias or route at line %d", name, line)
	}
	n.lines[name], n.file = d.Line(), d.File()
	return nil
}

// checkRouting validates aliases and routes as the gateway will at
// provision, against the models this block declares and the built-in
// catalog, so that a Caddyfile error names its line.
func (h *Handler) checkRouting(lines nameLines) error {
	if len(h.Aliases) == 0 && len(h.Routes) == 0 {
		return nil
	}
	return lines.locate(routing.Compile(h.routingConfig(), h.declaredCheck()))
}

// checkProfiles validates each profile laid over the handler's routing, as
// the gateway compiles it.
func (h *Handler) checkProfiles(lines map[string]*nameLines) error {
	names := make([]string, 0, len(h.Profiles))
	for name := range h.Profiles {
		names = append(names, name)
	}
	sort.Strings(names)
	profiles := h.profilesConfig()
	for _, name := range names {
		_, err := routing.Compile(routing.Overlay(h.routingConfig(), profiles[name]), h.declaredCheck())
		if err == nil {
			continue
		}
		// An error about a name the profile defines points at the
		// profile's line; one about a handler name, at the handler's.
		var ce *routing.ConfigError
		if pl := lines[name]; pl != nil && errors.As(err, &ce) {
			if line, ok := pl.lines[ce.Name]; ok {
				return fmt.Errorf("profile %s: %s, at %s:%d", name, ce.Msg, pl.file, line)
			}
		}
		return fmt.Errorf("profile %s: %w", name, err)
	}
	return nil
}

func (h *Handler) declaredCheck() func(string) error {
	declared := make(map[string]bool)
	for _, pc := range h.Providers {
		if pc == nil {
			continue
		}
		for m := range pc.Models {
			declared[m] = true
		}
	}
	return func(model string) error {
		return providers.CheckModel(model, func(m string) bool { return declared[m] })
	}
}

// locate adds the line of the alias or route a routing error is about.
func (n *nameLines) locate(_ *routing.Table, err error) error {
	var ce *routing.ConfigError
	if errors.As(err, &ce) {
		if line, ok := n.lines[ce.Name]; ok {
			return fmt.Errorf("%s, at %s:%d", ce.Msg, n.file, line)
		}
	}
	return err
}

// unmarshalRoute reads a route block:
//
//	route <name> {
//		strategy     fallback|split
//		to           <model> [auto|byok|platform] [weight <n>]
//		retry_on     <class>...
//		max_attempts <n>
//		timeout      <duration>
//	}
func unmarshalRoute(d *caddyfile.Dispenser, name string) (*RouteConfig, error) {
	rc := new(RouteConfig)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "strategy":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			rc.Strategy = d.Val()
			if rc.Strategy != routing.StrategyFallback && rc.Strategy != routing.StrategySplit {
				return nil, d.Errf("route %s: unknown strategy %q (use fallback or split)", name, rc.Strategy)
			}
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "to":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.Errf("route %s: want 'to <model> [auto|byok|platform] [weight <n>]'", name)
			}
			t := routing.Target{Model: args[0]}
			for i := 1; i < len(args); i++ {
				switch a := args[i]; {
				case a == "weight":
					if i+1 >= len(args) {
						return nil, d.Errf("route %s: weight needs a number", name)
					}
					w, err := strconv.ParseFloat(args[i+1], 64)
					if err != nil || math.IsNaN(w) || math.IsInf(w, 0) {
						return nil, d.Errf("route %s: invalid weight %q", name, args[i+1])
					}
					if w < 0 {
						return nil, d.Errf("route %s: target %s: negative weight %v", name, t.Model, w)
					}
					t.Weight = w
					i++
				case routing.ValidPin(routing.Pin(a)) && t.Credential == "":
					t.Credential = routing.Pin(a)
				default:
					return nil, d.Errf("route %s: target %s: unexpected %q (want auto, byok, platform or weight <n>)", name, t.Model, a)
				}
			}
			rc.Targets = append(rc.Targets, t)
		case "retry_on":
			rc.RetryOn = d.RemainingArgs()
			if len(rc.RetryOn) == 0 {
				return nil, d.ArgErr()
			}
		case "max_attempts":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n <= 0 {
				return nil, d.Errf("route %s: max_attempts must be a positive number, got %q", name, d.Val())
			}
			rc.MaxAttempts = n
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "timeout":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return nil, d.Errf("route %s: invalid timeout %q", name, d.Val())
			}
			rc.Timeout = caddy.Duration(dur)
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		default:
			return nil, d.Errf("route %s: unrecognized option %s", name, opt)
		}
	}
	if len(rc.Targets) == 0 {
		return nil, d.Errf("route %s: has no targets (add 'to <model>' lines)", name)
	}
	return rc, nil
}

func (pc *ProviderConfig) unmarshal(d *caddyfile.Dispenser, name string) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "api_key", "base_url", "api_version", "organization", "project":
			if !d.NextArg() {
				return d.ArgErr()
			}
			v := d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			switch opt {
			case "api_key":
				pc.APIKey = v
			case "base_url":
				pc.BaseURL = v
			case "api_version":
				pc.APIVersion = v
			case "organization":
				pc.Organization = v
			case "project":
				pc.Project = v
			}
		case "model":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			if pc.Models == nil {
				pc.Models = make(map[string]string)
			}
			if _, dup := pc.Models[args[0]]; dup {
				return d.Errf("model %s is declared twice", args[0])
			}
			up := ""
			if len(args) == 2 && args[1] != args[0] {
				up = args[1]
			}
			pc.Models[args[0]] = up
		case "price":
			o, err := unmarshalPrice(d, name)
			if err != nil {
				return err
			}
			for _, prev := range pc.Prices {
				if prev.Model == o.Model {
					return d.Errf("price %s is given twice", o.Model)
				}
			}
			pc.Prices = append(pc.Prices, o)
		case "contract":
			t, err := unmarshalContract(d)
			if err != nil {
				return err
			}
			pc.Contract = append(pc.Contract, t)
		default:
			return d.Errf("unrecognized provider option: %s", opt)
		}
	}
	return nil
}

// parseGlobal sets up the agent_router app from the global option. Syntax:
//
//	{
//		agent_router {
//			store           <path>      # default {caddy data dir}/agent_router/agent_router.db
//			store etcd {                # fleet mode: shared records in etcd (see unmarshalEtcd)
//				endpoints https://10.0.0.1:2379 https://10.0.0.2:2379 https://10.0.0.3:2379
//			}
//			master_key      <key>       # e.g. {env.AGENT_ROUTER_MASTER_KEY}
//			old_master_key  <key>       # repeatable; for rotating master_key
//			log_max_records <count>     # default 100000
//			log_max_age     <duration>  # default 720h
//			usage_flush_interval <duration>  # default 10s
//			usage_retention      <duration>  # default 2160h
//			byok_allow_hosts <host|ip|cidr>...  # repeatable; private BYOK base URLs allowed
//			byok_allow_http                     # accept http:// BYOK base URLs
//			reconcile off | {                   # the providers' usage records against ours (see unmarshalReconcile)
//				interval 1h
//				days     3
//			}
//			limits {                            # budgets and rate limits (see unmarshalLimits, LimitsConfig)
//				reserve_output_cap 4096         # output tokens a reservation assumes at most; "off" = none
//				unpriced           refuse       # or a rate: unpriced 15 (USD per 1M tokens)
//				rate_limit each_key     rpm 600 tpm 2000000 concurrent 20
//				budget     each_account 500 month payer platform
//			}
//		}
//	}
//
// An account's own budgets, rate limits, spillover allowance and caps are
// not config (they change at run time): the admin API and the console set
// them.
func parseGlobal(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if _, ok := existing.(httpcaddyfile.App); ok {
		d.Next() // load the option name, so the error points at its line
		return nil, d.Err("agent_router global option is given twice")
	}
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "agent_router", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the global option's tokens; see
// parseGlobal for the syntax.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
		case "byok_allow_hosts":
			if !d.NextArg() {
				return d.ArgErr()
			}
			a.BYOKAllowHosts = append(a.BYOKAllowHosts, d.Val())
			a.BYOKAllowHosts = append(a.BYOKAllowHosts, d.RemainingArgs()...)
			continue
		case "store":
			// "store <path>" (the local file) or "store etcd { ... }"
			// (fleet mode; the local file keeps the request log).
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.ArgErr()
			}
			if args[0] != "etcd" {
				a.Store = args[0]
				continue
			}
			if a.Etcd != nil {
				return d.Err("store etcd is given twice")
			}
			ec, err := unmarshalEtcd(d)
			if err != nil {
				return err
			}
			a.Etcd = ec
			continue
		case "limits":
			if a.Limits != nil {
				return d.Err("limits is given twice")
			}
			lc, err := unmarshalLimits(d)
			if err != nil {
				return err
			}
			a.Limits = lc
			continue
		case "byok_allow_http":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.BYOKAllowHTTP = true
			continue
		case "reconcile":
			if a.Reconcile != nil {
				return d.Err("reconcile is given twice")
			}
			rc, err := unmarshalReconcile(d)
			if err != nil {
				return err
			}
			a.Reconcile = rc
			continue
		case "master_key", "old_master_key", "log_max_records", "log_max_age", "usage_flush_interval", "usage_retention":
		default:
			return d.Errf("unrecognized agent_router global option: %s", opt)
		}
		if !d.NextArg() {
			return d.ArgErr()
		}
		v := d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		switch opt {
		case "old_master_key":
			a.OldMasterKeys = append(a.OldMasterKeys, v)
		case "master_key":
			a.MasterKey = v
		case "log_max_records":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return d.Errf("log_max_records: must be a positive number, got %q", v)
			}
			a.LogMaxRecords = n
		case "usage_flush_interval", "usage_retention":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("%s: invalid duration %q", opt, v)
			}
			if opt == "usage_flush_interval" {
				a.UsageFlushInterval = caddy.Duration(dur)
			} else {
				a.UsageRetention = caddy.Duration(dur)
			}
		case "log_max_age":
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur <= 0 {
				return d.Errf("log_max_age: invalid duration %q", v)
			}
			a.LogMaxAge = caddy.Duration(dur)
		default:
			return d.Errf("unrecognized agent_router global option: %s", opt)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*App)(nil)
)
