package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

func (e *env) alive() {
	e.t.Helper()
	if code, b := e.admin("GET", "/config/", nil, nil); code != 200 {
		e.t.Fatalf("Caddy's admin endpoint: %d %s", code, b)
	}
}

func (e *env) postRaw(apiKey, body string) chatResult {
	e.t.Helper()
	req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("chat: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return chatResult{resp.StatusCode, resp.Header, b}
}

// TestHostileClientThroughCaddy: the bodies from the report, against real
// Caddy with max_body 8MiB: refused in milliseconds, with flat memory, and
// Caddy keeps serving.
func TestHostileClientThroughCaddy(t *testing.T) {
	e := newEnv(t, envOptions{maxBody: "8MiB"})
	e.createAccount("acme")
	k := e.createKey("acme", "main")

	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x":` + strings.Repeat("[", 7<<20)
	for i := 0; i < 3; i++ { // more than once: nothing accumulates
		rss := testfix.PeakRSS(t)
		start := time.Now()
		r := e.postRaw(k.Key, body)
		took := time.Since(start)
		rise, peak := rss()
		t.Logf("7 MiB of '[': %d in %v, peak RSS +%.0f MiB (%.0f MiB)", r.status, took, rise, peak)
		if r.status != 400 || errorCode(r.body) != "invalid_json" {
			t.Fatalf("deep nesting: %d %s", r.status, r.body)
		}
		if took > time.Second {
			t.Errorf("deep nesting answered in %v, want under a second", took)
		}
		// The body itself is 7 MiB on each side of the loopback.
		if rise > 64 {
			t.Errorf("peak RSS rose %.0f MiB for one deep body", rise)
		}
	}
	r := e.postRaw(k.Key, "{\"model\":\"gpt-4o-mini\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}")
	if r.status != 400 || errorCode(r.body) != "invalid_json" || len(e.openai.Records()) != 0 {
		t.Fatalf("invalid UTF-8 model: %d %s (%d upstream requests)", r.status, r.body, len(e.openai.Records()))
	}
	e.alive()

	// 1,000 invented model names: 404s, and no usage row of their own.
	for i := 0; i < 1000; i++ {
		if r := e.chat(k.Key, fmt.Sprintf("made-up-%d", i), "x", false); r.status != 404 {
			t.Fatalf("invented name: %d %s", r.status, r.body)
		}
	}
	if r := e.chat(k.Key, "gpt-4o-mini", "real", false); r.status != 200 {
		t.Fatalf("real model: %d %s", r.status, r.body)
	}
	var usage struct {
		Totals []struct {
			Key      map[string]string `json:"key"`
			Requests int64             `json:"requests"`
		} `json:"totals"`
	}
	// Records reach the usage rollups through the request log's writer:
	// wait until all 1,005 are counted.
	models := map[string]int64{}
	testfix.WaitFor(t, 10*time.Second, "usage to count every request", func() bool {
		e.mustAdmin("GET", "/agent_router/usage?group_by=model", nil, 200, &usage)
		clear(models)
		var n int64
		for _, g := range usage.Totals {
			models[g.Key["model"]] += g.Requests
			n += g.Requests
		}
		return n >= 1005
	})
	if len(models) != 2 || models["-"] != 1004 || models["gpt-4o-mini"] != 1 {
		t.Errorf("usage by model: %v, want - (1004: 3 deep bodies, 1 invalid UTF-8, 1,000 invented names) and gpt-4o-mini (1)", models)
	}
	e.alive()
}

// TestHostileUpstreamThroughCaddy: a 48 MiB stream event ends the stream
// with an error event, and the gateway's memory stays flat.
func TestHostileUpstreamThroughCaddy(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	k := e.createKey("acme", "main")
	chunk := []byte("data: " + strings.Repeat("x", 1<<20) + "\n")
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Custom: bigEvent(chunk)}
	})
	rss := testfix.PeakRSS(t)
	r := e.chat(k.Key, "gpt-4o-mini", "big", true)
	rise, peak := rss()
	t.Logf("48 MiB event: %d, %d bytes to the client, peak RSS +%.0f MiB (%.0f MiB)", r.status, len(r.body), rise, peak)
	if r.status != 200 || !bytes.Contains(r.body, []byte(`"code":"upstream_event_too_large"`)) || bytes.Contains(r.body, []byte("[DONE]")) {
		t.Fatalf("48 MiB event: %d %.300s", r.status, r.body)
	}
	// One event is held up to 8 MiB (plus the line being read); the fake
	// provider in this process writes from one 1 MiB buffer.
	if rise > 64 {
		t.Errorf("peak RSS rose %.0f MiB for a 48 MiB event", rise)
	}
	e.alive()
}

// TestBYOKBaseURLThroughCaddy: every SSRF form from the report is refused
// when saved; a URL the operator allowed once is refused at dial time
// after the allowance is removed by a reload.
func TestBYOKBaseURLThroughCaddy(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	k := e.createKey("acme", "main")
	azureKey := strings.ToLower(randomHex(32))
	// Allowed here (byok_allow_http, byok_allow_hosts 127.0.0.1): the fake.
	e.putBYOK("acme", "azure", map[string]string{"api_key": azureKey, "base_url": e.azure.BaseURL()})
	if r := e.chat(k.Key, "my-gpt", "allowed", false); r.status != 200 || r.header.Get("X-Agent-Router-Credential") != "byok" {
		t.Fatalf("allowed BYOK base URL: %d %s", r.status, r.body)
	}
	served := len(e.azure.Records())

	e.options.strictEgress = true
	e.load()
	for _, u := range []string{
		"http://127.0.0.1:2999/stop#", "https://127.0.0.1:2999/stop", "http://169.254.169.254/latest",
		"https://169.254.169.254/latest", "http://[::1]:8080/internal#", "https://[::1]:8080/internal",
		"https://10.0.0.1", "https://192.168.0.10", "https://100.64.0.1", "http://contoso.openai.azure.com",
		"https://localhost:2999", "https://u:p@contoso.openai.azure.com", "https://contoso.openai.azure.com/?x=1",
	} {
		code, b := e.admin("PUT", "/agent_router/accounts/acme/byok/azure", map[string]string{"api_key": azureKey, "base_url": u}, nil)
		if code != 400 || !bytes.Contains(b, []byte("base_url")) {
			t.Errorf("base_url %s: %d %s", u, code, b)
		}
	}
	// The stored URL (saved under the old allowance) is refused at dial
	// time now: 502 with its own code, nothing reaches the fake.
	r := e.chat(k.Key, "my-gpt", "blocked", false)
	if r.status != 502 || errorCode(r.body) != "byok_base_url_blocked" {
		t.Errorf("stored loopback URL after the reload: %d %s", r.status, r.body)
	}
	if n := len(e.azure.Records()); n != served {
		t.Errorf("the fake got %d more requests after the allowance was removed", n-served)
	}
	e.alive()
}

// bigEvent streams one chunk, then a 48 MiB event written from chunk.
func bigEvent(chunk []byte) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"))
		for i := 0; i < 48; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		w.Write([]byte("\ndata: [DONE]\n\n"))
	}
}
