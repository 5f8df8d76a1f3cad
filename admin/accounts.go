package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

type accountIn struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// createAccount: POST accounts {"id", "name"} → 201 the account.
func createAccount(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var in accountIn
	if err := decode(r, &in); err != nil {
		return err
	}
	acct, err := o.CreateAccount(in.ID, in.Name)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, acct)
}

// listAccounts: GET accounts → every account, by id; with limit or
// cursor, a page of them (pageParams).
func listAccounts(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	return listRoute(w, r, o.Accounts)
}

func getAccount(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	acct, err := o.Account(r.PathValue("account"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, acct)
}

// deleteAccount: DELETE accounts/{account} → 204; its keys, credentials
// and memberships go too.
func deleteAccount(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	if err := o.DeleteAccount(r.PathValue("account")); err != nil {
		return err
	}
	return noContent(w)
}
