package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Console users: the operator creates an account's first owner here; owners
// invite the others from the console. A user is a membership of a person
// (one email, one password) in an account; a person may be in several
// accounts and switches between them in the console.

// SetupLinkTTL is how long a setup link from the admin API works.
const SetupLinkTTL = 72 * time.Hour

// SetupPath is the console path of a setup link for token. The token is in
// the fragment, which browsers never send to the server, so it stays out of
// access logs; prefix the console site's origin (http://localhost:8080).
func SetupPath(token string) string { return "/console/setup#" + token }

type userIn struct {
	Email string `json:"email"`
	Role  string `json:"role"`
}

// createdUser is a new user with its one-time setup link.
type createdUser struct {
	store.User
	// SetupPath is the console path (with the token in its fragment) where
	// the user sets a password; it works once, until SetupExpiresAt.
	SetupPath      string    `json:"setup_path"`
	SetupExpiresAt time.Time `json:"setup_expires_at"`
}

// CreateUser invites email into account and returns the invited user and
// its one-time link: a new person chooses a password there, a person who
// already has one (from another account) enters it to accept. Shared by
// the admin API and the add-user command.
func CreateUser(s *store.Store, account, email, role string) (store.User, string, time.Time, error) {
	if role == "" {
		role = store.RoleMember
	}
	u, tok, exp, err := s.InviteUser(account, email, role, SetupLinkTTL)
	if err != nil {
		return store.User{}, "", time.Time{}, userErr(err)
	}
	return u, SetupPath(tok), exp, nil
}

func userErr(err error) error {
	switch {
	case errors.Is(err, store.ErrInvalidInput):
		return &Error{http.StatusBadRequest, err}
	case errors.Is(err, store.ErrLastOwner):
		return &Error{http.StatusConflict, err}
	}
	return storeErr(err)
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, s *store.Store, parts []string) error {
	var in userIn
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Email == "" {
		return errorf(http.StatusBadRequest, "email is required: {\"email\": \"dev@example.com\", \"role\": \"owner\"}")
	}
	if in.Role != "" && !store.ValidRole(in.Role) {
		return errorf(http.StatusBadRequest, "role must be owner or member")
	}
	u, path, exp, err := CreateUser(s, parts[1], in.Email, in.Role)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, createdUser{User: u, SetupPath: path, SetupExpiresAt: exp})
}

func (a *API) listUsers(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	users, err := s.Users(parts[1])
	if err != nil {
		return userErr(err)
	}
	return writeJSON(w, http.StatusOK, users)
}

// resetUser issues a new setup link for an existing user (a forgotten
// password): it sets the person's password, in every account they are in,
// and accepts the membership; earlier links of the user stop working;
// sessions end when it is used.
func (a *API) resetUser(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	u, err := s.User(parts[1], parts[3])
	if err != nil {
		return userErr(err)
	}
	tok, exp, err := s.IssueSetupToken(parts[1], u.ID, SetupLinkTTL)
	if err != nil {
		return userErr(err)
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, createdUser{User: u, SetupPath: SetupPath(tok), SetupExpiresAt: exp})
}

func (a *API) deleteUser(w http.ResponseWriter, _ *http.Request, s *store.Store, parts []string) error {
	if err := s.DeleteUser(parts[1], parts[3]); err != nil {
		return userErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
