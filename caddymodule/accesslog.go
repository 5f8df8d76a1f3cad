package caddymodule

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Agent Router keys in Caddy's access log.
//
// Caddy's access log writes each request's headers and URI, redacting only
// Authorization, Proxy-Authorization, Cookie and Set-Cookie, and those not
// when the server has log_credentials. Clients also send the Agent Router
// key as x-api-key (Claude Code with ANTHROPIC_API_KEY, the Anthropic
// SDKs), api-key (Azure-style clients), x-goog-api-key or ?key=
// (Gemini-style clients). Caddy takes the request it logs (a clone) before
// any handler runs, so no handler can redact it in place, and an operator's
// log filters are the operator's: the key must stay out whatever they are.
//
// So for a request that carries such a value, the handler turns Caddy's
// own entry off (the log_skip variable, as the log_skip directive does) and
// writes the same entry itself — the same loggers, level, message and
// fields — with those values REDACTED. On the gateway's paths every value
// of those headers and parameters is redacted (whatever a client put there
// was meant as its key); on other paths, only values shaped like an Agent
// Router key (ar_…), so other apps on the site keep their logs. Fields other
// handlers add to the entry (Caddy's ExtraLogFields) are not carried over
// for those requests; the gateway's own are.

// httpApp names Caddy's http app for ctx.Logger: the access log's loggers
// ("http.log.access" and its named children) hang off the app's logger.
type httpApp struct{}

// CaddyModule returns the http app's module ID (for its logger only).
func (httpApp) CaddyModule() caddy.ModuleInfo { return caddy.ModuleInfo{ID: "http"} }

// keyHeaders are the headers, besides Authorization, in which clients send
// an API key.
var keyHeaders = [...]string{"X-Api-Key", "Api-Key", "X-Goog-Api-Key"}

// redacted stands for a key in a log entry, as Caddy writes it for
// Authorization.
const redacted = "REDACTED"

// accessEntry is Caddy's access-log entry for one request, written by the
// handler (see above).
type accessEntry struct {
	srv   *caddyhttp.Server
	clone *http.Request // the request as it is logged, keys REDACTED
	w     caddyhttp.ResponseRecorder
	body  *countingReader
	start time.Time
	// rec is the gateway's record of the request, when it served it: the
	// entry's "agent_router" fields.
	rec *store.LogRecord
	err error
}

type accessEntryKey struct{}

// takeAccessEntry returns the entry the handler writes for r instead of
// Caddy, with the ResponseWriter and request to serve it with, or nil when
// Caddy's own entry holds no key (or there is none to write). owned says
// whether the gateway serves r's path.
func (h *Handler) takeAccessEntry(w http.ResponseWriter, r *http.Request, owned bool) (*accessEntry, http.ResponseWriter, *http.Request) {
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil || srv.Logs == nil || h.accessLogger == nil {
		return nil, w, r
	}
	if skip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.LogSkipVar).(bool); skip {
		return nil, w, r
	}
	clone, ok := redactedClone(r, owned, srv.Logs.ShouldLogCredentials)
	if !ok || !shouldLogRequest(srv.Logs, r.Host) {
		return nil, w, r
	}
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	a := &accessEntry{srv: srv, clone: clone, w: caddyhttp.NewResponseRecorder(w, nil, nil), start: time.Now()}
	r = r.WithContext(context.WithValue(r.Context(), accessEntryKey{}, a))
	if r.Body != nil && r.Body != http.NoBody {
		a.body = &countingReader{r: r.Body}
		r.Body = a.body
	}
	return a, a.w, r
}

// redactedClone is r as its access-log entry shows it, every value that
// may be an Agent Router key REDACTED; ok is false when Caddy's entry would
// have shown none (then Caddy logs r itself).
func redactedClone(r *http.Request, owned, logCredentials bool) (*http.Request, bool) {
	isKey := func(v string) bool { return owned || strings.HasPrefix(strings.TrimSpace(v), store.APIKeyPrefix) }
	var headers []string
	for _, name := range keyHeaders {
		for _, v := range r.Header[name] {
			if isKey(v) {
				headers = append(headers, name)
				break
			}
		}
	}
	auth := false
	if logCredentials {
		for _, v := range r.Header["Authorization"] {
			if t, ok := strings.CutPrefix(v, "Bearer "); ok && isKey(t) || strings.HasPrefix(strings.TrimSpace(v), store.APIKeyPrefix) {
				auth = true
			}
		}
	}
	uri, query := redactQuery(r.RequestURI, isKey)
	if len(headers) == 0 && !auth && !query {
		return nil, false
	}
	c := r.Clone(r.Context())
	for _, name := range headers {
		c.Header[name] = []string{redacted}
	}
	if auth {
		c.Header["Authorization"] = []string{redacted}
	}
	c.RequestURI = uri
	return c, true
}

