package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// TestBYOKLifecycle drives the whole BYOK story through a real Caddy: the
// platform key serves until an account registers its own key, then every
// API key of that account uses it; rotation and removal take effect on the
// next request; another account is never affected.
func TestBYOKLifecycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	platform := e.options.platformKey
	e.createAccount("acme")
	e.createAccount("beta")
	k1, k2 := e.createKey("acme", "ci"), e.createKey("acme", "laptop")
	b1 := e.createKey("beta", "prod")

	expect := func(step string, apiKey createdKey, wantKey, wantSource string) {
		t.Helper()
		tag := fmt.Sprintf("%s-%s", step, apiKey.ID)
		r := e.chat(apiKey.Key, "gpt-4o-mini", tag, false)
		if r.status != 200 {
			t.Fatalf("%s: status %d: %s", step, r.status, r.body)
		}
		if got := r.header.Get("X-Agent-Router-Credential"); got != wantSource {
			t.Errorf("%s: X-Agent-Router-Credential = %q, want %q", step, got, wantSource)
		}
		if got := r.header.Get("X-Agent-Router-Provider"); got != "openai" {
			t.Errorf("%s: X-Agent-Router-Provider = %q", step, got)
		}
		if r.header.Get("X-Agent-Router-Request-Id") == "" {
			t.Errorf("%s: no request id", step)
		}
		rec := recordFor(t, e.openai, tag)
		if rec.Credential != wantKey || rec.CredentialHeader != "Authorization" {
			t.Errorf("%s: the fake got credential %q in %s, want the %s key", step, rec.Credential, rec.CredentialHeader, wantSource)
		}
	}

	for _, k := range []createdKey{k1, k2, b1} {
		expect("before", k, platform, "platform")
	}

	byok1 := "sk-proj-acme1" + randomAlnum(48)
	st := e.putBYOK("acme", "openai", map[string]string{"api_key": byok1})
	if st["status"] != "active" || st["version"] != float64(1) || strings.Contains(fmt.Sprint(st), byok1) {
		t.Fatalf("unexpected status after register: %v", st)
	}
	for _, k := range []createdKey{k1, k2} {
		expect("registered", k, byok1, "byok")
	}
	expect("registered", b1, platform, "platform")

	byok2 := "sk-proj-acme2" + randomAlnum(48)
	st = e.putBYOK("acme", "openai", map[string]string{"api_key": byok2})
	if st["version"] != float64(2) {
		t.Fatalf("rotation did not bump the version: %v", st)
	}
	for _, k := range []createdKey{k1, k2} {
		expect("rotated", k, byok2, "byok")
	}
	expect("rotated", b1, platform, "platform")

	e.mustAdmin("DELETE", "/agent_router/accounts/acme/byok/openai", nil, 204, nil)
	for _, k := range []createdKey{k1, k2, b1} {
		expect("removed", k, platform, "platform")
	}

	// A stream relays every event, in order, through Caddy.
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok1})
	pieces := make([]string, 30)
	for i := range pieces {
		pieces[i] = fmt.Sprintf("piece-%02d ", i)
	}
	want := providertest.StreamEvents("gpt-4o", pieces)
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		return providertest.Response{Events: want, EventDelay: time.Millisecond}
	})
	r := e.chat(k1.Key, "gpt-4o", "stream-order", true)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: status %d, content type %q", r.status, r.header.Get("Content-Type"))
	}
	got := testfix.SSEData(t, r.body)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stream relayed %d events, want %d in order:\n got %q\nwant %q", len(got), len(want), got, want)
	}
	if rec := recordFor(t, e.openai, "stream-order"); rec.Credential != byok1 || !rec.Stream {
		t.Errorf("stream used %q (stream=%v)", rec.Credential, rec.Stream)
	}

	// The request log says which credential served each request.
	var page struct {
		Records []struct {
			KeyID            string `json:"key_id"`
			CredentialSource string `json:"credential_source"`
			Stream           bool   `json:"stream"`
			Status           int    `json:"status"`
		} `json:"records"`
	}
	testfix.WaitFor(t, 5*time.Second, "request log", func() bool {
		e.mustAdmin("GET", "/agent_router/logs?account=acme&limit=1000", nil, 200, &page)
		return len(page.Records) == 9
	})
	sources := map[string]int{}
	for _, rec := range page.Records {
		sources[rec.CredentialSource]++
	}
	if sources["byok"] != 5 || sources["platform"] != 4 {
		t.Errorf("request log sources for acme = %v, want 5 byok and 4 platform", sources)
	}
	if !page.Records[0].Stream || page.Records[0].Status != 200 {
		t.Errorf("newest record should be the 200 stream: %+v", page.Records[0])
	}
}

