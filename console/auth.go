package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// now is the console's clock; tests may replace it.
var now = time.Now

// Sign-in throttling: failures are counted per client IP and per email in a
// sliding window; past the limit, sign-in is refused for the rest of the
// window whether or not the password is right.
const (
	throttleWindow   = 15 * time.Minute
	maxFailsPerIP    = 20
	maxFailsPerEmail = 5
	maxThrottled     = 10000 // entries kept; the oldest go first
)

// Throttle counts failed sign-ins per client IP and per email. Share one
// between the consoles of a process (and across config reloads) so that a
// reload does not hand out fresh attempts.
type Throttle struct {
	mu    sync.Mutex
	fails map[string][]time.Time
}

// NewThrottle returns an empty sign-in throttle.
func NewThrottle() *Throttle { return &Throttle{fails: make(map[string][]time.Time)} }

func (t *Throttle) recent(key string, at time.Time) []time.Time {
	f := t.fails[key]
	i := 0
	for i < len(f) && at.Sub(f[i]) > throttleWindow {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(t.fails, key)
	} else {
		t.fails[key] = f
	}
	return f
}

// blocked reports whether ip or email is over its limit.
func (t *Throttle) blocked(ip, email string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at := now()
	return len(t.recent("ip\x00"+ip, at)) >= maxFailsPerIP || email != "" && len(t.recent("email\x00"+email, at)) >= maxFailsPerEmail
}

func (t *Throttle) fail(ip, email string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at := now()
	if len(t.fails) >= maxThrottled {
		for k := range t.fails { // drop expired entries, then arbitrary ones
			if len(t.recent(k, at)) > 0 && len(t.fails) >= maxThrottled {
				delete(t.fails, k)
			}
		}
	}
	keys := []string{"ip\x00" + ip}
	if email != "" {
		keys = append(keys, "email\x00"+email)
	}
	for _, k := range keys {
		t.fails[k] = append(t.recent(k, at), at)
	}
}

func (t *Throttle) clearEmail(email string) {
	t.mu.Lock()
	delete(t.fails, "email\x00"+email)
	t.mu.Unlock()
}

// preToken returns the anti-forgery token of the signed-out forms (a random
// cookie echoed in the form), setting the cookie when it is missing.
func preToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	var b [32]byte
	rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	setCookie(w, r, preCookie, v, 24*time.Hour)
	return v
}

func checkPre(r *http.Request) bool {
	c, err := r.Cookie(preCookie)
	if err != nil || !sameOrigin(r) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

type signinData struct {
	CSRF, Email, Error, Notice string
}

func (h *Handler) signinPage(w http.ResponseWriter, r *http.Request) {
	d := signinData{CSRF: preToken(w, r)}
	if r.URL.Query().Get("done") == "setup" {
		d.Notice = "Your password is set. Sign in with it."
	}
	if r.URL.Query().Get("done") == "password" {
		d.Notice = "Your password is changed and every session has ended. Sign in with the new password."
	}
	if r.URL.Query().Get("done") == "signout" {
		d.Notice = "You are signed out."
	}
	h.render(w, r, http.StatusOK, "signin", nil, "Sign in", d)
}

func (h *Handler) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !checkPre(r) {
		h.render(w, r, http.StatusForbidden, "signin", nil, "Sign in", signinData{CSRF: preToken(w, r),
			Error: "The form expired or was not sent from this site. Try again."})
		return
	}
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	if len(email) > 254 {
		email = email[:254]
	}
	password := r.PostFormValue("password")
	ip := h.cfg.ClientIP(r)
	d := signinData{CSRF: preToken(w, r), Email: email}
	if h.throttle.blocked(ip, email) {
		d.Error = "Too many sign-in attempts. Wait a few minutes and try again."
		h.render(w, r, http.StatusTooManyRequests, "signin", nil, "Sign in", d)
		return
	}
	u, err := h.cfg.Store.Authenticate(email, password)
	if err != nil {
		if !errors.Is(err, store.ErrBadCredentials) {
			h.cfg.Logger.Error("console sign-in failed", zap.Error(err))
		}
		h.throttle.fail(ip, email)
		d.Error = "The email or password is wrong."
		h.render(w, r, http.StatusUnauthorized, "signin", nil, "Sign in", d)
		return
	}
	h.throttle.clearEmail(email)
	// Sessions whose browser never came back go now and then.
	if _, err := h.cfg.Store.PruneSessions(h.cfg.SessionIdle, h.cfg.SessionMax); err != nil {
		h.cfg.Logger.Error("pruning console sessions", zap.Error(err))
	}
	id, _, err := h.cfg.Store.CreateSession(u)
	if err != nil {
		st, msg := h.userError(err)
		d.Error = msg
		h.render(w, r, st, "signin", nil, "Sign in", d)
		return
	}
	setCookie(w, r, sessionCookie, id, 0)
	http.Redirect(w, r, Prefix+"/byok", http.StatusSeeOther)
}

