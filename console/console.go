// Package console is the Agent Router Console: the web pages an account's
// own members use to manage BYOK keys, API keys and members, try models in
// the playground, and read request logs and usage. It is served under
// /console/ on a site by caddymodule and does not import Caddy. What it
// shares with the admin API and the commands — BYOK keys and their tests,
// API keys, invitations and members, the fleet-wide request log and usage —
// goes through the operations (package ops), scoped to the session's
// account; its own business (sign-in, sessions, setup links, passwords, the
// account switcher) talks to the store; the playground goes to the gateway
// through the small Gateway interface.
//
// Every page runs behind one gate (Handler.ServeHTTP): security headers,
// then the session (cookie → hashed id in the store → user and account),
// then, for state changes, the Origin check and the CSRF token, then the
// role. Handlers read the account only from the session, and every store
// call takes it, so an id of another account is simply not found (404).
package console

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the console is served.
const Prefix = "/console"

// Cookie names.
const (
	sessionCookie = "ar_session"
	preCookie     = "ar_pre" // anti-forgery for the signed-out forms
)

// Gateway is what the console needs from the data plane; *gateway.Gateway
// is one.
type Gateway interface {
	// ServeAccount serves a chat-completions request on behalf of an
	// account through the same pipeline as API traffic (routing,
	// credential choice, attempts, request log and usage).
	ServeAccount(w http.ResponseWriter, r *http.Request, acc gateway.AccountRequest)
	// ModelsFor lists what /v1/models would answer for the account, with
	// the routing profile's aliases and routes.
	ModelsFor(account, profile string) []gateway.ModelInfo
	// TestCredential makes a cheap authenticated call to provider with
	// key, through the gateway's own transports.
	TestCredential(ctx context.Context, provider, key string, extras store.Extras) gateway.TestResult
	// Profiles lists the routing profiles of the running config.
	Profiles() []string
}

// Config configures a Handler.
type Config struct {
	Store *store.Store
	// Gateway serves the playground and credential tests, and lists the
	// routing profiles; nil disables them.
	Gateway Gateway
	// Egress returns the policy BYOK base URLs are checked against when
	// saved or tested (ops.SaveBYOK); nil or a nil result is the strict
	// default.
	Egress func() *egress.Policy
	// PlatformKey reports whether the platform has a key for provider.
	PlatformKey func(provider string) bool
	// ClientIP returns the client's address for throttling. Default: the
	// host of r.RemoteAddr.
	ClientIP func(r *http.Request) string
	// ExternalURL is the console's origin as browsers see it
	// ("https://console.example.com"), for a console behind a proxy that
	// terminates TLS: state changes must come from this origin, cookies
	// are Secure when it is https, and invitation links start with it.
	// Default: none; Origin decides per request.
	ExternalURL string
	// Origin returns the scheme and host a request was sent to, as the
	// browser saw them (when ExternalURL is not set). Default: "https"
	// when r.TLS is set, else "http", and r.Host. caddymodule honours the
	// server's trusted_proxies here (X-Forwarded-Proto and
	// X-Forwarded-Host from a trusted proxy).
	Origin func(r *http.Request) (scheme, host string)
	// SessionIdle and SessionMax bound a session's idle time and total
	// life. Defaults: 12h and 7 days.
	SessionIdle, SessionMax time.Duration
	// InviteTTL is how long a setup link works. Default: 72h.
	InviteTTL time.Duration
	// Reconcile is the running config's reconciliation (usage-reader
	// tests, runs on demand); nil: the pages show the ledger, tests and
	// runs are refused.
	Reconcile *ops.Reconciling
	// Limits is the running process's limiter (budgets and rate limits);
	// nil: the page shows the stored limits without their state.
	Limits ops.Limiting
	Logger *zap.Logger
}

