package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// TestLimitsThroughCaddy: through a real Caddy, the global limits block's
// per-key default (rpm 2) answers a key's third request in a minute with
// 429, Retry-After and the x-ratelimit headers; a budget set through the
// admin API, spent, answers 402 budget_exceeded on the chat door and
// billing_error on the Messages door (a passthrough to Anthropic) without
// reaching the provider; the admin API refuses bad limits with 400s that
// change nothing; removing the budget lets requests through again.
func TestLimitsThroughCaddy(t *testing.T) {
	ant := providertest.New("anthropic")
	t.Cleanup(ant.Close)
	t.Setenv("AR_LIM_ANTHROPIC_KEY", "sk-ant-api03-LIMplatform"+randomAlnum(80)+"AA")
	e := newEnv(t, envOptions{
		global:  "\t\tlimits {\n\t\t\trate_limit each_key rpm 2\n\t\t}",
		handler: fmt.Sprintf("\t\tprovider anthropic {\n\t\t\tapi_key {env.AR_LIM_ANTHROPIC_KEY}\n\t\t\tbase_url %s\n\t\t}", ant.BaseURL()),
	})
	e.createAccount("acme")
	e.createAccount("beta")
	ka := e.createKey("acme", "k")

	// A new key's default limit is installed by the limiter's background
	// sync when the store says the keys changed (ops.LimitsRuntime.Run),
	// within milliseconds of the key's creation, not with it: wait for it,
	// or a request sent in that gap is not counted (it failed so once in a
	// full run on a busy machine).
	testfix.WaitFor(t, 5*time.Second, "the key's default rate limit", func() bool {
		var st struct {
			Status []struct {
				ID string `json:"id"`
			} `json:"status"`
		}
		e.mustAdmin("GET", "/agent_router/accounts/acme/limits", nil, 200, &st)
		return len(st.Status) == 1 && st.Status[0].ID == "default-rate-0."+ka.ID
	})

	// Three requests within one UTC minute (rate windows are minutes).
	if s := time.Now().UTC().Second(); s > 45 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	for i := range 2 {
		if r := e.chat(ka.Key, "gpt-4o-mini", fmt.Sprintf("lim-rpm-%d", i), false); r.status != 200 {
			t.Fatalf("request %d: %d %s", i+1, r.status, r.body)
		}
	}
	r := e.chat(ka.Key, "gpt-4o-mini", "lim-rpm-2", false)
	if r.status != http.StatusTooManyRequests || errorCode(r.body) != "rate_limit_exceeded" {
		t.Fatalf("third request: %d %s", r.status, r.body)
	}
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.header.Get("X-Ratelimit-Limit-Requests") != "2" || r.header.Get("X-Ratelimit-Remaining-Requests") != "0" ||
		r.header.Get("X-Agent-Router-Limit-Source") != "gateway" {
		t.Fatalf("headers %v", r.header)
	}
	if got := len(e.openai.Records()); got != 2 {
		t.Fatalf("the provider saw %d requests, want 2", got)
	}

	// The account's page of the admin API has the key's default.
	var al struct {
		Status []struct {
			ID        string `json:"id"`
			Kind      string `json:"kind"`
			Limit     int64  `json:"limit"`
			Spent     int64  `json:"spent"`
			Remaining int64  `json:"remaining"`
		} `json:"status"`
	}
	e.mustAdmin("GET", "/agent_router/accounts/acme/limits", nil, 200, &al)
	if len(al.Status) != 1 || al.Status[0].ID != "default-rate-0."+ka.ID || al.Status[0].Spent != 2 || al.Status[0].Remaining != 0 {
		t.Fatalf("acme's limits: %+v", al)
	}

	// Bad limits: 400s that change nothing.
	kb, kb2 := e.createKey("beta", "chat"), e.createKey("beta", "messages")
	for _, c := range []struct {
		path string
		body any
		want string
	}{
		{"budgets/neg", map[string]any{"scope": "account", "amount_usd": "-1", "window": "month"}, "negative"},
		{"budgets/k", map[string]any{"scope": "api_key", "api_key": ka.ID, "amount_usd": "1", "window": "month"}, "is not a key of account beta"},
		{"budgets/w", map[string]any{"scope": "account", "amount_usd": "1", "window": "fortnight"}, "window"},
		{"rate_limits/r", map[string]any{"scope": "galaxy", "rpm": 5}, "scope"},
	} {
		code, b := e.admin("PUT", "/agent_router/accounts/beta/"+c.path, c.body, nil)
		if code != 400 || !strings.Contains(string(b), c.want) {
			t.Errorf("PUT %s: %d %s, want 400 with %q", c.path, code, b, c.want)
		}
	}
	var set map[string]any
	e.mustAdmin("GET", "/agent_router/limits", nil, 200, &set)
	if len(set) != 0 {
		t.Fatalf("refused limits were stored: %v", set)
	}

	// A platform budget on beta that one request's reservation already
	// exceeds: spent.
	e.mustAdmin("PUT", "/agent_router/accounts/beta/budgets/month", map[string]any{"scope": "account", "amount_usd": "0.000001", "window": "month"}, 200, nil)
	seen := len(e.openai.Records())
	r = e.chat(kb.Key, "gpt-4o-mini", "lim-budget", false)
	if r.status != http.StatusPaymentRequired || errorCode(r.body) != "budget_exceeded" || !strings.Contains(string(r.body), `"limit_source":"gateway"`) {
		t.Fatalf("chat door with a spent budget: %d %s", r.status, r.body)
	}
	m := messages(t, e, kb2.Key, "claude-haiku-4-5")
	if m.status != http.StatusPaymentRequired {
		t.Fatalf("messages door with a spent budget: %d %s", m.status, m.body)
	}
	var me struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(m.body, &me) != nil || me.Type != "error" || me.Error.Type != "billing_error" || !strings.Contains(me.Error.Message, "month") {
		t.Fatalf("messages door's 402 body: %s", m.body)
	}
	if len(e.openai.Records()) != seen || len(ant.Records()) != 0 {
		t.Fatal("a refused request reached the provider")
	}

	// Removed: served again.
	e.mustAdmin("DELETE", "/agent_router/accounts/beta/budgets/month", nil, 204, nil)
	if r := e.chat(kb.Key, "gpt-4o-mini", "lim-after", false); r.status != 200 {
		t.Fatalf("after the budget was removed: %d %s", r.status, r.body)
	}
	if m := messages(t, e, kb2.Key, "claude-haiku-4-5"); m.status != 200 {
		t.Fatalf("messages after the budget was removed: %d %s", m.status, m.body)
	}
}

func messages(t *testing.T, e *env, key, model string) chatResult {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`, model)
	req, _ := http.NewRequest("POST", siteURL+"/v1/messages", strings.NewReader(body))
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return chatResult{resp.StatusCode, resp.Header, b}
}
