package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// now is the console's clock; tests may replace it.
var now = time.Now

// Sign-in throttling lives in the store (store.ReserveAttempt): an
// attempt is reserved before its password is hashed, so concurrent
// attempts cannot outrun the limits, and in fleet mode every instance
// shares it. Hashing itself is bounded process-wide (store.ErrBusy).

// tooMany answers a refused attempt: 429 with Retry-After.
func tooMany(w http.ResponseWriter, err error) {
	var te *store.ThrottleError
	secs := 60
	if errors.As(err, &te) {
		secs = max(1, int((te.RetryAfter+time.Second-1)/time.Second))
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
}

// busy answers an attempt shed by the hashing bound, or one the throttle
// could not record (the fleet store unreachable): 503 with Retry-After.
func busy(w http.ResponseWriter) { w.Header().Set("Retry-After", "2") }

const (
	msgTooMany = "Too many attempts. Wait a few minutes and try again."
	msgBusy    = "The console is busy checking other sign-ins. Try again in a moment."
)

// reserve reserves an attempt for (ip, email) and, when refused, says how
// to answer: the status, with Retry-After set, and the message.
func (h *Handler) reserve(w http.ResponseWriter, ip, email string) (*store.SignInAttempt, int, string) {
	a, err := h.cfg.Store.ReserveAttempt(ip, email, now())
	switch {
	case err == nil:
		return a, 0, ""
	case errors.Is(err, store.ErrThrottled):
		tooMany(w, err)
		return nil, http.StatusTooManyRequests, msgTooMany
	}
	h.cfg.Logger.Warn("console sign-in throttle unavailable", zap.Error(err))
	busy(w)
	return nil, http.StatusServiceUnavailable, msgBusy
}

// settle records how a reserved attempt ended.
func (h *Handler) settle(a *store.SignInAttempt, err error) {
	o := store.AttemptSucceeded
	switch {
	case errors.Is(err, store.ErrBadCredentials), errors.Is(err, store.ErrWrongPassword):
		o = store.AttemptFailed
	case err != nil && !errors.Is(err, store.ErrNoMembership):
		o = store.AttemptNotEvaluated
	}
	if err := h.cfg.Store.SettleAttempt(a, o); err != nil {
		h.cfg.Logger.Warn("recording a console sign-in attempt", zap.Error(err))
	}
}

// preToken returns the anti-forgery token of the signed-out forms (a random
// cookie echoed in the form), setting the cookie when it is missing.
func (h *Handler) preToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	var b [32]byte
	rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	h.setCookie(w, r, preCookie, v, 24*time.Hour)
	return v
}

func (h *Handler) checkPre(r *http.Request) bool {
	c, err := r.Cookie(preCookie)
	if err != nil || !h.sameOrigin(r) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

type signinData struct {
	CSRF, Email, Error, Notice string
}

func (h *Handler) signinPage(w http.ResponseWriter, r *http.Request) {
	d := signinData{CSRF: h.preToken(w, r)}
	if r.URL.Query().Get("done") == "setup" {
		d.Notice = "Your password is set. Sign in with it."
	}
	if r.URL.Query().Get("done") == "accepted" {
		d.Notice = "Invitation accepted. Sign in with your password; the account is in the switcher."
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
	if !h.checkPre(r) {
		h.render(w, r, http.StatusForbidden, "signin", nil, "Sign in", signinData{CSRF: h.preToken(w, r),
			Error: "The form expired or was not sent from this site. Try again."})
		return
	}
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	if len(email) > 254 {
		email = email[:254]
	}
	password := r.PostFormValue("password")
	d := signinData{CSRF: h.preToken(w, r), Email: email}
	// Reserve the attempt before anything is hashed.
	att, st, msg := h.reserve(w, h.cfg.ClientIP(r), email)
	if att == nil {
		d.Error = msg
		h.render(w, r, st, "signin", nil, "Sign in", d)
		return
	}
	u, err := h.cfg.Store.Authenticate(email, password)
	h.settle(att, err)
	switch {
	case errors.Is(err, store.ErrBadCredentials):
		d.Error = "The email or password is wrong."
		h.render(w, r, http.StatusUnauthorized, "signin", nil, "Sign in", d)
		return
	case errors.Is(err, store.ErrBusy):
		busy(w)
		d.Error = msgBusy
		h.render(w, r, http.StatusServiceUnavailable, "signin", nil, "Sign in", d)
		return
	case errors.Is(err, store.ErrNoMembership):
		d.Error = "Your password is right, but you are not a member of any account yet: open the link of an invitation to accept it."
		h.render(w, r, http.StatusForbidden, "signin", nil, "Sign in", d)
		return
	case err != nil:
		h.cfg.Logger.Error("console sign-in failed", zap.Error(err))
		st, msg := h.userError(err)
		d.Error = msg
		h.render(w, r, st, "signin", nil, "Sign in", d)
		return
	}
	id, _, err := h.cfg.Store.CreateSession(u)
	if err != nil {
		st, msg := h.userError(err)
		d.Error = msg
		h.render(w, r, st, "signin", nil, "Sign in", d)
		return
	}
	// Sessions whose browser never came back go now and then, in the
	// background: a sign-in never waits for a scan of every session.
	h.cfg.Store.PruneSessionsInBackground(h.cfg.SessionIdle, h.cfg.SessionMax)
	h.setCookie(w, r, sessionCookie, id, 0)
	http.Redirect(w, r, Prefix+"/byok", http.StatusSeeOther)
}

func (h *Handler) signout(w http.ResponseWriter, r *request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := h.cfg.Store.RevokeSession(c.Value); err != nil {
			h.cfg.Logger.Error("console sign-out failed", zap.Error(err))
		}
	}
	h.clearCookie(w, r.Request, sessionCookie)
	http.Redirect(w, r.Request, Prefix+"/signin?done=signout", http.StatusSeeOther)
}

type setupData struct {
	CSRF, Error string
	MinLength   int
}

// setupPage serves the page of a setup or invitation link. The token
// travels in the link's fragment (#token), which browsers never send to the
// server, so it stays out of access logs; console.js copies it into the
// form, and without script the user pastes it. The page is the same for
// every link: a new person chooses a password, a person who already has one
// enters it (the server knows which from the token only when it is sent).
func (h *Handler) setupPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "setup", nil, "Accept your invitation", setupData{CSRF: h.preToken(w, r), MinLength: store.MinPasswordLength})
}