// Handler serves the console.
type Handler struct {
	cfg Config
	// ops performs what the console shares with the admin API, over
	// cfg's store, egress policy, platform keys and gateway.
	ops    *ops.Ops
	pages  *pages
	static http.Handler
	mux    *http.ServeMux
	// external is the parsed ExternalURL (nil without one).
	external *url.URL
	// recent remembers the playground's own request ids, the only ones
	// worth waiting for the log writer for (playground.go).
	recent recentRequests
}

// New prepares a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("console needs a store")
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 12 * time.Hour
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = 7 * 24 * time.Hour
	}
	if cfg.InviteTTL <= 0 {
		cfg.InviteTTL = 72 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.ClientIP == nil {
		cfg.ClientIP = func(r *http.Request) string {
			h, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				return r.RemoteAddr
			}
			return h
		}
	}
	if cfg.PlatformKey == nil {
		cfg.PlatformKey = func(string) bool { return false }
	}
	if cfg.Egress == nil {
		cfg.Egress = func() *egress.Policy { return nil }
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(staticFS, "static")
	h := &Handler{cfg: cfg, pages: p, mux: http.NewServeMux()}
	if cfg.ExternalURL != "" {
		u, err := ParseExternalURL(cfg.ExternalURL)
		if err != nil {
			return nil, err
		}
		h.external = u
	}
	if h.cfg.Origin == nil {
		h.cfg.Origin = func(r *http.Request) (string, string) {
			if r.TLS != nil {
				return "https", r.Host
			}
			return "http", r.Host
		}
	}
	h.static = http.StripPrefix(Prefix+"/static/", http.FileServerFS(sub))
	h.ops = &ops.Ops{Store: cfg.Store, PlatformKey: cfg.PlatformKey, Egress: cfg.Egress, InviteTTL: cfg.InviteTTL, Reconcile: cfg.Reconcile, Limits: cfg.Limits}
	if cfg.Gateway != nil {
		h.ops.TestCredential, h.ops.Profiles = cfg.Gateway.TestCredential, cfg.Gateway.Profiles
	}
	h.routes()
	return h, nil
}

// ParseExternalURL checks a console origin: http or https, a host, no
// path, query or fragment.
func ParseExternalURL(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("console external_url %q: want the origin browsers use, such as https://console.example.com (no path)", v)
	}
	return &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host)}, nil
}

// origin returns the scheme and host browsers use for the console.
func (h *Handler) origin(r *http.Request) (scheme, host string) {
	if h.external != nil {
		return h.external.Scheme, h.external.Host
	}
	return h.cfg.Origin(r)
}

// Owns reports whether r is for the console.
func Owns(r *http.Request) bool {
	return r.URL.Path == Prefix || strings.HasPrefix(r.URL.Path, Prefix+"/")
}

