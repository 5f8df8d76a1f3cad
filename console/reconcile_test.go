package console

import (
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
	"github.com/agentrouter/caddy-agentrouter/store"
)

const (
	consoleAdminKey = "sk-admin-CONSOLEcanaryADMINkey0123456789abcdefgh"
	consoleBYOK     = "sk-proj-CONSOLEbyokKEY0123456789abcdefghijklmnopq"
)

// reconFixture is a console whose reconciliation reads a fake OpenAI
// organisation's admin API.
func reconFixture(t *testing.T) (*fixture, *providertest.AdminServer) {
	t.Helper()
	fake := providertest.NewOpenAIAdmin()
	t.Cleanup(fake.Close)
	fake.AddAdminKey(consoleAdminKey)
	fake.AddKey(consoleBYOK, providertest.AdminKey{Name: "acme prod"})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
	f := newFixture(t, func(c *Config) {
		c.Reconcile = &ops.Reconciling{NewReader: func(_, key string) (reconcile.Reader, error) {
			return reconcile.NewOpenAI(key, reconcile.Options{HTTPClient: client, BaseURL: fake.URL, BaseDelay: time.Millisecond})
		}}
	})
	return f, fake
}

// TestUsageReaderCardAndReconciliationPage: the owner registers and tests
// an admin key on the usage-reader card beside the BYOK card (shown
// masked, never again in full), runs a check on Monitoring →
// Reconciliation, and sees the out-of-band use of their key there and on
// the BYOK card; a member reads but changes nothing; the admin key shows
// on no page.
func TestUsageReaderCardAndReconciliationPage(t *testing.T) {
	f, fake := reconFixture(t)
	f.user("acme", "owner@acme.example", store.RoleOwner)
	f.user("acme", "dev@acme.example", store.RoleMember)
	owner := f.signedIn("owner@acme.example")
	var pages strings.Builder
	get := func(c *client, path string, want int) string {
		t.Helper()
		st, body := c.get(path)
		if st != want {
			t.Fatalf("GET %s: %d\n%s", path, st, body)
		}
		pages.WriteString(body)
		return body
	}
	post := func(c *client, path string, form url.Values, want int) string {
		t.Helper()
		st, body := c.post(path, form)
		if st != want {
			t.Fatalf("POST %s: %d\n%s", path, st, body)
		}
		pages.WriteString(body)
		return body
	}
	post(owner, "/console/byok/openai", url.Values{"action": {"save"}, "api_key": {consoleBYOK}}, 200)

	body := get(owner, "/console/byok/openai", 200)
	if !strings.Contains(body, `id="usage-reader"`) || !strings.Contains(body, `id="reader-status">Not configured`) {
		t.Fatalf("no usage-reader card beside the BYOK card:\n%s", body)
	}
	if b := get(owner, "/console/byok/gemini", 200); strings.Contains(b, `id="usage-reader"`) {
		t.Fatal("a usage-reader card for Gemini, whose admin API reports no per-key usage")
	}
	body = post(owner, "/console/byok/openai/usage_reader", url.Values{"action": {"save"}, "reader_key": {consoleBYOK}}, 400)
	if !strings.Contains(body, "not an admin key") {
		t.Fatalf("a project key as the admin key:\n%s", body)
	}
	body = post(owner, "/console/byok/openai/usage_reader", url.Values{"action": {"save"}, "reader_key": {consoleAdminKey}}, 200)
	if !strings.Contains(body, `id="reader-masked">sk-admin-…efgh`) || !strings.Contains(body, "Usage reader saved") {
		t.Fatalf("after saving:\n%s", body)
	}
	body = post(owner, "/console/byok/openai/usage_reader", url.Values{"action": {"test"}}, 200)
	if !strings.Contains(body, `id="reader-test">Test: <strong>OK`) {
		t.Fatalf("test of the stored key:\n%s", body)
	}

	// Use of the key outside the gateway, then a check.
	fake.InjectUsage(consoleBYOK, providertest.UsageEvent{Model: "gpt-4o-mini", Input: 30, Output: 12})
	body = get(owner, "/console/reconciliation", 200)
	if !strings.Contains(body, `id="run-openai"`) || !strings.Contains(body, "Not checked yet") {
		t.Fatalf("reconciliation page before a check:\n%s", body)
	}
	body = post(owner, "/console/reconciliation/run", url.Values{"provider": {"openai"}, "days": {"3"}}, 200)
	fp := store.Fingerprint(consoleBYOK)
	if !strings.Contains(body, "Reconciled OpenAI") || !strings.Contains(body, `data-alert="`+fp+`"`) ||
		!strings.Contains(body, `data-status="out_of_band"`) || !strings.Contains(body, "42 tokens") {
		t.Fatalf("after a check:\n%s", body)
	}
	body = get(owner, "/console/byok", 200)
	if !strings.Contains(body, "Out-of-band use on this key since") {
		t.Fatalf("the BYOK card does not say so:\n%s", body)
	}
	st, csv, hdr := owner.do("GET", "/console/reconciliation.csv?range=7d", nil, nil)
	if st != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") || !strings.HasPrefix(csv, strings.Join(ops.LedgerCSVHeader, ",")) || !strings.Contains(csv, "out_of_band") {
		t.Fatalf("CSV: %d %s\n%s", st, hdr.Get("Content-Type"), csv)
	}
	pages.WriteString(csv)
	for _, bad := range []string{"/console/reconciliation?range=1y", "/console/reconciliation?provider=gemini"} {
		if st, _ := owner.get(bad); st != http.StatusBadRequest {
			t.Errorf("GET %s: %d", bad, st)
		}
	}

	// A member reads, and changes nothing.
	member := f.signedIn("dev@acme.example")
	body = get(member, "/console/reconciliation", 200)
	if strings.Contains(body, `id="run-openai"`) || !strings.Contains(body, `data-alert="`+fp+`"`) {
		t.Fatalf("the member's reconciliation page:\n%s", body)
	}
	body = get(member, "/console/byok/openai", 200)
	if strings.Contains(body, `id="reader-form"`) || !strings.Contains(body, `id="reader-masked"`) {
		t.Fatalf("the member's usage-reader card:\n%s", body)
	}
	for path, form := range map[string]url.Values{
		"/console/reconciliation/run":                 {"provider": {"openai"}},
		"/console/byok/openai/usage_reader":           {"action": {"remove"}},
		"/console/reconciliation/keys":                {"provider": {"openai"}, "fingerprint": {fp}, "provider_key_id": {"key_x"}},
		"/console/reconciliation/proposals/p1/accept": {"provider": {"openai"}},
	} {
		if st, _ := member.post(path, form); st != http.StatusForbidden {
			t.Errorf("member POST %s: %d", path, st)
		}
	}

	// The owner removes the reader; the ledger stays.
	body = post(owner, "/console/byok/openai/usage_reader", url.Values{"action": {"remove"}}, 200)
	if !strings.Contains(body, "Usage reader removed") {
		t.Fatalf("remove:\n%s", body)
	}
	if body = get(owner, "/console/reconciliation?range=7d", 200); !strings.Contains(body, `data-status="out_of_band"`) {
		t.Fatal("the ledger went with the reader")
	}
	if strings.Contains(pages.String(), "CONSOLEcanaryADMIN") {
		t.Fatal("the admin key shows on a page")
	}
}

