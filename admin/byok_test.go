package admin_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

var providerOrder = []string{"openai", "anthropic", "gemini", "azure", "mistral", "together", "perplexity", "cohere"}

const supportedList = "openai, anthropic, gemini, azure, mistral, together, perplexity, cohere"

func keyBody(key string) string { return `{"api_key":` + jsonStr(key) + `}` }

func (h *harness) byokList(account string) []ops.BYOKStatus {
	h.t.Helper()
	var st []ops.BYOKStatus
	r := h.ok("GET", "/agent_router/accounts/"+account+"/byok", "", http.StatusOK, &st)
	var raw []map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		h.t.Fatal(err)
	}
	if len(st) != len(providerOrder) {
		h.t.Fatalf("byok list has %d entries, want %d: %s", len(st), len(providerOrder), r.body)
	}
	for i, s := range st {
		if s.Provider != providerOrder[i] {
			h.t.Errorf("byok entry %d = %s, want %s", i, s.Provider, providerOrder[i])
		}
		for _, f := range []string{"provider", "status", "serves"} {
			if _, ok := raw[i][f]; !ok {
				h.t.Errorf("byok entry %s lacks %q: %v", s.Provider, f, raw[i])
			}
		}
	}
	return st
}

func wantServes(provider string) string {
	if provider == "openai" { // PlatformKey says only openai has one
		return "platform"
	}
	return "none"
}

