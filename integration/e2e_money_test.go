package integration

import (
	"encoding/csv"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
)

// The price blocks of the money test: gpt-4o at 2 / 8 (list is 2.50 / 10),
// and the platform's 20 % contract with OpenAI.
const moneyOpenAI = `			price gpt-4o {
				input 2
				cache_read 1
				output 8
			}
			contract {
				discount 20
			}`

// TestMoneyThroughCaddy: through a real Caddy, the price blocks become a
// price version (GET /agent_router/prices); a platform request is priced
// at the override under the platform's contract, a BYOK request at the
// override under its credential's own contract term (set through the
// admin API), with the platform's shadow cost; X-Agent-Router-Cost, the
// request log, the metrics and the chargeback agree; a reload with a new
// price publishes a new version that prices the next request, and a reload
// with a per-token price typed as per 1M is refused and changes nothing.
func TestMoneyThroughCaddy(t *testing.T) {
	e := newEnv(t, envOptions{openai: moneyOpenAI})
	e.createAccount("acme")
	e.createAccount("beta")
	ka, kb := e.createKey("acme", "k"), e.createKey("beta", "k")
	e.putBYOK("acme", "openai", map[string]string{"api_key": "sk-proj-money" + randomAlnum(40)})
	var term map[string]any
	e.mustAdmin("POST", "/agent_router/accounts/acme/byok/openai/contract", map[string]string{"discount_percent": "50"}, 200, &term)

	var book struct {
		Current  string `json:"current"`
		Versions []struct {
			ID      string `json:"id"`
			Changes []struct{ Provider, Model, Field, Old, New string }
		} `json:"versions"`
	}
	e.mustAdmin("GET", "/agent_router/prices", nil, 200, &book)
	last := book.Versions[len(book.Versions)-1]
	if book.Current != last.ID || len(last.Changes) != 3 {
		t.Fatalf("the price blocks are not the current version's changes: %+v", book)
	}
	v1 := book.Current

	metric := func(name string, labels map[string]string) float64 { return e.metricValue(name, labels) }
	platSeries := map[string]string{"provider": "openai", "credential_source": "platform"}
	byokSeries := map[string]string{"provider": "openai", "credential_source": "byok"}
	base := map[string]float64{"plat": metric("caddy_agent_router_cost_usd_total", platSeries),
		"byok": metric("caddy_agent_router_cost_usd_total", byokSeries), "shadow": metric("caddy_agent_router_shadow_cost_usd_total", map[string]string{"provider": "openai"})}

	// The fake reports 11 prompt and 5 completion tokens: 11 × 2 + 5 × 8
	// = 62 µUSD at the override; the platform pays 20 % less, 49.6 µUSD.
	plat := e.chat(kb.Key, "gpt-4o", "money-platform", false)
	if plat.status != 200 || plat.header.Get("X-Agent-Router-Cost") != "0.0000496" {
		t.Fatalf("platform: %d, cost header %q", plat.status, plat.header.Get("X-Agent-Router-Cost"))
	}
	// BYOK: the account's own 50 % term, 31 µUSD; the platform would have paid 49.6.
	byok := e.chat(ka.Key, "gpt-4o", "money-byok", false)
	if byok.status != 200 || byok.header.Get("X-Agent-Router-Cost") != "0.000031" {
		t.Fatalf("byok: %d, cost header %q", byok.status, byok.header.Get("X-Agent-Router-Cost"))
	}
	streamed := e.chat(ka.Key, "gpt-4o", "money-byok-stream", true)
	if streamed.status != 200 || streamed.header.Get("X-Agent-Router-Cost") != "" {
		t.Fatalf("stream: %d, cost header %q", streamed.status, streamed.header.Get("X-Agent-Router-Cost"))
	}
	for _, c := range []struct {
		r            chatResult
		want, shadow string
	}{{plat, "0.0000496", ""}, {byok, "0.000031", "0.0000496"}, {streamed, "0.000031", "0.0000496"}} {
		var rec struct {
			Cost       map[string]any `json:"cost"`
			ShadowCost map[string]any `json:"shadow_cost"`
		}
		id := c.r.header.Get("X-Agent-Router-Request-Id")
		testfix.WaitFor(t, 5*time.Second, "record "+id, func() bool { code, _ := e.admin("GET", "/agent_router/logs/"+id, nil, &rec); return code == 200 })
		if rec.Cost["total_usd"] != c.want || rec.Cost["price_version"] != v1 {
			t.Errorf("record %s: cost %v, want %s under %s", id, rec.Cost, c.want, v1)
		}
		if c.shadow != "" && (rec.ShadowCost == nil || rec.ShadowCost["total_usd"] != c.shadow) {
			t.Errorf("record %s: shadow %v, want %s", id, rec.ShadowCost, c.shadow)
		}
	}
	near := func(got, want float64) bool { return got > want-1e-12 && got < want+1e-12 }
	if d := metric("caddy_agent_router_cost_usd_total", platSeries) - base["plat"]; !near(d, 0.0000496) {
		t.Errorf("platform cost metric moved %v, want 0.0000496", d)
	}
	if d := metric("caddy_agent_router_cost_usd_total", byokSeries) - base["byok"]; !near(d, 0.000062) {
		t.Errorf("byok cost metric moved %v, want 0.000062", d)
	}
	if d := metric("caddy_agent_router_shadow_cost_usd_total", map[string]string{"provider": "openai"}) - base["shadow"]; !near(d, 0.0000992) {
		t.Errorf("shadow cost metric moved %v", d)
	}
	// An Azure deployment the book has no price for: unpriced, counted.
	// (Every label named: metricValue reads the first series that matches,
	// and an earlier test of this process may have left a BYOK one.)
	unpricedSeries := map[string]string{"provider": "azure", "credential_source": "platform", "reason": "no_price_for_model"}
	unpricedBefore := metric("caddy_agent_router_unpriced_requests_total", unpricedSeries)
	if r := e.chat(kb.Key, "my-gpt", "money-azure", false); r.status != 200 || r.header.Get("X-Agent-Router-Cost") != "" {
		t.Fatalf("azure: %d %q", r.status, r.header.Get("X-Agent-Router-Cost"))
	}
	// The metric is counted when the request finishes, which may be just
	// after the client has read the answer.
	unpriced := func() float64 { return metric("caddy_agent_router_unpriced_requests_total", unpricedSeries) - unpricedBefore }
	testfix.WaitFor(t, 5*time.Second, "the unpriced metric", func() bool { return unpriced() != 0 })
	if d := unpriced(); d != 1 {
		t.Errorf("unpriced metric moved %v, want 1", d)
	}

	// The chargeback of this month, JSON and CSV.
	month := time.Now().UTC().Format("2006-01")
	var cb struct {
		Rows []struct {
			Provider, Credential, Model, PaidBy, CostUSD, ShadowCostUSD string
			Requests                                                    int64
		}
		Totals map[string]struct {
			CostUSD string `json:"cost_usd"`
		}
	}
	testfix.WaitFor(t, 5*time.Second, "the chargeback", func() bool {
		e.mustAdmin("GET", "/agent_router/accounts/acme/chargeback?month="+month, nil, 200, &cb)
		return cb.Totals["byok"].CostUSD == "0.000062"
	})
	resp, err := e.client.Get(adminURL + "/agent_router/accounts/acme/chargeback?month=" + month + "&format=csv")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if resp.StatusCode != 200 || err != nil || len(rows) != 2 || rows[1][1] != "openai" || rows[1][13] != "0.000062" {
		t.Fatalf("chargeback CSV: %d %v\n%s", resp.StatusCode, err, body)
	}

	// A reload with a new price: a new version prices the next request.
	e.options.openai = strings.Replace(moneyOpenAI, "input 2\n", "input 3\n", 1)
	e.load()
	e.mustAdmin("GET", "/agent_router/prices", nil, 200, &book)
	if book.Current == v1 || len(book.Versions) < 2 {
		t.Fatalf("no new version after the reload: %+v", book.Current)
	}
	// 11 × 3 + 5 × 8 = 73 µUSD, 20 % off.
	if r := e.chat(kb.Key, "gpt-4o", "money-after", false); r.header.Get("X-Agent-Router-Cost") != "0.0000584" {
		t.Errorf("after the reload: cost %q, want 0.0000584", r.header.Get("X-Agent-Router-Cost"))
	}

	// A per-token price typed as per 1M: the load is refused, with the
	// model and field, and the running book stays.
	v2 := book.Current
	bad := e.options
	bad.openai = "\t\t\tprice gpt-4o {\n\t\t\t\tinput 0.000003\n\t\t\t}"
	badCfg := (&env{t: t, dir: e.dir, openai: e.openai, azure: e.azure, mistral: e.mistral, options: bad}).config()
	req, _ := http.NewRequest("POST", adminURL+"/load", strings.NewReader(badCfg))
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err = e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 || !strings.Contains(string(msg), "gpt-4o standard.input") {
		t.Fatalf("a per-token price was loaded: %d %s", resp.StatusCode, msg)
	}
	e.mustAdmin("GET", "/agent_router/prices", nil, 200, &book)
	if book.Current != v2 {
		t.Errorf("the refused config changed the book: %s, want %s", book.Current, v2)
	}
	if r := e.chat(kb.Key, "gpt-4o", "money-still", false); r.header.Get("X-Agent-Router-Cost") != "0.0000584" {
		t.Errorf("after the refused load: cost %q", r.header.Get("X-Agent-Router-Cost"))
	}
}
