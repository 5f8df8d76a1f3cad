package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
)

// TestAccessLogKeyCanary: an Agent Router key sent anywhere a client may
// put one — Authorization, x-api-key (Claude Code's ANTHROPIC_API_KEY),
// api-key, x-goog-api-key, ?key= — never reaches Caddy's access log, with
// Caddy's default access log and with log_credentials on (which makes
// Caddy log Authorization too), on the gateway's paths and on others; each
// such request is still logged, with the values REDACTED.
func TestAccessLogKeyCanary(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	key := e.createKey("acme", "k").Key
	unknown := "ar_" + randomAlnum(43) // shaped like a key, but no key

	for _, logCredentials := range []bool{false, true} {
		if logCredentials {
			cfg := strings.Replace(e.config(), "\tdefault_bind 127.0.0.1\n", "\tdefault_bind 127.0.0.1\n\tservers {\n\t\tlog_credentials\n\t}\n", 1)
			if !strings.Contains(cfg, "log_credentials") {
				t.Fatal("could not turn log_credentials on")
			}
			e.tester.InitServer(cfg, "caddyfile")
			e.client.CloseIdleConnections()
		}
		tag := "canary-" + strings.ToLower(randomAlnum(8))
		chat := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + tag + `"}]}`
		msgs := `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"` + tag + `"}]}`
		send := func(method, path string, header map[string]string, body string, want int) {
			t.Helper()
			req, _ := http.NewRequest(method, siteURL+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Canary-Tag", tag)
			for k, v := range header {
				req.Header.Set(k, v)
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s %s %v: status %d, want %d", method, path, header, resp.StatusCode, want)
			}
		}
		sends := 0
		for _, c := range []struct {
			method, path string
			header       map[string]string
			body         string
			want         int
		}{
			{"POST", "/v1/messages", map[string]string{"X-Api-Key": key, "Anthropic-Version": "2023-06-01"}, msgs, 200},
			{"POST", "/v1/messages?beta=true", map[string]string{"X-Api-Key": unknown, "Anthropic-Version": "2023-06-01"}, msgs, 401},
			{"POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + key, "Api-Key": key}, chat, 200},
			{"POST", "/v1/chat/completions?key=" + key + "&x=1", map[string]string{"Authorization": "Bearer " + key}, chat, 200},
			{"GET", "/v1/models", map[string]string{"X-Goog-Api-Key": key, "X-Api-Key": key}, "", 200},
			{"POST", "/v1/chat/completions", map[string]string{"Authorization": "Bearer " + unknown}, chat, 401},
			{"GET", "/elsewhere?key=" + key, map[string]string{"X-Api-Key": key, "Authorization": "Bearer " + key}, "", 404},
		} {
			send(c.method, c.path, c.header, c.body, c.want)
			sends++
		}

		var entries []map[string]any
		var raw []byte
		testfix.WaitFor(t, 5*time.Second, "the access log entries", func() bool {
			raw, _ = os.ReadFile(filepath.Join(e.dir, "access.log")) // both rounds: the key is in neither
			entries = entries[:0]
			for _, l := range bytes.Split(raw, []byte("\n")) {
				var m map[string]any
				if json.Unmarshal(l, &m) == nil && strings.Contains(string(l), tag) {
					entries = append(entries, m)
				}
			}
			return len(entries) >= sends
		})
		if len(entries) != sends {
			t.Errorf("log_credentials %v: %d access-log entries for %d requests", logCredentials, len(entries), sends)
		}
		for _, k := range []string{key, unknown, key[3:]} {
			if bytes.Contains(raw, []byte(k)) {
				i := bytes.Index(raw, []byte(k))
				t.Errorf("log_credentials %v: an Agent Router key is in the access log: …%s…", logCredentials,
					strings.ReplaceAll(string(raw[max(0, i-300):min(len(raw), i+60)]), k, "<KEY>"))
			}
		}
		if regexp.MustCompile(`ar_[A-Za-z0-9_-]{20,}`).Match(raw) {
			t.Errorf("log_credentials %v: something shaped like an Agent Router key is in the access log", logCredentials)
		}
		// The entries are whole: the request with its headers (the key's
		// REDACTED), the status, and the gateway's fields.
		redacted := 0
		for _, m := range entries {
			req, _ := m["request"].(map[string]any)
			hdr, _ := req["headers"].(map[string]any)
			if req == nil || hdr == nil || m["status"] == nil || m["msg"] != "handled request" {
				t.Errorf("entry %v", m)
				continue
			}
			for _, h := range []string{"X-Api-Key", "Api-Key", "X-Goog-Api-Key"} {
				if v, ok := hdr[h].([]any); ok {
					if len(v) != 1 || v[0] != "REDACTED" {
						t.Errorf("%s logged as %v", h, v)
					}
					redacted++
				}
			}
			if uri, _ := req["uri"].(string); strings.Contains(uri, "key=") && !strings.Contains(uri, "key=REDACTED") {
				t.Errorf("uri logged as %q", uri)
			}
			if strings.HasPrefix(req["uri"].(string), "/v1/") && m["status"] == float64(200) && m["agent_router"] == nil {
				t.Errorf("a gateway entry lacks the gateway's fields: %v", m)
			}
		}
		if redacted < 6 {
			t.Errorf("log_credentials %v: only %d redacted key headers in the entries", logCredentials, redacted)
		}
	}
}
