package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// fleetStatus answers GET fleet: this instance's fleet status and the live
// members.
func fleetStatus(w http.ResponseWriter, _ *http.Request, o *ops.Ops) error {
	return writeJSON(w, http.StatusOK, o.Fleet())
}