func TestBYOKLifecycle(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	canary := h.secret("sk-proj-CANARYadmin" + randAlnum(t, 40))
	rotated := h.secret("sk-proj-CANARYrotate" + randAlnum(t, 40))

	for _, s := range h.byokList("acme") {
		if s.Status != "not_configured" || s.Serves != wantServes(s.Provider) || s.Masked != "" || s.Fingerprint != "" || s.Version != 0 || s.UpdatedAt != nil {
			t.Errorf("fresh byok entry = %+v", s)
		}
	}
	var fresh ops.BYOKStatus
	h.ok("GET", "/agent_router/accounts/acme/byok/openai", "", http.StatusOK, &fresh)
	if fresh.Status != "not_configured" || fresh.Serves != "platform" {
		t.Errorf("fresh openai = %+v", fresh)
	}

	// PUT: active, masked, fingerprinted, version 1, never the key.
	var st ops.BYOKStatus
	r := h.ok("PUT", "/agent_router/accounts/acme/byok/openai", keyBody(canary), http.StatusOK, &st)
	if strings.Contains(string(r.body), canary) {
		t.Fatal("PUT response contains the key")
	}
	wantMask := "sk-proj-…" + canary[len(canary)-4:]
	if st.Provider != "openai" || st.Status != "active" || st.Serves != "byok" || st.Masked != wantMask ||
		st.Fingerprint != store.Fingerprint(canary) || !strings.HasPrefix(st.Fingerprint, "fp_") || st.Version != 1 || st.UpdatedAt == nil {
		t.Fatalf("PUT openai = %+v (want masked %q)", st, wantMask)
	}
	sec := h.s.Snapshot().Credential("acme", "openai")
	if sec == nil || sec.Key() != canary || sec.Version != 1 {
		t.Fatalf("snapshot after PUT = %v", sec)
	}
	var got ops.BYOKStatus
	h.ok("GET", "/agent_router/accounts/acme/byok/openai", "", http.StatusOK, &got)
	if got.Status != "active" || got.Masked != wantMask || got.Fingerprint != st.Fingerprint || got.Version != 1 || got.Serves != "byok" {
		t.Errorf("GET openai = %+v", got)
	}
	for _, s := range h.byokList("acme") {
		if s.Provider == "openai" {
			if s.Status != "active" || s.Serves != "byok" || s.Version != 1 {
				t.Errorf("listed openai = %+v", s)
			}
		} else if s.Status != "not_configured" {
			t.Errorf("listed %s = %+v", s.Provider, s)
		}
	}

	// The masked form just returned, sent back, is refused; nothing changes.
	h.fail("PUT", "/agent_router/accounts/acme/byok/openai", keyBody(st.Masked), http.StatusBadRequest, "masked", "full key")
	if sec := h.s.Snapshot().Credential("acme", "openai"); sec.Key() != canary || sec.Version != 1 {
		t.Fatalf("a refused PUT changed the credential: %v", sec)
	}

	// Rotation through POST: version 2, the snapshot has the new key as soon
	// as the response is back.
	var rot ops.BYOKStatus
	r = h.ok("POST", "/agent_router/accounts/acme/byok/openai", keyBody(rotated), http.StatusOK, &rot)
	if strings.Contains(string(r.body), rotated) {
		t.Fatal("POST response contains the key")
	}
	if rot.Version != 2 || rot.Status != "active" || rot.Fingerprint != store.Fingerprint(rotated) || rot.Fingerprint == st.Fingerprint ||
		rot.Masked != "sk-proj-…"+rotated[len(rotated)-4:] {
		t.Fatalf("rotated = %+v", rot)
	}
	sec = h.s.Snapshot().Credential("acme", "openai")
	if sec == nil || sec.Key() != rotated || sec.Version != 2 {
		t.Fatalf("snapshot after rotation = %v", sec)
	}

	// Another provider, so DELETE's "serves none" is visible.
	ant := h.secret("sk-ant-api03-CANARYant" + randAlnum(t, 40))
	h.ok("PUT", "/agent_router/accounts/acme/byok/anthropic", keyBody(ant), http.StatusOK, &st)
	if st.Masked != "sk-ant-api03-…"+ant[len(ant)-4:] || st.Version != 1 {
		t.Errorf("anthropic = %+v", st)
	}
	if sec := h.s.Snapshot().Credential("acme", "anthropic"); sec == nil || sec.Key() != ant {
		t.Fatal("anthropic credential not in the snapshot")
	}

	// DELETE: 204, out of the snapshot at once, back to the platform key.
	r = h.ok("DELETE", "/agent_router/accounts/acme/byok/openai", "", http.StatusNoContent, nil)
	if len(r.body) != 0 {
		t.Errorf("DELETE body = %q", r.body)
	}
	if sec := h.s.Snapshot().Credential("acme", "openai"); sec != nil {
		t.Fatalf("snapshot still has the deleted credential: %v", sec)
	}
	h.ok("GET", "/agent_router/accounts/acme/byok/openai", "", http.StatusOK, &got)
	if got.Status != "not_configured" || got.Serves != "platform" || got.Masked != "" || got.Version != 0 {
		t.Errorf("after DELETE openai = %+v", got)
	}
	h.fail("DELETE", "/agent_router/accounts/acme/byok/openai", "", http.StatusNotFound, "not found")
	h.ok("DELETE", "/agent_router/accounts/acme/byok/anthropic", "", http.StatusNoContent, nil)
	if sec := h.s.Snapshot().Credential("acme", "anthropic"); sec != nil {
		t.Fatal("snapshot still has the deleted anthropic credential")
	}
	for _, s := range h.byokList("acme") {
		if s.Status != "not_configured" || s.Serves != wantServes(s.Provider) {
			t.Errorf("after DELETEs %s = %+v", s.Provider, s)
		}
	}

	// A new key after a delete keeps counting versions.
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai", keyBody(canary), http.StatusOK, &st)
	if st.Version != 3 {
		t.Errorf("version after delete and re-add = %d, want 3", st.Version)
	}
}

