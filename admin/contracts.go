package admin

import (
	"net/http"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// getContract: GET accounts/{account}/byok/{provider}/contract → the BYOK
// credential's contract terms and the one in force.
func getContract(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	c, err := o.Contract(r.PathValue("account"), r.PathValue("provider"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

// addContractTerm: POST accounts/{account}/byok/{provider}/contract with a
// term ({"effective_from", "discount_percent", "rates", "note"}) → the
// contract. The term applies from effective_from (default now, never
// earlier) on.
func addContractTerm(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var t pricing.ContractTerm
	if err := decode(r, &t); err != nil {
		return err
	}
	c, err := o.AddContractTerm(r.PathValue("account"), r.PathValue("provider"), t)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

// deleteContractTerm: DELETE
// accounts/{account}/byok/{provider}/contract/{effective_from} (RFC 3339)
// removes a term that has not taken effect yet → the contract.
func deleteContractTerm(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	from, err := time.Parse(time.RFC3339Nano, r.PathValue("from"))
	if err != nil {
		return errorf(http.StatusBadRequest, "the term is named by its effective_from, in RFC 3339 (2027-01-01T00:00:00Z)")
	}
	c, err := o.DeleteContractTerm(r.PathValue("account"), r.PathValue("provider"), from)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}
