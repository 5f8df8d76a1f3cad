package console

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

type keysData struct {
	Keys     []store.APIKey
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

func (h *Handler) keysData(r *request) (keysData, error) {
	keys, err := h.cfg.Store.APIKeys(r.account)
	if err != nil {
		return keysData{}, err
	}
	return keysData{Owner: r.isOwner, Profiles: h.profiles(), Keys: keys}, nil
}

func (h *Handler) keysPage(w http.ResponseWriter, r *request) {
	d, err := h.keysData(r)
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
	d, err := h.keysData(r)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	profile := r.PostFormValue("profile")
	switch {
	case name == "" || len(name) > 200:
		d.Error = "Give the key a name of 1 to 200 characters."
	case profile != "" && !slices.Contains(d.Profiles, profile):
		d.Error = "Unknown routing profile."
	}
	if d.Error != "" {
		d.Name = name
		h.render(w, r.Request, http.StatusBadRequest, "keys", r, "API Keys", d)
		return
	}
	plain, _, err := h.cfg.Store.CreateAPIKeyWithProfile(r.account, name, profile)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	d, err = h.keysData(r)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	d.Created = plain
	h.render(w, r.Request, http.StatusCreated, "keys", r, "API Keys", d)
}

func (h *Handler) keyRevoke(w http.ResponseWriter, r *request) {
	if err := h.cfg.Store.RevokeAPIKey(r.account, r.PathValue("id")); err != nil {
		h.failReq(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/keys?done=revoked", http.StatusSeeOther)
}

func (h *Handler) keyProfile(w http.ResponseWriter, r *request) {
	id := r.PathValue("id")
	if !h.ownsKey(r.account, id) {
		h.notFound(w, r.Request)
		return
	}
	profile := r.PostFormValue("profile")
	if profile != "" && !slices.Contains(h.profiles(), profile) {
		h.fail(w, r.Request, http.StatusBadRequest, "Unknown routing profile.")
		return
	}
	if _, err := h.cfg.Store.SetAPIKeyProfile(r.account, id, profile); err != nil {
		h.failReq(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/keys?done=profile", http.StatusSeeOther)
}

// ownsKey reports whether keyID is one of account's API keys.
func (h *Handler) ownsKey(account, keyID string) bool {
	keys, err := h.cfg.Store.APIKeys(account)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(keys, func(k store.APIKey) bool { return k.ID == keyID })
}

// --- members ---

type membersData struct {
	Users  []store.User
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

func (h *Handler) membersData(r *request) (membersData, error) {
	users, err := h.cfg.Store.Users(r.account)
	return membersData{Users: users, Owner: r.isOwner, Me: r.user.ID, Role: store.RoleMember, MinLength: store.MinPasswordLength}, err
}

func (h *Handler) membersPage(w http.ResponseWriter, r *request) {
	d, err := h.membersData(r)
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
// which browsers do not send, so it never reaches an access log.
func SetupLink(token string) string { return Prefix + "/setup#" + token }

// memberInvite invites an address: an invited membership and its link,
// the same answer whether the address is new, already in another account
// or already has a password (the link tells its holder which to do).
func (h *Handler) memberInvite(w http.ResponseWriter, r *request) {
	d, err := h.membersData(r)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	email, role := r.PostFormValue("email"), r.PostFormValue("role")
	u, tok, exp, err := h.cfg.Store.InviteUser(r.account, email, role, h.cfg.InviteTTL)
	if err != nil {
		st, msg := h.userError(err)
		d.Error, d.Email, d.Role = msg, email, role
		h.render(w, r.Request, st, "members", r, "Members", d)
		return
	}
	d, _ = h.membersData(r)
	d.Link, d.LinkFor, d.Expires = h.absURL(r.Request, SetupLink(tok)), u.Email, exp
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
	if _, err := h.cfg.Store.SetUserRole(r.account, r.PathValue("id"), r.PostFormValue("role")); err != nil {
		h.failReq(w, r, err)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/members?done=role", http.StatusSeeOther)
}

func (h *Handler) memberRemove(w http.ResponseWriter, r *request) {
	if err := h.cfg.Store.DeleteUser(r.account, r.PathValue("id")); err != nil {
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
