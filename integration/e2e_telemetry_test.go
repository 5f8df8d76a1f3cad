package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
)

// metricValue reads one series from Caddy's /metrics (admin endpoint).
func (e *env) metricValue(name string, labels map[string]string) float64 {
	e.t.Helper()
	resp, err := e.client.Get(adminURL + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var found []string
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for k, v := range labels {
			if !strings.Contains(line, k+`="`+v+`"`) {
				ok = false
				break
			}
		}
		if ok {
			found = append(found, line)
		}
	}
	switch len(found) {
	case 0:
		return 0
	case 1:
		f, _ := strconv.ParseFloat(found[0][strings.LastIndexByte(found[0], ' ')+1:], 64)
		return f
	}
	// The tests share one process, so an earlier test's series of the
	// same metric may match labels that leave one out: which one was read
	// would depend on the order the tests ran in.
	e.t.Fatalf("%d series of %s match %v; name every label: %v", len(found), name, labels, found)
	return 0
}

// TestTelemetry: after a BYOK request and a platform request (one
// streamed), /metrics shows both series with the right token counts; after
// a reload the counters continue; the access log lines carry the gateway's
// fields and no key; the stream the client got has no usage chunk it did
// not ask for, while the usage was still metered.
func TestTelemetry(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	e.createAccount("beta")
	ka, kb := e.createKey("acme", "k"), e.createKey("beta", "k")
	byok := "sk-proj-telemetry" + randomAlnum(40)
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok})

	byokSeries := map[string]string{"provider": "openai", "model": "gpt-4o", "credential_source": "byok", "status_class": "2xx", "api": "chat"}
	platSeries := map[string]string{"provider": "openai", "model": "gpt-4o", "credential_source": "platform", "status_class": "2xx", "api": "chat"}
	tok := func(src, typ string) map[string]string {
		return map[string]string{"provider": "openai", "model": "gpt-4o", "credential_source": src, "type": typ, "api": "chat"}
	}
	base := map[string]float64{
		"byok":        e.metricValue("caddy_agent_router_requests_total", byokSeries),
		"platform":    e.metricValue("caddy_agent_router_requests_total", platSeries),
		"byok_prompt": e.metricValue("caddy_agent_router_tokens_total", tok("byok", "prompt")),
		"plat_compl":  e.metricValue("caddy_agent_router_tokens_total", tok("platform", "completion")),
	}

	if r := e.chat(ka.Key, "gpt-4o", "tel-byok", false); r.status != 200 {
		t.Fatalf("byok: %d %s", r.status, r.body)
	}
	r := e.chat(kb.Key, "gpt-4o", "tel-platform-stream", true)
	if r.status != 200 {
		t.Fatalf("platform stream: %d %s", r.status, r.body)
	}
	if bytes.Contains(r.body, []byte(`"usage"`)) {
		t.Errorf("the client got a usage chunk it did not ask for:\n%s", r.body)
	}
	if rec := recordFor(t, e.openai, "tel-platform-stream"); !strings.Contains(string(rec.Body), `"include_usage":true`) {
		t.Errorf("the gateway did not ask the provider for stream usage: %s", rec.Body)
	}
	if rec := e.logOf(r); rec.Status != 200 {
		t.Fatalf("log: %+v", rec)
	}
	var full map[string]any
	e.mustAdmin("GET", "/agent_router/logs/"+r.header.Get("X-Agent-Router-Request-Id"), nil, 200, &full)
	if full["prompt_tokens"] != float64(11) || full["completion_tokens"] != float64(5) {
		t.Errorf("streamed request's tokens in the log: %v", full)
	}

	check := func(when string, n float64) {
		t.Helper()
		if got := e.metricValue("caddy_agent_router_requests_total", byokSeries) - base["byok"]; got != n {
			t.Errorf("%s: byok requests = %v, want %v", when, got, n)
		}
		if got := e.metricValue("caddy_agent_router_requests_total", platSeries) - base["platform"]; got != 1 {
			t.Errorf("%s: platform requests = %v, want 1", when, got)
		}
		if got := e.metricValue("caddy_agent_router_tokens_total", tok("byok", "prompt")) - base["byok_prompt"]; got != 11*n {
			t.Errorf("%s: byok prompt tokens = %v, want %v", when, got, 11*n)
		}
		if got := e.metricValue("caddy_agent_router_tokens_total", tok("platform", "completion")) - base["plat_compl"]; got != 5 {
			t.Errorf("%s: platform completion tokens = %v, want 5", when, got)
		}
	}
	check("before reload", 1)
	e.options.maxBody = "3MiB"
	e.load()
	if r := e.chat(ka.Key, "gpt-4o", "tel-after-reload", false); r.status != 200 {
		t.Fatalf("after reload: %d", r.status)
	}
	check("after reload", 2)
	if e.metricValue("caddy_agent_router_time_to_first_byte_seconds_count", map[string]string{"provider": "openai", "credential_source": "byok"}) == 0 {
		t.Error("no time-to-first-byte observations")
	}

	// The access log: one line per request with the gateway's fields.
	var lines []map[string]any
	testfix.WaitFor(t, 5*time.Second, "access log lines", func() bool {
		lines = lines[:0]
		b, _ := os.ReadFile(filepath.Join(e.dir, "access.log"))
		for _, l := range bytes.Split(b, []byte("\n")) {
			var m map[string]any
			if json.Unmarshal(l, &m) == nil && m["agent_router"] != nil {
				lines = append(lines, m)
			}
		}
		return len(lines) >= 3
	})
	found := map[string]bool{}
	for _, m := range lines {
		ar := m["agent_router"].(map[string]any)
		for _, f := range []string{"request_id", "account", "key_id", "provider", "model", "credential_source", "attempts", "prompt_tokens", "completion_tokens"} {
			if _, ok := ar[f]; !ok {
				t.Errorf("access log entry lacks agent_router.%s: %v", f, ar)
			}
		}
		found[ar["account"].(string)+"/"+ar["credential_source"].(string)] = true
		if ar["prompt_tokens"] != float64(11) || ar["completion_tokens"] != float64(5) {
			t.Errorf("access log tokens: %v", ar)
		}
	}
	if !found["acme/byok"] || !found["beta/platform"] {
		t.Errorf("access log entries: %v", found)
	}
	raw, _ := os.ReadFile(filepath.Join(e.dir, "access.log"))
	for _, secret := range []string{byok, e.options.platformKey, ka.Key, kb.Key} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("a key appears in the access log")
		}
	}
	if regexp.MustCompile(`ar_[A-Za-z0-9_-]{20,}`).Match(raw) {
		t.Errorf("an Agent Router key appears in the access log")
	}
}
