package caddymodule

import (
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/store"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI mounts Agent Router's control plane under /agent_router/ on
// Caddy's admin endpoint: accounts, API keys, BYOK credentials, providers
// and the request log. It inherits the admin endpoint's protections (local
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
	Profiles: func() []string {
		if a := active.Load(); a != nil {
			return a.profiles()
		}
		return nil
	},
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