func (h *Handler) signout(w http.ResponseWriter, r *request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := h.cfg.Store.RevokeSession(c.Value); err != nil {
			h.cfg.Logger.Error("console sign-out failed", zap.Error(err))
		}
	}
	clearCookie(w, r.Request, sessionCookie)
	http.Redirect(w, r.Request, Prefix+"/signin?done=signout", http.StatusSeeOther)
}

type setupData struct {
	CSRF, Error string
	MinLength   int
}

// setupPage serves the page of a setup link. The token travels in the
// link's fragment (#token), which browsers never send to the server, so it
// stays out of access logs; console.js copies it into the form, and without
// script the user pastes it.
func (h *Handler) setupPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "setup", nil, "Set your password", setupData{CSRF: preToken(w, r), MinLength: store.MinPasswordLength})
}

func (h *Handler) setup(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	d := setupData{CSRF: preToken(w, r), MinLength: store.MinPasswordLength}
	if !checkPre(r) {
		d.Error = "The form expired or was not sent from this site. Try again."
		h.render(w, r, http.StatusForbidden, "setup", nil, "Set your password", d)
		return
	}
	pw, again := r.PostFormValue("password"), r.PostFormValue("password2")
	if pw != again {
		d.Error = "The two passwords differ."
		h.render(w, r, http.StatusBadRequest, "setup", nil, "Set your password", d)
		return
	}
	ip := h.cfg.ClientIP(r)
	if h.throttle.blocked(ip, "") {
		d.Error = "Too many attempts. Wait a few minutes and try again."
		h.render(w, r, http.StatusTooManyRequests, "setup", nil, "Set your password", d)
		return
	}
	_, err := h.cfg.Store.RedeemSetupToken(strings.TrimSpace(r.PostFormValue("token")), pw)
	if err != nil {
		if errors.Is(err, store.ErrInvalidToken) {
			h.throttle.fail(ip, "")
		}
		st, msg := h.userError(err)
		d.Error = msg
		h.render(w, r, st, "setup", nil, "Set your password", d)
		return
	}
	http.Redirect(w, r, Prefix+"/signin?done=setup", http.StatusSeeOther)
}

// changePassword sets the signed-in user's password. Every session of the
// user ends, this one included: they sign in again with the new password.
func (h *Handler) changePassword(w http.ResponseWriter, r *request) {
	d, err := h.membersData(r)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	pw := r.PostFormValue("new_password")
	if pw != r.PostFormValue("new_password2") {
		d.PasswordError = "The two new passwords differ."
		h.render(w, r.Request, http.StatusBadRequest, "members", r, "Members", d)
		return
	}
	ip := h.cfg.ClientIP(r.Request)
	if h.throttle.blocked(ip, r.user.Email) {
		d.PasswordError = "Too many attempts. Wait a few minutes and try again."
		h.render(w, r.Request, http.StatusTooManyRequests, "members", r, "Members", d)
		return
	}
	if err := h.cfg.Store.SetPassword(r.account, r.user.ID, r.PostFormValue("current_password"), pw); err != nil {
		st, msg := h.userError(err)
		if errors.Is(err, store.ErrBadCredentials) {
			h.throttle.fail(ip, r.user.Email)
			st, msg = http.StatusBadRequest, "The current password is wrong."
		}
		d.PasswordError = msg
		h.render(w, r.Request, st, "members", r, "Members", d)
		return
	}
	clearCookie(w, r.Request, sessionCookie)
	http.Redirect(w, r.Request, Prefix+"/signin?done=password", http.StatusSeeOther)
}
