package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
)

const teamProfile = `
		alias fast gpt-4o-mini
		profile team {
			alias fast my-gpt
			route smart {
				to mistral-small-latest
			}
		}`

// TestProfileBoundKey: through a real Caddy, an API key bound to a routing
// profile (at creation, then by PATCH) resolves through it; other keys do
// not; after a reload that drops the profile the key keeps working unbound.
func TestProfileBoundKey(t *testing.T) {
	e := newEnv(t, envOptions{handler: teamProfile})
	e.createAccount("acme")
	plain := e.createKey("acme", "plain")
	var team struct {
		createdKey
		Profile string `json:"profile"`
	}
	e.mustAdmin("POST", "/agent_router/accounts/acme/keys", map[string]string{"name": "team", "profile": "team"}, 201, &team)
	if team.Profile != "team" {
		t.Fatalf("created key profile %q", team.Profile)
	}
	if code, body := e.admin("POST", "/agent_router/accounts/acme/keys", map[string]string{"name": "x", "profile": "nonesuch"}, nil); code != 400 ||
		!strings.Contains(string(body), "unknown routing profile") || !strings.Contains(string(body), "team") {
		t.Errorf("unknown profile: %d %s", code, body)
	}

	// "fast" is OpenAI's gpt-4o-mini for the plain key, Azure's my-gpt for the team key.
	r := e.chat(plain.Key, "fast", "plain-fast", false)
	if r.status != 200 || r.header.Get("X-Agent-Router-Provider") != "openai" {
		t.Fatalf("plain key: %d %s via %s", r.status, r.body, r.header.Get("X-Agent-Router-Provider"))
	}
	r = e.chat(team.Key, "fast", "team-fast", false)
	if r.status != 200 || r.header.Get("X-Agent-Router-Provider") != "azure" {
		t.Fatalf("team key: %d %s via %s", r.status, r.body, r.header.Get("X-Agent-Router-Provider"))
	}
	if rec := recordFor(t, e.azure, "team-fast"); rec.Model != "deploy-1" {
		t.Errorf("azure got deployment %q", rec.Model)
	}
	var rec struct {
		Profile string `json:"profile"`
		Source  string `json:"source"`
	}
	id := r.header.Get("X-Agent-Router-Request-Id")
	testfix.WaitFor(t, 5*time.Second, "the request-log record", func() bool {
		code, _ := e.admin("GET", "/agent_router/logs/"+id, nil, &rec)
		return code == 200
	})
	if rec.Profile != "team" || rec.Source != "" {
		t.Errorf("record profile %q source %q", rec.Profile, rec.Source)
	}
	// Caddy's access log names the profile too.
	testfix.WaitFor(t, 5*time.Second, "the access-log entry", func() bool {
		b, _ := os.ReadFile(filepath.Join(e.dir, "access.log"))
		return countLines(b, id, `"profile":"team"`) == 1
	})
	r = e.chat(team.Key, "smart", "team-smart", false)
	if r.status != 200 || r.header.Get("X-Agent-Router-Provider") != "mistral" {
		t.Errorf("team route: %d %s", r.status, r.body)
	}
	if r = e.chat(plain.Key, "smart", "plain-smart", false); r.status != 404 {
		t.Errorf("the plain key reached the profile's route: %d", r.status)
	}

	// Rebind the plain key: the next request follows the profile.
	var patched struct {
		Profile string `json:"profile"`
	}
	e.mustAdmin("PATCH", "/agent_router/accounts/acme/keys/"+plain.ID, map[string]string{"profile": "team"}, 200, &patched)
	if patched.Profile != "team" {
		t.Errorf("patched profile %q", patched.Profile)
	}
	if r = e.chat(plain.Key, "fast", "plain-rebound", false); r.header.Get("X-Agent-Router-Provider") != "azure" {
		t.Errorf("rebound key served by %s", r.header.Get("X-Agent-Router-Provider"))
	}

	// A reload that drops the profile: bound keys serve as unbound, and
	// the log says so once per key.
	e.options.handler = "\t\talias fast gpt-4o-mini"
	e.load()
	for i := 0; i < 3; i++ {
		r = e.chat(team.Key, "fast", "after-reload", false)
		if r.status != 200 || r.header.Get("X-Agent-Router-Provider") != "openai" {
			t.Fatalf("after reload: %d %s via %s", r.status, r.body, r.header.Get("X-Agent-Router-Provider"))
		}
	}
	const msg = "api key is bound to a routing profile the running config does not have"
	var n int
	testfix.WaitFor(t, 5*time.Second, "the missing-profile log line", func() bool {
		b, _ := os.ReadFile(filepath.Join(e.dir, "caddy.log"))
		n = countLines(b, msg, team.ID)
		return n > 0
	})
	if n != 1 {
		t.Errorf("%d log lines about the team key's missing profile, want 1", n)
	}
	if code, b := e.admin("PATCH", "/agent_router/accounts/acme/keys/"+team.ID, map[string]string{"profile": "team"}, nil); code != 400 {
		t.Errorf("binding to a removed profile: %d %s", code, b)
	}
}

