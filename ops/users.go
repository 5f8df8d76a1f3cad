package ops

import (
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Console users: the operator creates an account's first owner (the admin
// API, the add-user command); owners invite the others from the console.
// A user is a membership of a person (one email, one password) in an
// account; a person may be in several accounts and switches between them
// in the console.

// SetupLinkTTL is how long a setup link works unless Ops.InviteTTL says
// otherwise.
const SetupLinkTTL = 72 * time.Hour

// SetupPath is the console path of a setup link for token. The token is in
// the fragment, which browsers never send to the server, so it stays out of
// access logs; prefix the console site's origin (http://localhost:8080).
func SetupPath(token string) string { return "/console/setup#" + token }

// Invitation is a membership with its one-time setup link.
type Invitation struct {
	store.User
	// SetupPath is the console path (with the token in its fragment) where
	// the user sets a password; it works once, until SetupExpiresAt.
	SetupPath      string    `json:"setup_path"`
	SetupExpiresAt time.Time `json:"setup_expires_at"`
}

func (o *Ops) inviteTTL() time.Duration {
	if o.InviteTTL > 0 {
		return o.InviteTTL
	}
	return SetupLinkTTL
}

// InviteUser invites email into account as role (owner or member; ""
// is member) and returns the invited membership and its one-time link: a
// new person chooses a password there, a person who already has one (from
// another account) enters it to accept. The answer is the same either way.
// An email already in the account is a Conflict.
func (o *Ops) InviteUser(account, email, role string) (Invitation, error) {
	if role == "" {
		role = store.RoleMember
	}
	if !store.ValidRole(role) {
		return Invitation{}, errorf(Invalid, "role must be owner or member")
	}
	u, tok, exp, err := o.Store.InviteUser(account, email, role, o.inviteTTL())
	if err != nil {
		return Invitation{}, err
	}
	return Invitation{User: u, SetupPath: SetupPath(tok), SetupExpiresAt: exp}, nil
}

// ResetUser issues a new setup link for account's user id (a forgotten
// password): it sets the person's password, in every account they are in,
// and accepts the membership; earlier links of the user stop working;
// sessions end when it is used.
func (o *Ops) ResetUser(account, id string) (Invitation, error) {
	u, err := o.Store.User(account, id)
	if err != nil {
		return Invitation{}, err
	}
	tok, exp, err := o.Store.IssueSetupToken(account, u.ID, o.inviteTTL())
	if err != nil {
		return Invitation{}, err
	}
	return Invitation{User: u, SetupPath: SetupPath(tok), SetupExpiresAt: exp}, nil
}

// Users lists account's memberships, oldest first, a page at a time; never
// a password or a token.
func (o *Ops) Users(account string, p Page) (List[store.User], error) {
	return paged(p, func() ([]store.User, error) { return o.Store.Users(account) },
		func(r store.PageRequest) (store.Page[store.User], error) { return o.Store.UsersPage(account, r) })
}

// SetUserRole makes account's user id an owner or a member; demoting the
// last owner is a Conflict.
func (o *Ops) SetUserRole(account, id, role string) (store.User, error) {
	return o.Store.SetUserRole(account, id, role)
}

// DeleteUser removes account's user id: their sessions in the account end,
// and the person goes with their last account. Removing the last owner is
// a Conflict.
func (o *Ops) DeleteUser(account, id string) error { return o.Store.DeleteUser(account, id) }
