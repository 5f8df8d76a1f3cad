package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// limitsFixture is a console over a real limiter kept in step with the
// store by the runtime caddymodule runs.
func limitsFixture(t *testing.T) (*fixture, *ops.LimitsRuntime) {
	t.Helper()
	var rt *ops.LimitsRuntime
	f := newFixture(t, func(c *Config) {
		lim, err := limits.New(limits.Config{Backend: limits.NewLocal(c.Store.LimitsKV()), OnEvent: func(e limits.Event) { rt.Record(e) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lim.Close() })
		rt = ops.NewLimitsRuntime(c.Store, lim)
		if err := rt.SetDefaults(nil); err != nil {
			t.Fatal(err)
		}
		c.Limits = rt
	})
	return f, rt
}

// TestBudgetsAndLimitsPage: the account's budgets and rate limits with
// their state; an owner adds and removes their own within the caps and
// the scope rules, never the operator's, never on another account's key;
// a member reads; another account's limits and alerts never show; a
// threshold alert is a banner.
func TestBudgetsAndLimitsPage(t *testing.T) {
	t.Parallel()
	f, rt := limitsFixture(t)
	f.user("acme", "owner@acme.example", store.RoleOwner)
	f.user("acme", "dev@acme.example", store.RoleMember)
	_, ak, err := f.s.CreateAPIKey("acme", "ci")
	if err != nil {
		t.Fatal(err)
	}
	_, gk, err := f.s.CreateAPIKey("globex", "theirs")
	if err != nil {
		t.Fatal(err)
	}
	op := &ops.Ops{Store: f.s, Limits: rt}
	if _, err := op.PutBudget("acme", "platform-month", limits.Budget{Scope: limits.Scope{Kind: limits.ScopeAccount},
		Amount: limits.MustUSD("0.01"), Window: limits.WindowMonth, Alerts: []int{50}}, ops.ByOperator); err != nil {
		t.Fatal(err)
	}
	if _, err := op.PutBudget("globex", "globex-secret-budget", limits.Budget{Scope: limits.Scope{Kind: limits.ScopeAccount},
		Amount: limits.MustUSD("0.01"), Window: limits.WindowMonth, Alerts: []int{50}}, ops.ByOperator); err != nil {
		t.Fatal(err)
	}
	c5 := limits.MustUSD("5")
	if _, err := op.PutCaps("acme", &limits.Caps{BudgetAmount: &c5, BudgetWindow: limits.WindowMonth, RPM: 100}); err != nil {
		t.Fatal(err)
	}

	owner := f.signedIn("owner@acme.example")
	st, body := owner.get("/console/limits")
	if st != 200 || !strings.Contains(body, `data-budget="platform-month"`) || !strings.Contains(body, `id="budget-form"`) ||
		!strings.Contains(body, `id="caps"`) || strings.Contains(body, "globex-secret-budget") {
		t.Fatalf("owner's page: %d\n%s", st, body)
	}
	if !strings.Contains(body, `<a href="/console/limits" aria-current="page">Budgets &amp; Limits</a>`) {
		t.Fatal("no Budgets & Limits entry in the nav")
	}

	setOf := func() limits.Set {
		set, err := f.s.LimitSet("acme")
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	before := setOf()
	refused := []struct {
		path string
		form url.Values
		want string
	}{
		{"/console/limits/budgets", url.Values{"id": {"x"}, "scope": {"api_key"}, "api_key": {gk.ID}, "amount": {"1"}, "window": {"day"}, "payer": {"byok"}, "mode": {"hard"}}, "is not a key of account acme"},
		{"/console/limits/budgets", url.Values{"id": {"x"}, "scope": {"account"}, "amount": {"1"}, "window": {"day"}, "payer": {"platform"}, "mode": {"hard"}}, "the operator"},
		{"/console/limits/budgets", url.Values{"id": {"x"}, "scope": {"api_key"}, "api_key": {ak.ID}, "amount": {"50"}, "window": {"month"}, "payer": {"byok"}, "mode": {"hard"}}, "above the operator&#39;s cap"},
		{"/console/limits/budgets", url.Values{"id": {"x"}, "scope": {"api_key"}, "api_key": {ak.ID}, "amount": {"-1"}, "window": {"month"}, "payer": {"byok"}, "mode": {"hard"}}, "negative"},
		{"/console/limits/budgets", url.Values{"id": {"platform-month"}, "scope": {"api_key"}, "api_key": {ak.ID}, "amount": {"1"}, "window": {"month"}, "payer": {"byok"}, "mode": {"hard"}}, "set by the operator"},
		{"/console/limits/budgets", url.Values{"id": {"x"}, "scope": {"byok_credential"}, "provider": {"openai"}, "amount": {"1"}, "window": {"month"}, "payer": {"byok"}, "mode": {"hard"}}, "no BYOK credential for openai"},
		{"/console/limits/rate_limits", url.Values{"id": {"r"}, "api_key": {ak.ID}, "rpm": {"500"}}, "above the operator&#39;s cap"},
		{"/console/limits/rate_limits", url.Values{"id": {"r"}, "api_key": {gk.ID}, "rpm": {"5"}}, "is not a key of account acme"},
		{"/console/limits/budgets/platform-month/remove", url.Values{}, "set by the operator"},
	}
	for _, c := range refused {
		st, body := owner.post(c.path, c.form)
		if st != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("POST %s %v: %d, want 400 with %q\n%s", c.path, c.form, st, c.want, body)
		}
	}
	if after := setOf(); len(after.Budgets) != len(before.Budgets) || len(after.RateLimits) != 0 {
		t.Fatalf("a refused change was stored: %+v", after)
	}

	// The owner's own budget and rate limit, then removed.
	st, body = owner.post("/console/limits/budgets", url.Values{"id": {"ci-daily"}, "scope": {"api_key"}, "api_key": {ak.ID}, "amount": {"0.1"},
		"window": {"day"}, "payer": {"all"}, "mode": {"hard"}})
	if st != 200 || !strings.Contains(body, `data-budget="ci-daily"`) || !strings.Contains(body, "Budget saved") {
		t.Fatalf("owner's budget: %d\n%s", st, body)
	}
	st, body = owner.post("/console/limits/rate_limits", url.Values{"id": {"ci-rpm"}, "api_key": {ak.ID}, "rpm": {"60"}})
	if st != 200 || !strings.Contains(body, `data-rate="ci-rpm" data-kind="rpm"`) {
		t.Fatalf("owner's rate limit: %d\n%s", st, body)
	}
	if set := setOf(); len(set.Budgets) != 2 || set.Budgets[1].SetBy != limits.SetByOwner || len(set.RateLimits) != 1 {
		t.Fatalf("stored: %+v", set)
	}
	if st, _ := owner.post("/console/limits/budgets/ci-daily/remove", nil); st != 200 {
		t.Fatalf("remove: %d", st)
	}
	if st, _ := owner.post("/console/limits/quotas/ci-rpm/remove", nil); st != http.StatusNotFound {
		t.Fatalf("an unknown kind: %d", st)
	}
	if st, _ := owner.post("/console/limits/budgets/nope/remove", nil); st != http.StatusNotFound {
		t.Fatalf("an unknown budget: %d", st)
	}

	// Without the CSRF token: refused, nothing stored.
	if st, _ := owner.post("/console/limits/budgets", url.Values{"csrf": {"forged"}, "id": {"y"}, "scope": {"api_key"}, "api_key": {ak.ID},
		"amount": {"1"}, "window": {"day"}, "payer": {"byok"}}); st != http.StatusForbidden {
		t.Fatalf("forged CSRF: %d", st)
	}

	// A member reads, with no forms, and may change nothing.
	dev := f.signedIn("dev@acme.example")
	st, body = dev.get("/console/limits")
	if st != 200 || !strings.Contains(body, `data-rate="ci-rpm"`) || strings.Contains(body, `id="budget-form"`) || strings.Contains(body, "Remove</button>") {
		t.Fatalf("member's page: %d\n%s", st, body)
	}
	if st, _ := dev.post("/console/limits/rate_limits/ci-rpm/remove", nil); st != http.StatusForbidden {
		t.Fatalf("a member removed a rate limit: %d", st)
	}
	if st, _ := dev.post("/console/limits/budgets", url.Values{"id": {"m"}, "scope": {"api_key"}, "api_key": {ak.ID}, "amount": {"1"}, "window": {"day"}, "payer": {"byok"}}); st != http.StatusForbidden {
		t.Fatalf("a member added a budget: %d", st)
	}
	if set := setOf(); len(set.RateLimits) != 1 || len(set.Budgets) != 1 {
		t.Fatalf("after the member's tries: %+v", set)
	}

	// Spend past 50 % of each account's budget: acme's banner shows its
	// own alert, not globex's.
	book := pricing.MustCompile(pricing.Default())
	for _, acct := range []string{"acme", "globex"} {
		var res limits.Reservation
		if d := rt.Limiter().Admit(&limits.Request{Account: acct, Provider: "openai", Model: "gpt-4o-mini", Payer: limits.PayerPlatform,
			Book: book, BodyBytes: 30, MaxTokens: 10}, &res); !d.Allowed() {
			t.Fatalf("%s refused: %+v", acct, d)
		}
		res.Settle(limits.Actual{Tokens: 40, Reported: true, Cost: limits.MustUSD("0.006"), Priced: true})
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rt.Events("acme")) == 0 || len(rt.Events("globex")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no threshold events")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, body = owner.get("/console/limits")
	if !strings.Contains(body, `data-event="platform-month"`) || !strings.Contains(body, "passed 50 %") || strings.Contains(body, "globex-secret-budget") {
		t.Fatalf("banner:\n%s", body)
	}
}
