package integration

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// logRecord is the part of a request-log record the routing tests read.
type logRecord struct {
	ID               string `json:"id"`
	Account          string `json:"account"`
	Model            string `json:"model"`
	Provider         string `json:"provider"`
	Route            string `json:"route"`
	CredentialSource string `json:"credential_source"`
	Status           int    `json:"status"`
	ErrorCode        string `json:"error_code"`
	Attempts         []struct {
		Provider         string  `json:"provider"`
		Model            string  `json:"model"`
		CredentialSource string  `json:"credential_source"`
		Status           int     `json:"status"`
		ErrorClass       string  `json:"error_class"`
		Skipped          string  `json:"skipped"`
		DurationMS       float64 `json:"duration_ms"`
	} `json:"attempts"`
}

// logOf fetches the request-log record of a response (waiting for the
// asynchronous writer).
func (e *env) logOf(r chatResult) logRecord {
	e.t.Helper()
	id := r.header.Get("X-Agent-Router-Request-Id")
	var rec logRecord
	testfix.WaitFor(e.t, 5*time.Second, "request-log record "+id, func() bool {
		code, _ := e.admin("GET", "/agent_router/logs/"+id, nil, &rec)
		return code == 200
	})
	return rec
}

// allLogs pages through the whole request log of an account.
func (e *env) allLogs(account string) []logRecord {
	e.t.Helper()
	var out []logRecord
	before := ""
	for {
		var page struct {
			Records []logRecord `json:"records"`
			Next    string      `json:"next"`
		}
		e.mustAdmin("GET", "/agent_router/logs?limit=1000&account="+account+"&before="+before, nil, 200, &page)
		out = append(out, page.Records...)
		if page.Next == "" {
			return out
		}
		before = page.Next
	}
}

const fallbackRoute = `
		byok_cooldown 1s
		response_header_timeout 2s
		route smart {
			to gpt-4o byok
			to gpt-4o platform
		}`

// TestFallbackBYOKToPlatform: "BYOK primary, platform secondary". A
// retryable failure with the account's key moves to the platform key; the
// client sees 200, and the log shows both attempts with their credentials.
// A 400 does not fall back.
func TestFallbackBYOKToPlatform(t *testing.T) {
	e := newEnv(t, envOptions{handler: fallbackRoute})
	e.createAccount("acme")
	k := e.createKey("acme", "k")
	byok := "sk-proj-fallback" + randomAlnum(40)
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok})

	failWith := func(resp providertest.Response) {
		e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
			if rec.Credential == byok {
				return resp
			}
			return providertest.Default(rec, "chat")
		})
	}
	cases := []struct {
		name  string
		resp  providertest.Response
		class string
	}{
		{"429", providertest.Response{Status: 429, Header: map[string]string{"Retry-After": "1"}, Body: `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`}, "rate_limit"},
		{"insufficient quota", providertest.Response{Status: 429, Body: `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`}, "quota"},
		{"500", providertest.Response{Status: 500, Body: `{"error":{"message":"internal","type":"server_error"}}`}, "server"},
		{"529", providertest.Response{Status: 529, Body: `{"error":{"message":"overloaded","type":"overloaded_error"}}`}, "overloaded"},
		{"timeout", providertest.Response{Delay: 4 * time.Second}, "timeout"},
	}
	for _, c := range cases {
		failWith(c.resp)
		tag := "fallback-" + strings.ReplaceAll(c.name, " ", "-")
		r := e.chat(k.Key, "smart", tag, false)
		if r.status != 200 || r.header.Get("X-Agent-Router-Credential") != "platform" || r.header.Get("X-Agent-Router-Attempts") != "2" {
			t.Errorf("%s: status %d, credential %q, attempts %q: %s", c.name, r.status, r.header.Get("X-Agent-Router-Credential"), r.header.Get("X-Agent-Router-Attempts"), r.body)
			continue
		}
		n := 0
		for _, rec := range e.openai.Records() {
			if strings.Contains(string(rec.Body), tag) {
				n++
			}
		}
		if n != 2 {
			t.Errorf("%s: the fake saw %d requests, want 2", c.name, n)
		}
		if c.resp.Status == 429 {
			// A 429 on the account's key holds that key back until its
			// provider's reset (Retry-After 1, or at least a second
			// without one): the gateway sends it nothing meanwhile. Wait
			// it out so the next case tries the key again.
			time.Sleep(1500 * time.Millisecond)
		}
		rec := e.logOf(r)
		if rec.Route != "smart" || len(rec.Attempts) != 2 || rec.Attempts[0].CredentialSource != "byok" || rec.Attempts[0].ErrorClass != c.class ||
			rec.Attempts[1].CredentialSource != "platform" || rec.Attempts[1].Status != 200 || rec.CredentialSource != "platform" || rec.Status != 200 {
			t.Errorf("%s: log record %+v", c.name, rec)
		}
	}

	// Connection refused: the account's key points at a closed port.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok, "base_url": closed})
	e.openai.SetResponder(nil)
	r := e.chat(k.Key, "smart", "fallback-connect", false)
	if rec := e.logOf(r); r.status != 200 || len(rec.Attempts) != 2 || rec.Attempts[0].ErrorClass != "connect" {
		t.Errorf("connect refusal: %d %s %+v", r.status, r.body, rec)
	}

	// A 400 is the request's fault: no fallback.
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok})
	failWith(providertest.Response{Status: 400, Body: `{"error":{"message":"bad parameter","type":"invalid_request_error","code":"invalid_value"}}`})
	r = e.chat(k.Key, "smart", "fallback-400", false)
	if r.status != 400 || errorCode(r.body) != "invalid_value" || r.header.Get("X-Agent-Router-Attempts") != "1" {
		t.Errorf("400: %d %s attempts %q", r.status, r.body, r.header.Get("X-Agent-Router-Attempts"))
	}
	if n := len(e.logOf(r).Attempts); n != 1 {
		t.Errorf("400: %d attempts logged", n)
	}
}