// ServeHTTP serves a console request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	if strings.HasPrefix(r.URL.Path, Prefix+"/static/") {
		hd.Set("Cache-Control", "public, max-age=3600")
		h.static.ServeHTTP(w, r)
		return
	}
	hd.Set("Cache-Control", "no-store")
	if r.URL.Path == Prefix {
		http.Redirect(w, r, Prefix+"/", http.StatusFound)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// request is what every signed-in handler gets.
type request struct {
	*http.Request
	sess     store.Session
	user     store.User
	account  string
	csrf     string
	isOwner  bool
	sessHash string
}

type handlerFunc func(w http.ResponseWriter, r *request)

// routes registers the pages. Signed-in pages go through h.auth; owner
// marks the state changes only owners may make.
func (h *Handler) routes() {
	m := h.mux
	m.HandleFunc("GET "+Prefix+"/signin", h.signinPage)
	m.HandleFunc("POST "+Prefix+"/signin", h.signin)
	m.HandleFunc("GET "+Prefix+"/setup", h.setupPage)
	m.HandleFunc("POST "+Prefix+"/setup", h.setup)
	m.HandleFunc("POST "+Prefix+"/signout", h.auth(false, h.signout))
	m.HandleFunc("GET "+Prefix+"/{$}", h.auth(false, func(w http.ResponseWriter, r *request) {
		http.Redirect(w, r.Request, Prefix+"/byok", http.StatusFound)
	}))

	m.HandleFunc("GET "+Prefix+"/byok", h.auth(false, h.byokPage))
	m.HandleFunc("GET "+Prefix+"/byok/{provider}", h.auth(false, h.byokPage))
	m.HandleFunc("POST "+Prefix+"/byok/{provider}", h.auth(true, h.byokPost))
	m.HandleFunc("POST "+Prefix+"/byok/{provider}/contract", h.auth(true, h.contractPost))
	m.HandleFunc("POST "+Prefix+"/byok/{provider}/usage_reader", h.auth(true, h.readerPost))

	m.HandleFunc("GET "+Prefix+"/keys", h.auth(false, h.keysPage))
	m.HandleFunc("POST "+Prefix+"/keys", h.auth(true, h.keyCreate))
	m.HandleFunc("POST "+Prefix+"/keys/{id}/revoke", h.auth(true, h.keyRevoke))
	m.HandleFunc("POST "+Prefix+"/keys/{id}/profile", h.auth(true, h.keyProfile))

	m.HandleFunc("GET "+Prefix+"/members", h.auth(false, h.membersPage))
	m.HandleFunc("POST "+Prefix+"/members", h.auth(true, h.memberInvite))
	m.HandleFunc("POST "+Prefix+"/members/{id}/role", h.auth(true, h.memberRole))
	m.HandleFunc("POST "+Prefix+"/members/{id}/remove", h.auth(true, h.memberRemove))
	m.HandleFunc("POST "+Prefix+"/password", h.auth(false, h.changePassword))
	m.HandleFunc("POST "+Prefix+"/account", h.auth(false, h.switchAccount))

	m.HandleFunc("GET "+Prefix+"/playground", h.auth(false, h.playgroundPage))
	m.HandleFunc("POST "+Prefix+"/playground", h.auth(false, h.playgroundSend))
	m.HandleFunc("POST "+Prefix+"/playground/stream", h.auth(false, h.playgroundStream))
	m.HandleFunc("GET "+Prefix+"/playground/result/{id}", h.auth(false, h.playgroundResult))

	m.HandleFunc("GET "+Prefix+"/logs", h.auth(false, h.logsPage))
	m.HandleFunc("GET "+Prefix+"/usage", h.auth(false, h.usagePage))
	m.HandleFunc("GET "+Prefix+"/usage.csv", h.auth(false, h.usageCSV))
	m.HandleFunc("GET "+Prefix+"/chargeback", h.auth(false, h.chargebackPage))
	m.HandleFunc("GET "+Prefix+"/chargeback.csv", h.auth(false, h.chargebackCSV))
	m.HandleFunc("GET "+Prefix+"/reconciliation", h.auth(false, h.reconcilePage))
	m.HandleFunc("GET "+Prefix+"/reconciliation.csv", h.auth(false, h.reconcileCSV))
	m.HandleFunc("POST "+Prefix+"/reconciliation/run", h.auth(true, h.reconcileRun))
	m.HandleFunc("POST "+Prefix+"/reconciliation/keys", h.auth(true, h.reconcileChoose))
	m.HandleFunc("POST "+Prefix+"/reconciliation/proposals/{id}/accept", h.auth(true, h.reconcileAccept))

	m.HandleFunc("GET "+Prefix+"/limits", h.auth(false, h.limitsPage))
	m.HandleFunc("POST "+Prefix+"/limits/budgets", h.auth(true, h.budgetPost))
	m.HandleFunc("POST "+Prefix+"/limits/rate_limits", h.auth(true, h.ratePost))
	m.HandleFunc("POST "+Prefix+"/limits/{what}/{id}/remove", h.auth(true, h.limitRemove))

	m.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		h.notFound(w, r)
	})
}