// redactQuery replaces the values of the URI's credential parameters (key,
// api_key, api-key, access_token, ...) that isKey accepts with REDACTED,
// keeping the rest as written; changed says whether it replaced any.
func redactQuery(uri string, isKey func(string) bool) (out string, changed bool) {
	path, query, ok := strings.Cut(uri, "?")
	if !ok || query == "" {
		return uri, false
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		name, value, _ := strings.Cut(p, "=")
		n, err := url.QueryUnescape(name)
		if err != nil {
			n = name
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			v = value
		}
		switch strings.ToLower(n) {
		case "key", "api_key", "api-key", "apikey", "x-api-key", "access_token", "token":
			if value != "" && isKey(v) {
				parts[i], changed = name+"="+redacted, true
			}
		}
	}
	return path + "?" + strings.Join(parts, "&"), changed
}

// write writes the entry as Caddy's server would have (Server.logRequest in
// caddyhttp/server.go): to the loggers the server's log config names for
// the request's host (or its access_logger_names variable), at INFO, ERROR
// for a 5xx, or the log_level variable's level.
func (a *accessEntry) write(base *zap.Logger) {
	logs := a.srv.Logs
	status := a.w.Status()
	if status == 0 && a.err != nil {
		status = http.StatusInternalServerError
		if he, ok := a.err.(caddyhttp.HandlerError); ok && he.StatusCode != 0 {
			status = he.StatusCode
		}
	}
	level := zapcore.InfoLevel
	if status >= 500 {
		level = zapcore.ErrorLevel
	}
	ctx := a.clone.Context()
	if name, ok := caddyhttp.GetVar(ctx, caddyhttp.LogLevelVar).(string); ok {
		if l, err := zapcore.ParseLevel(name); err == nil && l >= zapcore.DebugLevel && l <= zapcore.ErrorLevel {
			level = l
		}
	}
	userID := ""
	if repl, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		userID, _ = repl.GetString("http.auth.user.id")
	}
	read := 0
	if a.body != nil {
		read = a.body.n
	}
	fields := []zap.Field{
		zap.Object("request", caddyhttp.LoggableHTTPRequest{Request: a.clone, ShouldLogCredentials: logs.ShouldLogCredentials}),
		zap.Int("bytes_read", read),
		zap.String("user_id", userID),
		zap.Duration("duration", time.Since(a.start)),
		zap.Int("size", a.w.Size()),
		zap.Int("status", status),
		zap.Object("resp_headers", caddyhttp.LoggableHTTPHeader{Header: a.w.Header(), ShouldLogCredentials: logs.ShouldLogCredentials}),
	}
	if a.rec != nil {
		fields = append(fields, zap.Object("agent_router", (*accessFields)(a.rec)))
	}
	for _, l := range accessLoggers(base, logs, a.clone) {
		if c := l.Check(level, "handled request"); c != nil {
			c.Write(fields...)
		}
	}
}

// accessLoggers are the loggers Caddy's server would write r's entry to
// (ServerLogConfig.wrapLogger).
func accessLoggers(base *zap.Logger, logs *caddyhttp.ServerLogConfig, r *http.Request) []*zap.Logger {
	var names []string
	if v, ok := caddyhttp.GetVar(r.Context(), caddyhttp.AccessLoggerNameVarKey).([]any); ok {
		for _, n := range v {
			s, _ := n.(string)
			names = append(names, s)
		}
	} else {
		names = loggerHosts(logs, hostOnly(r.Host))
	}
	out := make([]*zap.Logger, 0, len(names))
	for _, n := range names {
		if n == "" {
			out = append(out, base)
		} else {
			out = append(out, base.Named(n))
		}
	}
	return out
}

// loggerHosts is ServerLogConfig.getLoggerHosts: the exact host, then
// wildcards, else the default logger name.
func loggerHosts(logs *caddyhttp.ServerLogConfig, host string) []string {
	host = strings.ToLower(host)
	if names, ok := logs.LoggerNames[host]; ok {
		return names
	}
	labels := strings.Split(host, ".")
	for i := range labels {
		if labels[i] == "" {
			continue
		}
		labels[i] = "*"
		if names, ok := logs.LoggerNames[strings.Join(labels, ".")]; ok {
			return names
		}
	}
	return []string{logs.DefaultLoggerName}
}

// shouldLogRequest is Server.shouldLogRequest: whether the server logs
// requests for host at all.
func shouldLogRequest(logs *caddyhttp.ServerLogConfig, hostport string) bool {
	host := hostOnly(hostport)
	for name := range logs.LoggerNames {
		if certmagic.MatchWildcard(host, name) {
			return true
		}
	}
	for _, skip := range logs.SkipHosts {
		if certmagic.MatchWildcard(host, skip) {
			return false
		}
	}
	return !logs.SkipUnmappedHosts
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// countingReader counts the request body's bytes, for bytes_read.
type countingReader struct {
	r io.ReadCloser
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
