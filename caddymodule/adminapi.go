package caddymodule

import (
	"context"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI mounts Agent Router's control plane (package admin) under
// /agent_router/ on Caddy's admin endpoint: accounts, API keys, console
// users, BYOK credentials and their tests, providers, the request log,
// usage and the fleet's status. It inherits the admin endpoint's protections (local
// address or socket, origin checks, remote-admin mTLS). Errors are Caddy's
// {"error": "..."} with a 4xx status.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.agent_router",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// api reads the running app at request time: admin modules are provisioned
// before apps on every config load and are never cleaned up, so they hold
// nothing themselves.
var api = &admin.API{
	Store: func() *store.Store {
		if a := active.Load(); a != nil {
			return a.store
		}
		return nil
	},
	PlatformKey: func(provider string) bool {
		if a := active.Load(); a != nil {
			return a.platformKey(provider)
		}
		return false
	},
	Egress: func() *egress.Policy {
		if a := active.Load(); a != nil {
			return a.egress
		}
		return nil
	},
	TestCredential: testCredential,
	Reconcile:      activeReconciling,
	Limits:         activeLimits,
	Profiles: func() []string {
		if a := active.Load(); a != nil {
			return a.profiles()
		}
		return nil
	},
}

// testCredential tests a key through a running handler's gateway, so the
// call uses the gateway's upstream transports and configured endpoints.
func testCredential(ctx context.Context, provider, key string, extras store.Extras) providers.TestResult {
	var g *gateway.Gateway
	if a := active.Load(); a != nil {
		g = a.testGateway(provider)
	}
	if g == nil {
		return providers.TestResult{Outcome: providers.TestError, Message: "no agent_router handler is running to test keys with: add one to the config"}
	}
	return g.TestCredential(ctx, provider, key, extras)
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{
		Pattern: admin.Prefix,
		Handler: caddy.AdminHandlerFunc(serveAdmin),
	}}
}

func serveAdmin(w http.ResponseWriter, r *http.Request) error {
	err := api.ServeHTTP(w, r)
	var ae *admin.Error
	if errors.As(err, &ae) {
		return caddy.APIError{HTTPStatus: ae.Status, Err: ae.Err}
	}
	return err
}

// Interface guards
var _ caddy.AdminRouter = (*AdminAPI)(nil)
