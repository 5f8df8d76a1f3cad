package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// listPrices: GET prices → the price book's versions (what changed in
// each) and the current one.
func listPrices(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	book, err := o.Prices()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, book)
}

// getPriceVersion: GET prices/{version} → the version whole, with its
// table: what a request-log cost naming it is re-derived from.
func getPriceVersion(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	rec, err := o.PriceVersion(r.PathValue("version"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rec)
}