func TestBYOKRejections(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	canary := h.secret("sk-proj-CANARYadmin" + randAlnum(t, 40))
	ant := h.secret("sk-ant-api03-CANARYrej" + randAlnum(t, 40))
	pplx := h.secret("pplx-CANARYrej" + randAlnum(t, 40))
	azureKey := h.secret("CANARYazure" + randAlnum(t, 32))
	mistralKey := h.secret("CANARYmistral" + randAlnum(t, 32))
	cohereKey := h.secret("CANARYcohere" + randAlnum(t, 32))
	long := h.secret("sk-proj-CANARYlong" + randAlnum(t, 600))
	spaced := h.secret("sk-proj-CANARY spaced " + randAlnum(t, 30))
	ctl := h.secret("sk-proj-CANARYctl\x01" + randAlnum(t, 30))
	nonASCII := h.secret("sk-proj-CANARYé" + randAlnum(t, 30))

	cases := []struct {
		name, provider, body, key string
		want                      []string
	}{
		{"missing api_key", "openai", `{}`, "", []string{"api_key is required"}},
		{"null api_key", "openai", `{"api_key":null}`, "", []string{"api_key is required"}},
		{"empty", "openai", keyBody(""), "", []string{"api_key is empty"}},
		{"whitespace only", "openai", keyBody(" \t\n "), "", []string{"api_key is empty"}},
		{"quotes only", "openai", keyBody(`""`), "", []string{"api_key is empty"}},
		{"too short", "openai", keyBody("sk-proj-abc123"), "sk-proj-abc123", []string{"too short"}},
		{"too long", "openai", keyBody(long), long, []string{"too long", "512"}},
		{"masked ellipsis", "openai", keyBody("sk-…abcd"), "sk-…abcd", []string{"masked", "full key"}},
		{"masked stars", "openai", keyBody("sk-***"), "sk-***", []string{"masked"}},
		{"masked dots", "openai", keyBody("sk-proj-...abcd"), "sk-proj-...abcd", []string{"masked"}},
		{"inner whitespace", "openai", keyBody(spaced), spaced, []string{"whitespace"}},
		{"control character", "openai", keyBody(ctl), ctl, []string{"control"}},
		{"non-ASCII", "openai", keyBody(nonASCII), nonASCII, []string{"non-ASCII"}},
		{"anthropic key for openai", "openai", keyBody(ant), ant, []string{"key for anthropic", "not for openai"}},
		{"perplexity key for anthropic", "anthropic", keyBody(pplx), pplx, []string{"key for perplexity", "not for anthropic"}},
		{"openai key for anthropic", "anthropic", keyBody(canary), canary, []string{"key for openai", "not for anthropic"}},
		{"openai key for gemini", "gemini", keyBody(canary), canary, []string{"key for openai", "not for gemini"}},
		{"api_key not a string", "openai", `{"api_key":12345678901234567890}`, "12345678901234567890", []string{`"api_key"`, "string"}},
		{"unknown field", "openai", `{"api_key":` + jsonStr(canary) + `,"apikey":"x"}`, canary, []string{`unknown field "apikey"`}},
		{"key under the wrong field", "openai", `{"key":` + jsonStr(canary) + `}`, canary, []string{`unknown field "key"`}},
		{"unterminated", "openai", `{"api_key":"` + canary, canary, []string{"invalid JSON body"}},
		{"unquoted", "openai", `{"api_key":` + canary + `}`, canary, []string{"invalid JSON body", "syntax error"}},
		{"trailing data", "openai", keyBody(canary) + `{"api_key":"x"}`, canary, []string{"invalid JSON body"}},
		{"empty body", "openai", ``, "", []string{"request body is empty"}},
		{"array body", "openai", `[` + jsonStr(canary) + `]`, canary, []string{"JSON object"}},
		{"azure without base_url", "azure", keyBody(azureKey), azureKey, []string{"azure credentials need base_url"}},
		{"azure non-http base_url", "azure", `{"api_key":` + jsonStr(azureKey) + `,"base_url":"ftp://contoso.openai.azure.com"}`, azureKey, []string{"base_url must be an https URL"}},
		{"azure base_url without host", "azure", `{"api_key":` + jsonStr(azureKey) + `,"base_url":"contoso.openai.azure.com"}`, azureKey, []string{"base_url must be an absolute URL"}},
		{"azure base_url with credentials", "azure", `{"api_key":` + jsonStr(azureKey) + `,"base_url":"https://user:CANARYpw@contoso.openai.azure.com"}`, "CANARYpw", []string{"must not carry credentials"}},
		{"azure base_url with query", "azure", `{"api_key":` + jsonStr(azureKey) + `,"base_url":"https://contoso.openai.azure.com/?api-key=CANARYq"}`, "CANARYq", []string{"base_url must not have a query"}},
		{"azure bad api_version", "azure", `{"api_key":` + jsonStr(azureKey) + `,"base_url":"https://contoso.openai.azure.com","api_version":"2024/10/21"}`, azureKey, []string{"api_version must look like"}},
		{"azure word api_version", "azure", `{"api_key":` + jsonStr(azureKey) + `,"base_url":"https://contoso.openai.azure.com","api_version":"latest"}`, azureKey, []string{"api_version must look like"}},
		{"api_version for openai", "openai", `{"api_key":` + jsonStr(canary) + `,"api_version":"2024-10-21"}`, canary, []string{"api_version can be set only for azure"}},
		{"organization for mistral", "mistral", `{"api_key":` + jsonStr(mistralKey) + `,"organization":"org-1"}`, mistralKey, []string{"organization and project can be set only for openai"}},
		{"project for azure", "azure", `{"api_key":` + jsonStr(azureKey) + `,"base_url":"https://contoso.openai.azure.com","project":"p"}`, azureKey, []string{"organization and project can be set only for openai"}},
		{"base_url for cohere", "cohere", `{"api_key":` + jsonStr(cohereKey) + `,"base_url":"https://api.cohere.com"}`, cohereKey, []string{"base_url can be set only for openai and azure"}},
		// Where a tenant's URL must not lead (issue: SSRF through base_url).
		{"caddy admin with fragment", "azure", azureURL(azureKey, "http://127.0.0.1:2019/stop#"), azureKey, []string{"query or a fragment"}},
		{"caddy admin over https", "azure", azureURL(azureKey, "https://127.0.0.1:2019/stop"), azureKey, []string{"loopback address", "byok_allow_hosts"}},
		{"plain http", "openai", azureURL(canary, "http://api.example.com/v1"), canary, []string{"must use https", "byok_allow_http"}},
		{"metadata service", "openai", azureURL(canary, "https://169.254.169.254/latest"), canary, []string{"link-local address"}},
		{"ipv6 loopback", "azure", azureURL(azureKey, "https://[::1]:8080/internal"), azureKey, []string{"loopback address"}},
		{"ipv4-mapped loopback", "azure", azureURL(azureKey, "https://[::ffff:127.0.0.1]/"), azureKey, []string{"loopback address"}},
		{"private network", "azure", azureURL(azureKey, "https://10.1.2.3"), azureKey, []string{"private address"}},
		{"private ipv6", "azure", azureURL(azureKey, "https://[fd00::1]"), azureKey, []string{"private address"}},
		{"cgnat", "azure", azureURL(azureKey, "https://100.64.1.1"), azureKey, []string{"carrier-grade NAT"}},
		{"unspecified", "azure", azureURL(azureKey, "https://0.0.0.0:2019"), azureKey, []string{"unspecified address"}},
		{"multicast", "azure", azureURL(azureKey, "https://224.0.0.1"), azureKey, []string{"multicast address"}},
		{"localhost by name", "azure", azureURL(azureKey, "https://localhost:2019"), azureKey, []string{"gateway's own machine"}},
		{"single-label name", "azure", azureURL(azureKey, "https://intranet/"), azureKey, []string{"not a fully qualified"}},
		{"empty fragment", "openai", azureURL(canary, "https://api.example.com/v1#"), canary, []string{"query or a fragment"}},
		{"empty query", "openai", azureURL(canary, "https://api.example.com/v1?"), canary, []string{"query or a fragment"}},
		{"backslash", "openai", azureURL(canary, `https://api.example.com\\@127.0.0.1/`), canary, []string{"backslashes"}},
		{"base_url not a string", "openai", `{"api_key":` + jsonStr(canary) + `,"base_url":1}`, canary, []string{`"base_url"`, "string"}},
	}
	for _, c := range cases {
		for _, method := range []string{"PUT", "POST"} {
			what := c.name + " (" + method + ")"
			path := "/agent_router/accounts/acme/byok/" + c.provider
			msg := h.checkErr(what, h.do(method, path, c.body), http.StatusBadRequest, c.want...)
			if c.key != "" && strings.Contains(msg, c.key) {
				t.Errorf("%s: error message contains the submitted key: %q", what, msg)
			}
			if strings.Contains(msg, "CANARY") {
				t.Errorf("%s: error message contains part of the submitted key: %q", what, msg)
			}
		}
	}
	// A pasted file instead of a key: too large for a body, refused as such.
	huge := h.secret("sk-proj-CANARYhuge" + randAlnum(t, 70<<10))
	msg := h.fail("PUT", "/agent_router/accounts/acme/byok/openai", keyBody(huge), http.StatusRequestEntityTooLarge, "larger than 64 KiB")
	if strings.Contains(msg, "CANARY") {
		t.Errorf("oversized-body error contains the key: %q", msg)
	}

	sn := h.s.Snapshot()
	for _, p := range providerOrder {
		if sn.Credential("acme", p) != nil {
			t.Errorf("a rejected PUT stored a %s credential", p)
		}
	}
	for _, s := range h.byokList("acme") {
		if s.Status != "not_configured" {
			t.Errorf("after rejections %s = %+v", s.Provider, s)
		}
	}

	// Unknown provider: 404 listing the supported ones, for every method.
	for _, method := range []string{"GET", "PUT", "POST", "DELETE"} {
		msg := h.fail(method, "/agent_router/accounts/acme/byok/openia", keyBody(canary), http.StatusNotFound, `unknown provider "openia"`, supportedList)
		if strings.Contains(msg, "CANARY") {
			t.Errorf("unknown-provider error contains the key: %q", msg)
		}
	}
	// Unknown account: 404, for every BYOK route.
	h.fail("GET", "/agent_router/accounts/nope/byok", "", http.StatusNotFound, `"nope"`, "not found")
	h.fail("GET", "/agent_router/accounts/nope/byok/openai", "", http.StatusNotFound, `"nope"`, "not found")
	h.fail("PUT", "/agent_router/accounts/nope/byok/openai", keyBody(canary), http.StatusNotFound, `"nope"`, "not found")
	h.fail("POST", "/agent_router/accounts/nope/byok/openai", keyBody(canary), http.StatusNotFound, `"nope"`, "not found")
	h.fail("DELETE", "/agent_router/accounts/nope/byok/openai", "", http.StatusNotFound, `"nope"`, "not found")
	h.fail("PUT", "/agent_router/accounts/nope/byok/azure", `{"api_key":`+jsonStr(azureKey)+`,"base_url":"https://contoso.openai.azure.com"}`, http.StatusNotFound, "not found")
	// Deleting a credential that was never set.
	h.fail("DELETE", "/agent_router/accounts/acme/byok/gemini", "", http.StatusNotFound, "gemini", "not found")
}