func countLines(b []byte, subs ...string) int {
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		all := true
		for _, s := range subs {
			all = all && bytes.Contains(line, []byte(s))
		}
		if all {
			n++
		}
	}
	return n
}

// TestKeyTestEndpoint: POST .../byok/{provider}/test through a real Caddy:
// the pasted key and the stored one reach the fake's list-models endpoint
// through the gateway; the stored key's health follows; no key is in any
// response or log.
func TestKeyTestEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	good := "sk-proj-CANARYtestgood" + randomAlnum(40)
	bad := "sk-proj-CANARYtestbad" + randomAlnum(40)
	e.openai.AcceptOnly(e.options.platformKey, good)
	var seen bytes.Buffer
	type outcome struct {
		Tested           string `json:"tested"`
		Outcome          string `json:"outcome"`
		Status           int    `json:"status"`
		Message          string `json:"message"`
		CredentialStatus string `json:"credential_status"`
	}
	test := func(body any) outcome {
		t.Helper()
		var out outcome
		b := e.mustAdmin("POST", "/agent_router/accounts/acme/byok/openai/test", body, 200, &out)
		seen.Write(b)
		return out
	}

	if out := test(map[string]string{"api_key": good}); out.Tested != "pasted" || out.Outcome != "ok" || out.Status != 200 {
		t.Errorf("pasted good key: %+v", out)
	}
	if last, _ := e.openai.Last(); last.Path != "/v1/models" || last.Credential != good {
		t.Errorf("fake saw %s", last.Path)
	}
	if out := test(map[string]string{"api_key": bad}); out.Outcome != "rejected" || out.Status != 401 || out.Message == "" {
		t.Errorf("pasted bad key: %+v", out)
	}

	e.putBYOK("acme", "openai", map[string]string{"api_key": bad})
	if out := test(nil); out.Tested != "stored" || out.Outcome != "rejected" || out.CredentialStatus != "invalid" {
		t.Errorf("stored bad key: %+v", out)
	}
	var st map[string]any
	b := e.mustAdmin("GET", "/agent_router/accounts/acme/byok/openai", nil, 200, &st)
	seen.Write(b)
	if st["status"] != "invalid" {
		t.Errorf("after a rejected test: %s", b)
	}
	e.openai.AcceptOnly(e.options.platformKey, good, bad)
	if out := test(nil); out.Outcome != "ok" || out.CredentialStatus != "active" {
		t.Errorf("stored key accepted: %+v", out)
	}
	b = e.mustAdmin("GET", "/agent_router/accounts/acme/byok/openai", nil, 200, &st)
	seen.Write(b)
	if st["status"] != "active" {
		t.Errorf("after a successful test: %s", b)
	}

	caddyLog, _ := os.ReadFile(filepath.Join(e.dir, "caddy.log"))
	for _, k := range []string{good, bad} {
		for where, content := range map[string][]byte{"a response": seen.Bytes(), "caddy.log": caddyLog} {
			if bytes.Contains(content, []byte(k)) || bytes.Contains(content, []byte(k[len(k)-16:])) {
				t.Errorf("a tested key is in %s", where)
			}
		}
	}
}