// TestNoFallbackAfterFirstByte: once a stream has begun, an upstream
// failure ends it with an OpenAI-shaped error event and is never retried.
func TestNoFallbackAfterFirstByte(t *testing.T) {
	e := newEnv(t, envOptions{handler: fallbackRoute})
	e.createAccount("acme")
	k := e.createKey("acme", "k")
	e.putBYOK("acme", "openai", map[string]string{"api_key": "sk-proj-stream" + randomAlnum(40)})
	// Two content events, then the connection ends: no finish, no [DONE].
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		return providertest.Response{Events: providertest.StreamEvents(rec.Model, []string{"one", "two"})[:3]}
	})
	r := e.chat(k.Key, "smart", "midstream", true)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	data := testfix.SSEData(t, r.body)
	if len(data) != 4 || !strings.Contains(data[2], `"two"`) || !strings.Contains(data[3], `"error"`) || strings.Contains(string(r.body), "[DONE]") {
		t.Fatalf("the stream should carry the content, then an error event, and no [DONE]:\n%s", r.body)
	}
	var ev struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(data[3]), &ev); ev.Error.Code != "upstream_stream_incomplete" {
		t.Errorf("error event code %q", ev.Error.Code)
	}
	if n := len(e.openai.Records()); n != 1 {
		t.Errorf("the fake saw %d requests, want exactly 1", n)
	}
	if rec := e.logOf(r); len(rec.Attempts) != 1 || rec.ErrorCode != "upstream_stream_incomplete" {
		t.Errorf("log: %+v", rec)
	}
}

// TestSplitBYOKPlatform: "traffic split between BYOK and platform". 10,000
// requests split 70/30; each share within ±2 points, and the fakes' ledgers
// agree with the request log.
func TestSplitBYOKPlatform(t *testing.T) {
	e := newEnv(t, envOptions{handler: `
		route shared {
			strategy split
			to gpt-4o-mini byok weight 70
			to gpt-4o-mini platform weight 30
		}`})
	e.createAccount("acme")
	k := e.createKey("acme", "k")
	byok := "sk-proj-split" + randomAlnum(40)
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok})

	const total, workers = 10000, 16
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				req, _ := http.NewRequest("POST", siteURL+"/v1/chat/completions",
					strings.NewReader(`{"model":"shared","messages":[{"role":"user","content":"x"}]}`))
				req.Header.Set("Authorization", "Bearer "+k.Key)
				resp, err := e.client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), total)
	}
	fakeBYOK, fakePlatform := e.openai.Count(byok), e.openai.Count(e.options.platformKey)
	if fakeBYOK+fakePlatform != total {
		t.Fatalf("the fake saw %d + %d requests, want %d", fakeBYOK, fakePlatform, total)
	}
	share := float64(fakeBYOK) / total * 100
	if math.Abs(share-70) > 2 {
		t.Errorf("BYOK share %.2f%%, want 70 ± 2", share)
	}
	var recs []logRecord
	testfix.WaitFor(t, 20*time.Second, "all request-log records", func() bool {
		recs = e.allLogs("acme")
		return len(recs) >= total
	})
	logBYOK, logPlatform := 0, 0
	for _, rec := range recs {
		switch rec.CredentialSource {
		case "byok":
			logBYOK++
		case "platform":
			logPlatform++
		}
	}
	if logBYOK != fakeBYOK || logPlatform != fakePlatform {
		t.Errorf("request log says %d byok / %d platform, the fake saw %d / %d", logBYOK, logPlatform, fakeBYOK, fakePlatform)
	}
	t.Logf("split: %d byok (%.2f%%), %d platform", fakeBYOK, share, fakePlatform)
}

