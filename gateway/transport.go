package gateway

import (
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// transports keeps one tuned http.Transport per upstream host, so hosts do
// not share (or starve) each other's connection pools.
type transports struct {
	mu            sync.RWMutex
	byHost        map[string]*http.Transport
	dialTimeout   time.Duration
	headerTimeout time.Duration
}

func newTransports(dial, header time.Duration) *transports {
	if dial <= 0 {
		dial = 10 * time.Second
	}
	if header <= 0 {
		header = 5 * time.Minute
	}
	return &transports{byHost: make(map[string]*http.Transport), dialTimeout: dial, headerTimeout: header}
}

func (t *transports) forURL(u *url.URL) *http.Transport {
	key := u.Scheme + "://" + u.Host
	t.mu.RLock()
	tr := t.byHost[key]
	t.mu.RUnlock()
	if tr != nil {
		return tr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tr = t.byHost[key]; tr == nil {
		tr = &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{Timeout: t.dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
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
		t.byHost[key] = tr
	}
	return tr
}

func (t *transports) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.byHost {
		tr.CloseIdleConnections()
	}
}