func TestBYOKExtrasAndNormalization(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	azureKey := h.secret("CANARYazure" + randAlnum(t, 32))

	// Azure with base_url and api_version: accepted and echoed (trailing
	// slash and whitespace trimmed), and in the snapshot.
	var st ops.BYOKStatus
	r := h.ok("PUT", "/agent_router/accounts/acme/byok/azure",
		`{"api_key":`+jsonStr(azureKey)+`,"base_url":" https://contoso.openai.azure.com/ ","api_version":"2024-10-21"}`, http.StatusOK, &st)
	if strings.Contains(string(r.body), azureKey) {
		t.Fatal("azure response contains the key")
	}
	if st.Status != "active" || st.BaseURL != "https://contoso.openai.azure.com" || st.APIVersion != "2024-10-21" ||
		st.Masked != "…"+azureKey[len(azureKey)-4:] || st.Version != 1 {
		t.Errorf("azure = %+v", st)
	}
	sec := h.s.Snapshot().Credential("acme", "azure")
	if sec == nil || sec.Key() != azureKey || sec.Extras.BaseURL != "https://contoso.openai.azure.com" || sec.Extras.APIVersion != "2024-10-21" {
		t.Fatalf("azure snapshot = %v %+v", sec, sec.Extras)
	}
	var got ops.BYOKStatus
	h.ok("GET", "/agent_router/accounts/acme/byok/azure", "", http.StatusOK, &got)
	if got.BaseURL != st.BaseURL || got.APIVersion != st.APIVersion || got.Serves != "byok" {
		t.Errorf("GET azure = %+v", got)
	}
	// Other accepted api_version shapes, and no api_version at all.
	for i, v := range []string{"v1", "preview", "2025-04-01-preview", ""} {
		body := `{"api_key":` + jsonStr(azureKey) + `,"base_url":"https://contoso-eu.openai.azure.com/azure"`
		if v != "" {
			body += `,"api_version":"` + v + `"`
		}
		h.ok("PUT", "/agent_router/accounts/acme/byok/azure", body+`}`, http.StatusOK, &st)
		if st.APIVersion != v || st.BaseURL != "https://contoso-eu.openai.azure.com/azure" || st.Version != uint64(i+2) {
			t.Errorf("azure api_version %q = %+v", v, st)
		}
	}

	// OpenAI: organization, project and a regional base_url.
	oa := h.secret("sk-proj-CANARYorg" + randAlnum(t, 40))
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai",
		`{"api_key":`+jsonStr(oa)+`,"organization":" org-123 ","project":"proj_9","base_url":"https://eu.api.openai.com/v1"}`, http.StatusOK, &st)
	if st.Organization != "org-123" || st.Project != "proj_9" || st.BaseURL != "https://eu.api.openai.com/v1" {
		t.Errorf("openai extras = %+v", st)
	}
	if e := h.s.Snapshot().Credential("acme", "openai").Extras; e.Organization != "org-123" || e.Project != "proj_9" {
		t.Errorf("openai snapshot extras = %+v", e)
	}
	// A rotation without extras clears them.
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai", keyBody(oa), http.StatusOK, &st)
	if st.Organization != "" || st.Project != "" || st.BaseURL != "" || st.Version != 2 {
		t.Errorf("openai after plain rotation = %+v", st)
	}

	// Surrounding whitespace and quotes are not part of the key.
	for i, c := range []struct{ provider, wrap string }{
		{"mistral", "  %s\n"},
		{"mistral", `"%s"`},
		{"mistral", ` '%s' `},
		{"together", "\t\" %s \"\r\n"},
	} {
		inner := h.secret("CANARYnorm" + randAlnum(t, 32))
		if c.provider == "together" {
			inner = h.secret("tgp_v1_CANARYnorm" + randAlnum(t, 32))
		}
		sent := strings.Replace(c.wrap, "%s", inner, 1)
		r := h.ok("PUT", "/agent_router/accounts/acme/byok/"+c.provider, keyBody(sent), http.StatusOK, &st)
		if strings.Contains(string(r.body), inner) {
			t.Fatalf("case %d: response contains the key", i)
		}
		if st.Fingerprint != store.Fingerprint(inner) || !strings.HasSuffix(st.Masked, inner[len(inner)-4:]) {
			t.Errorf("case %d: status %+v is not about the normalized key", i, st)
		}
		if sec := h.s.Snapshot().Credential("acme", c.provider); sec == nil || sec.Key() != inner {
			t.Errorf("case %d (%q): stored key is not normalized", i, c.wrap)
		}
	}

	// Every provider accepts a plausible key of its own.
	for _, p := range providerOrder {
		var key, extra string
		switch p {
		case "openai":
			key = "sk-proj-CANARYall" + randAlnum(t, 40)
		case "anthropic":
			key = "sk-ant-api03-CANARYall" + randAlnum(t, 40)
		case "gemini":
			key = "AIzaCANARYall" + randAlnum(t, 30)
		case "azure":
			key, extra = "CANARYall"+randAlnum(t, 32), `,"base_url":"https://r.openai.azure.com"`
		case "together":
			key = "tgp_v1_CANARYall" + randAlnum(t, 40)
		case "perplexity":
			key = "pplx-CANARYall" + randAlnum(t, 40)
		default:
			key = "CANARYall" + randAlnum(t, 32)
		}
		h.secret(key)
		h.ok("PUT", "/agent_router/accounts/acme/byok/"+p, `{"api_key":`+jsonStr(key)+extra+`}`, http.StatusOK, &st)
		if st.Provider != p || st.Status != "active" {
			t.Errorf("%s = %+v", p, st)
		}
		if sec := h.s.Snapshot().Credential("acme", p); sec == nil || sec.Key() != key {
			t.Errorf("%s: snapshot does not hold the new key", p)
		}
	}
	for _, s := range h.byokList("acme") {
		if s.Status != "active" || s.Serves != "byok" {
			t.Errorf("%s = %+v", s.Provider, s)
		}
	}
}