// TestRotationUnderLoad rotates a BYOK key while 50 streams are in flight
// and other requests keep arriving: every stream completes with the key it
// started with, and every request that started after the PUT returned uses
// the new key.
func TestRotationUnderLoad(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	k := e.createKey("acme", "load")
	oldKey, newKey := "sk-proj-old"+randomAlnum(48), "sk-proj-new"+randomAlnum(48)
	e.putBYOK("acme", "openai", map[string]string{"api_key": oldKey})

	gate := make(chan struct{})
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		if rec.Stream {
			return providertest.Response{Events: providertest.StreamEvents(rec.Model, []string{"a", "b", "c"}), Gate: gate}
		}
		return providertest.Default(rec, "chat")
	})

	const streams = 50
	var wg sync.WaitGroup
	results := make([]chatResult, streams)
	errs := make([]error, streams)
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = e.tryChat(k.Key, "gpt-4o", fmt.Sprintf("inflight-%d", i), true)
		}(i)
	}
	testfix.WaitFor(t, 20*time.Second, "50 streams in flight", func() bool { return len(e.openai.Records()) >= streams })

	// Keep plain requests coming through the rotation.
	type sent struct {
		tag   string
		start time.Time
	}
	var (
		mu     sync.Mutex
		loop   []sent
		stop   = make(chan struct{})
		loopWG sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		loopWG.Add(1)
		go func(w int) {
			defer loopWG.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("loop-%d-%d", w, n)
				start := time.Now()
				r, err := e.tryChat(k.Key, "gpt-4o", tag, false)
				if err != nil || r.status != 200 {
					t.Errorf("request during rotation failed: %v %d %s", err, r.status, r.body)
					return
				}
				mu.Lock()
				loop = append(loop, sent{tag, start})
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(50 * time.Millisecond)
	e.putBYOK("acme", "openai", map[string]string{"api_key": newKey})
	putReturned := time.Now()
	time.Sleep(50 * time.Millisecond)
	close(stop)
	loopWG.Wait()
	close(gate)
	wg.Wait()

	for i := 0; i < streams; i++ {
		if errs[i] != nil || results[i].status != 200 {
			t.Fatalf("stream %d: %v status %d", i, errs[i], results[i].status)
		}
		if d := testfix.SSEData(t, results[i].body); len(d) == 0 || d[len(d)-1] != "[DONE]" {
			t.Fatalf("stream %d did not complete: %q", i, d)
		}
		if rec := recordFor(t, e.openai, fmt.Sprintf("inflight-%d", i)); rec.Credential != oldKey {
			t.Errorf("in-flight stream %d used %q, want the old key", i, rec.Credential)
		}
	}
	after := 0
	for _, s := range loop {
		rec := recordFor(t, e.openai, s.tag)
		if s.start.After(putReturned) {
			after++
			if rec.Credential != newKey {
				t.Errorf("request %s started after the PUT returned but used the old key", s.tag)
			}
		} else if rec.Credential != oldKey && rec.Credential != newKey {
			t.Errorf("request %s used an unknown key", s.tag)
		}
	}
	if after == 0 {
		t.Fatal("no request started after the rotation returned; the test proved nothing")
	}
	t.Logf("%d streams in flight, %d requests during rotation (%d after the PUT returned)", streams, len(loop), after)
	// And afterwards, only the new key.
	if r := e.chat(k.Key, "gpt-4o", "after-all", false); r.status != 200 || recordFor(t, e.openai, "after-all").Credential != newKey {
		t.Errorf("request after rotation: %d, %q", r.status, recordFor(t, e.openai, "after-all").Credential)
	}
}

// TestAzureThroughCaddy: a declared Azure deployment is reached at its
// deployment URL with the api-key header, with BYOK and platform keys.
func TestAzureThroughCaddy(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	k := e.createKey("acme", "az")
	r := e.chat(k.Key, "my-gpt", "az-platform", false)
	if r.status != 200 || r.header.Get("X-Agent-Router-Provider") != "azure" {
		t.Fatalf("azure platform: %d %s", r.status, r.body)
	}
	rec := recordFor(t, e.azure, "az-platform")
	if rec.Path != "/openai/deployments/deploy-1/chat/completions" || rec.Query != "api-version=2024-10-21" ||
		rec.Credential != e.options.azureKey || rec.Header.Get("Authorization") != "" {
		t.Errorf("azure request: path %q query %q cred %q auth %q", rec.Path, rec.Query, rec.Credential, rec.Header.Get("Authorization"))
	}
	byok := randomHex(32)
	e.putBYOK("acme", "azure", map[string]string{"api_key": byok, "base_url": e.azure.BaseURL(), "api_version": "2025-01-01-preview"})
	e.chat(k.Key, "azure/deploy-9", "az-byok", false)
	rec = recordFor(t, e.azure, "az-byok")
	if rec.Path != "/openai/deployments/deploy-9/chat/completions" || rec.Query != "api-version=2025-01-01-preview" || rec.Credential != byok {
		t.Errorf("azure byok request: path %q query %q cred-match %v", rec.Path, rec.Query, rec.Credential == byok)
	}
}

// TestDataPlaneErrorsThroughCaddy checks the rejections a client sees
// through Caddy, in OpenAI's envelope, and that other paths pass on.
func TestDataPlaneErrorsThroughCaddy(t *testing.T) {
	e := newEnv(t, envOptions{maxBody: "1KiB", mistralKey: "none"})
	e.createAccount("acme")
	k := e.createKey("acme", "x")
	post := func(auth, body string) chatResult {
		req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return chatResult{resp.StatusCode, resp.Header, []byte(b.String())}
	}
	cases := []struct {
		name, auth, body string
		status           int
		code, msg        string
	}{
		{"no key", "", `{"model":"gpt-4o"}`, 401, "missing_api_key", "missing Agent Router API key"},
		{"unknown key", "Bearer ar_nope", `{"model":"gpt-4o"}`, 401, "invalid_api_key", "unknown or has been revoked"},
		{"too large", "Bearer " + k.Key, `{"model":"gpt-4o","x":"` + strings.Repeat("a", 2048) + `"}`, 413, "request_too_large", "larger than the limit"},
		{"bad json", "Bearer " + k.Key, `{"model":`, 400, "invalid_json", "JSON object"},
		{"no model", "Bearer " + k.Key, `{"messages":[]}`, 400, "missing_model", "must name a model"},
		{"unknown model", "Bearer " + k.Key, `{"model":"no-such-model"}`, 404, "model_not_found", "no-such-model"},
		{"no anthropic credential", "Bearer " + k.Key, `{"model":"claude-haiku-4-5"}`, 400, "no_credential", "anthropic"},
		{"no credential", "Bearer " + k.Key, `{"model":"mistral-large-latest"}`, 400, "no_credential", "mistral"},
	}
	before := len(e.openai.Records())
	for _, c := range cases {
		r := post(c.auth, c.body)
		if r.status != c.status || errorCode(r.body) != c.code || !strings.Contains(string(r.body), c.msg) {
			t.Errorf("%s: got %d %s, want %d %s containing %q", c.name, r.status, r.body, c.status, c.code, c.msg)
		}
		var env map[string]map[string]any
		if json.Unmarshal(r.body, &env) != nil || env["error"]["type"] == nil {
			t.Errorf("%s: not OpenAI's error envelope: %s", c.name, r.body)
		}
	}
	if n := len(e.openai.Records()); n != before {
		t.Errorf("rejected requests reached the provider (%d)", n-before)
	}
	// Revocation takes effect at once.
	e.mustAdmin("DELETE", "/agent_router/accounts/acme/keys/"+k.ID, nil, 204, nil)
	if r := post("Bearer "+k.Key, `{"model":"gpt-4o"}`); r.status != 401 || errorCode(r.body) != "invalid_api_key" {
		t.Errorf("revoked key: %d %s", r.status, r.body)
	}
	// Other paths reach the next handler.
	resp, err := e.client.Get(siteURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("other path: %d", resp.StatusCode)
	}
}

// TestAdminErrorsThroughCaddy checks that admin failures come back as
// Caddy's {"error": "..."} with the right status.
func TestAdminErrorsThroughCaddy(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	cases := []struct {
		method, path string
		body         any
		status       int
		msg          string
	}{
		{"POST", "/agent_router/accounts", map[string]string{"id": "acme"}, 409, "already exists"},
		{"POST", "/agent_router/accounts", map[string]string{"name": "x"}, 400, "account id is required"},
		{"GET", "/agent_router/accounts/nobody", nil, 404, "not found"},
		{"PATCH", "/agent_router/accounts", nil, 405, "not allowed"},
		{"PUT", "/agent_router/accounts/acme/byok/openrouter", map[string]string{"api_key": "sk-x"}, 404, "openai, anthropic, gemini, azure, mistral, together, perplexity, cohere"},
		{"PUT", "/agent_router/accounts/acme/byok/openai", map[string]string{"api_key": "sk-ant-api03-" + randomAlnum(40)}, 400, "looks like a key for anthropic, not for openai"},
		{"PUT", "/agent_router/accounts/acme/byok/openai", map[string]string{"api_key": "sk-…abcd"}, 400, "masked"},
		{"PUT", "/agent_router/accounts/acme/byok/azure", map[string]string{"api_key": randomHex(32)}, 400, "base_url"},
		{"GET", "/agent_router/nothing", nil, 404, "no such route"},
	}
	for _, c := range cases {
		code, b := e.admin(c.method, c.path, c.body, nil)
		var body struct {
			Error string `json:"error"`
		}
		if code != c.status || json.Unmarshal(b, &body) != nil || !strings.Contains(body.Error, c.msg) {
			t.Errorf("%s %s: got %d %s, want %d with %q", c.method, c.path, code, b, c.status, c.msg)
		}
	}
}
