package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Console users: the operator creates an account's first owner here; owners
// invite the others from the console (ops/users.go).

type userIn struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// createUser: POST accounts/{account}/users {"email", "role"} → 201 the
// invited user with its one-time setup link.
func createUser(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var in userIn
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Email == "" {
		return errorf(http.StatusBadRequest, "email is required: {\"email\": \"dev@example.com\", \"role\": \"owner\"}")
	}
	inv, err := o.InviteUser(r.PathValue("account"), in.Email, in.Role)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, inv)
}

// listUsers: GET accounts/{account}/users → the account's memberships,
// oldest first (a page with limit or cursor).
func listUsers(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	account := r.PathValue("account")
	return listRoute(w, r, func(p ops.Page) (ops.List[store.User], error) { return o.Users(account, p) })
}

// resetUser: POST accounts/{account}/users/{user}/setup → a new setup link
// (a forgotten password).
func resetUser(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	inv, err := o.ResetUser(r.PathValue("account"), r.PathValue("user"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, inv)
}

func deleteUser(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	if err := o.DeleteUser(r.PathValue("account"), r.PathValue("user")); err != nil {
		return err
	}
	return noContent(w)
}