// auth wraps a signed-in handler: session, then (for POST) Origin and CSRF,
// then, with ownerOnly, the owner role.
func (h *Handler) auth(ownerOnly bool, next handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil {
			h.toSignin(w, r)
			return
		}
		sess, u, err := h.cfg.Store.SessionUser(c.Value, h.cfg.SessionIdle, h.cfg.SessionMax)
		if err != nil {
			h.clearCookie(w, r, sessionCookie)
			h.toSignin(w, r)
			return
		}
		req := &request{Request: r, sess: sess, user: u, account: u.AccountID, csrf: csrfToken(c.Value), isOwner: u.Role == store.RoleOwner}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !h.sameOrigin(r) {
				h.fail(w, r, http.StatusForbidden, "This request came from another site and was refused.")
				return
			}
			// Forms are small: bound what a state change may send.
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			tok := r.Header.Get("X-CSRF-Token")
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(tok), []byte(req.csrf)) != 1 {
				h.fail(w, r, http.StatusForbidden, "The form expired or was not sent from the console. Reload the page and try again.")
				return
			}
			if ownerOnly && !req.isOwner {
				h.fail(w, r, http.StatusForbidden, "Only owners of the account can make this change.")
				return
			}
		}
		next(w, req)
	}
}

// csrfToken derives a session's anti-forgery token from its id, so it
// needs no storage and dies with the session.
func csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, []byte(sessionID))
	m.Write([]byte("agent-router console csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sameOrigin refuses a state change sent from another origin. Browsers send
// Origin on every POST; a request without one (curl) must still carry the
// CSRF token. The expected origin is ExternalURL, or what Origin says the
// browser used (behind a trusted TLS-terminating proxy: https).
func (h *Handler) sameOrigin(r *http.Request) bool {
	scheme, host := h.origin(r)
	o := r.Header.Get("Origin")
	if o == "" {
		if ref := r.Header.Get("Referer"); ref != "" {
			u, err := url.Parse(ref)
			return err == nil && strings.EqualFold(u.Host, host)
		}
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, host) && u.Scheme == scheme
}

func (h *Handler) toSignin(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
		return
	}
	h.fail(w, r, http.StatusUnauthorized, "Your session has ended. Sign in again.")
}

// secure reports whether the browser reached the console over HTTPS.
func (h *Handler) secure(r *http.Request) bool {
	scheme, _ := h.origin(r)
	return scheme == "https"
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, HttpOnly: true, Secure: h.secure(r),
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second)})
}

func (h *Handler) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: Prefix, HttpOnly: true, Secure: h.secure(r),
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// userError turns an error into what the user may read: the message of an
// operation's refusal or of refused input, a generic line otherwise
// (logged).
func (h *Handler) userError(err error) (int, string) {
	var oe *ops.Error
	switch {
	case errors.As(err, &oe) && oe.Kind == ops.Invalid:
		return http.StatusBadRequest, oe.Error()
	case errors.As(err, &oe) && oe.Kind == ops.NotFound:
		return http.StatusNotFound, oe.Error()
	case errors.As(err, &oe) && oe.Kind == ops.Conflict:
		return http.StatusConflict, oe.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "Not found."
	case errors.Is(err, store.ErrInvalidInput):
		return http.StatusBadRequest, strings.TrimPrefix(err.Error(), store.ErrInvalidInput.Error()+": ")
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrLastOwner), errors.Is(err, store.ErrInvalidToken):
		return http.StatusConflict, err.Error()
	case errors.Is(err, store.ErrBusy):
		return http.StatusServiceUnavailable, msgBusy
	case errors.Is(err, store.ErrUnavailable):
		// Fleet mode with etcd unreachable: nothing was saved.
		h.cfg.Logger.Warn("console write refused: the fleet store is unavailable", zap.Error(err))
		return http.StatusServiceUnavailable, "The change could not be saved: the shared store is unreachable right now. Try again in a moment."
	}
	h.cfg.Logger.Error("console request failed", zap.Error(err))
	return http.StatusInternalServerError, "Something went wrong on our side; it has been logged."
}
