package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// listProviders: GET providers → each provider, and whether the running
// config has a platform key for it.
func listProviders(w http.ResponseWriter, _ *http.Request, o *ops.Ops) error {
	return writeJSON(w, http.StatusOK, o.Providers())
}
