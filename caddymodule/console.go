package caddymodule

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/agentrouter/caddy-agentrouter/console"
	"github.com/agentrouter/caddy-agentrouter/egress"
)

// ConsoleConfig turns on the Agent Router Console under /console/ on the
// handler's site: account members sign in (users are created with the
// admin API, POST /agent_router/accounts/{id}/users, or `caddy agent-router
// add-user`) and manage their BYOK keys, API keys and members, use the
// playground, and read request logs and usage. The handler must see the
// /console/ paths (do not put it behind a matcher that excludes them).
// Over HTTPS the session cookie is Secure.
//
// Serve it on a host of its own (console.example.com): every page of a
// host shares its origin, so another app proxied on the same host could
// read the console's pages, its anti-forgery token and a new API key.
//
// Behind a proxy that terminates TLS, either list the proxy in the
// server's trusted_proxies (the console then takes the scheme and host
// from its X-Forwarded-Proto and X-Forwarded-Host, and the client address
// for the sign-in throttle from Caddy's client_ip) or set external_url.
type ConsoleConfig struct {
	// SessionIdle ends a session after this long without a request.
	// Default: 12h.
	SessionIdle caddy.Duration `json:"session_idle,omitempty"`
	// SessionMax ends a session this long after sign-in, however busy.
	// Default: 168h (7 days).
	SessionMax caddy.Duration `json:"session_max,omitempty"`
	// InviteTTL is how long a setup link (first owner or an invited
	// member) works. Default: 72h.
	InviteTTL caddy.Duration `json:"invite_ttl,omitempty"`
	// ExternalURL is the console's origin as browsers see it, such as
	// https://console.example.com, when a proxy in front of Caddy
	// terminates TLS and is not in trusted_proxies: state changes must
	// come from it, cookies are Secure when it is https, and invitation
	// links start with it. Default: taken from each request.
	ExternalURL string `json:"external_url,omitempty"`
}

// provisionConsole builds the console over the handler's gateway.
func (h *Handler) provisionConsole() error {
	if h.Console == nil {
		return nil
	}
	app := h.app
	c, err := console.New(console.Config{
		Store:       app.store,
		Gateway:     h.gw,
		Egress:      func() *egress.Policy { return app.egress },
		PlatformKey: h.gw.PlatformKeyConfigured,
		ClientIP:    clientIP,
		ExternalURL: h.Console.ExternalURL,
		Origin:      requestOrigin,
		SessionIdle: time.Duration(h.Console.SessionIdle),
		SessionMax:  time.Duration(h.Console.SessionMax),
		InviteTTL:   time.Duration(h.Console.InviteTTL),
		Reconcile:   app.reconciling,
		Limits:      limitingOf(app.limits),
		Logger:      h.logger.Named("console"),
	})
	if err != nil {
		return fmt.Errorf("setting up the console: %v", err)
	}
	h.console = c
	return nil
}

// clientIP is Caddy's idea of the client address (trusted_proxies
// applied), for the console's sign-in throttle.
func clientIP(r *http.Request) string {
	if v, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && v != "" {
		return v
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// requestOrigin is the scheme and host the browser used: from a proxy the
// server trusts (trusted_proxies), its X-Forwarded-Proto and
// X-Forwarded-Host; otherwise the connection's own.
func requestOrigin(r *http.Request) (scheme, host string) {
	scheme, host = "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); !trusted {
		return scheme, host
	}
	if p := firstForwarded(r.Header.Get("X-Forwarded-Proto")); p == "https" || p == "http" {
		scheme = p
	}
	if h := firstForwarded(r.Header.Get("X-Forwarded-Host")); h != "" {
		host = h
	}
	return scheme, host
}

// firstForwarded is the first value of a comma-separated forwarding header
// (the one the client-facing proxy set).
func firstForwarded(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.ToLower(strings.TrimSpace(v))
}

// unmarshalConsole reads `console` or `console { ... }`.
func (c *ConsoleConfig) unmarshal(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		switch opt {
		case "session_idle", "session_max", "invite_ttl":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("console %s: invalid duration %q", opt, d.Val())
			}
			switch opt {
			case "session_idle":
				c.SessionIdle = caddy.Duration(dur)
			case "session_max":
				c.SessionMax = caddy.Duration(dur)
			default:
				c.InviteTTL = caddy.Duration(dur)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "external_url":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if _, err := console.ParseExternalURL(d.Val()); err != nil {
				return d.Err(err.Error())
			}
			c.ExternalURL = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("console: unrecognized option %s (use session_idle, session_max, invite_ttl or external_url)", opt)
		}
	}
	return nil
}
