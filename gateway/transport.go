package gateway

import (
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentrouter/caddy-agentrouter/egress"
)

// transports keeps one tuned http.Transport per upstream host, so hosts do
// not share (or starve) each other's connection pools. The operator's hosts
// (providers' default hosts, platform base URLs) are few and set by the
// config; tenant-chosen BYOK base URLs (an Azure resource per customer, or
// anything an account types into the key Test) are not, so their
// transports are capped: past maxTenantTransports the least recently used
// one is dropped and its idle connections closed (requests still running
// on it finish normally). Transports of either kind unused for
// transportIdle are dropped once there are more than maxTransports.
type transports struct {
	mu            sync.RWMutex
	byHost        map[hostKey]*transportEntry
	tenant        int // guarded entries in byHost
	dialTimeout   time.Duration
	headerTimeout time.Duration
	// egress guards connections to tenant-chosen URLs (BYOK base URLs).
	egress *egress.Policy
}

// hostKey is a struct, not "scheme://host", so a lookup allocates nothing.
// A tenant's URL (guarded) never shares a transport with the operator's
// URL for the same host: only the guarded one checks where it connects.
type hostKey struct {
	scheme, host string
	guarded      bool
}

type transportEntry struct {
	tr *http.Transport
	// used is the unix time in milliseconds of the last use, written only
	// when it moved, so the hot path rarely writes shared memory.
	used atomic.Int64
}

const (
	maxTransports = 256
	// maxTenantTransports caps the transports of tenant-chosen hosts: each
	// keeps its own TLS sessions and idle connections (20k distinct base
	// URLs once cost about 105 MB).
	maxTenantTransports = 256
	transportIdle       = 10 * time.Minute
)

func newTransports(dial, header time.Duration, pol *egress.Policy) *transports {
	if dial <= 0 {
		dial = 10 * time.Second
	}
	if header <= 0 {
		header = 5 * time.Minute
	}
	return &transports{byHost: make(map[hostKey]*transportEntry), dialTimeout: dial, headerTimeout: header, egress: pol}
}

// forURL returns the transport for u's host. guarded transports serve
// tenant-chosen URLs: they dial only addresses the egress policy allows,
// and never through an environment proxy (which would resolve the name
// where the policy cannot see it).
func (t *transports) forURL(u *url.URL, guarded bool) *http.Transport {
	key := hostKey{u.Scheme, u.Host, guarded}
	now := time.Now().UnixMilli()
	t.mu.RLock()
	e := t.byHost[key]
	t.mu.RUnlock()
	if e != nil {
		if e.used.Load() != now {
			e.used.Store(now)
		}
		return e.tr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e = t.byHost[key]; e != nil {
		e.used.Store(now)
		return e.tr
	}
	if len(t.byHost) >= maxTransports {
		t.evictIdle(now)
	}
	if guarded && t.tenant >= maxTenantTransports {
		t.evictLeastRecentTenant()
	}
	dialer := &net.Dialer{Timeout: t.dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: dialer.DialContext,
		// Caddy's default of 32 idle connections per host churns
		// connections under load (reference/performance.md).
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: t.headerTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	if guarded {
		tr.Proxy, tr.DialContext = nil, t.egress.Dialer(dialer)
	}
	e = &transportEntry{tr: tr}
	e.used.Store(now)
	t.byHost[key] = e
	if guarded {
		t.tenant++
	}
	return tr
}

// drop removes one transport and closes its idle connections. Callers hold
// mu.
func (t *transports) drop(k hostKey, e *transportEntry) {
	e.tr.CloseIdleConnections()
	delete(t.byHost, k)
	if k.guarded {
		t.tenant--
	}
}

// evictLeastRecentTenant drops the tenant transport used longest ago (a
// scan of at most maxTenantTransports entries, made only when a new tenant
// host arrives at the cap). Callers hold mu.
func (t *transports) evictLeastRecentTenant() {
	var (
		oldK hostKey
		oldE *transportEntry
	)
	for k, e := range t.byHost {
		if k.guarded && (oldE == nil || e.used.Load() < oldE.used.Load()) {
			oldK, oldE = k, e
		}
	}
	if oldE != nil {
		t.drop(oldK, oldE)
	}
}

// evictIdle drops transports unused for transportIdle. Requests still
// using one keep it; only its idle connections are closed. Callers hold mu.
func (t *transports) evictIdle(now int64) {
	for k, e := range t.byHost {
		if now-e.used.Load() > transportIdle.Milliseconds() {
			t.drop(k, e)
		}
	}
}

func (t *transports) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.byHost {
		e.tr.CloseIdleConnections()
	}
}
