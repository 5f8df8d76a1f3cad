package integration

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// The reconciliation end to end in a real Caddy: the Caddyfile's reconcile
// block, the admin API's usage-reader and reconciliation routes, requests
// through the site to the fake OpenAI and Anthropic (whose organisation
// admin APIs report what they served), the hourly schedule (here every 2
// seconds) on the one instance, the ledger, the metrics, the log lines —
// and the admin key in none of the places a secret must not be.

type reconEnv struct {
	*env
	oa, an *providertest.AdminServer
}

func newReconEnv(t *testing.T, interval string) *reconEnv {
	t.Helper()
	e := &reconEnv{env: &env{t: t, dir: t.TempDir(), client: &http.Client{Timeout: 30 * time.Second}},
		oa: providertest.NewOpenAIAdmin(), an: providertest.NewAnthropicAdmin()}
	t.Cleanup(e.oa.Close)
	t.Cleanup(e.an.Close)
	t.Setenv("AR_TEST_MASTER_KEY", base64.StdEncoding.EncodeToString(randomBytes(32)))
	t.Setenv("AR_RECON_OPENAI_KEY", "sk-proj-RECONplatform"+randomAlnum(40))
	handler := fmt.Sprintf(`		provider openai {
			api_key {env.AR_RECON_OPENAI_KEY}
			base_url %s
		}
		provider anthropic {
			base_url %s
		}`, e.oa.BaseURL(), e.an.BaseURL())
	global := loopbackEgress + fmt.Sprintf(`
		reconcile {
			interval %s
			election_ttl 2s
			admin_url openai %s
			admin_url anthropic %s
		}`, interval, e.oa.URL, e.an.URL)
	e.tester = caddytest.NewTester(t)
	e.tester.InitServer(testCaddyfile(e.dir, "AR_TEST_MASTER_KEY", handler, global), "caddyfile")
	return e
}

func (e *reconEnv) metrics() string {
	e.t.Helper()
	resp, err := e.client.Get(adminURL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric is the value of the series whose line starts with prefix.
func metric(text, prefix string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return f
		}
	}
	return -1
}

type readerSlot struct {
	Status  string `json:"status"`
	Masked  string `json:"masked"`
	LastRun *struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
		Error  string `json:"error"`
	} `json:"last_run"`
	Alerts []struct {
		Credential   string `json:"credential"`
		ExcessTokens int64  `json:"excess_tokens"`
	} `json:"alerts"`
}

type ledgerView struct {
	Rows []struct {
		Kind       string `json:"kind"`
		Credential string `json:"credential"`
		Model      string `json:"model"`
		Status     string `json:"status"`
		Gateway    *struct {
			Requests int64          `json:"requests"`
			Tokens   map[string]int `json:"tokens"`
		} `json:"gateway"`
		ProviderSide *struct {
			Tokens map[string]int `json:"tokens"`
		} `json:"provider_side"`
		Delta struct {
			CostPPM int64 `json:"cost_ppm"`
		} `json:"delta"`
	} `json:"rows"`
}

