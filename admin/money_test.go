package admin_test

import (
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// TestContractRoutes: an owner's contract terms on a BYOK credential
// through the admin API; bad input is refused with the reason and changes
// nothing; a term in force cannot be removed.
func TestContractRoutes(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	p := "/agent_router/accounts/acme/byok/openai/contract"
	h.fail("POST", p, `{"discount_percent":"10"}`, 404, "no BYOK credential")
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai", `{"api_key":"`+h.secret("sk-proj-"+randAlnum(t, 48))+`"}`, 200, nil)

	var c ops.Contract
	h.ok("GET", p, "", 200, &c)
	if len(c.Terms) != 0 || c.InForce != nil {
		t.Fatalf("a new credential has terms: %+v", c)
	}
	h.ok("POST", p, `{"discount_percent":"12.5","note":"MSA 2026"}`, 200, &c)
	if len(c.Terms) != 1 || c.InForce == nil || c.InForce.DiscountPercent != "12.5" {
		t.Fatalf("after adding a term: %+v", c)
	}
	later := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	h.ok("POST", p, `{"effective_from":"`+later.Format(time.RFC3339)+`","rates":[{"model":"gpt-4o","prices":{"input":"2","output":"8"}}]}`, 200, &c)
	if len(c.Terms) != 2 || c.InForce.DiscountPercent != "12.5" {
		t.Fatalf("a later term is in force already: %+v", c)
	}
	for body, why := range map[string]string{
		`{"discount_percent":"-5","effective_from":"2099-01-01T00:00:00Z"}`:                                     "negative",
		`{"discount_percent":"101","effective_from":"2099-01-01T00:00:00Z"}`:                                    "over 100",
		`{"discount_percent":"5","effective_from":"2020-01-01T00:00:00Z"}`:                                      "in the past",
		`{"effective_from":"2099-01-01T00:00:00Z","rates":[{"model":"gpt-4o","prices":{"input":"0.0000025"}}]}`: "per-token",
		`{"effective_from":"2099-01-01T00:00:00Z"}`:                                                             "discount_percent, rates",
		`{"discount_percent":"5","surprise":1}`:                                                                 "unknown field",
	} {
		h.fail("POST", p, body, 400, why)
	}
	h.fail("POST", "/agent_router/accounts/acme/byok/nosuch/contract", `{"discount_percent":"5"}`, 404, "unknown provider")
	h.ok("GET", p, "", 200, &c)
	if len(c.Terms) != 2 {
		t.Fatalf("bad input changed the terms: %+v", c)
	}
	// The BYOK entry shows the terms too.
	var st ops.BYOKStatus
	h.ok("GET", "/agent_router/accounts/acme/byok/openai", "", 200, &st)
	if len(st.Contract) != 2 {
		t.Errorf("BYOK entry contract: %+v", st.Contract)
	}
	h.fail("DELETE", p+"/"+c.Terms[0].EffectiveFrom.Format(time.RFC3339Nano), "", 409, "taken effect")
	h.fail("DELETE", p+"/yesterday", "", 400, "RFC 3339")
	h.ok("DELETE", p+"/"+later.Format(time.RFC3339), "", 200, &c)
	if len(c.Terms) != 1 {
		t.Fatalf("after removing the later term: %+v", c)
	}
}

// TestChargebackRoute: the month's chargeback per provider × credential ×
// model × payer, as JSON and CSV; a malformed month or an unknown account
// is refused.
func TestChargebackRoute(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	book := pricing.MustCompile(pricing.Default())
	cost := func(model, paidBy string, u pricing.Usage) pricing.Cost {
		c := book.Cost("openai", model, u)
		c.Version, c.PaidBy = "1-abc", paidBy
		return c
	}
	u := pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120}
	at := time.Date(2030, 3, 15, 10, 0, 0, 0, time.UTC)
	for i, r := range []store.LogRecord{
		{CredentialSource: "byok", CredentialFingerprint: "fp_aaaaaaaaaaaa", Cost: cost("gpt-4o", "byok", u), ShadowCost: cost("gpt-4o", "", u).Shadow()},
		{CredentialSource: "byok", CredentialFingerprint: "fp_aaaaaaaaaaaa", Cost: cost("gpt-4o", "byok", u), ShadowCost: cost("gpt-4o", "", u).Shadow()},
		{CredentialSource: "platform", Cost: cost("gpt-4o", "platform", u)},
		{CredentialSource: "platform", UpstreamModel: "=HYPERLINK(1)", Cost: pricing.Unpriced("openai", "=HYPERLINK(1)", pricing.NoModel)},
		{Time: at.AddDate(0, 1, 0), CredentialSource: "platform", Cost: cost("gpt-4o", "platform", u)}, // April: not in March
	} {
		r.ID, r.AccountID, r.Provider, r.Status = "r"+string(rune('a'+i)), "acme", "openai", 200
		if r.Time.IsZero() {
			r.Time = at
		}
		if r.UpstreamModel == "" {
			r.UpstreamModel = "gpt-4o"
		}
		rec := r
		h.s.Record(&rec)
	}
	h.s.FlushLog()

	var cb ops.Chargeback
	h.ok("GET", "/agent_router/accounts/acme/chargeback?month=2030-03", "", 200, &cb)
	if len(cb.Rows) != 3 {
		t.Fatalf("rows: %+v", cb.Rows)
	}
	var byok ops.ChargebackRow
	for _, r := range cb.Rows {
		if r.Credential != "" {
			byok = r
		}
	}
	if byok.Credential != "fp_aaaaaaaaaaaa" || byok.PaidBy != "byok" || byok.Requests != 2 || byok.CostUSD != "0.01225" ||
		byok.ShadowCostUSD != "0.01225" || byok.Tokens.CacheRead != 400 || len(byok.PriceVersions) != 1 {
		t.Errorf("BYOK row %+v", byok)
	}
	if tot := cb.Totals["platform"]; tot.CostUSD != "0.006125" || tot.Unpriced != 1 || tot.Requests != 2 {
		t.Errorf("platform total %+v", tot)
	}
	if tot := cb.Totals["byok"]; tot.CostUSD != "0.01225" || tot.ShadowCostUSD != "0.01225" {
		t.Errorf("byok total %+v", tot)
	}

	r := h.do("GET", "/agent_router/accounts/acme/chargeback?month=2030-03&format=csv", "")
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(r.header.Get("Content-Disposition"), "chargeback-acme-2030-03.csv") {
		t.Fatalf("CSV: %d %v", r.status, r.header)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][0] != "month" || len(rows[1]) != len(rows[0]) {
		t.Fatalf("CSV rows %v (%v)", rows, err)
	}
	if !strings.Contains(string(r.body), "'=HYPERLINK(1)") {
		t.Errorf("a model name that reads as a formula is not defused:\n%s", r.body)
	}
	for _, q := range []string{"month=2030-13", "month=March", "", "month=1999-12"} {
		h.fail("GET", "/agent_router/accounts/acme/chargeback?"+q, "", 400, "YYYY-MM")
	}
	h.fail("GET", "/agent_router/accounts/acme/chargeback?month=2030-03&format=xml", "", 400, "json or csv")
	h.fail("GET", "/agent_router/accounts/nobody/chargeback?month=2030-03", "", 404)
}

// TestPriceRoutes: the price book's versions and one whole.
func TestPriceRoutes(t *testing.T) {
	h := newHarness(t)
	v1, _, err := h.s.PublishPrices(pricing.Default())
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := pricing.Apply(pricing.Default(), []pricing.Override{{Model: "gpt-4o", Standard: pricing.PriceSet{Input: "2"}}})
	v2, _, err := h.s.PublishPrices(tb)
	if err != nil {
		t.Fatal(err)
	}
	var book ops.PriceBook
	h.ok("GET", "/agent_router/prices", "", 200, &book)
	if book.Current != v2.ID || len(book.Versions) != 2 || book.Versions[0].ID != v1.ID || book.Versions[1].Parent != v1.ID ||
		len(book.Versions[1].Changes) != 1 || book.Versions[1].Changes[0].New != "2" {
		t.Fatalf("book %+v", book)
	}
	var rec pricing.Record
	h.ok("GET", "/agent_router/prices/"+v2.ID, "", 200, &rec)
	if v, err := pricing.FromRecord(rec); err != nil || v.ID != v2.ID {
		t.Fatalf("the version does not re-derive: %v", err)
	}
	h.fail("GET", "/agent_router/prices/9-nosuch", "", 404, "no price version")
}
