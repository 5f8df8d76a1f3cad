package integration

// Fleet mode with a real Caddy: one Caddy (configured with store etcd { })
// and two more gateway instances run in-process from the gateway, store and
// admin packages (caddytest runs one Caddy per test binary), all on one
// real 3-member etcd cluster (store/etcdtest, in-process).

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// fleetPeer is an in-process gateway instance with its own admin API and
// peer listener.
type fleetPeer struct {
	id                string
	s                 *store.Store
	site, admin, peer *httptest.Server
}

func startFleetPeer(t *testing.T, id string, endpoints []string, master []byte, openaiURL string) *fleetPeer {
	t.Helper()
	cli := etcdtest.Client(t, endpoints...)
	p := &fleetPeer{id: id}
	api := &admin.API{Store: func() *store.Store { return p.s }}
	p.admin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := api.ServeHTTP(w, r); err != nil {
			status := http.StatusInternalServerError
			var ae *admin.Error
			if errors.As(err, &ae) {
				status = ae.Status
			}
			http.Error(w, err.Error(), status)
		}
	}))
	t.Cleanup(p.admin.Close)
	p.peer = httptest.NewServer(&peer.Handler{Store: func() *store.Store { return p.s }})
	t.Cleanup(p.peer.Close)
	p.s = storetest.OpenFleet(t, master, store.Options{}, store.FleetOptions{
		Client: cli, InstanceID: id, PeerAddress: strings.TrimPrefix(p.peer.URL, "http://")})
	pol, _ := egress.New(true, []string{"127.0.0.1"})
	g, err := gateway.New(gateway.Config{Store: p.s, Logger: zap.NewNop(), Egress: pol,
		Providers: map[string]*gateway.ProviderConfig{providers.OpenAI: {Endpoint: providers.Endpoint{BaseURL: openaiURL}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	p.site = httptest.NewServer(g)
	t.Cleanup(p.site.Close)
	return p
}

func (p *fleetPeer) chat(t *testing.T, apiKey, tag string) int {
	t.Helper()
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":%q}]}`, tag)
	req, _ := http.NewRequest("POST", p.site.URL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// fleetMetrics reads the etcd reachability gauge and outage counter from
// Caddy's /metrics ("" when absent).
func (e *env) fleetMetrics() (reachable, outages string) {
	e.t.Helper()
	resp, err := e.client.Get(adminURL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "caddy_agent_router_fleet_etcd_reachable "); ok {
			reachable = v
		}
		if v, ok := strings.CutPrefix(line, "caddy_agent_router_fleet_etcd_outages_total "); ok {
			outages = v
		}
	}
	return reachable, outages
}

func TestFleetWithCaddy(t *testing.T) {
	c := etcdtest.Start(t, 3)
	master := randomBytes(32)
	e := newEnv(t, envOptions{global: fmt.Sprintf(`		store etcd {
			endpoints %s
			instance_id caddy
			peer_listen 127.0.0.1:0
			dial_timeout 5s
		}`, strings.Join(c.Endpoints(), " ")), masterKey: master})
	a := startFleetPeer(t, "peer-a", c.Endpoints(), master, e.openai.BaseURL())
	b := startFleetPeer(t, "peer-b", c.Endpoints(), master, e.openai.BaseURL())

	// Written through Caddy's admin API, served by the peers.
	e.createAccount("acme")
	k := e.createKey("acme", "ci")
	byok1 := "sk-fleet-one-" + randomAlnum(32)
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok1})
	testfix.WaitFor(t, 2*time.Second, "the peers serve the account's key", func() bool {
		c := b.s.Snapshot().Credential("acme", "openai")
		return c != nil && c.Key() == byok1 && a.s.Snapshot().Credential("acme", "openai") != nil
	})
	sent := 0 // data-plane requests, for the fleet-wide counts below
	sent++
	if st := a.chat(t, k.Key, "via-a-1"); st != 200 {
		t.Fatalf("peer a: %d", st)
	}
	if got := recordFor(t, e.openai, "via-a-1").Credential; got != byok1 {
		t.Fatalf("peer a used %q", got)
	}

	// Rotated on a peer, served by Caddy.
	byok2 := "sk-fleet-two-" + randomAlnum(32)
	if _, err := a.s.PutCredential("acme", "openai", byok2, "sk-...", store.Extras{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; ; i++ {
		tag := fmt.Sprintf("via-caddy-%d", i)
		sent++
		if r := e.chat(k.Key, "gpt-4o-mini", tag, false); r.status != 200 {
			t.Fatalf("caddy: %d %s", r.status, r.body)
		}
		if recordFor(t, e.openai, tag).Credential == byok2 {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatal("the rotation did not reach Caddy within 1s")
		}
	}
	t.Logf("rotation on a peer served by Caddy after %v", time.Since(start))

	// A config reload keeps the store, its etcd client and watch (one per
	// process): Caddy still follows rotations and stays one member.
	e.load()
	byok2b := "sk-fleet-two-b-" + randomAlnum(32)
	if _, err := b.s.PutCredential("acme", "openai", byok2b, "sk-...", store.Extras{}); err != nil {
		t.Fatal(err)
	}
	testfix.WaitFor(t, 2*time.Second, "Caddy serves the rotation after the reload", func() bool {
		tag := "after-reload-" + randomAlnum(8)
		sent++
		r := e.chat(k.Key, "gpt-4o-mini", tag, false)
		return r.status == 200 && recordFor(t, e.openai, tag).Credential == byok2b
	})
	var fleetSt struct {
		Members []store.Member `json:"members"`
	}
	e.mustAdmin("GET", "/agent_router/fleet", nil, 200, &fleetSt)
	if len(fleetSt.Members) != 3 {
		t.Fatalf("members after the reload: %+v", fleetSt.Members)
	}
	byok2 = byok2b
	sent++
	if st := b.chat(t, k.Key, "via-b-1"); st != 200 {
		t.Fatalf("peer b: %d", st)
	}

	// Logs and usage read on Caddy include the peers' requests.
	var page struct {
		Records []struct {
			ID       string `json:"id"`
			Instance string `json:"instance"`
		} `json:"records"`
		Next    string            `json:"next"`
		Missing []ops.MemberError `json:"missing"`
	}
	testfix.WaitFor(t, 5*time.Second, "fleet-wide logs on Caddy", func() bool {
		a.s.FlushLog()
		b.s.FlushLog()
		e.mustAdmin("GET", "/agent_router/logs?account=acme", nil, 200, &page)
		seen := map[string]bool{}
		for _, r := range page.Records {
			seen[r.Instance] = true
		}
		return seen["caddy"] && seen["peer-a"] && seen["peer-b"] && len(page.Missing) == 0 && len(page.Records) == sent
	})
	total := len(page.Records)
	// Paging with the fleet-wide cursor returns the same records.
	var paged int
	cursor := ""
	for pages := 0; pages < 100; pages++ {
		var p2 struct {
			Records []json.RawMessage `json:"records"`
			Next    string            `json:"next"`
		}
		e.mustAdmin("GET", "/agent_router/logs?account=acme&limit=1&before="+cursor, nil, 200, &p2)
		paged += len(p2.Records)
		if p2.Next == "" {
			break
		}
		cursor = p2.Next
	}
	if paged != total {
		t.Fatalf("paging one by one gave %d records, one page %d", paged, total)
	}
	var usage struct {
		Total   store.UsageCounters `json:"total"`
		Missing []ops.MemberError   `json:"missing"`
	}
	testfix.WaitFor(t, 15*time.Second, "fleet-wide usage on Caddy", func() bool {
		e.mustAdmin("GET", "/agent_router/usage?account=acme", nil, 200, &usage)
		return usage.Total.Requests == int64(total)
	})
	t.Logf("fleet-wide: %d log records from 3 instances, usage %d requests", total, usage.Total.Requests)

	// Caddy's admin endpoint (on localhost) serves no peer route; its peer
	// listener answers signed reads only: a peer reads Caddy's records
	// through it, a request without a valid signature is refused.
	if code, body := e.admin("POST", "/agent_router/fleet/local/logs", map[string]any{"AccountID": "acme"}, nil); code != http.StatusNotFound {
		t.Errorf("the admin endpoint still serves the peer route: %d %s", code, body)
	}
	var caddyPeer string
	for _, m := range fleetSt.Members {
		if m.ID == "caddy" {
			caddyPeer = m.PeerAddress
		}
	}
	if caddyPeer == "" || strings.HasSuffix(caddyPeer, ":0") {
		t.Fatalf("Caddy's peer address: %q", caddyPeer)
	}
	for name, sign := range map[string]func(*http.Request){
		"unsigned":       func(*http.Request) {},
		"wrongly signed": func(r *http.Request) { r.Header.Set("Authorization", "AgentRouter-Peer 0123456789abcdef=AAAA") },
	} {
		req, _ := http.NewRequest("POST", "http://"+caddyPeer+"/agent_router/fleet/local/logs", strings.NewReader(`{"AccountID":"acme","Limit":1000}`))
		req.Header.Set("X-Agent-Router-Peer-Time", fmt.Sprint(time.Now().Unix()))
		sign(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(raw), "acme") {
			t.Errorf("%s request to Caddy's peer listener: %d %s", name, resp.StatusCode, raw)
		}
	}
	fromPeer, _, missingFromPeer, err := ops.FleetLogs(t.Context(), a.s, store.LogFilter{AccountID: "acme", Limit: 1000})
	if err != nil || len(missingFromPeer) != 0 || len(fromPeer) != total {
		t.Fatalf("fleet-wide logs read on peer a: %d records (want %d), missing %+v, %v", len(fromPeer), total, missingFromPeer, err)
	}

	// A member that does not answer is reported.
	b.peer.Close()
	e.mustAdmin("GET", "/agent_router/logs?account=acme", nil, 200, &page)
	if len(page.Missing) != 1 || page.Missing[0].Member != "peer-b" {
		t.Fatalf("missing: %+v", page.Missing)
	}

	// etcd down: the data plane serves, admin writes answer 503, and
	// they work again once etcd is back.
	c.StopAll()
	if r := e.chat(k.Key, "gpt-4o-mini", "while-down", false); r.status != 200 {
		t.Fatalf("data plane while etcd is down: %d %s", r.status, r.body)
	}
	code, body := e.admin("PUT", "/agent_router/accounts/acme/byok/openai", map[string]string{"api_key": "sk-fleet-three-" + randomAlnum(32)}, nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "etcd") {
		t.Fatalf("admin write while etcd is down: %d %s", code, body)
	}
	t.Logf("admin write while etcd is down: %d %s", code, strings.TrimSpace(string(body)))
	// The outage is said: the fleet status, the metrics, the log.
	var fst struct {
		Reachable *bool      `json:"etcd_reachable"`
		Since     *time.Time `json:"etcd_unreachable_since"`
		Outages   int64      `json:"etcd_outages"`
	}
	e.mustAdmin("GET", "/agent_router/fleet", nil, 200, &fst)
	if fst.Reachable == nil || *fst.Reachable || fst.Since == nil || fst.Outages != 1 {
		t.Fatalf("fleet status during the outage: %+v", fst)
	}
	if up, n := e.fleetMetrics(); up != "0" || n != "1" {
		t.Fatalf("metrics during the outage: reachable %q, outages %q", up, n)
	}
	if err := c.RestartAll(); err != nil {
		t.Fatal(err)
	}
	byok3 := "sk-fleet-four-" + randomAlnum(32)
	ready := time.Now()
	testfix.WaitFor(t, 30*time.Second, "admin writes resume", func() bool {
		code, _ := e.admin("PUT", "/agent_router/accounts/acme/byok/openai", map[string]string{"api_key": byok3}, nil)
		return code == 200
	})
	resumed := time.Since(ready)
	t.Logf("admin writes resumed %v after etcd was ready", resumed.Round(time.Millisecond))
	if resumed > 3*time.Second {
		t.Errorf("admin writes took %v to resume after etcd was ready", resumed)
	}
	fst.Reachable, fst.Since = nil, nil // omitted when empty: decode afresh
	e.mustAdmin("GET", "/agent_router/fleet", nil, 200, &fst)
	if fst.Reachable == nil || !*fst.Reachable || fst.Since != nil || fst.Outages != 1 {
		t.Fatalf("fleet status after the outage: %+v", fst)
	}
	if up, n := e.fleetMetrics(); up != "1" || n != "1" {
		t.Fatalf("metrics after the outage: reachable %q, outages %q", up, n)
	}
	logged, _ := os.ReadFile(filepath.Join(e.dir, "caddy.log"))
	if !strings.Contains(string(logged), "etcd is unreachable") || !strings.Contains(string(logged), "etcd is reachable again") {
		t.Error("the outage's start and end are not in Caddy's log")
	}
	testfix.WaitFor(t, 5*time.Second, "peer serves the key written after recovery", func() bool {
		c := a.s.Snapshot().Credential("acme", "openai")
		return c != nil && c.Key() == byok3
	})

	// The canary: no plaintext provider key in etcd's data directories.
	for i := 0; i < c.Size(); i++ {
		filepath.WalkDir(c.DataDir(i), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			raw, _ := os.ReadFile(p)
			for _, key := range []string{byok1, byok2, byok3} {
				if strings.Contains(string(raw), key) {
					t.Errorf("plaintext provider key in etcd file %s", p)
				}
			}
			return nil
		})
	}
}
