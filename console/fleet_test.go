package console

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// openMember opens a fleet store whose peer listener runs h (the real
// PeerHandler when nil).
func openMember(t *testing.T, c *etcdtest.Cluster, id string, master []byte, h http.Handler) *store.Store {
	t.Helper()
	cli := c.Client(t)
	var s *store.Store
	if h == nil {
		h = &peer.Handler{Store: func() *store.Store { return s }}
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s = storetest.OpenFleet(t, master, store.Options{}, store.FleetOptions{
		Client: cli, InstanceID: id, PeerAddress: strings.TrimPrefix(srv.URL, "http://"), MemberTTL: 2 * time.Second})
	return s
}

// TestFleetUsageReportsMissingMembers: in a fleet, the Usage page and its
// CSV name the instances that did not answer, as Request Logs does, instead
// of silently showing less; and the page asks every instance once, so one
// that never answers costs one bounded wait, not one per chart.
func TestFleetUsageReportsMissingMembers(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, 1)
	master := storetest.MasterKey(t)
	a := openMember(t, c, "gw-a", master, nil)
	t.Cleanup(func() { a.Close() })
	b := openMember(t, c, "gw-b", master, nil)
	t.Cleanup(func() { b.Close() })
	var slowHits atomic.Int32
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	slow := openMember(t, c, "gw-slow", master, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowHits.Add(1)
		io.Copy(io.Discard, r.Body) // so the server notices the asker hanging up
		select {                    // never answers: the asker gives up
		case <-r.Context().Done():
		case <-done:
		}
	}))
	slowOpen := true
	t.Cleanup(func() {
		if slowOpen {
			slow.Close()
		}
	})
	if _, err := a.CreateAccount("acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	for len(a.Members()) != 3 {
		time.Sleep(5 * time.Millisecond)
	}
	// a served one request of acme, b two (and one of another account).
	now := time.Now().UTC()
	for i, r := range []struct {
		s       *store.Store
		account string
	}{{a, "acme"}, {b, "acme"}, {b, "acme"}, {b, "globex"}} {
		r.s.Record(&store.LogRecord{ID: fmt.Sprintf("%016x%08x", now.UnixNano(), i), Time: now, AccountID: r.account,
			Model: "gpt-4o-mini", UpstreamModel: "gpt-4o-mini", Provider: "openai", CredentialSource: "platform", Status: 200, TotalTokens: 10})
	}
	a.FlushLog()
	b.FlushLog()

	f := &fixture{t: t, s: a}
	h, err := New(Config{Store: a})
	if err != nil {
		t.Fatal(err)
	}
	f.h, f.srv = h, httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	cl := f.signedIn("owner@acme.test")

	start := time.Now()
	st, body := cl.get("/console/usage?range=24h")
	took := time.Since(start)
	if st != 200 || !strings.Contains(body, `id="missing"`) || !strings.Contains(body, "gw-slow") || strings.Contains(body, "gw-b,") ||
		!strings.Contains(body, `id="total-platform">3<`) {
		t.Fatalf("usage page with an instance not answering: %d %s", st, body)
	}
	// One request to the silent instance for the chart and the three
	// breakdowns (each used to ask, and wait, on its own: 4 × 3 s).
	if n := slowHits.Load(); n != 1 {
		t.Errorf("the page asked the silent instance %d times, want once", n)
	}
	if took > 2*3*time.Second {
		t.Errorf("the page took %v with one instance silent", took)
	}
	t.Logf("usage page with one silent instance: %v", took.Round(10*time.Millisecond))

	st, csv, hdr := cl.do("GET", "/console/usage.csv?range=24h", nil, nil)
	if st != 200 || hdr.Get(HeaderMissingInstances) != "gw-slow" || !strings.Contains(hdr.Get("Content-Disposition"), "-incomplete.csv") ||
		!strings.Contains(csv, ",platform,openai,gpt-4o-mini,,3,") {
		t.Fatalf("csv with an instance not answering: %d %v\n%s", st, hdr, csv)
	}

	// Once it has left the fleet, nothing is missing.
	slow.Close()
	slowOpen = false
	for len(a.Members()) != 2 {
		time.Sleep(5 * time.Millisecond)
	}
	st, body = cl.get("/console/usage?range=24h")
	if st != 200 || strings.Contains(body, `id="missing"`) || !strings.Contains(body, `id="total-platform">3<`) {
		t.Fatalf("usage page with every instance answering: %d %s", st, body)
	}
	_, _, hdr = cl.do("GET", "/console/usage.csv?range=24h", nil, nil)
	if hdr.Get(HeaderMissingInstances) != "" || strings.Contains(hdr.Get("Content-Disposition"), "incomplete") {
		t.Errorf("csv with every instance answering: %v", hdr)
	}
}
