package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// newLimitsHarness is an admin API over a real limiter kept in step with
// the store by the runtime caddymodule uses.
func newLimitsHarness(t *testing.T) (*harness, *ops.LimitsRuntime) {
	t.Helper()
	var rt *ops.LimitsRuntime
	h := newHarnessWith(t, func(api *admin.API) {
		api.Limits = func() ops.Limiting { return rt }
	})
	lim, err := limits.New(limits.Config{Backend: limits.NewLocal(h.s.LimitsKV())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lim.Close() })
	rt = ops.NewLimitsRuntime(h.s, lim)
	if err := rt.SetDefaults(nil); err != nil {
		t.Fatal(err)
	}
	return h, rt
}

type accountLimitsOut struct {
	Account string          `json:"account"`
	Set     limits.Set      `json:"set"`
	Status  []limits.Status `json:"status"`
}

func TestLimitsAdmin(t *testing.T) {
	t.Parallel()
	h, rt := newLimitsHarness(t)
	h.createAccount("acme")
	h.createAccount("beta")
	var k struct {
		ID string `json:"id"`
	}
	h.ok("POST", "/agent_router/accounts/acme/keys", `{"name":"ci"}`, http.StatusCreated, &k)
	var kb struct {
		ID string `json:"id"`
	}
	h.ok("POST", "/agent_router/accounts/beta/keys", `{"name":"other"}`, http.StatusCreated, &kb)

	// A platform budget: stored, installed, in the status at once.
	var b limits.Budget
	h.ok("PUT", "/agent_router/accounts/acme/budgets/month", `{"scope":"account","amount_usd":"0.000002","window":"month"}`, http.StatusOK, &b)
	if b.ID != "month" || b.Account != "acme" || b.Payer != limits.PayerPlatform || b.SetBy != limits.SetByOperator {
		t.Fatalf("stored budget %+v", b)
	}
	var al accountLimitsOut
	h.ok("GET", "/agent_router/accounts/acme/limits", "", http.StatusOK, &al)
	if len(al.Set.Budgets) != 1 || len(al.Status) != 1 || al.Status[0].ID != "month" || al.Status[0].Limit != 2000 || al.Status[0].ResetAt.IsZero() {
		t.Fatalf("account limits %+v", al)
	}
	book := pricing.MustCompile(pricing.Default())
	// The limiter enforces it: a priced request above $0.000002 is refused.
	var res limits.Reservation
	d := rt.Limiter().Admit(&limits.Request{Account: "acme", Provider: "openai", Model: "gpt-4o-mini", Payer: limits.PayerPlatform,
		BodyBytes: 3000, MaxTokens: 100, Book: book, Start: time.Now()}, &res)
	if d.Allowed() || d.Outcome.Status() != http.StatusPaymentRequired || d.LimitID != "month" {
		t.Fatalf("a spent budget admitted: %+v", d)
	}

	h.ok("PUT", "/agent_router/accounts/acme/rate_limits/ci", `{"scope":"api_key","api_key":"`+k.ID+`","rpm":2}`, http.StatusOK, nil)
	h.ok("PUT", "/agent_router/accounts/acme/spillover", `{"amount_usd":"50"}`, http.StatusOK, nil)
	h.ok("PUT", "/agent_router/accounts/acme/caps", `{"budget_usd":"10","budget_window":"month","rpm":100}`, http.StatusOK, nil)
	before := h.do("GET", "/agent_router/accounts/acme/limits", "").body

	// Every bad input is a clear 400 that changes nothing.
	bad := []struct{ method, path, body, want string }{
		{"PUT", "budgets/neg", `{"scope":"account","amount_usd":"-5","window":"month"}`, "amount"},
		{"PUT", "budgets/sc", `{"scope":"galaxy","amount_usd":"5","window":"month"}`, "scope"},
		{"PUT", "budgets/w0", `{"scope":"account","amount_usd":"5","window":"rolling","rolling_hours":0}`, "rolling_hours"},
		{"PUT", "budgets/nowin", `{"scope":"account","amount_usd":"5"}`, "window"},
		{"PUT", "budgets/k", `{"scope":"api_key","api_key":"` + kb.ID + `","amount_usd":"5","window":"day"}`, "api key " + kb.ID + " is not a key of account acme"},
		{"PUT", "budgets/cred", `{"scope":"byok_credential","provider":"openai","amount_usd":"5","window":"day"}`, "no BYOK credential for openai"},
		{"PUT", "budgets/other", `{"scope":"account","account":"beta","amount_usd":"5","window":"day"}`, `names account "beta"`},
		{"PUT", "budgets/x", `{"id":"y","scope":"account","amount_usd":"5","window":"day"}`, `not the path's "x"`},
		{"PUT", "budgets/default-rate-0", `{"scope":"account","amount_usd":"5","window":"day"}`, "defaults"},
		{"PUT", "budgets/x", `{"scope":"account","amount_usd":"5","window":"day","surprise":1}`, "unknown field"},
		{"PUT", "rate_limits/none", `{"scope":"account"}`, "rpm"},
		{"PUT", "rate_limits/neg", `{"scope":"account","rpm":-1}`, "negative"},
		{"PUT", "rate_limits/k", `{"scope":"api_key","api_key":"key_nope","rpm":5}`, "is not a key of account acme"},
		{"PUT", "spillover", `{"amount_usd":"-1"}`, "amount"},
		{"PUT", "caps", `{"account":"beta","rpm":5}`, "not the path's"},
	}
	for _, c := range bad {
		h.fail(c.method, "/agent_router/accounts/acme/"+c.path, c.body, http.StatusBadRequest, c.want)
	}
	// An owner's budget above the caps set later: caps below it are refused.
	h.ok("PUT", "/agent_router/accounts/acme/budgets/own", `{"scope":"api_key","api_key":"`+k.ID+`","amount_usd":"8","window":"month","payer":"byok","set_by":"owner"}`, http.StatusOK, nil)
	h.fail("PUT", "/agent_router/accounts/acme/caps", `{"budget_usd":"1","budget_window":"month"}`, http.StatusBadRequest, "above the operator's cap")
	h.ok("DELETE", "/agent_router/accounts/acme/budgets/own", "", http.StatusNoContent, nil)
	if after := h.do("GET", "/agent_router/accounts/acme/limits", "").body; !sameSet(t, before, after) {
		t.Fatalf("a refused change changed the set:\n%s\n%s", before, after)
	}
	h.fail("DELETE", "/agent_router/accounts/acme/budgets/nope", "", http.StatusNotFound, "no budget")
	h.fail("GET", "/agent_router/accounts/nobody/limits", "", http.StatusNotFound)
	h.fail("PUT", "/agent_router/accounts/nobody/budgets/x", `{"scope":"account","amount_usd":"5","window":"day"}`, http.StatusNotFound)

	// The operator's view has both accounts' objects; beta's are its own.
	h.ok("PUT", "/agent_router/accounts/beta/budgets/month", `{"scope":"account","amount_usd":"7","window":"month"}`, http.StatusOK, nil)
	var all limits.Set
	h.ok("GET", "/agent_router/limits", "", http.StatusOK, &all)
	if len(all.Budgets) != 2 || len(all.RateLimits) != 1 || len(all.Spillover) != 1 || len(all.Caps) != 1 {
		t.Fatalf("GET limits: %+v", all)
	}
	h.ok("GET", "/agent_router/accounts/beta/limits", "", http.StatusOK, &al)
	for _, s := range al.Status {
		if s.Account != "beta" {
			t.Fatalf("beta's status shows %s's limit %s", s.Account, s.ID)
		}
	}

	// Removing the budget lifts the refusal; deleting the account its set.
	h.ok("DELETE", "/agent_router/accounts/acme/budgets/month", "", http.StatusNoContent, nil)
	if d := rt.Limiter().Admit(&limits.Request{Account: "acme", Provider: "openai", Model: "gpt-4o-mini", Payer: limits.PayerPlatform,
		BodyBytes: 3000, MaxTokens: 100, Book: book, Start: time.Now()}, &res); !d.Allowed() {
		t.Fatalf("still refused after the budget was removed: %+v", d)
	}
	res.Release()
	h.ok("DELETE", "/agent_router/accounts/acme", "", http.StatusNoContent, nil)
	h.ok("GET", "/agent_router/limits", "", http.StatusOK, &all)
	if len(all.Budgets) != 1 || all.Budgets[0].Account != "beta" || len(all.RateLimits) != 0 {
		t.Fatalf("after deleting acme: %+v", all)
	}
}

func sameSet(t *testing.T, a, b []byte) bool {
	var x, y accountLimitsOut
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		t.Fatal("not JSON")
	}
	xa, _ := json.Marshal(x.Set)
	ya, _ := json.Marshal(y.Set)
	return strings.EqualFold(string(xa), string(ya))
}
