package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/egress/egresstest"
)

func TestTransportsPerHostAndEviction(t *testing.T) {
	ts := newTransports(0, 0, nil)
	a, _ := url.Parse("https://a.example/v1/chat/completions")
	a2, _ := url.Parse("https://a.example/v1/embeddings")
	b, _ := url.Parse("https://b.example/v1")
	if ts.forURL(a, false) != ts.forURL(a2, false) || ts.forURL(a, false) == ts.forURL(b, false) {
		t.Fatal("one transport per host, shared across paths")
	}
	if ts.forURL(a, true) == ts.forURL(a, false) {
		t.Fatal("a tenant's URL shares the operator's transport for the same host")
	}
	ts.mu.Lock()
	ts.drop(hostKey{a.Scheme, a.Host, true}, ts.byHost[hostKey{a.Scheme, a.Host, true}])
	ts.mu.Unlock()
	// Fill past the cap with hosts last used long ago: the next new host
	// evicts them, but not a recently used one.
	old := time.Now().Add(-2 * transportIdle).UnixMilli()
	for i := len(ts.byHost); i < maxTransports; i++ {
		u, _ := url.Parse(fmt.Sprintf("https://h%d.example/", i))
		ts.forURL(u, false)
		ts.byHost[hostKey{"https", u.Host, false}].used.Store(old)
	}
	ts.forURL(a, false) // recent
	n, _ := url.Parse("https://new.example/")
	ts.forURL(n, false)
	if len(ts.byHost) != 3 {
		t.Fatalf("%d transports after eviction, want a.example, b.example and new.example", len(ts.byHost))
	}
	if allocs := testing.AllocsPerRun(100, func() { ts.forURL(a, false) }); allocs != 0 {
		t.Errorf("a lookup allocates %v times", allocs)
	}
}

// TestTenantTransportsAreCapped: tenant-chosen base URLs (BYOK, the key
// Test) all used within the last minute still cannot grow the transports
// past maxTenantTransports: each new host past the cap drops the least
// recently used one and closes its idle connections, so the connections
// left open on the upstream stay under the cap too. The operator's own
// transports are never dropped for them.
func TestTenantTransportsAreCapped(t *testing.T) {
	var open atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	dns := egresstest.NewDNS(t, nil)
	pol := &egress.Policy{AllowHTTP: true, AllowHosts: []string{"127.0.0.0/8"}, Resolver: dns.Resolver()}
	ts := newTransports(2*time.Second, 2*time.Second, pol)
	t.Cleanup(ts.close)
	get := func(rawURL string, guarded bool) {
		t.Helper()
		u, _ := url.Parse(rawURL)
		req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
		resp, err := ts.forURL(u, guarded).RoundTrip(req)
		if err != nil {
			t.Fatalf("GET %s: %v", rawURL, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close() // the connection goes back to its transport's idle pool
	}
	operator := "http://127.0.0.1:" + port + "/v1"
	get(operator, false)
	const hosts = maxTenantTransports + 200
	for i := range hosts {
		name := fmt.Sprintf("tenant%d.example.com", i)
		dns.Set(name, netip.MustParseAddr("127.0.0.1"))
		get("http://"+name+":"+port+"/v1", true)
	}
	ts.mu.RLock()
	total, tenant := len(ts.byHost), ts.tenant
	_, operatorKept := ts.byHost[hostKey{"http", "127.0.0.1:" + port, false}]
	ts.mu.RUnlock()
	if tenant != maxTenantTransports || total != maxTenantTransports+1 || !operatorKept {
		t.Fatalf("after %d tenant hosts: %d transports (%d tenant, operator's kept: %v), want %d tenant + the operator's",
			hosts, total, tenant, operatorKept, maxTenantTransports)
	}
	// The dropped transports' idle connections were closed: the upstream
	// sees at most one open connection per kept transport.
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() > maxTenantTransports+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n > maxTenantTransports+1 {
		t.Fatalf("%d connections still open upstream after %d tenant hosts, want at most %d", n, hosts, maxTenantTransports+1)
	}
	// The most recent hosts are the ones kept; the oldest was dropped.
	ts.mu.RLock()
	_, newest := ts.byHost[hostKey{"http", fmt.Sprintf("tenant%d.example.com:%s", hosts-1, port), true}]
	_, oldest := ts.byHost[hostKey{"http", "tenant0.example.com:" + port, true}]
	ts.mu.RUnlock()
	if !newest || oldest {
		t.Errorf("newest kept: %v, oldest kept: %v; want the least recently used dropped", newest, oldest)
	}
	get(operator, false)
	t.Logf("%d tenant hosts: %d transports, %d connections open upstream", hosts, total, open.Load())
}
