package ops_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// openMember opens a fleet store on c with its peer listener.
func openMember(t *testing.T, c *etcdtest.Cluster, id string, master []byte) *store.Store {
	t.Helper()
	var s *store.Store
	srv := httptest.NewServer(&peer.Handler{Store: func() *store.Store { return s }})
	t.Cleanup(srv.Close)
	s = storetest.OpenFleet(t, master, store.Options{}, store.FleetOptions{
		Client: c.Client(t), InstanceID: id, PeerAddress: strings.TrimPrefix(srv.URL, "http://"), MemberTTL: 2 * time.Second})
	return s
}

// record writes one request-log record of acme at second sec of base on s,
// with an id shaped like the gateway's (time first, so ids sort by time).
func record(s *store.Store, base time.Time, sec int) {
	at := base.Add(time.Duration(sec) * time.Second)
	s.Record(&store.LogRecord{ID: fmt.Sprintf("%016x%08x", at.UnixNano(), sec), Time: at, AccountID: "acme",
		Endpoint: "chat.completions", Model: "gpt-4o-mini", Provider: "openai", CredentialSource: "platform", Status: 200})
}

// TestFleetLogsPagesEveryRecordOnce: paging a fleet-wide log shows every
// record once, newest first, even when a member that answered shows
// nothing on a page (its records are all older than the page): its place
// is kept, not reset to its newest record (which showed its first page
// again, forever).
func TestFleetLogsPagesEveryRecordOnce(t *testing.T) {
	c := etcdtest.Start(t, 1)
	master := storetest.MasterKey(t)
	a := openMember(t, c, "a", master)
	b := openMember(t, c, "b", master)
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Members()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d members registered, want 2", len(a.Members()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	// Newest first: a's two newest, b's two, a's two oldest.
	for _, sec := range []int{10, 9, 2, 1} {
		record(a, base, sec)
	}
	for _, sec := range []int{6, 5} {
		record(b, base, sec)
	}
	a.FlushLog()
	b.FlushLog()

	var got []string
	f := store.LogFilter{AccountID: "acme", Limit: 2}
	for range 6 {
		recs, next, missing, err := ops.FleetLogs(context.Background(), a, f)
		if err != nil || len(missing) != 0 {
			t.Fatalf("page %d: %v, missing %+v", len(got)/2+1, err, missing)
		}
		for _, r := range recs {
			got = append(got, fmt.Sprintf("%s%d", r.Instance, r.Time.Sub(base)/time.Second))
		}
		if next == "" {
			break
		}
		f.Before = next
	}
	if want := "a10 a9 b6 b5 a2 a1"; strings.Join(got, " ") != want {
		t.Fatalf("pages showed %s, want %s", strings.Join(got, " "), want)
	}
}
