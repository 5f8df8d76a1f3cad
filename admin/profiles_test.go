package admin_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/admin"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// API keys are bound to routing profiles of the running config at creation
// and by PATCH; an unknown profile is refused with the configured ones named.
func TestKeyProfiles(t *testing.T) {
	profiles := []string{"support", "team"}
	h := newHarnessWith(t, func(api *admin.API) { api.Profiles = func() []string { return profiles } })
	h.createAccount("acme")
	h.createAccount("globex")

	var k keyOut
	h.ok("POST", "/agent_router/accounts/acme/keys", `{"name":"ci","profile":"team"}`, http.StatusCreated, &k)
	h.apiKey(k.Key)
	if k.Profile == nil || *k.Profile != "team" {
		t.Fatalf("created key profile %v", k.Profile)
	}
	if e, ok := h.s.Snapshot().KeyByID(k.ID); !ok || e.Profile != "team" {
		t.Errorf("snapshot entry %+v", e)
	}
	var plain keyOut
	h.ok("POST", "/agent_router/accounts/acme/keys", `{"name":"plain"}`, http.StatusCreated, &plain)
	h.apiKey(plain.Key)
	if plain.Profile == nil || *plain.Profile != "" {
		t.Errorf("unbound key: profile %v, want present and empty", plain.Profile)
	}

	h.fail("POST", "/agent_router/accounts/acme/keys", `{"name":"x","profile":"nonesuch"}`, http.StatusBadRequest,
		`unknown routing profile "nonesuch"`, "support, team")

	// Rebind, unbind; the listing says so.
	var got keyOut
	h.ok("PATCH", "/agent_router/accounts/acme/keys/"+plain.ID, `{"profile":"support"}`, http.StatusOK, &got)
	if got.ID != plain.ID || got.Profile == nil || *got.Profile != "support" || got.Key != "" {
		t.Errorf("patched key %+v", got)
	}
	h.ok("PATCH", "/agent_router/accounts/acme/keys/"+k.ID, `{"profile":""}`, http.StatusOK, &got)
	var list []keyOut
	h.ok("GET", "/agent_router/accounts/acme/keys", "", http.StatusOK, &list)
	byID := map[string]string{}
	for _, l := range list {
		if l.Profile == nil {
			t.Errorf("listed key %s has no profile field", l.ID)
			continue
		}
		byID[l.ID] = *l.Profile
	}
	if byID[k.ID] != "" || byID[plain.ID] != "support" {
		t.Errorf("listed profiles %v", byID)
	}

	h.fail("PATCH", "/agent_router/accounts/acme/keys/"+plain.ID, `{"profile":"nonesuch"}`, http.StatusBadRequest, "unknown routing profile")
	h.fail("PATCH", "/agent_router/accounts/acme/keys/"+plain.ID, `{}`, http.StatusBadRequest, "profile is required")
	h.fail("PATCH", "/agent_router/accounts/acme/keys/"+plain.ID, ``, http.StatusBadRequest, "empty")
	h.fail("PATCH", "/agent_router/accounts/acme/keys/"+plain.ID, `{"profile":"team","name":"x"}`, http.StatusBadRequest, "unknown field")
	// Another account's key, or an unknown one: 404, unchanged.
	h.fail("PATCH", "/agent_router/accounts/globex/keys/"+plain.ID, `{"profile":"team"}`, http.StatusNotFound, "not found")
	h.fail("PATCH", "/agent_router/accounts/acme/keys/key_0000000000000000", `{"profile":"team"}`, http.StatusNotFound, "not found")
	if e, _ := h.s.Snapshot().KeyByID(plain.ID); e.Profile != "support" {
		t.Errorf("profile changed to %q by a refused request", e.Profile)
	}
}

// Without profiles in the config, binding is refused with a hint.
func TestKeyProfilesNoneConfigured(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	h.fail("POST", "/agent_router/accounts/acme/keys", `{"name":"x","profile":"team"}`, http.StatusBadRequest, "declares none", "profile <name>")
	var k keyOut
	h.ok("POST", "/agent_router/accounts/acme/keys", `{"name":"x","profile":""}`, http.StatusCreated, &k)
	h.apiKey(k.Key)
}

// The request log's source filter: "console" for the playground, "api" for
// API traffic; records show their source.
func TestLogsSourceFilter(t *testing.T) {
	h := newHarness(t)
	base := time.Now().Add(-time.Minute).UTC()
	for i, src := range []string{"", "console", "", "console"} {
		at := base.Add(time.Duration(i) * time.Second)
		h.s.Record(&store.LogRecord{ID: fmt.Sprintf("%016x%08x", at.UnixNano(), i+1), Time: at, AccountID: "acme", Source: src, Status: 200})
	}
	h.s.FlushLog()
	for q, want := range map[string]int{"": 4, "?source=console": 2, "?source=api": 2, "?source=other": 0} {
		var page logPage
		h.ok("GET", "/agent_router/logs"+q, "", http.StatusOK, &page)
		if len(page.Records) != want {
			t.Errorf("%q: %d records, want %d", q, len(page.Records), want)
		}
		for _, r := range page.Records {
			if q == "?source=console" && r.Source != "console" || q == "?source=api" && r.Source != "" {
				t.Errorf("%q returned a record of source %q", q, r.Source)
			}
		}
	}
	r := h.do("GET", "/agent_router/logs?source=console", "")
	if !strings.Contains(string(r.body), `"source":"console"`) {
		t.Errorf("records do not show their source: %s", r.body)
	}
}
