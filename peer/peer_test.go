package peer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// fleetMember is a fleet store with a peer listener whose handler the test
// picks (the real PeerHandler by default).
type fleetMember struct {
	id      string
	s       *store.Store
	srv     *httptest.Server
	handler atomic.Pointer[http.Handler]
	hits    atomic.Int32
}

func startMember(t *testing.T, c *etcdtest.Cluster, id string, master []byte) *fleetMember {
	t.Helper()
	cli := c.Client(t)
	m := &fleetMember{id: id}
	var h http.Handler = &peer.Handler{Store: func() *store.Store { return m.s }}
	m.handler.Store(&h)
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		(*m.handler.Load()).ServeHTTP(w, r)
	}))
	t.Cleanup(m.srv.Close)
	m.s = storetest.OpenFleet(t, master, store.Options{}, store.FleetOptions{
		Client: cli, InstanceID: id, PeerAddress: strings.TrimPrefix(m.srv.URL, "http://"), MemberTTL: 2 * time.Second})
	return m
}

func (m *fleetMember) serve(h http.HandlerFunc) {
	var hh http.Handler = h
	m.handler.Store(&hh)
}

// record writes n request-log records of account on m.
func (m *fleetMember) record(account string, n int) {
	for i := range n {
		m.s.Record(&store.LogRecord{ID: fmt.Sprintf("%s-%s-%03d", m.id, account, i), Time: time.Now().UTC(), AccountID: account,
			Endpoint: "chat.completions", Model: "gpt-4o-mini", Provider: "openai", CredentialSource: "platform", Status: 200, TotalTokens: 10})
	}
	m.s.FlushLog()
}

func waitMembers(t *testing.T, s *store.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Members()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d members registered, want %d", len(s.Members()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// peerPost sends body to m's peer route, signed with keys (nil: unsigned)
// at time at (zero: now).
func peerPost(t *testing.T, m *fleetMember, method, route, body string, keys []store.PeerKey, at time.Time, tamper string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, m.srv.URL+peer.Prefix+route, strings.NewReader(body))
	if keys != nil {
		restore := func() {}
		if !at.IsZero() {
			restore = peer.SetClock(func() time.Time { return at })
		}
		peer.SignRequest(req, []byte(body), keys)
		restore() // the receiver, in this process, keeps the real clock
	}
	if tamper != "" {
		req.Body = io.NopCloser(strings.NewReader(tamper))
		req.ContentLength = int64(len(tamper))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPeerReadsAreSigned: a member's peer listener answers only requests
// signed with a key derived from the fleet's master key — current or old
// during a rotation, within the clock window, over the exact body — and
// signs its answers; a member that answers unsigned is reported missing.
func TestPeerReadsAreSigned(t *testing.T) {
	c := etcdtest.Start(t, 1)
	master := storetest.MasterKey(t)
	a := startMember(t, c, "a", master)
	b := startMember(t, c, "b", master)
	waitMembers(t, a.s, 2)
	b.record("acme", 3)
	b.record("globex", 2)

	recs, _, missing, err := ops.FleetLogs(context.Background(), a.s, store.LogFilter{AccountID: "acme", Limit: 50})
	if err != nil || len(missing) != 0 || len(recs) != 3 {
		t.Fatalf("a's fleet-wide read: %d records, missing %+v, %v", len(recs), missing, err)
	}

	body := `{"AccountID":"acme","Limit":50}`
	keys := a.s.PeerKeys()
	other := storetest.Open(t)
	for _, tc := range []struct {
		name   string
		keys   []store.PeerKey
		at     time.Time
		tamper string
	}{
		{"unsigned", nil, time.Time{}, ""},
		{"another fleet's key", other.PeerKeys(), time.Time{}, ""},
		{"a minute old", keys, time.Now().Add(-time.Minute), ""},
		{"a minute ahead", keys, time.Now().Add(time.Minute), ""},
		{"body changed after signing", keys, time.Time{}, `{"AccountID":"globex","Limit":50}`},
	} {
		status, answer := peerPost(t, b, http.MethodPost, "logs", body, tc.keys, tc.at, tc.tamper)
		if status != http.StatusUnauthorized || strings.Contains(answer, "acme-") || strings.Contains(answer, "globex-") {
			t.Errorf("%s: %d %s", tc.name, status, answer)
		}
	}
	// During a master-key rotation a member signs with every key it knows;
	// one the receiver knows is enough.
	if status, answer := peerPost(t, b, http.MethodPost, "logs", body, append(other.PeerKeys(), keys...), time.Time{}, ""); status != http.StatusOK || !strings.Contains(answer, "b-acme-000") {
		t.Errorf("signed with an unknown and a known key: %d %s", status, answer)
	}
	if status, _ := peerPost(t, b, http.MethodGet, "logs", "", keys, time.Time{}, ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", status)
	}
	if status, _ := peerPost(t, b, http.MethodPost, "accounts", "{}", keys, time.Time{}, ""); status != http.StatusNotFound {
		t.Errorf("another route: %d", status)
	}

	// An answer must be signed too: b's real records, unsigned, are not
	// taken.
	b.serve(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		(&peer.Handler{Store: func() *store.Store { return b.s }}).ServeHTTP(rec, r)
		w.Header().Set("Content-Type", "application/json")
		w.Write(rec.Body.Bytes())
	})
	recs, _, missing, _ = ops.FleetLogs(context.Background(), a.s, store.LogFilter{AccountID: "acme", Limit: 50})
	if len(recs) != 0 || len(missing) != 1 || missing[0].Member != "b" || !strings.Contains(missing[0].Error, "not signed") {
		t.Errorf("unsigned answer: %d records, missing %+v", len(recs), missing)
	}
}

// evil answers a valid request with what answer returns, signed as a
// member would (a member with the fleet's key that misbehaves).
func evil(m *fleetMember, answer func(route string) []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key, mac, err := peer.VerifyRequest(r, body, m.s.PeerKeys())
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		out := answer(strings.TrimPrefix(r.URL.Path, peer.Prefix))
		w.Header().Set(peer.HeaderAnswer, key.ID+"="+peer.B64.EncodeToString(peer.AnswerMAC(key.Key, mac, out)))
		w.Write(out)
	}
}

