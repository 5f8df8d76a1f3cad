package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

type tenantsAnswer struct {
	Tenants []ops.CreatedTenant `json:"tenants"`
}

// TestBulkTenants: POST tenants creates accounts with their API keys and
// BYOK keys in one call; the keys come back once with their plaintext and
// authenticate, the BYOK keys are stored (sealed: the harness's canary
// check reads every answer and the store file) and come back masked only,
// policies are set.
func TestBulkTenants(t *testing.T) {
	h := newHarnessWith(t, func(api *admin.API) { api.Profiles = func() []string { return []string{"team"} } })
	openaiKeys := []string{h.secret("sk-proj-CANARYbulk1" + randAlnum(t, 40)), h.secret("sk-proj-CANARYbulk2" + randAlnum(t, 40))}
	mistral := h.secret("CANARYbulkmistral" + randAlnum(t, 15))
	body := `{"tenants":[
		{"id":"t1","name":"Tenant One","keys":[{"name":"ci"},{"name":"bot","profile":"team"}],
		 "byok":[{"provider":"openai","api_key":` + jsonStr(openaiKeys[0]) + `,"byok_only":true,"organization":"org-1"},
		         {"provider":"mistral","api_key":` + jsonStr(" "+mistral+" ") + `}]},
		{"id":"t2","keys":[{"name":"only"}],"byok":[{"provider":"openai","api_key":` + jsonStr(openaiKeys[1]) + `}]},
		{"id":"t3"}]}`
	var out tenantsAnswer
	r := h.ok("POST", "/agent_router/tenants", body, http.StatusCreated, &out)
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if len(out.Tenants) != 3 {
		t.Fatalf("%d tenants in %s", len(out.Tenants), r.body)
	}
	wantKeys := map[string]int{"t1": 2, "t2": 1, "t3": 0}
	wantBYOK := map[string]int{"t1": 2, "t2": 1, "t3": 0}
	for _, tn := range out.Tenants {
		id := tn.Account.ID
		if len(tn.Keys) != wantKeys[id] || len(tn.BYOK) != wantBYOK[id] {
			t.Errorf("%s: %d keys, %d byok: %s", id, len(tn.Keys), len(tn.BYOK), r.body)
		}
		for _, k := range tn.Keys {
			h.apiKey(k.Key)
			e, ok := h.s.Snapshot().LookupKey(store.HashAPIKey(k.Key))
			if !strings.HasPrefix(k.Key, store.APIKeyPrefix) || !ok || e.AccountID != id || e.KeyID != k.ID || e.Profile != k.Profile {
				t.Errorf("%s: key %s does not authenticate as its account (%+v, %v)", id, k.ID, e, ok)
			}
		}
		for _, b := range tn.BYOK {
			if b.Status != "active" || b.Serves != "byok" || b.Masked == "" || b.Version != 1 {
				t.Errorf("%s: byok slot %+v", id, b)
			}
		}
	}
	if out.Account(t, "t1").Keys[1].Profile != "team" || out.Account(t, "t1").Account.Name != "Tenant One" {
		t.Errorf("t1: %+v", out.Account(t, "t1"))
	}
	var st ops.BYOKStatus
	h.ok("GET", "/agent_router/accounts/t1/byok/openai", "", http.StatusOK, &st)
	if st.Fingerprint != store.Fingerprint(openaiKeys[0]) || !st.BYOKOnly || st.Organization != "org-1" {
		t.Errorf("t1's openai slot: %+v", st)
	}
	h.ok("GET", "/agent_router/accounts/t1/byok/mistral", "", http.StatusOK, &st)
	if st.Fingerprint != store.Fingerprint(mistral) { // trimmed, as PUT trims
		t.Errorf("t1's mistral slot: %+v", st)
	}
	h.ok("GET", "/agent_router/accounts/t2/byok/openai", "", http.StatusOK, &st)
	if st.Fingerprint != store.Fingerprint(openaiKeys[1]) || st.BYOKOnly {
		t.Errorf("t2's openai slot: %+v", st)
	}
	for _, id := range []string{"t1", "t2"} {
		if h.s.Snapshot().Credential(id, "openai") == nil {
			t.Errorf("no openai credential of %s in the snapshot", id)
		}
	}
}

// Account is the created tenant id.
func (a tenantsAnswer) Account(t *testing.T, id string) ops.CreatedTenant {
	t.Helper()
	for _, tn := range a.Tenants {
		if tn.Account.ID == id {
			return tn
		}
	}
	t.Fatalf("no tenant %s", id)
	return ops.CreatedTenant{}
}

