package admin

import (
	"errors"
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// maxBulkBody bounds the body of POST tenants: 8 MiB, room for a call of
// the store's 10,000 records with long names and keys.
const maxBulkBody = 8 << 20

type tenantsIn struct {
	Tenants []ops.TenantInput `json:"tenants"`
}

type tenantsOut struct {
	Tenants []ops.CreatedTenant `json:"tenants"`
}

// createTenants: POST tenants {"tenants": [{"id", "name", "keys": [{"name",
// "profile"}], "byok": [{"provider", "api_key", ...}]}]} → 201 the
// accounts, each with its API keys' plaintext (shown this once) and its
// BYOK slots (never the key). All or nothing: an existing id is a 409 and
// nothing is created. More records than the store takes in one call
// (ops.BulkLimit) is a 413 whose message gives the bound.
func createTenants(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var in tenantsIn
	if err := decodeMax(r, &in, false, maxBulkBody); err != nil {
		return err
	}
	out, err := o.CreateTenants(in.Tenants)
	if errors.Is(err, store.ErrTooLarge) {
		return &Error{http.StatusRequestEntityTooLarge, err}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, tenantsOut{out})
}