// TestAliasToAnotherProvider: "BYOK plus model-name override". An alias to
// another provider's model is sent with that provider's BYOK key for an
// account that has one, and with the platform key for one that has not.
func TestAliasToAnotherProvider(t *testing.T) {
	e := newEnv(t, envOptions{handler: `
		alias fast mistral/mistral-small-latest
		alias quick fast`})
	e.createAccount("acme")
	e.createAccount("beta")
	ka, kb := e.createKey("acme", "k"), e.createKey("beta", "k")
	acmeMistral := randomAlnum(32)
	e.putBYOK("acme", "mistral", map[string]string{"api_key": acmeMistral})

	for _, c := range []struct {
		key                 createdKey
		model, wantKey, src string
	}{
		{ka, "fast", acmeMistral, "byok"},
		{kb, "fast", e.options.mistralKey, "platform"},
		{ka, "quick", acmeMistral, "byok"},
	} {
		tag := "alias-" + c.key.ID + "-" + c.model
		r := e.chat(c.key.Key, c.model, tag, false)
		if r.status != 200 || r.header.Get("X-Agent-Router-Provider") != "mistral" || r.header.Get("X-Agent-Router-Credential") != c.src {
			t.Fatalf("%s via %s: %d %v %s", c.model, c.key.ID, r.status, r.header, r.body)
		}
		rec := recordFor(t, e.mistral, tag)
		if rec.Credential != c.wantKey || rec.Model != "mistral-small-latest" {
			t.Errorf("%s via %s: mistral got model %q with the wrong key (%v)", c.model, c.key.ID, rec.Model, rec.Credential == c.wantKey)
		}
		if lr := e.logOf(r); lr.Model != c.model || lr.Provider != "mistral" || lr.CredentialSource != c.src {
			t.Errorf("log: %+v", lr)
		}
	}
	if n := len(e.openai.Records()); n != 0 {
		t.Errorf("openai saw %d requests for a mistral alias", n)
	}
}

