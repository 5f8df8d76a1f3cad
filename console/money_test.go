package console

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// moneyRecords records, for acme this month, a BYOK request (with its
// shadow cost), a platform request and an unpriced one; and a platform
// request of globex that acme must never see.
func moneyRecords(t *testing.T, f *fixture) time.Time {
	t.Helper()
	book := pricing.MustCompile(pricing.Default())
	u := pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120}
	cost := func(paidBy string) pricing.Cost {
		c := book.Cost("openai", "gpt-4o", u)
		c.Version, c.PaidBy = "1-abcdef012345", paidBy
		return c
	}
	at := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour).Add(5 * time.Minute)
	for i, r := range []store.LogRecord{
		{AccountID: "acme", CredentialSource: "byok", CredentialFingerprint: "fp_0123456789ab", Cost: cost("byok"), ShadowCost: cost("").Shadow()},
		{AccountID: "acme", CredentialSource: "platform", Cost: cost("platform")},
		{AccountID: "acme", CredentialSource: "platform", UpstreamModel: "gpt-9", Cost: pricing.Unpriced("openai", "gpt-9", pricing.NoModel)},
		{AccountID: "globex", CredentialSource: "platform", Cost: cost("platform"), UpstreamModel: "globex-secret-model"},
	} {
		r.ID, r.Time, r.Provider, r.Status, r.Model = fmt.Sprintf("%016x%08x", at.UnixNano()+int64(i), i), at, "openai", 200, "gpt-4o"
		if r.UpstreamModel == "" {
			r.UpstreamModel = "gpt-4o"
		}
		rec := r
		f.s.Record(&rec)
	}
	f.s.FlushLog()
	return at
}

// TestConsoleMoney: Request Logs show each request's cost, payer and price
// version; Usage shows money, BYOK against platform; the Chargeback page
// and its CSV give the month per provider, key and model — only this
// account's.
func TestConsoleMoney(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	f.user("acme", "member@acme.test", store.RoleMember)
	at := moneyRecords(t, f)
	for _, who := range []string{"owner@acme.test", "member@acme.test"} {
		c := f.signedIn(who)
		_, logs := c.get("/console/logs")
		for _, want := range []string{`<span class="cost">$0.006125</span>`, `<span class="cost">unpriced</span>`, `data-cost="0.006125"`,
			`<code class="price-version">1-abcdef012345</code>`, "unpriced (no price for model)", "what your own key saved it",
			`paid by <span class="badge byok"`, "1150 input · 200 cache read"} {
			if !strings.Contains(logs, want) {
				t.Errorf("%s: Request Logs lack %q", who, want)
			}
		}
		_, usage := c.get("/console/usage")
		for _, want := range []string{`<span id="cost-byok">$0.006125</span>`, `<span id="cost-platform">$0.006125</span>`,
			`<span id="cost-shadow">$0.006125</span>`, `<span id="unpriced">1 requests could not be priced</span>`} {
			if !strings.Contains(usage, want) {
				t.Errorf("%s: Usage lacks %q", who, want)
			}
		}
		month := at.Format("2006-01")
		st, cb := c.get("/console/chargeback?month=" + month)
		if st != http.StatusOK || !strings.Contains(cb, `<span id="cb-byok">$0.006125</span>`) || !strings.Contains(cb, `<span id="cb-platform">$0.006125</span>`) ||
			!strings.Contains(cb, "<code>fp_0123456789ab</code>") || strings.Contains(cb, "globex-secret-model") {
			t.Errorf("%s: Chargeback page: %d\n%s", who, st, cb)
		}
		st, body, hdr := c.do("GET", "/console/chargeback.csv?month="+month, nil, nil)
		rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if st != http.StatusOK || err != nil || len(rows) != 4 || !strings.Contains(hdr.Get("Content-Disposition"), "chargeback-acme-"+month+".csv") ||
			strings.Contains(body, "globex") {
			t.Errorf("%s: chargeback CSV %d %v %v\n%s", who, st, err, hdr, body)
		}
	}
	c := f.signedIn("owner@acme.test")
	if st, body := c.get("/console/chargeback?month=2026-13"); st != http.StatusBadRequest || !strings.Contains(body, "YYYY-MM") {
		t.Errorf("a bad month: %d", st)
	}
}