// TestReconciliationChooseKey: a key the provider lists under a form that
// does not match is the owner's to choose, on the Reconciliation page.
func TestReconciliationChooseKey(t *testing.T) {
	f, fake := reconFixture(t)
	other := "sk-proj-OTHERkeyOTHERkey0123456789abcdefghijklmnoTHRz"
	fake.AddKey(other, providertest.AdminKey{Redacted: "sk-...????", Name: "globex batch"})
	f.user("globex", "owner@globex.example", store.RoleOwner)
	owner := f.signedIn("owner@globex.example")
	for path, form := range map[string]url.Values{
		"/console/byok/openai":              {"action": {"save"}, "api_key": {other}},
		"/console/byok/openai/usage_reader": {"action": {"save"}, "reader_key": {consoleAdminKey}},
	} {
		if st, body := owner.post(path, form); st != 200 {
			t.Fatalf("POST %s: %d\n%s", path, st, body)
		}
	}
	_, body := owner.post("/console/reconciliation/run", url.Values{"provider": {"openai"}})
	fp := store.Fingerprint(other)
	if !strings.Contains(body, `data-credential="`+fp+`"`) || !strings.Contains(body, "globex batch") {
		t.Fatalf("no choice offered:\n%s", body)
	}
	m := regexp.MustCompile(`<option value="(key_[a-z0-9]+)">sk-\.\.\.\?\?\?\? — globex batch`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no option for the key:\n%s", body)
	}
	st, body := owner.post("/console/reconciliation/keys", url.Values{"provider": {"openai"}, "fingerprint": {"fp_bad"}, "provider_key_id": {m[1]}})
	if st != http.StatusBadRequest || !strings.Contains(body, "fingerprint") {
		t.Fatalf("a bad fingerprint: %d", st)
	}
	if st, body = owner.post("/console/reconciliation/keys", url.Values{"provider": {"openai"}, "fingerprint": {fp}, "provider_key_id": {m[1]}}); st != 200 || !strings.Contains(body, "The next check uses the key you chose") {
		t.Fatalf("choose: %d\n%s", st, body)
	}
	_, body = owner.post("/console/reconciliation/run", url.Values{"provider": {"openai"}})
	if strings.Contains(body, `data-credential="`+fp+`"`) {
		t.Fatalf("still offered after the choice:\n%s", body)
	}
}
