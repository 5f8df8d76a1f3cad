package caddymodule

import (
	"math"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/agentrouter/caddy-agentrouter/providers"
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
//		}
//		max_body                <size>       # default 4MiB
//		dial_timeout            <duration>   # default 10s
//		response_header_timeout <duration>   # default 5m
//	}
//
// provider may repeat, once per provider name; model may repeat.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
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
			if err := pc.unmarshal(d); err != nil {
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
		case "dial_timeout", "response_header_timeout":
			opt := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("%s: invalid duration %q", opt, d.Val())
			}
			if opt == "dial_timeout" {
				h.DialTimeout = caddy.Duration(dur)
			} else {
				h.ResponseHeaderTimeout = caddy.Duration(dur)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized agent_router option: %s", d.Val())
		}
	}
	return nil
}

func (pc *ProviderConfig) unmarshal(d *caddyfile.Dispenser) error {
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
//			master_key      <key>       # e.g. {env.AGENT_ROUTER_MASTER_KEY}
//			log_max_records <count>     # default 100000
//			log_max_age     <duration>  # default 720h
//		}
//	}
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
		case "store", "master_key", "log_max_records", "log_max_age":
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
		case "store":
			a.Store = v
		case "master_key":
			a.MasterKey = v
		case "log_max_records":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return d.Errf("log_max_records: must be a positive number, got %q", v)
			}
			a.LogMaxRecords = n
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