// TestConsoleContractTerms: an owner adds contract terms to a BYOK card
// (from today, or a later date; never an earlier one), sees which is in
// force, removes a scheduled one; bad input changes nothing; a member
// reads the terms and cannot change them.
func TestConsoleContractTerms(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	f.user("acme", "member@acme.test", store.RoleMember)
	owner := f.signedIn("owner@acme.test")
	if st, body := owner.post("/console/byok/openai", url.Values{"action": {"save"}, "api_key": {"sk-proj-" + strings.Repeat("Q7", 24)}}); st != http.StatusOK {
		t.Fatalf("save key: %d %s", st, body)
	}
	_, page := owner.get("/console/byok/openai")
	if !strings.Contains(page, `id="no-terms"`) || !strings.Contains(page, `id="contract-form"`) {
		t.Fatal("the card shows no empty contract and form")
	}
	add := func(form url.Values) (int, string) {
		form.Set("action", "add")
		return owner.post("/console/byok/openai/contract", form)
	}
	if st, body := add(url.Values{"discount": {"10%"}, "note": {"MSA"}}); st != http.StatusOK || !strings.Contains(body, "Contract terms saved") {
		t.Fatalf("add a term from now: %d\n%s", st, body)
	}
	later := now().UTC().AddDate(0, 0, 10).Format(time.DateOnly)
	if st, _ := add(url.Values{"effective_from": {later}, "rate_model": {"gpt-4o"}, "rate_input": {"2"}, "rate_output": {"8"}}); st != http.StatusOK {
		t.Fatalf("add a later term: %d", st)
	}
	for form, why := range map[string]url.Values{
		"in the past":    {"effective_from": {"2020-01-01"}, "discount": {"5"}},
		"negative":       {"effective_from": {later}, "discount": {"-5"}},
		"per-token rate": {"effective_from": {"2099-01-01"}, "rate_model": {"gpt-4o"}, "rate_input": {"0.0000025"}},
		"not a date":     {"effective_from": {"soon"}, "discount": {"5"}},
		"same instant":   {"effective_from": {later}, "discount": {"20"}},
		"nothing in it":  {"effective_from": {"2099-01-01"}},
	} {
		if st, body := add(why); st != http.StatusBadRequest || !strings.Contains(body, `id="contract-error"`) {
			t.Errorf("%s: %d, want the card with the reason", form, st)
		}
	}
	_, page = owner.get("/console/byok/openai")
	if n := strings.Count(page, "<tr data-from="); n != 2 || !strings.Contains(page, `class="in-force"`) || strings.Count(page, ">scheduled<") != 1 ||
		!strings.Contains(page, `<span class="mono">gpt-4o</span> input $2 output $8`) {
		t.Fatalf("terms on the card: %d rows\n%s", n, page)
	}

	member := f.signedIn("member@acme.test")
	_, mpage := member.get("/console/byok/openai")
	if strings.Count(mpage, "<tr data-from=") != 2 || strings.Contains(mpage, `id="contract-form"`) || strings.Contains(mpage, `value="remove"`) {
		t.Error("a member does not read the terms, or sees the owner's forms")
	}
	if st, _ := member.post("/console/byok/openai/contract", url.Values{"action": {"add"}, "discount": {"50"}}); st != http.StatusForbidden {
		t.Errorf("a member added a term: %d", st)
	}

	terms, _ := f.s.ContractTerms("acme", "openai")
	inForce := terms[0].EffectiveFrom.Format(time.RFC3339Nano)
	if st, body := owner.post("/console/byok/openai/contract", url.Values{"action": {"remove"}, "from": {inForce}}); st != http.StatusConflict || !strings.Contains(body, "has taken effect") {
		t.Errorf("removing the term in force: %d", st)
	}
	if st, _ := owner.post("/console/byok/openai/contract", url.Values{"action": {"remove"}, "from": {terms[1].EffectiveFrom.Format(time.RFC3339Nano)}}); st != http.StatusOK {
		t.Errorf("removing the scheduled term: %d", st)
	}
	if terms, _ := f.s.ContractTerms("acme", "openai"); len(terms) != 1 {
		t.Errorf("%d terms left, want 1", len(terms))
	}
	// Another account's credential is not reachable: globex has none.
	f.user("globex", "owner@globex.test", store.RoleOwner)
	g := f.signedIn("owner@globex.test")
	if st, _ := g.post("/console/byok/openai/contract", url.Values{"action": {"add"}, "discount": {"5"}}); st != http.StatusNotFound {
		t.Errorf("a term on a credential globex does not have: %d", st)
	}
}