// TestPeerAnswersAreChecked: what a member answers is used only when it
// holds nothing but the asked account's records, no more of them than
// asked for, within the size bound; otherwise the member is reported
// missing and nothing of its answer shows.
func TestPeerAnswersAreChecked(t *testing.T) {
	c := etcdtest.Start(t, 1)
	master := storetest.MasterKey(t)
	a := startMember(t, c, "a", master)
	b := startMember(t, c, "b", master)
	x := startMember(t, c, "x", master)
	waitMembers(t, a.s, 3)
	a.record("acme", 1)
	b.record("acme", 2)
	x.record("globex", 4)
	x.record("acme", 1)

	ctx := context.Background()
	acme := store.LogFilter{AccountID: "acme", Limit: 10}
	if recs, _, missing, _ := ops.FleetLogs(ctx, a.s, acme); len(recs) != 4 || len(missing) != 0 {
		t.Fatalf("honest fleet: %d records, missing %+v", len(recs), missing)
	}
	usageOf := func() (store.UsageResult, []ops.MemberError) {
		t.Helper()
		res, missing, err := ops.FleetUsage(ctx, a.s, store.UsageQuery{AccountID: "acme", GroupBy: []string{store.DimProvider}})
		if err != nil {
			t.Fatal(err)
		}
		return res, missing
	}
	if res, missing := usageOf(); res.Total.Requests != 4 || len(missing) != 0 || len(res.Totals) != 1 || len(res.Totals[0].Key) != 1 {
		t.Fatalf("honest usage: %+v, missing %+v", res, missing)
	}

	// x answers globex's records (and usage) to a read for acme.
	globexLogs, _ := json.Marshal(peer.LogPage{Records: []store.LogRecord{{ID: "x-globex-000", Time: time.Now(), AccountID: "globex", Status: 200}}})
	globexUsage := func() []byte {
		res, _ := x.s.Usage(store.UsageQuery{AccountID: "globex", GroupBy: []string{store.DimProvider, store.DimAccount}})
		b, _ := json.Marshal(peer.UsageAnswers{Results: []store.UsageResult{res}})
		return b
	}
	x.serve(evil(x, func(route string) []byte {
		if route == "logs" {
			return globexLogs
		}
		return globexUsage()
	}))
	recs, _, missing, _ := ops.FleetLogs(ctx, a.s, acme)
	if len(recs) != 3 || len(missing) != 1 || missing[0].Member != "x" || !strings.Contains(missing[0].Error, "another account") {
		t.Errorf("records of another account: %d records, missing %+v", len(recs), missing)
	}
	for _, r := range recs {
		if r.AccountID != "acme" {
			t.Errorf("a record of %s shown for acme", r.AccountID)
		}
	}
	if res, missing := usageOf(); res.Total.Requests != 3 || len(missing) != 1 || !strings.Contains(missing[0].Error, "another account") {
		t.Errorf("usage of another account: total %d, missing %+v", res.Total.Requests, missing)
	}

	// An answer without the account dimension cannot be checked: refused.
	x.serve(evil(x, func(string) []byte {
		res, _ := x.s.Usage(store.UsageQuery{GroupBy: []string{store.DimProvider}})
		b, _ := json.Marshal(peer.UsageAnswers{Results: []store.UsageResult{res}})
		return b
	}))
	if res, missing := usageOf(); res.Total.Requests != 3 || len(missing) != 1 {
		t.Errorf("usage without the account: total %d, missing %+v", res.Total.Requests, missing)
	}

	// More records than asked for.
	many := peer.LogPage{}
	for i := range 11 {
		many.Records = append(many.Records, store.LogRecord{ID: fmt.Sprintf("x-acme-%03d", i), Time: time.Now(), AccountID: "acme"})
	}
	manyJSON, _ := json.Marshal(many)
	x.serve(evil(x, func(string) []byte { return manyJSON }))
	if recs, _, missing, _ := ops.FleetLogs(ctx, a.s, acme); len(recs) != 3 || len(missing) != 1 || !strings.Contains(missing[0].Error, "11 records") {
		t.Errorf("too many records: %d records, missing %+v", len(recs), missing)
	}

	// Larger than the question calls for: read no further than the bound.
	huge := append(append([]byte(`{"records":[],"next":"`), bytes.Repeat([]byte("a"), 9<<20)...), `"}`...)
	x.serve(evil(x, func(string) []byte { return huge }))
	if recs, _, missing, _ := ops.FleetLogs(ctx, a.s, acme); len(recs) != 3 || len(missing) != 1 || !strings.Contains(missing[0].Error, "larger than") {
		t.Errorf("a 9 MiB answer: %d records, missing %+v", len(recs), missing)
	}
}