// TestCredentialHealth: a rejected BYOK key is marked invalid, not sent
// during its cool-down (fallback chains skip it), probed again after it,
// and cleared by a success or a rotation. A request that has only that key
// gets the clear byok_credential_rejected error (400) at once.
func TestCredentialHealth(t *testing.T) {
	e := newEnv(t, envOptions{handler: fallbackRoute})
	e.createAccount("acme")
	k := e.createKey("acme", "k")
	byok := "sk-proj-health" + randomAlnum(40)
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok})
	e.openai.AcceptOnly(e.options.platformKey)

	status := func() map[string]any {
		var st map[string]any
		e.mustAdmin("GET", "/agent_router/accounts/acme/byok/openai", nil, 200, &st)
		return st
	}
	// 1. Rejected: auth is not retried by default, so the client learns it.
	r := e.chat(k.Key, "smart", "health-1", false)
	if r.status != 400 || errorCode(r.body) != "byok_credential_rejected" {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
	if st := status(); st["status"] != "invalid" || st["invalid_since"] == nil || !strings.Contains(fmt.Sprint(st["invalid_reason"]), "401") || strings.Contains(fmt.Sprint(st), byok) {
		t.Fatalf("status after the rejection: %v", st)
	}
	// 2. During the cool-down the chain skips the key: the platform serves.
	r = e.chat(k.Key, "smart", "health-2", false)
	if r.status != 200 || r.header.Get("X-Agent-Router-Credential") != "platform" {
		t.Fatalf("during cool-down: %d %s", r.status, r.body)
	}
	if rec := e.logOf(r); len(rec.Attempts) != 2 || rec.Attempts[0].Skipped != "byok_key_invalid" {
		t.Errorf("during cool-down, attempts: %+v", rec.Attempts)
	}
	if rec := recordFor(t, e.openai, "health-2"); rec.Credential != e.options.platformKey {
		t.Error("the invalid key was sent during its cool-down")
	}
	// A request with only that key still gets the rejection, at once:
	// the key is not sent again during its cool-down.
	r = e.chat(k.Key, "gpt-4o", "health-lone", false)
	if r.status != 400 || errorCode(r.body) != "byok_credential_rejected" {
		t.Errorf("lone target during cool-down: %d %s", r.status, r.body)
	}
	if n := e.openai.Count(byok); n != 1 {
		t.Errorf("the rejected key was sent %d times, want once", n)
	}
	// 3. After the cool-down the key is tried again; now it works: cleared.
	time.Sleep(1100 * time.Millisecond)
	e.openai.AcceptOnly()
	r = e.chat(k.Key, "smart", "health-3", false)
	if r.status != 200 || r.header.Get("X-Agent-Router-Credential") != "byok" {
		t.Fatalf("after the cool-down: %d %s", r.status, r.body)
	}
	if st := status(); st["status"] != "active" || st["invalid_since"] != nil {
		t.Errorf("a success did not clear the mark: %v", st)
	}
	// 4. Rejected again, then rotated: the new key is active at once.
	e.openai.AcceptOnly(e.options.platformKey)
	e.chat(k.Key, "smart", "health-4", false)
	if st := status(); st["status"] != "invalid" {
		t.Fatalf("not marked again: %v", st)
	}
	fresh := "sk-proj-health-new" + randomAlnum(40)
	e.putBYOK("acme", "openai", map[string]string{"api_key": fresh})
	if st := status(); st["status"] != "active" {
		t.Errorf("rotation did not clear the mark: %v", st)
	}
	e.openai.AcceptOnly(e.options.platformKey, fresh)
	r = e.chat(k.Key, "smart", "health-5", false)
	if r.status != 200 || recordFor(t, e.openai, "health-5").Credential != fresh {
		t.Errorf("after rotation: %d %s", r.status, r.body)
	}
}

// TestBYOKOnlyPolicy: with byok_only, an account's traffic for a provider
// never uses the platform key, even when a route lists a platform target.
func TestBYOKOnlyPolicy(t *testing.T) {
	e := newEnv(t, envOptions{handler: fallbackRoute})
	e.createAccount("acme")
	k := e.createKey("acme", "k")
	e.mustAdmin("PATCH", "/agent_router/accounts/acme/byok/openai", map[string]any{"byok_only": true}, 200, nil)

	// No key of its own: refused, naming the policy.
	for _, model := range []string{"smart", "gpt-4o"} {
		r := e.chat(k.Key, model, "policy-nokey-"+model, false)
		if r.status != 403 || errorCode(r.body) != "byok_only_policy" || !strings.Contains(string(r.body), "byok_only") {
			t.Errorf("%s without a key: %d %s", model, r.status, r.body)
		}
	}
	// With a key that is rate limited: the platform target is skipped.
	byok := "sk-proj-policy" + randomAlnum(40)
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok})
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		if rec.Credential == byok {
			return providertest.Response{Status: 429, Body: `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`}
		}
		return providertest.Default(rec, "chat")
	})
	r := e.chat(k.Key, "smart", "policy-429", false)
	if r.status != 429 {
		t.Errorf("rate-limited under byok_only: %d %s", r.status, r.body)
	}
	if rec := e.logOf(r); len(rec.Attempts) != 2 || rec.Attempts[1].Skipped != "byok_only_policy" {
		t.Errorf("attempts: %+v", rec.Attempts)
	}
	if n := e.openai.Count(e.options.platformKey); n != 0 {
		t.Errorf("the platform key was used %d times under byok_only", n)
	}
	// Lifting the policy lets the chain fall back again.
	e.mustAdmin("PATCH", "/agent_router/accounts/acme/byok/openai", map[string]any{"byok_only": false}, 200, nil)
	if r := e.chat(k.Key, "smart", "policy-lifted", false); r.status != 200 || r.header.Get("X-Agent-Router-Credential") != "platform" {
		t.Errorf("after lifting: %d %s", r.status, r.body)
	}
}