// TestBulkTenantsRefusals: a call that fails creates nothing — an existing
// id (409), bad input checked as the single calls check it (400, naming
// the tenant, never quoting a key), too many records for one call (413
// with the bound) or too large a body (413).
func TestBulkTenantsRefusals(t *testing.T) {
	h := newHarness(t)
	h.createAccount("taken")
	canary := h.secret("sk-proj-CANARYrefused" + randAlnum(t, 40))
	good := `{"id":"new1","keys":[{"name":"k"}],"byok":[{"provider":"openai","api_key":` + jsonStr(canary) + `}]}`
	cases := []struct {
		name, body string
		status     int
		want       []string
	}{
		{"existing id", `{"tenants":[` + good + `,{"id":"taken"}]}`, http.StatusConflict, []string{"taken", "exists"}},
		{"twice", `{"tenants":[` + good + `,{"id":"new1"}]}`, http.StatusBadRequest, []string{"new1", "twice"}},
		{"bad id", `{"tenants":[` + good + `,{"id":"-x"}]}`, http.StatusBadRequest, []string{"tenants[1]"}},
		{"long name", `{"tenants":[{"id":"n","name":"` + strings.Repeat("n", 201) + `"}]}`, http.StatusBadRequest, []string{"tenants[0]", "200"}},
		{"long key name", `{"tenants":[{"id":"n","keys":[{"name":"` + strings.Repeat("n", 201) + `"}]}]}`, http.StatusBadRequest, []string{"keys[0]", "200"}},
		{"unknown profile", `{"tenants":[{"id":"n","keys":[{"name":"a","profile":"nope"}]}]}`, http.StatusBadRequest, []string{"keys[0]", "unknown routing profile"}},
		{"unknown provider", `{"tenants":[` + good + `,{"id":"n","byok":[{"provider":"acme-ai","api_key":` + jsonStr(canary) + `}]}]}`, http.StatusBadRequest, []string{"tenants[1] (n)", "byok[0]", "unknown provider"}},
		{"wrong key format", `{"tenants":[{"id":"n","byok":[{"provider":"anthropic","api_key":` + jsonStr(canary) + `}]}]}`, http.StatusBadRequest, []string{"tenants[0]", "anthropic"}},
		{"no key", `{"tenants":[{"id":"n","byok":[{"provider":"openai"}]}]}`, http.StatusBadRequest, []string{"api_key is required"}},
		{"masked key", `{"tenants":[{"id":"n","byok":[{"provider":"openai","api_key":"sk-proj-…abcdefghijklmnop"}]}]}`, http.StatusBadRequest, []string{"masked"}},
		{"base_url elsewhere", `{"tenants":[{"id":"n","byok":[{"provider":"openai","api_key":` + jsonStr(canary) + `,"base_url":"http://10.0.0.1/v1"}]}]}`, http.StatusBadRequest, []string{"base_url"}},
		{"two keys of a provider", `{"tenants":[{"id":"n","byok":[{"provider":"openai","api_key":` + jsonStr(canary) + `},{"provider":"openai","api_key":` + jsonStr(canary) + `}]}]}`, http.StatusBadRequest, []string{"two openai"}},
		{"empty", `{"tenants":[]}`, http.StatusBadRequest, []string{"tenants is empty"}},
		{"unknown field", `{"tenants":[{"id":"n","api_key":` + jsonStr(canary) + `}]}`, http.StatusBadRequest, []string{"unknown field"}},
		{"broken JSON", `{"tenants":[{"id":"n","byok":[{"provider":"openai","api_key":"` + canary + `}]}]}`, http.StatusBadRequest, []string{"invalid JSON"}},
		{"too many records", manyKeys(store.MaxBulkRecords), http.StatusRequestEntityTooLarge, []string{"10001 records", "at most 10000", "split"}},
		{"too large a body", `{"tenants":[{"id":"n","name":"` + strings.Repeat("n", 9<<20) + `"}]}`, http.StatusRequestEntityTooLarge, []string{"larger than 8192 KiB"}},
	}
	for _, c := range cases {
		msg := h.fail("POST", "/agent_router/tenants", c.body, c.status, c.want...)
		if strings.Contains(msg, "CANARY") {
			t.Errorf("%s: the error quotes a key: %s", c.name, msg)
		}
	}
	var accts []store.Account
	h.ok("GET", "/agent_router/accounts", "", http.StatusOK, &accts)
	if len(accts) != 1 || accts[0].ID != "taken" {
		t.Errorf("after refused calls the accounts are %+v, want only taken", accts)
	}
	if h.s.Snapshot().Credential("new1", "openai") != nil {
		t.Errorf("a refused call left a credential")
	}
	// The limit is what the store takes: exactly 10,000 records pass.
	var out tenantsAnswer
	h.ok("POST", "/agent_router/tenants", manyKeys(store.MaxBulkRecords-1), http.StatusCreated, &out)
	if len(out.Tenants) != 1 || len(out.Tenants[0].Keys) != store.MaxBulkRecords-1 {
		t.Fatalf("%d tenants", len(out.Tenants))
	}
	for _, k := range out.Tenants[0].Keys[:3] {
		h.apiKey(k.Key)
	}
}

// manyKeys is a call of one account with n API keys: n+1 records.
func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(`{"name":"k%d"}`, i)
	}
	b, _ := json.Marshal(json.RawMessage(`{"tenants":[{"id":"many","keys":[` + strings.Join(keys, ",") + `]}]}`))
	return string(b)
}