func TestReconcileEndToEnd(t *testing.T) {
	e := newReconEnv(t, "2s")
	openAIAdmin := "sk-admin-CANARYreconADMIN" + randomAlnum(32)
	anthropicAdmin := "sk-ant-admin01-CANARYreconADMIN" + randomAlnum(32)
	byok := "sk-proj-RECONbyokKEY" + randomAlnum(40)
	e.oa.AddAdminKey(openAIAdmin)
	e.an.AddAdminKey(anthropicAdmin)
	e.oa.AddKey(byok, providertest.AdminKey{Project: "proj_bu1"})
	canaries := []string{openAIAdmin, anthropicAdmin}

	var seen bytes.Buffer // every admin answer
	call := func(method, path string, body any, want int, out any) []byte {
		t.Helper()
		b := e.mustAdmin(method, path, body, want, out)
		seen.Write(b)
		return b
	}
	e.createAccount("acme")
	k := e.createKey("acme", "ci")
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok})

	// The usage reader: a project key is refused, an admin key is sealed
	// and shown masked, tested through the egress-guarded client.
	call("PUT", "/agent_router/accounts/acme/usage_readers/openai", map[string]string{"api_key": byok}, 400, nil)
	var slot readerSlot
	call("PUT", "/agent_router/accounts/acme/usage_readers/openai", map[string]string{"api_key": openAIAdmin}, 200, &slot)
	if slot.Status != "active" || !strings.HasPrefix(slot.Masked, "sk-admin-…") {
		t.Fatalf("reader slot: %+v", slot)
	}
	var test struct{ Outcome, Tested string }
	call("POST", "/agent_router/accounts/acme/usage_readers/openai/test", nil, 200, &test)
	if test.Outcome != "ok" || test.Tested != "stored" {
		t.Fatalf("reader test: %+v", test)
	}
	call("POST", "/agent_router/accounts/acme/usage_readers/openai/test", map[string]string{"api_key": "sk-admin-WRONGwrong" + randomAlnum(30)}, 200, &test)
	if test.Outcome != "rejected" {
		t.Fatalf("a wrong admin key's test: %+v", test)
	}
	// The platform's own reader, for Anthropic.
	call("PUT", "/agent_router/usage_readers/anthropic", map[string]string{"api_key": anthropicAdmin}, 200, nil)

	// Traffic through the site, in one hour.
	awayFromTheHour(t, 30*time.Second)
	for i := range 3 {
		for _, stream := range []bool{false, true} {
			if r := e.chat(k.Key, "gpt-4o-mini", fmt.Sprintf("r%d", i), stream); r.status != 200 || r.header.Get("X-Agent-Router-Credential") != "byok" {
				t.Fatalf("chat: %d %s", r.status, r.body)
			}
		}
	}
	time.Sleep(400 * time.Millisecond) // the log writer's flush

	var res struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
		Rows   int    `json:"rows"`
	}
	call("POST", "/agent_router/accounts/acme/reconciliation/openai/run?days=31", nil, 200, &res)
	if !res.OK || res.Rows == 0 {
		t.Fatalf("run on demand: %+v", res)
	}
	call("POST", "/agent_router/accounts/acme/reconciliation/openai/run?days=32", nil, 400, nil)
	var view ledgerView
	call("GET", "/agent_router/accounts/acme/reconciliation?provider=openai", nil, 200, &view)
	tokenRows := 0
	for _, r := range view.Rows {
		if r.Kind == "tokens" && r.Credential != "" {
			tokenRows++
			if r.Status != "match" || r.Gateway.Requests != 6 || fmt.Sprint(r.Gateway.Tokens) != fmt.Sprint(r.ProviderSide.Tokens) {
				t.Errorf("token row: %+v", r)
			}
		}
		if r.Kind == "cost" && r.Gateway != nil && (r.Delta.CostPPM > 10000 || r.Delta.CostPPM < -10000) {
			t.Errorf("cost row: %+v", r)
		}
	}
	if tokenRows != 1 {
		t.Fatalf("%d token rows: %+v", tokenRows, view.Rows)
	}
	csvBody := call("GET", "/agent_router/accounts/acme/reconciliation?provider=openai&format=csv", nil, 200, nil)
	recs, err := csv.NewReader(bytes.NewReader(csvBody)).ReadAll()
	if err != nil || len(recs) != len(view.Rows)+1 || recs[0][0] != "kind" {
		t.Fatalf("CSV: %d records for %d rows, %v", len(recs), len(view.Rows), err)
	}

	// Out-of-band use of the BYOK key: the schedule flags it by itself.
	e.oa.InjectUsage(byok, providertest.UsageEvent{Model: "gpt-4o-mini", Input: 400, Output: 100})
	deadline := time.Now().Add(20 * time.Second)
	for {
		call("GET", "/agent_router/accounts/acme/usage_readers/openai", nil, 200, &slot)
		if len(slot.Alerts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(e.dir, "caddy.log"))
			t.Fatalf("no scheduled run flagged the out-of-band use: %+v %+v\n%s", slot, slot.LastRun, grepLines(string(log), "reconcil"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if slot.Alerts[0].ExcessTokens != 500 {
		t.Fatalf("alert: %+v", slot.Alerts)
	}
	var alerts []map[string]any
	call("GET", "/agent_router/reconciliation/alerts", nil, 200, &alerts)
	if len(alerts) != 1 || alerts[0]["account"] != "acme" {
		t.Fatalf("alert list: %+v", alerts)
	}
	m := e.metrics()
	seen.WriteString(m)
	if metric(m, `caddy_agent_router_reconcile_out_of_band_keys{provider="openai"}`) != 1 ||
		metric(m, `caddy_agent_router_reconcile_leader`) != 1 ||
		metric(m, `caddy_agent_router_reconcile_runs_total{outcome="ok",provider="openai"}`) < 2 ||
		metric(m, `caddy_agent_router_reconcile_last_run_timestamp_seconds{outcome="ok",provider="openai"}`) < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("metrics:\n%s", grepLines(m, "reconcile"))
	}

	// A revoked admin key: the ledger stays as it was, and the slot says why.
	before := call("GET", "/agent_router/accounts/acme/reconciliation?provider=openai", nil, 200, nil)
	e.oa.RevokeAdmin(openAIAdmin)
	time.Sleep(3 * time.Second) // a scheduled run in flight ends
	call("POST", "/agent_router/accounts/acme/reconciliation/openai/run", nil, 200, &res)
	if res.OK || res.Reason != "admin_key_rejected" {
		t.Fatalf("run with a revoked admin key: %+v", res)
	}
	after := call("GET", "/agent_router/accounts/acme/reconciliation?provider=openai", nil, 200, nil)
	if !bytes.Equal(rowsOf(before), rowsOf(after)) {
		t.Fatalf("a failed run changed the ledger:\n%s\n%s", before, after)
	}
	if metric(e.metrics(), `caddy_agent_router_reconcile_runs_total{outcome="admin_key_rejected",provider="openai"}`) < 1 {
		t.Fatal("the failed run is not counted")
	}
	call("GET", "/agent_router/accounts/acme/usage_readers/openai", nil, 200, &slot)
	if slot.LastRun == nil || slot.LastRun.OK || slot.LastRun.Reason != "admin_key_rejected" || len(slot.Alerts) != 1 {
		t.Fatalf("slot after the revoked key: %+v", slot)
	}

	// The admin keys went to the admin endpoints only, and show nowhere.
	for _, f := range []*providertest.AdminServer{e.oa, e.an} {
		for _, r := range f.Records() {
			for _, c := range canaries {
				if strings.Contains(r.Credential, c) {
					t.Errorf("an admin key reached %s on the data plane", r.Path)
				}
			}
		}
	}
	call("GET", "/agent_router/logs?limit=1000", nil, 200, nil)
	call("GET", "/agent_router/usage_readers", nil, 200, nil)
	call("GET", "/agent_router/accounts/acme/reconciliation?format=csv", nil, 200, nil)
	call("GET", "/config/", nil, 200, nil)
	places := map[string][]byte{"admin answers and metrics": seen.Bytes()}
	for _, f := range []string{"caddy.log", "access.log", "ar.db"} {
		b, _ := os.ReadFile(filepath.Join(e.dir, f))
		places[f] = b
	}
	if b, err := os.ReadFile(caddy.ConfigAutosavePath); err == nil {
		places["autosave.json"] = b
	}
	if !bytes.Contains(places["caddy.log"], []byte("out-of-band use of a key")) || !bytes.Contains(places["caddy.log"], []byte("reconciliation failed")) {
		t.Errorf("caddy.log lacks the reconciliation's lines:\n%s", grepLines(string(places["caddy.log"]), "reconcil"))
	}
	for where, b := range places {
		for _, c := range canaries {
			for _, needle := range []string{c, c[9 : len(c)-4]} {
				if bytes.Contains(b, []byte(needle)) {
					t.Errorf("an admin key appears in %s", where)
				}
			}
		}
	}
}

// rowsOf is the "rows" member of a ledger answer, as sent.
func rowsOf(answer []byte) []byte {
	var v struct {
		Rows json.RawMessage `json:"rows"`
	}
	json.Unmarshal(answer, &v)
	return v.Rows
}

func grepLines(text, word string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// awayFromTheHour waits until the current hour has at least d left, so the
// requests sent next land in one hour on both sides.
func awayFromTheHour(t *testing.T, d time.Duration) {
	left := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour))
	if left < d {
		t.Logf("waiting %v for the next hour", left.Round(time.Millisecond))
		time.Sleep(left + 100*time.Millisecond)
	}
}
