package integration

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// TestSecretCanary runs distinctive BYOK and platform keys through every
// path that could leak them, including upstream 401s whose bodies echo the
// key, then searches every response, Caddy's logs (at DEBUG), the access
// log, the request log, GET /config/, autosave.json and the raw bbolt file.
func TestSecretCanary(t *testing.T) {
	platform := "sk-proj-CANARYplatform" + randomAlnum(40)
	byok := "sk-proj-CANARYbyok" + randomAlnum(40)
	azureByok := "CANARYazure" + randomHex(24)
	e := newEnv(t, envOptions{platformKey: platform})
	canaries := []string{platform, byok, azureByok}

	var seen bytes.Buffer // every response: status line, headers, body
	capture := func(resp *http.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		resp.Header.Write(&seen)
		io.Copy(&seen, resp.Body)
	}
	do := func(method, url, auth, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		capture(e.client.Do(req))
	}

	do("POST", adminURL+"/agent_router/accounts", "", `{"id":"acme"}`)
	do("POST", adminURL+"/agent_router/accounts", "", `{"id":"beta"}`)
	k := e.createKey("acme", "k")
	kb := e.createKey("beta", "k")
	do("PUT", adminURL+"/agent_router/accounts/acme/byok/openai", "", `{"api_key":"`+byok+`"}`)
	do("PUT", adminURL+"/agent_router/accounts/acme/byok/azure", "", `{"api_key":"`+azureByok+`","base_url":"`+e.azure.BaseURL()+`"}`)
	// Rejected saves must not echo the key either.
	do("PUT", adminURL+"/agent_router/accounts/acme/byok/anthropic", "", `{"api_key":"`+byok+`"}`)
	do("PUT", adminURL+"/agent_router/accounts/acme/byok/openai", "", `{"api_key":"`+byok+` trailing"}`)
	do("PUT", adminURL+"/agent_router/accounts/acme/byok/openai", "", `{"api_key":"`+byok+`"`)
	do("GET", adminURL+"/agent_router/accounts/acme/byok", "", "")

	chat := func(key, model string, stream bool) {
		t.Helper()
		s := "false"
		if stream {
			s = "true"
		}
		do("POST", siteURL+"/v1/chat/completions", "Bearer "+key, `{"model":"`+model+`","stream":`+s+`,"messages":[{"role":"user","content":"hi"}]}`)
	}
	// Successes: BYOK and platform, plain and streamed, OpenAI and Azure.
	for _, stream := range []bool{false, true} {
		chat(k.Key, "gpt-4o", stream)
		chat(kb.Key, "gpt-4o", stream)
		chat(k.Key, "my-gpt", stream)
	}
	// Upstream 401s that echo the presented key in full.
	e.openai.AcceptOnly("sk-proj-someoneelse" + randomAlnum(40))
	e.azure.AcceptOnly(randomHex(32))
	chat(k.Key, "gpt-4o", false)
	chat(kb.Key, "gpt-4o", false)
	chat(k.Key, "gpt-4o", true)
	chat(k.Key, "my-gpt", false)
	if !bytes.Contains(seen.Bytes(), []byte("byok_credential_rejected")) || !bytes.Contains(seen.Bytes(), []byte("platform_credential_rejected")) {
		t.Fatalf("the upstream 401s were not reported as credential rejections:\n%s", seen.String())
	}
	// The refused BYOK keys are held back now; replacing them (the same
	// keys, new versions) sends them upstream again.
	do("PUT", adminURL+"/agent_router/accounts/acme/byok/openai", "", `{"api_key":"`+byok+`"}`)
	do("PUT", adminURL+"/agent_router/accounts/acme/byok/azure", "", `{"api_key":"`+azureByok+`","base_url":"`+e.azure.BaseURL()+`"}`)
	// Upstream errors of other kinds with the key in the body.
	e.openai.AcceptOnly()
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		return providertest.Response{Status: 500, Body: `{"error":{"message":"internal error for key ` + rec.Credential + `","type":"server_error","code":"` + rec.Credential + `"}}`}
	})
	chat(k.Key, "gpt-4o", false)
	chat(kb.Key, "gpt-4o", false)
	// The fake really did see the keys (so the searches below mean something).
	if e.openai.Count(byok) == 0 || e.openai.Count(platform) == 0 || e.azure.Count(azureByok) == 0 {
		t.Fatal("the fakes never saw the canary keys")
	}

	do("GET", adminURL+"/agent_router/logs?limit=1000", "", "")
	do("GET", adminURL+"/config/", "", "")
	time.Sleep(600 * time.Millisecond) // request-log flush interval is 250ms
	do("GET", adminURL+"/agent_router/logs?limit=1000", "", "")

	places := map[string][]byte{"responses": seen.Bytes()}
	for _, f := range []string{"caddy.log", "access.log", "ar.db"} {
		b, err := os.ReadFile(filepath.Join(e.dir, f))
		if err != nil {
			t.Fatalf("reading %s: %v", f, err)
		}
		if len(b) == 0 && f != "access.log" {
			t.Fatalf("%s is empty: the search would prove nothing", f)
		}
		places[f] = b
	}
	// caddy.ConfigAutosavePath is fixed when Caddy's package initialises.
	if b, err := os.ReadFile(caddy.ConfigAutosavePath); err == nil {
		places["autosave.json"] = b
	} else {
		t.Fatalf("reading autosave.json: %v", err)
	}
	if !bytes.Contains(places["caddy.log"], []byte("upstream error")) {
		t.Errorf("caddy.log lacks the gateway's upstream error lines; is it the right file?")
	}
	for where, b := range places {
		for _, c := range canaries {
			// The whole key, and its distinctive middle (a partial echo).
			for _, needle := range []string{c, c[4 : len(c)-4]} {
				if bytes.Contains(b, []byte(needle)) {
					i := bytes.Index(b, []byte(needle))
					lo, hi := max(0, i-200), min(len(b), i+len(needle)+50)
					t.Errorf("a canary key appears in %s: …%s…", where, b[lo:hi])
				}
			}
		}
	}
}
