package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

type keysData struct {
	// Keys is a page of the account's keys, oldest first.
	Keys     []store.APIKey
	Pager    pager
	Profiles []string
	Owner    bool
	// Created is the plaintext of a key just created: shown once.
	Created string
	Name    string
	Error   string
	Notice  string
}

func (h *Handler) profiles() []string {
	if h.cfg.Gateway == nil {
		return nil
	}
	return h.cfg.Gateway.Profiles()
}

// keys lists all of account's API keys, oldest first (the filters of the
// logs and usage pages name them).
func (h *Handler) keys(account string) ([]store.APIKey, error) {
	l, err := h.ops.Keys(account, ops.Page{})
	return l.Items, err
}

// keysData is the API Keys page: the page of keys p.
func (h *Handler) keysData(r *request, p ops.Page) (keysData, error) {
	l, err := h.ops.Keys(r.account, p)
	if err != nil {
		return keysData{}, err
	}
	return keysData{Owner: r.isOwner, Profiles: h.profiles(), Keys: l.Items, Pager: links("/keys", r.URL.Query(), p, l.Next)}, nil
}

func (h *Handler) keysPage(w http.ResponseWriter, r *request) {
	p, msg := listPage(r.URL.Query())
	if msg != "" {
		h.fail(w, r.Request, http.StatusBadRequest, msg)
		return
	}
	d, err := h.keysData(r, p)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	switch r.URL.Query().Get("done") {
	case "revoked":
		d.Notice = "Key revoked: requests with it are refused from now on."
	case "profile":
		d.Notice = "Routing profile changed."
	}
	h.render(w, r.Request, http.StatusOK, "keys", r, "API Keys", d)
}

func (h *Handler) keyCreate(w http.ResponseWriter, r *request) {
	d, err := h.keysData(r, firstPage)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	status := http.StatusBadRequest
	var k ops.CreatedKey
	// The console asks for a name (the admin API does not); the profile
	// is the operation's check.
	if name == "" || len(name) > 200 {
		d.Error = "Give the key a name of 1 to 200 characters."
	} else if k, err = h.ops.CreateKey(r.account, name, r.PostFormValue("profile")); ops.KindOf(err) == ops.Invalid {
		status, d.Error = h.userError(err)
	} else if err != nil {
		h.failReq(w, r, err)
		return
	}
	if d.Error != "" {
		d.Name = name
		h.render(w, r.Request, status, "keys", r, "API Keys", d)
		return
	}
	d, err = h.keysData(r, firstPage)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	d.Created = k.Key
	h.render(w, r.Request, http.StatusCreated, "keys", r, "API Keys", d)
}

func (h *Handler) keyRevoke(w http.ResponseWriter, r *request) {
	if err := h.ops.RevokeKey(r.account, r.PathValue("id")); err != nil {
		h.failReq(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/keys?done=revoked", http.StatusSeeOther)
}

// keyProfile rebinds one of the account's keys (another account's is not
// found).
func (h *Handler) keyProfile(w http.ResponseWriter, r *request) {
	if _, err := h.ops.SetKeyProfile(r.account, r.PathValue("id"), r.PostFormValue("profile")); err != nil {
		h.failReq(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/keys?done=profile", http.StatusSeeOther)
}

// ownsKey reports whether keyID is one of account's API keys (one lookup in
// the snapshot, whatever the number of keys).
func (h *Handler) ownsKey(account, keyID string) bool {
	k, ok := h.cfg.Store.Snapshot().KeyByID(keyID)
	return ok && k.AccountID == account
}

// --- members ---

type membersData struct {
	// Users is a page of the account's memberships, oldest first.
	Users  []store.User
	Pager  pager
	Owner  bool
	Me     string
	Error  string
	Notice string
	// Link is the setup path of a just-invited user (its token is in the
	// fragment); Expires is when it stops working.
	Link, LinkFor string
	Expires       time.Time
	Email, Role   string
	PasswordError string
	MinLength     int
}

// membersData is the Members page: the page of memberships p.
func (h *Handler) membersData(r *request, p ops.Page) (membersData, error) {
	users, err := h.ops.Users(r.account, p)
	return membersData{Users: users.Items, Pager: links("/members", r.URL.Query(), p, users.Next), Owner: r.isOwner, Me: r.user.ID,
		Role: store.RoleMember, MinLength: store.MinPasswordLength}, err
}

func (h *Handler) membersPage(w http.ResponseWriter, r *request) {
	p, msg := listPage(r.URL.Query())
	if msg != "" {
		h.fail(w, r.Request, http.StatusBadRequest, msg)
		return
	}
	d, err := h.membersData(r, p)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	switch r.URL.Query().Get("done") {
	case "role":
		d.Notice = "Role changed."
	case "removed":
		d.Notice = "Member removed; their sessions have ended."
	}
	h.render(w, r.Request, http.StatusOK, "members", r, "Members", d)
}

// SetupLink is the path of a setup link: the token rides in the fragment,
// which browsers do not send, so it never reaches an access log. The
// admin API and the add-user command make the same (ops.SetupPath).
func SetupLink(token string) string { return ops.SetupPath(token) }

// memberInvite invites an address: an invited membership and its link,
// the same answer whether the address is new, already in another account
// or already has a password (the link tells its holder which to do).
func (h *Handler) memberInvite(w http.ResponseWriter, r *request) {
	d, err := h.membersData(r, firstPage)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	email, role := r.PostFormValue("email"), r.PostFormValue("role")
	inv, err := h.ops.InviteUser(r.account, email, role)
	if err != nil {
		st, msg := h.userError(err)
		d.Error, d.Email, d.Role = msg, email, role
		h.render(w, r.Request, st, "members", r, "Members", d)
		return
	}
	d, _ = h.membersData(r, firstPage)
	d.Link, d.LinkFor, d.Expires = h.absURL(r.Request, inv.SetupPath), inv.Email, inv.SetupExpiresAt
	h.render(w, r.Request, http.StatusCreated, "members", r, "Members", d)
}

func (h *Handler) absURL(r *http.Request, path string) string {
	scheme, host := h.origin(r)
	return scheme + "://" + host + path
}

// switchAccount moves the session to another account of the signed-in
// person (the sidebar's switcher).
func (h *Handler) switchAccount(w http.ResponseWriter, r *request) {
	c, _ := r.Cookie(sessionCookie)
	if _, _, err := h.cfg.Store.SwitchAccount(c.Value, r.PostFormValue("account")); err != nil {
		h.failReq(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/byok", http.StatusSeeOther)
}

func (h *Handler) memberRole(w http.ResponseWriter, r *request) {
	if _, err := h.ops.SetUserRole(r.account, r.PathValue("id"), r.PostFormValue("role")); err != nil {
		h.failReq(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/members?done=role", http.StatusSeeOther)
}

func (h *Handler) memberRemove(w http.ResponseWriter, r *request) {
	if err := h.ops.DeleteUser(r.account, r.PathValue("id")); err != nil {
		h.failReq(w, r, err)
		return
	}
	if r.PathValue("id") == r.user.ID {
		h.clearCookie(w, r.Request, sessionCookie)
		http.Redirect(w, r.Request, Prefix+"/signin", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/members?done=removed", http.StatusSeeOther)
}