// With no PlatformKey function, nothing is served without BYOK.
func TestBYOKNoPlatformKeys(t *testing.T) {
	h := newHarnessPK(t, nil)
	h.createAccount("acme")
	for _, s := range h.byokList("acme") {
		if s.Serves != "none" {
			t.Errorf("%s serves %q without a platform key", s.Provider, s.Serves)
		}
	}
	var list []ops.ProviderInfo
	h.ok("GET", "/agent_router/providers", "", http.StatusOK, &list)
	for _, p := range list {
		if p.PlatformKey {
			t.Errorf("%s reports a platform key", p.Name)
		}
	}
}

// TestBYOKPolicyAndHealth covers the byok_only policy (through PUT and
// PATCH) and the invalid status a provider's rejection leaves.
func TestBYOKPolicyAndHealth(t *testing.T) {
	h := newHarness(t)
	h.ok("POST", "/agent_router/accounts", `{"id":"acme"}`, http.StatusCreated, nil)

	var st ops.BYOKStatus
	h.ok("PATCH", "/agent_router/accounts/acme/byok/openai", `{"byok_only":true}`, http.StatusOK, &st)
	if !st.BYOKOnly || st.Serves != "none" || st.Status != "not_configured" {
		t.Fatalf("after PATCH byok_only: %+v", st)
	}
	if !h.s.Snapshot().Policy("acme", "openai").BYOKOnly {
		t.Fatal("the snapshot lacks the policy right after PATCH returned")
	}
	h.fail("PATCH", "/agent_router/accounts/acme/byok/openai", `{}`, http.StatusBadRequest, "byok_only is required")
	h.fail("PATCH", "/agent_router/accounts/nobody/byok/openai", `{"byok_only":true}`, http.StatusNotFound, "not found")
	h.fail("PATCH", "/agent_router/accounts/acme/byok/nope", `{"byok_only":true}`, http.StatusNotFound, "unknown provider")

	key := "sk-proj-policy" + strings.Repeat("x", 40)
	h.secret(key)
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai", `{"api_key":"`+key+`","byok_only":false}`, http.StatusOK, &st)
	if st.BYOKOnly || st.Serves != "byok" || st.Status != "active" {
		t.Fatalf("after PUT byok_only false: %+v", st)
	}

	// A provider rejection marks the key invalid, with a reason and no key.
	sec := h.s.Snapshot().Credential("acme", "openai")
	h.s.MarkInvalid(sec, time.Now(), "openai answered 401 (auth)")
	h.ok("GET", "/agent_router/accounts/acme/byok/openai", "", http.StatusOK, &st)
	if st.Status != "invalid" || st.InvalidSince == nil || st.InvalidReason != "openai answered 401 (auth)" {
		t.Fatalf("after a rejection: %+v", st)
	}
	// Rotation clears it.
	key2 := "sk-proj-policy2" + strings.Repeat("y", 40)
	h.secret(key2)
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai", `{"api_key":"`+key2+`"}`, http.StatusOK, &st)
	if st.Status != "active" || st.InvalidSince != nil {
		t.Fatalf("after rotation: %+v", st)
	}
}

// azureURL is a PUT body with a key and a base URL.
func azureURL(key, baseURL string) string {
	return `{"api_key":` + jsonStr(key) + `,"base_url":` + jsonStr(baseURL) + `}`
}