func (h *Handler) setup(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	d := setupData{CSRF: h.preToken(w, r), MinLength: store.MinPasswordLength}
	fail := func(st int, msg string) {
		d.Error = msg
		h.render(w, r, st, "setup", nil, "Accept your invitation", d)
	}
	if !h.checkPre(r) {
		fail(http.StatusForbidden, "The form expired or was not sent from this site. Try again.")
		return
	}
	pw, again := r.PostFormValue("password"), r.PostFormValue("password2")
	if pw != again {
		fail(http.StatusBadRequest, "The two passwords differ.")
		return
	}
	ip := h.cfg.ClientIP(r)
	var att *store.SignInAttempt
	var refused int
	var refusal string
	// A link for a person who has a password checks it: the same
	// reservation as a sign-in, before it is hashed.
	_, err := h.cfg.Store.RedeemSetupTokenGated(strings.TrimSpace(r.PostFormValue("token")), pw, func(email string, verify bool) error {
		if !verify {
			return nil
		}
		if att, refused, refusal = h.reserve(w, ip, email); att == nil {
			return errRefused
		}
		return nil
	})
	if att != nil {
		h.settle(att, err)
	}
	switch {
	case errors.Is(err, errRefused):
		fail(refused, refusal)
		return
	case errors.Is(err, store.ErrInvalidToken):
		// Count it against the address (links are not guessable, but
		// nothing is free); past the limit, the answer is 429.
		if a, st, msg := h.reserve(w, ip, ""); a == nil {
			fail(st, msg)
			return
		}
		fail(http.StatusConflict, err.Error())
		return
	case errors.Is(err, store.ErrBusy):
		busy(w)
		fail(http.StatusServiceUnavailable, msgBusy)
		return
	case errors.Is(err, store.ErrWrongPassword):
		fail(http.StatusBadRequest, "This email already has a password, and this is not it. Enter the password you sign in with to accept the invitation.")
		return
	case err != nil:
		st, msg := h.userError(err)
		fail(st, msg)
		return
	}
	done := "setup"
	if att != nil { // a person who had a password: it was checked, not set
		done = "accepted"
	}
	http.Redirect(w, r, Prefix+"/signin?done="+done, http.StatusSeeOther)
}

// errRefused stops a redeem whose attempt the throttle refused.
var errRefused = errors.New("refused by the throttle")

// changePassword sets the signed-in person's password. Every session of
// the person ends, this one included: they sign in again with the new
// password.
func (h *Handler) changePassword(w http.ResponseWriter, r *request) {
	d, err := h.membersData(r, firstPage)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	fail := func(st int, msg string) {
		d.PasswordError = msg
		h.render(w, r.Request, st, "members", r, "Members", d)
	}
	pw := r.PostFormValue("new_password")
	if pw != r.PostFormValue("new_password2") {
		fail(http.StatusBadRequest, "The two new passwords differ.")
		return
	}
	if err := store.CheckPasswordRules(pw); err != nil {
		st, msg := h.userError(err)
		fail(st, msg)
		return
	}
	att, st, msg := h.reserve(w, h.cfg.ClientIP(r.Request), r.user.Email)
	if att == nil {
		fail(st, msg)
		return
	}
	err = h.cfg.Store.SetPassword(r.account, r.user.ID, r.PostFormValue("current_password"), pw)
	h.settle(att, err)
	switch {
	case errors.Is(err, store.ErrBadCredentials):
		fail(http.StatusBadRequest, "The current password is wrong.")
		return
	case errors.Is(err, store.ErrBusy):
		busy(w)
		fail(http.StatusServiceUnavailable, msgBusy)
		return
	case err != nil:
		st, msg := h.userError(err)
		fail(st, msg)
		return
	}
	h.clearCookie(w, r.Request, sessionCookie)
	http.Redirect(w, r.Request, Prefix+"/signin?done=password", http.StatusSeeOther)
}
