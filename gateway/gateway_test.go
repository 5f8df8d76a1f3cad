package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, options{})
	keys, descs := e.account(t, "acme", 2)

	r := e.post(t, "/v1/chat/completions", "", chatBody("gpt-4o-mini"))
	expectError(t, r, 401, gateway.CodeMissingAPIKey, "missing Agent Router API key", "Bearer")

	r = e.do(t, "POST", "/v1/chat/completions", "", strings.NewReader(chatBody("gpt-4o-mini")), func(q *http.Request) {
		q.Header.Set("Authorization", "Basic "+keys[0])
	})
	expectError(t, r, 401, gateway.CodeMissingAPIKey)

	r = e.do(t, "POST", "/v1/chat/completions", "", strings.NewReader(chatBody("gpt-4o-mini")), func(q *http.Request) {
		q.Header.Set("Authorization", "Bearer   ")
	})
	expectError(t, r, 401, gateway.CodeMissingAPIKey)

	r = e.chat(t, "ar_"+randAlnum(43), "gpt-4o-mini")
	expectError(t, r, 401, gateway.CodeInvalidAPIKey, "invalid Agent Router API key")

	// An OpenAI key sent to the gateway is not an Agent Router key.
	r = e.chat(t, e.platformOpenAI, "gpt-4o-mini")
	expectError(t, r, 401, gateway.CodeInvalidAPIKey)

	r = e.do(t, "GET", "/v1/models", "", nil)
	expectError(t, r, 401, gateway.CodeMissingAPIKey)
	r = e.do(t, "POST", "/v1/embeddings", "nope", strings.NewReader(`{"model":"text-embedding-3-small","input":"x"}`))
	expectError(t, r, 401, gateway.CodeInvalidAPIKey)

	// The scheme is case-insensitive.
	r = e.do(t, "POST", "/v1/chat/completions", "", strings.NewReader(chatBody("gpt-4o-mini")), func(q *http.Request) {
		q.Header.Set("Authorization", "bearer "+keys[0])
	})
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)

	expectOK(t, e.chat(t, keys[1], "gpt-4o-mini"), providers.OpenAI, gateway.SourcePlatform)

	// Revocation takes effect for the very next request.
	if err := e.s.RevokeAPIKey("acme", descs[1].ID); err != nil {
		t.Fatal(err)
	}
	expectError(t, e.chat(t, keys[1], "gpt-4o-mini"), 401, gateway.CodeInvalidAPIKey)
	expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourcePlatform)

	if n := len(e.openai.Records()); n != 3 {
		t.Errorf("openai fake got %d requests, want 3 (refused requests must not reach it)", n)
	}

	// Deleting the account revokes its keys at once.
	if err := e.s.DeleteAccount("acme"); err != nil {
		t.Fatal(err)
	}
	expectError(t, e.chat(t, keys[0], "gpt-4o-mini"), 401, gateway.CodeInvalidAPIKey)

	// Refused requests are not attributed to anyone: only the 3 served ones are logged.
	if recs := e.records(t, "acme"); len(recs) != 3 {
		t.Errorf("%d request-log records, want 3", len(recs))
	}
}

func TestBadInput(t *testing.T) {
	const max = 512
	e := newEnv(t, options{maxBody: max})
	keys, _ := e.account(t, "acme", 1)
	key := keys[0]
	var logged []*reply
	check := func(r *reply, status int, code string, contains ...string) {
		t.Helper()
		expectError(t, r, status, code, contains...)
		logged = append(logged, r)
	}

	r := e.do(t, "GET", "/v1/chat/completions", key, nil)
	check(r, 405, gateway.CodeMethodNotAllowed, "GET", "POST")
	if a := r.header.Get("Allow"); a != "POST" {
		t.Errorf("Allow = %q, want POST", a)
	}
	r = e.do(t, "GET", "/v1/embeddings", key, nil)
	check(r, 405, gateway.CodeMethodNotAllowed)
	if a := r.header.Get("Allow"); a != "POST" {
		t.Errorf("Allow = %q, want POST", a)
	}
	r = e.do(t, "POST", "/v1/models", key, strings.NewReader("{}"))
	check(r, 405, gateway.CodeMethodNotAllowed)
	if a := r.header.Get("Allow"); a != "GET" {
		t.Errorf("Allow = %q, want GET", a)
	}

	// Too large, announced by Content-Length.
	big := `{"model":"gpt-4o-mini","input":"` + strings.Repeat("x", 4*max) + `"}`
	r = e.post(t, "/v1/chat/completions", key, big)
	check(r, 413, gateway.CodeRequestTooLarge, "512")
	if cl := e.lastCL.Load(); cl != int64(len(big)) {
		t.Errorf("gateway saw Content-Length %d, want %d", cl, len(big))
	}
	// Too large, chunked (no Content-Length).
	r = e.do(t, "POST", "/v1/chat/completions", key, io.MultiReader(strings.NewReader(big)), func(q *http.Request) {
		q.ContentLength = -1
	})
	check(r, 413, gateway.CodeRequestTooLarge, "512")
	if cl := e.lastCL.Load(); cl != -1 {
		t.Errorf("gateway saw Content-Length %d, want -1 (chunked)", cl)
	}
	// Much larger, chunked: the gateway stops reading and still answers.
	huge := `{"model":"gpt-4o-mini","input":"` + strings.Repeat("y", 1<<20) + `"}`
	r = e.do(t, "POST", "/v1/embeddings", key, io.MultiReader(strings.NewReader(huge)), func(q *http.Request) {
		q.ContentLength = -1
	})
	check(r, 413, gateway.CodeRequestTooLarge)

	for _, body := range []string{"", "   ", "{", `{"model":"gpt-4o-mini"`, `[{"model":"gpt-4o-mini"}]`,
		`"gpt-4o-mini"`, "null", "42", `{"model":"gpt-4o-mini"} {}`, `{"model":'gpt-4o-mini'}`} {
		r = e.post(t, "/v1/chat/completions", key, body)
		check(r, 400, gateway.CodeInvalidJSON)
	}
	for _, body := range []string{`{}`, `{"model":5}`, `{"model":""}`, `{"model":null}`, `{"model":["gpt-4o-mini"]}`,
		`{"model":{"name":"gpt-4o-mini"}}`, `{"params":{"model":"gpt-4o-mini"}}`, `{"Model":"gpt-4o-mini"}`} {
		r = e.post(t, "/v1/chat/completions", key, body)
		check(r, 400, gateway.CodeMissingModel, "model")
	}

	// A second top-level "model" (plainly or with escapes) would be read by
	// the provider's JSON decoder (last one wins) while the gateway routes
	// and logs the first.
	for _, body := range []string{`{"model":"gpt-4o-mini","messages":[],"model":"gpt-5"}`,
		`{"model":"gpt-4o-mini","mod\u0065l":"o3"}`, `{"\u006dodel":"gpt-4o-mini","model":"gpt-5"}`} {
		r = e.post(t, "/v1/chat/completions", key, body)
		check(r, 400, gateway.CodeInvalidJSON, `"model"`, "more than once")
	}

	r = e.chat(t, key, "no-such-model-xyz")
	check(r, 404, gateway.CodeModelNotFound, `"no-such-model-xyz"`)
	r = e.chat(t, key, "openai/")
	check(r, 404, gateway.CodeModelNotFound, `"openai/"`)
	r = e.post(t, "/v1/embeddings", key, `{"model":"acme/embedder","input":"x"}`)
	check(r, 404, gateway.CodeModelNotFound, `"acme/embedder"`)

	// Providers with neither a platform key nor the account's own: no_credential.
	for model, provider := range map[string]string{
		"gemini-2.5-flash":     providers.Gemini,
		"command-a-03-2025":    providers.Cohere,
		"cohere/embed-english": providers.Cohere,
	} {
		r = e.chat(t, key, model)
		check(r, 400, gateway.CodeNoCredential, provider)
	}

	// Mistral has no platform key and the account no BYOK.
	r = e.chat(t, key, "mistral-large-latest")
	check(r, 400, gateway.CodeNoCredential, "mistral")
	if c := r.header.Get(gateway.HeaderCredential); c != "" {
		t.Errorf("credential header %q on no_credential", c)
	}

	e.expectNoUpstream(t)

	// A body of exactly the limit goes through.
	exact := `{"model":"gpt-4o-mini","pad":"` + strings.Repeat("z", max-len(`{"model":"gpt-4o-mini","pad":""}`)) + `"}`
	if len(exact) != max {
		t.Fatalf("test body is %d bytes", len(exact))
	}
	expectOK(t, e.post(t, "/v1/chat/completions", key, exact), providers.OpenAI, gateway.SourcePlatform)
	r = e.do(t, "POST", "/v1/chat/completions", key, io.MultiReader(strings.NewReader(exact)), func(q *http.Request) { q.ContentLength = -1 })
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	if n := len(e.openai.Records()); n != 2 {
		t.Errorf("openai fake got %d requests, want 2", n)
	}
	for _, rec := range e.openai.Records()[:2] {
		if string(rec.Body) != exact {
			t.Errorf("fake got a %d-byte body, want the client's %d bytes unchanged", len(rec.Body), len(exact))
		}
	}

	// "model" inside nested objects is not the request's model.
	nested := `{"model":"gpt-4o-mini","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"model":{"type":"string"}}}}}],"metadata":{"model":"x"}}`
	expectOK(t, e.post(t, "/v1/chat/completions", key, nested), providers.OpenAI, gateway.SourcePlatform)

	// Every refusal after authentication is logged with its status and code.
	for _, r := range logged {
		var env struct {
			Error struct{ Code string } `json:"error"`
		}
		json.Unmarshal(r.body, &env)
		rec := e.record(t, r.id)
		if rec.Status != r.status || rec.ErrorCode != env.Error.Code || rec.AccountID != "acme" {
			t.Errorf("record %+v for answer %v", rec, r)
		}
	}
}

func TestCredentialChoice(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 2)
	other, _ := e.account(t, "globex", 1)

	// expect sends one chat request and checks which key reached the fake.
	expect := func(key, source, want string, header map[string]string) {
		t.Helper()
		e.openai.Reset()
		r := e.chat(t, key, "gpt-4o-mini")
		expectOK(t, r, providers.OpenAI, source)
		rec, ok := e.openai.Last()
		if !ok {
			t.Fatal("request did not reach the openai fake")
		}
		if rec.Credential != want || rec.Header.Get("Authorization") != "Bearer "+want {
			t.Errorf("fake got credential %s, want %s", providers.Mask(rec.Credential), providers.Mask(want))
		}
		for h, v := range header {
			if got := rec.Header.Get(h); got != v {
				t.Errorf("upstream %s = %q, want %q", h, got, v)
			}
		}
	}
	platformHeaders := map[string]string{"OpenAI-Organization": "org-platform", "OpenAI-Project": "proj-platform"}

	expect(keys[0], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)
	expect(keys[1], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)
	expect(other[0], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)

	byok1 := canaryOpenAI("by")
	e.putCred(t, "acme", providers.OpenAI, byok1, store.Extras{Organization: "org-byok", Project: "proj-byok"})
	byokHeaders := map[string]string{"OpenAI-Organization": "org-byok", "OpenAI-Project": "proj-byok"}
	expect(keys[0], gateway.SourceBYOK, byok1, byokHeaders)
	expect(keys[1], gateway.SourceBYOK, byok1, byokHeaders)
	expect(other[0], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)

	// The BYOK key serves OpenAI only: other providers keep the platform key.
	e.together.Reset()
	expectOK(t, e.chat(t, keys[0], "meta-llama/Llama-3.3-70B-Instruct-Turbo"), providers.Together, gateway.SourcePlatform)
	if rec, _ := e.together.Last(); rec.Credential != e.platformTogether {
		t.Errorf("together got %s", providers.Mask(rec.Credential))
	}

	// Rotation: the next request uses the new key. Without organization or
	// project in the new credential, none is sent (never the platform's).
	byok2 := canaryOpenAI("ro")
	e.putCred(t, "acme", providers.OpenAI, byok2, store.Extras{})
	expect(keys[0], gateway.SourceBYOK, byok2, map[string]string{"OpenAI-Organization": "", "OpenAI-Project": ""})
	expect(keys[1], gateway.SourceBYOK, byok2, nil)
	expect(other[0], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)
	if n := e.openai.Count(byok1); n != 0 {
		t.Errorf("rotated-out key used %d times", n)
	}

	// The BYOK base_url overrides the platform's.
	regional := newFake("openai", "openai")
	e.fakes = append(e.fakes, regional)
	byok3 := canaryOpenAI("eu")
	e.putCred(t, "acme", providers.OpenAI, byok3, store.Extras{BaseURL: regional.BaseURL(), Project: "proj-eu"})
	e.openai.Reset()
	r := e.chat(t, keys[0], "gpt-4o-mini")
	expectOK(t, r, providers.OpenAI, gateway.SourceBYOK)
	if n := len(e.openai.Records()); n != 0 {
		t.Errorf("platform base_url got %d requests with a BYOK base_url set", n)
	}
	rec, ok := regional.Last()
	if !ok || rec.Credential != byok3 || rec.Path != "/v1/chat/completions" {
		t.Fatalf("regional fake got %v %s with %s", ok, rec.Path, providers.Mask(rec.Credential))
	}
	if rec.Header.Get("OpenAI-Project") != "proj-eu" || rec.Header.Get("OpenAI-Organization") != "" {
		t.Errorf("regional fake got org %q project %q", rec.Header.Get("OpenAI-Organization"), rec.Header.Get("OpenAI-Project"))
	}
	expect(other[0], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)

	// Removal reverts to the platform key on the next request.
	if err := e.s.DeleteCredential("acme", providers.OpenAI); err != nil {
		t.Fatal(err)
	}
	expect(keys[0], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)
	expect(keys[1], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)
	expect(other[0], gateway.SourcePlatform, e.platformOpenAI, platformHeaders)
	if n := len(regional.Records()); n != 1 {
		t.Errorf("regional fake got %d requests after removal, want 1 in all", n)
	}

	// A BYOK key makes a provider without a platform key reachable, for that
	// account only.
	mkey := canaryPlain("mi")
	e.putCred(t, "globex", providers.Mistral, mkey, store.Extras{})
	expectOK(t, e.chat(t, other[0], "mistral-small-latest"), providers.Mistral, gateway.SourceBYOK)
	expectError(t, e.chat(t, keys[0], "mistral-small-latest"), 400, gateway.CodeNoCredential, "mistral")
	if rec, _ := e.mistral.Last(); rec.Credential != mkey {
		t.Errorf("mistral got %s", providers.Mask(rec.Credential))
	}
}

// Concurrent requests while the credential rotates: each request uses one
// consistent credential (the header it reports matches the key the provider
// saw), and a request that starts after a rotation returns uses the new key.
func TestConcurrentRotation(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	other, _ := e.account(t, "globex", 1)

	var mu sync.Mutex
	sources := map[string]string{} // user marker -> credential header
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 100)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				user := fmt.Sprintf("w%d-%d", w, i)
				key := keys[0]
				if w == 3 {
					key = other[0]
				}
				body := fmt.Sprintf(`{"model":"gpt-4o-mini","user":%q,"messages":[]}`, user)
				r, err := e.try(context.Background(), "POST", "/v1/chat/completions", key, strings.NewReader(body))
				if err == nil && r.status != 200 {
					err = fmt.Errorf("status %v", r)
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				sources[user] = r.header.Get(gateway.HeaderCredential)
				mu.Unlock()
			}
		}()
	}
	var byoks []string
	for i := 0; i < 4; i++ {
		k := canaryOpenAI(fmt.Sprintf("c%d", i))
		byoks = append(byoks, k)
		e.putCred(t, "acme", providers.OpenAI, k, store.Extras{})
		r := e.chat(t, keys[0], "gpt-4o-mini")
		expectOK(t, r, providers.OpenAI, gateway.SourceBYOK)
		time.Sleep(5 * time.Millisecond) // let workers interleave; not an assertion
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	n := 0
	for _, rec := range e.openai.Records() {
		user := gjson.GetBytes(rec.Body, "user").String()
		if user == "" {
			continue
		}
		n++
		mu.Lock()
		src := sources[user]
		mu.Unlock()
		worker3 := strings.HasPrefix(user, "w3-")
		switch {
		case worker3 && (src != gateway.SourcePlatform || rec.Credential != e.platformOpenAI):
			t.Errorf("other account's request %s used %s/%s", user, src, providers.Mask(rec.Credential))
		case !worker3 && src == gateway.SourcePlatform && rec.Credential != e.platformOpenAI,
			!worker3 && src == gateway.SourceBYOK && !slices.Contains(byoks, rec.Credential):
			t.Errorf("request %s said %s but sent %s", user, src, providers.Mask(rec.Credential))
		}
	}
	if n < 8 {
		t.Errorf("only %d concurrent requests ran", n)
	}
	// After the last rotation returned, acme only ever uses the last key.
	e.openai.Reset()
	expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourceBYOK)
	if rec, _ := e.openai.Last(); rec.Credential != byoks[len(byoks)-1] {
		t.Errorf("after rotation got %s", providers.Mask(rec.Credential))
	}
}

func TestResolution(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	key := keys[0]
	mkey := canaryPlain("mi")
	e.putCred(t, "acme", providers.Mistral, mkey, store.Extras{})

	cases := []struct {
		model      string
		fake       *fake
		provider   string
		credential string
		upstream   string // upstream model (Azure: the deployment)
		path       string
		query      string
	}{
		{"gpt-4o-mini", e.openai, "openai", e.platformOpenAI, "gpt-4o-mini", "/v1/chat/completions", ""},
		{"openai/gpt-4o-mini", e.openai, "openai", e.platformOpenAI, "gpt-4o-mini", "/v1/chat/completions", ""},
		{"my-gpt", e.azure, "azure", e.platformAzure, "deploy-1", "/openai/deployments/deploy-1/chat/completions", "api-version=2024-10-21"},
		{"azure/my-gpt", e.azure, "azure", e.platformAzure, "deploy-1", "/openai/deployments/deploy-1/chat/completions", "api-version=2024-10-21"},
		{"azure/deploy-2", e.azure, "azure", e.platformAzure, "deploy-2", "/openai/deployments/deploy-2/chat/completions", "api-version=2024-10-21"},
		{"mistral-large-latest", e.mistral, "mistral", mkey, "mistral-large-latest", "/v1/chat/completions", ""},
		{"mistral/mistral-large-latest", e.mistral, "mistral", mkey, "mistral-large-latest", "/v1/chat/completions", ""},
		{"sonar", e.perplexity, "perplexity", e.platformPerplexity, "sonar", "/v1/chat/completions", ""},
		{"sonar-pro", e.perplexity, "perplexity", e.platformPerplexity, "sonar-pro", "/v1/chat/completions", ""},
		{"meta-llama/Llama-3.3-70B-Instruct-Turbo", e.together, "together", e.platformTogether, "meta-llama/Llama-3.3-70B-Instruct-Turbo", "/v1/chat/completions", ""},
		{"openai/gpt-oss-120b", e.together, "together", e.platformTogether, "openai/gpt-oss-120b", "/v1/chat/completions", ""},
		{"together/openai/gpt-oss-20b", e.together, "together", e.platformTogether, "openai/gpt-oss-20b", "/v1/chat/completions", ""},
	}
	for _, c := range cases {
		for _, f := range e.fakes {
			f.Reset()
		}
		r := e.chat(t, key, c.model)
		if r.status != 200 {
			t.Errorf("%s: %v", c.model, r)
			continue
		}
		if p := r.header.Get(gateway.HeaderProvider); p != c.provider {
			t.Errorf("%s: provider header %q, want %q", c.model, p, c.provider)
		}
		for _, f := range e.fakes {
			if n := len(f.Records()); (f == c.fake) != (n == 1) {
				t.Errorf("%s: fake %s got %d requests", c.model, f.name, n)
			}
		}
		rec, ok := c.fake.Last()
		if !ok {
			continue
		}
		if rec.Path != c.path || rec.Query != c.query {
			t.Errorf("%s: fake got %s?%s, want %s?%s", c.model, rec.Path, rec.Query, c.path, c.query)
		}
		if rec.Credential != c.credential {
			t.Errorf("%s: fake got credential %s, want %s", c.model, providers.Mask(rec.Credential), providers.Mask(c.credential))
		}
		// Azure's classic API names the deployment in the URL and leaves
		// the body as the client sent it.
		want := c.upstream
		if c.provider == "azure" {
			want = c.model
		}
		if got := gjson.GetBytes(rec.Body, "model").String(); got != want {
			t.Errorf("%s: upstream body model %q, want %q", c.model, got, want)
		}
		// The rest of the body is forwarded as is.
		if got := gjson.GetBytes(rec.Body, "messages").Raw; got != `[{"role":"user","content":"say hi"}]` {
			t.Errorf("%s: messages became %s", c.model, got)
		}
		if got := gjson.GetBytes(rec.Body, "temperature").Raw; got != "0.2" {
			t.Errorf("%s: temperature became %s", c.model, got)
		}
		if c.provider == "azure" {
			if rec.Header.Get("Api-Key") != e.platformAzure || rec.Header.Get("Authorization") != "" {
				t.Errorf("%s: azure got Api-Key %q, Authorization %q", c.model, providers.Mask(rec.Header.Get("Api-Key")), rec.Header.Get("Authorization"))
			}
		} else if rec.Header.Get("Api-Key") != "" || rec.Header.Get("Authorization") != "Bearer "+c.credential {
			t.Errorf("%s: wrong auth headers", c.model)
		}
		if ct := rec.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: upstream Content-Type %q", c.model, ct)
		}
		lr := e.record(t, r.id)
		if lr.Model != c.model || lr.Provider != c.provider || lr.UpstreamModel != c.upstream {
			t.Errorf("%s: record model %q provider %q upstream %q, want upstream %q", c.model, lr.Model, lr.Provider, lr.UpstreamModel, c.upstream)
		}
	}

	// Azure's v1 API, selected by a BYOK credential's api_version, takes the
	// deployment as the model in the body.
	akey := canaryPlain("av")
	e.putCred(t, "acme", providers.Azure, akey, store.Extras{BaseURL: e.azure.BaseURL(), APIVersion: "v1"})
	e.azure.Reset()
	expectOK(t, e.chat(t, key, "my-gpt"), providers.Azure, gateway.SourceBYOK)
	rec, _ := e.azure.Last()
	if rec.Path != "/openai/v1/chat/completions" || rec.Credential != akey || gjson.GetBytes(rec.Body, "model").String() != "deploy-1" {
		t.Errorf("azure v1: got %s?%s model %q", rec.Path, rec.Query, gjson.GetBytes(rec.Body, "model").String())
	}
}

func TestEmbeddings(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)

	r := e.post(t, "/v1/embeddings", keys[0], `{"model":"text-embedding-3-small","input":"hello"}`)
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	if gjson.GetBytes(r.body, "data.0.embedding.#").Int() != 3 || gjson.GetBytes(r.body, "model").String() != "text-embedding-3-small" {
		t.Errorf("embedding body %s", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	rec, _ := e.openai.Last()
	if rec.Path != "/v1/embeddings" || rec.Method != "POST" || gjson.GetBytes(rec.Body, "input").String() != "hello" {
		t.Errorf("fake got %s %s %s", rec.Method, rec.Path, rec.Body)
	}
	if lr := e.record(t, r.id); lr.Endpoint != "embeddings" || lr.Status != 200 {
		t.Errorf("record %+v", lr)
	}

	r = e.post(t, "/v1/embeddings", keys[0], `{"model":"my-gpt","input":"hello"}`)
	expectOK(t, r, providers.Azure, gateway.SourcePlatform)
	if rec, _ := e.azure.Last(); rec.Path != "/openai/deployments/deploy-1/embeddings" {
		t.Errorf("azure fake got %s", rec.Path)
	}

	r = e.chat(t, keys[0], "gpt-4o-mini")
	if lr := e.record(t, r.id); lr.Endpoint != "chat.completions" {
		t.Errorf("chat endpoint logged as %q", lr.Endpoint)
	}
	if gjson.GetBytes(r.body, "choices.0.message.content").String() != "Hello from the fake" {
		t.Errorf("chat body %s", r.body)
	}
}

func TestModels(t *testing.T) {
	e := newEnv(t, options{})
	acme, _ := e.account(t, "acme", 1)
	globex, _ := e.account(t, "globex", 1)
	e.putCred(t, "globex", providers.Mistral, canaryPlain("mi"), store.Extras{})

	list := func(key string) map[string]string {
		t.Helper()
		r := e.do(t, "GET", "/v1/models", key, nil)
		if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /v1/models: %v", r)
		}
		if o := gjson.GetBytes(r.body, "object").String(); o != "list" {
			t.Errorf("object %q", o)
		}
		out := map[string]string{}
		for _, m := range gjson.GetBytes(r.body, "data").Array() {
			id := m.Get("id").String()
			if _, dup := out[id]; dup {
				t.Errorf("model %s listed twice", id)
			}
			if m.Get("object").String() != "model" {
				t.Errorf("model entry %s", m.Raw)
			}
			out[id] = m.Get("owned_by").String()
		}
		if lr := e.record(t, r.id); lr.Endpoint != "models" || lr.Status != 200 {
			t.Errorf("record %+v", lr)
		}
		return out
	}

	a := list(acme[0])
	for id, owner := range map[string]string{"gpt-4o-mini": "openai", "text-embedding-3-small": "openai", "sonar": "perplexity",
		"meta-llama/Llama-3.3-70B-Instruct-Turbo": "together", "openai/gpt-oss-120b": "together", "my-gpt": "azure"} {
		if a[id] != owner {
			t.Errorf("acme: %s owned by %q, want %q", id, a[id], owner)
		}
	}
	for id, owner := range a {
		switch owner {
		case "openai", "perplexity", "together", "azure", "anthropic":
		default:
			t.Errorf("acme: %s (%s) listed: no credential or not implemented", id, owner)
		}
	}
	if _, ok := a["mistral-large-latest"]; ok {
		t.Error("acme can't reach mistral")
	}
	if a["claude-haiku-4-5"] != "anthropic" {
		t.Error("acme reaches anthropic with the platform key, but its models are not listed")
	}

	g := list(globex[0])
	if g["mistral-large-latest"] != "mistral" || g["gpt-4o-mini"] != "openai" {
		t.Errorf("globex list %v", g)
	}
	if len(g) != len(a)+len(providers.ExampleModels[providers.Mistral]) {
		t.Errorf("globex lists %d models, acme %d", len(g), len(a))
	}
	e.expectNoUpstream(t)
}

// An environment with only BYOK-capable providers: the list follows the
// account's credentials.
func TestModelsWithoutPlatformKeys(t *testing.T) {
	e := newEnv(t, options{configure: func(e *env, p map[string]*gateway.ProviderConfig) {
		for _, pc := range p {
			pc.APIKey = ""
		}
		e.keysFor = map[string]map[string]bool{}
	}})
	keys, _ := e.account(t, "acme", 1)
	r := e.do(t, "GET", "/v1/models", keys[0], nil)
	if r.status != 200 || gjson.GetBytes(r.body, "data.#").Int() != 0 {
		t.Errorf("no credentials: %v", r)
	}
	expectError(t, e.chat(t, keys[0], "gpt-4o-mini"), 400, gateway.CodeNoCredential, "openai")
	expectError(t, e.chat(t, keys[0], "my-gpt"), 400, gateway.CodeNoCredential, "azure")

	e.putCred(t, "acme", providers.OpenAI, canaryOpenAI("by"), store.Extras{})
	r = e.do(t, "GET", "/v1/models", keys[0], nil)
	for _, m := range gjson.GetBytes(r.body, "data").Array() {
		if m.Get("owned_by").String() != "openai" {
			t.Errorf("listed %s", m.Raw)
		}
	}
	if !strings.Contains(string(r.body), `"gpt-4o-mini"`) {
		t.Errorf("openai models missing: %s", r.body)
	}
	expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourceBYOK)
}

func TestStreamRelay(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	pieces := make([]string, 17)
	for i := range pieces {
		pieces[i] = fmt.Sprintf("p%02d ", i)
	}
	events := providertest.StreamEvents("gpt-4o-mini", pieces)
	if len(events) != 20 {
		t.Fatalf("%d events", len(events))
	}
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		return providertest.Response{Events: events, EventDelay: 20 * time.Millisecond,
			Header: map[string]string{"X-Request-Id": "req_upstream", "X-Ratelimit-Remaining-Requests": "99", "Set-Cookie": "upstream=1"}}
	})
	r := e.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","stream":true,"messages":[]}`)
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("X-Request-Id") != "req_upstream" || r.header.Get("X-Ratelimit-Remaining-Requests") != "99" {
		t.Errorf("provider request id / rate-limit headers not relayed: %v", r.header)
	}
	if r.header.Get("Set-Cookie") != "" {
		t.Errorf("upstream Set-Cookie relayed")
	}
	got := testfix.SSEData(t, r.body)
	if !slices.Equal(got, events) {
		t.Fatalf("relayed %d events, want the %d sent, in order:\n%q", len(got), len(events), got)
	}
	if got[len(got)-1] != "[DONE]" {
		t.Error("stream does not end with [DONE]")
	}
	if rec, _ := e.openai.Last(); !rec.Stream {
		t.Error("upstream request lost stream:true")
	}
	lr := e.record(t, r.id)
	if !lr.Stream || lr.Status != 200 || lr.TTFBMS <= 0 || lr.LatencyMS < lr.TTFBMS {
		t.Errorf("stream record %+v", lr)
	}
}

// Each event must reach the client before the provider sends the next one:
// the fake sends event i+1 only after the test has read event i.
func TestStreamEventsFlushedOneByOne(t *testing.T) {
	t.Run("whole events", func(t *testing.T) { testStreamEventsFlushed(t, false) })
	// The provider's write ends in the middle of the next event: the
	// gateway must not wait for that event's end before sending the one
	// it already has.
	t.Run("next event begun", func(t *testing.T) { testStreamEventsFlushed(t, true) })
}

func testStreamEventsFlushed(t *testing.T, split bool) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	const n = 20
	ack := make(chan int)
	var stalled sync.Once
	stalledAt := -1
	e.openai.handle(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		f := w.(http.Flusher)
		for i := 0; i < n; i++ {
			switch {
			case !split:
				fmt.Fprintf(w, "data: {\"i\":%d}\n\n", i)
			case i == 0:
				fmt.Fprint(w, "data: {\"i\":0}\n\ndata: {\"i\"")
			case i < n-1:
				fmt.Fprintf(w, ":%d}\n\ndata: {\"i\"", i)
			default:
				fmt.Fprintf(w, ":%d}\n\n", i)
			}
			f.Flush()
			select {
			case got := <-ack:
				if got != i {
					stalled.Do(func() { stalledAt = i })
					return
				}
			case <-r.Context().Done():
				return
			case <-time.After(bounded):
				stalled.Do(func() { stalledAt = i })
				return
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})

	req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true}`))
	req.Header.Set("Authorization", "Bearer "+keys[0])
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := e.checkID(resp.Header.Get(gateway.HeaderRequestID)); err != nil {
		t.Error(err)
	}
	br := bufio.NewReader(resp.Body)
	next := 0
	var all strings.Builder
	for {
		line, err := br.ReadString('\n')
		all.WriteString(line)
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "data: "); ok {
			if d == "[DONE]" {
				break
			}
			if want := fmt.Sprintf(`{"i":%d}`, next); d != want {
				t.Fatalf("got event %s, want %s", d, want)
			}
			select {
			case ack <- next:
			case <-time.After(bounded):
				t.Fatalf("event %d arrived only after the provider gave up waiting for it to be read: the gateway held it back", next)
			}
			next++
		}
		if err != nil {
			break
		}
	}
	e.observe(resp.Header, []byte(all.String()))
	if stalledAt >= 0 || next != n {
		t.Fatalf("event %d was held back by the gateway: the client received %d of %d events", stalledAt, next, n)
	}
}

func TestClientDisconnect(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)

	t.Run("before headers", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		e.openai.SetResponder(func(providertest.Record) providertest.Response {
			arrived <- struct{}{}
			return providertest.Response{Hang: true}
		})
		e.openai.drainFinished()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := e.try(ctx, "POST", "/v1/chat/completions", keys[0], strings.NewReader(chatBody("gpt-4o-mini")))
			done <- err
		}()
		select {
		case <-arrived:
		case <-time.After(bounded):
			t.Fatal("request never reached the fake")
		}
		cancel()
		select {
		case <-e.openai.finished:
		case <-time.After(bounded):
			t.Fatal("the provider request was not cancelled when the client went away")
		}
		if err := <-done; err == nil {
			t.Error("client request did not fail")
		}
		recs := e.records(t, "acme")
		if len(recs) != 1 || recs[0].Status != 499 || recs[0].ErrorCode != "client_closed_request" || recs[0].CredentialSource != "platform" {
			t.Errorf("records %+v", recs)
		}
		if e.observed.FilterMessage("upstream request failed").Len() != 0 {
			t.Error("a client going away was logged as an upstream failure")
		}
	})

	t.Run("mid stream", func(t *testing.T) {
		events := make([]string, 500)
		for i := range events {
			events[i] = fmt.Sprintf(`{"i":%d}`, i)
		}
		e.openai.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Events: events, EventDelay: 20 * time.Millisecond}
		})
		e.openai.drainFinished()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true}`))
		req.Header.Set("Authorization", "Bearer "+keys[0])
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: {\"i\":0}\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
		cancel()
		resp.Body.Close()
		select {
		case <-e.openai.finished:
		case <-time.After(bounded):
			t.Fatal("the provider stream was not cancelled when the client went away")
		}
		e.waitIdle(t)
		if n := e.openai.active.Load(); n != 0 {
			t.Errorf("%d provider requests still open", n)
		}
	})
}

func TestUpstreamErrors(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	byokKeys, _ := e.account(t, "byok", 1)
	byok := canaryOpenAI("by")
	e.putCred(t, "byok", providers.OpenAI, byok, store.Extras{})

	t.Run("429 relayed with Retry-After", func(t *testing.T) {
		e.openai.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Status: 429, Header: map[string]string{"Retry-After": "7", "Retry-After-Ms": "7000", "X-Ratelimit-Remaining-Requests": "0"},
				Body: `{"error":{"message":"Rate limit reached for gpt-4o-mini on requests per min","type":"requests","param":null,"code":"rate_limit_exceeded"}}`}
		})
		defer e.openai.SetResponder(nil)
		r := e.chat(t, keys[0], "gpt-4o-mini")
		d := expectError(t, r, 429, "rate_limit_exceeded", "Rate limit reached", "openai")
		if d.Type != "rate_limit_error" {
			t.Errorf("type %q", d.Type)
		}
		if r.header.Get("Retry-After") != "7" || r.header.Get("Retry-After-Ms") != "7000" {
			t.Errorf("Retry-After %q / %q", r.header.Get("Retry-After"), r.header.Get("Retry-After-Ms"))
		}
		if lr := e.record(t, r.id); lr.Status != 429 || lr.ErrorCode != "rate_limit_exceeded" {
			t.Errorf("record %+v", lr)
		}
	})

	t.Run("500 relayed", func(t *testing.T) {
		e.openai.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Status: 500, Body: `{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}`}
		})
		defer e.openai.SetResponder(nil)
		r := e.chat(t, keys[0], "gpt-4o-mini")
		d := expectError(t, r, 500, gateway.CodeUpstreamError, "openai returned 500", "server had an error")
		if d.Type != "api_error" {
			t.Errorf("type %q", d.Type)
		}
		// Not JSON at all.
		e.openai.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Status: 503, Body: "upstream connect error or disconnect/reset before headers", Header: map[string]string{"Content-Type": "text/plain"}}
		})
		r = e.chat(t, keys[0], "gpt-4o-mini")
		expectError(t, r, 503, gateway.CodeUpstreamError, "openai returned 503", "upstream connect error")
	})

	t.Run("BYOK key rejected", func(t *testing.T) {
		e.openai.AcceptOnly(e.platformOpenAI)
		defer e.openai.AcceptOnly()
		sent := e.openai.Count(byok)
		r := e.chat(t, byokKeys[0], "gpt-4o-mini")
		// 400 on chat completions, which no OpenAI SDK retries (nor Codex);
		// whose key failed and who can fix it,
		// in the gateway's words: not the provider's ("Incorrect API key
		// provided"), which agents read as their own login failing.
		d := expectError(t, r, http.StatusBadRequest, gateway.CodeBYOKCredentialRejected,
			"the openai key this account registered with Agent Router (Bring Your Own Key) does not work", "openai refused it (HTTP 401)",
			"Your Agent Router API key is fine", "an owner of the account must replace the openai key under Settings → Bring Your Own Key")
		if d.Type != "invalid_request_error" || strings.Contains(d.Message, "Incorrect API key") || strings.Contains(d.Message, "login") {
			t.Errorf("type %q, message %q", d.Type, d.Message)
		}
		if r.header.Get(gateway.HeaderCredential) != gateway.SourceBYOK || r.header.Get("X-Should-Retry") != "false" {
			t.Errorf("headers %v", r.header)
		}
		if lr := e.record(t, r.id); lr.Status != http.StatusBadRequest || lr.ErrorCode != gateway.CodeBYOKCredentialRejected || lr.CredentialSource != "byok" {
			t.Errorf("record %+v", lr)
		}
		// Known rejected, the key is not sent again for a while: the next
		// requests are answered at once, in the same words.
		for range 5 {
			r = e.chat(t, byokKeys[0], "gpt-4o-mini")
			expectError(t, r, http.StatusBadRequest, gateway.CodeBYOKCredentialRejected, "openai refused it recently", "Settings → Bring Your Own Key")
			if lr := e.record(t, r.id); len(lr.Attempts) != 1 || lr.Attempts[0].Skipped != "byok_key_invalid" || lr.CredentialSource != "" {
				t.Errorf("held-back record %+v", lr)
			}
		}
		if n := e.openai.Count(byok) - sent; n != 1 {
			t.Errorf("the refused key reached the provider %d times in 6 requests, want 1", n)
		}
		// The platform key still works for other accounts.
		expectOK(t, e.chat(t, keys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourcePlatform)
		// Replaced by an owner, the key is sent at once.
		e.openai.AcceptOnly()
		e.putCred(t, "byok", providers.OpenAI, byok, store.Extras{})
		expectOK(t, e.chat(t, byokKeys[0], "gpt-4o-mini"), providers.OpenAI, gateway.SourceBYOK)
	})

	t.Run("platform key rejected", func(t *testing.T) {
		e.openai.AcceptOnly(byok)
		defer e.openai.AcceptOnly()
		r := e.chat(t, keys[0], "gpt-4o-mini")
		expectError(t, r, 502, gateway.CodePlatformCredentialRejected, "platform", "openai")
		e.openai.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Status: 403, Body: `{"error":{"message":"Project does not have access","type":"invalid_request_error","code":"model_not_available_for_project"}}`}
		})
		defer e.openai.SetResponder(nil)
		e.openai.AcceptOnly()
		r = e.chat(t, keys[0], "gpt-4o-mini")
		expectError(t, r, 502, gateway.CodePlatformCredentialRejected)

		// A region refusal is not the key's fault: relayed as the 403 it is.
		e.openai.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Status: 403, Body: `{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","code":"unsupported_country_region_territory"}}`}
		})
		r = e.chat(t, keys[0], "gpt-4o-mini")
		expectError(t, r, 403, "unsupported_country_region_territory", "region")
	})

	t.Run("prefixless BYOK key echoed in full and in part", func(t *testing.T) {
		mkey := canaryPlain("mi")
		e.putCred(t, "byok", providers.Mistral, mkey, store.Extras{})
		e.mistral.AcceptOnly("not-the-key")
		r := e.chat(t, byokKeys[0], "mistral-small-latest")
		expectError(t, r, http.StatusBadRequest, gateway.CodeBYOKCredentialRejected, "the mistral key this account registered")
		e.mistral.AcceptOnly()
		e.putCred(t, "byok", providers.Mistral, mkey, store.Extras{}) // replaced: sent again
		e.mistral.SetResponder(func(rec providertest.Record) providertest.Response {
			return providertest.Response{Status: 400, Body: fmt.Sprintf(
				`{"object":"error","message":"bad request for key %s...%s","type":"invalid_request_error","code":"%s"}`,
				rec.Credential[:14], rec.Credential[len(rec.Credential)-4:], rec.Credential)}
		})
		r = e.chat(t, byokKeys[0], "mistral-small-latest")
		// Mistral's error code is top-level, so the gateway's own code is used.
		expectError(t, r, 400, gateway.CodeUpstreamError, "mistral returned 400", "bad request for key", providers.Redacted)
		e.mistral.SetResponder(nil)
	})

	t.Run("Retry-After relayed only when well-formed", func(t *testing.T) {
		date := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
		for _, c := range []struct{ ra, ms, wantRA, wantMS string }{
			{date, "1500.5", date, "1500.5"},
			{"20", "", "20", ""},
			{"soon", "-1", "", ""},
			{"1; DROP", "NaN", "", ""},
			{"-3", "1e300", "", ""},
		} {
			hdr := map[string]string{}
			if c.ra != "" {
				hdr["Retry-After"] = c.ra
			}
			if c.ms != "" {
				hdr["Retry-After-Ms"] = c.ms
			}
			e.openai.SetResponder(func(providertest.Record) providertest.Response {
				return providertest.Response{Status: 503, Header: hdr, Body: `{"error":{"message":"overloaded"}}`}
			})
			r := e.chat(t, keys[0], "gpt-4o-mini")
			expectError(t, r, 503, gateway.CodeUpstreamError, "overloaded")
			if r.header.Get("Retry-After") != c.wantRA || r.header.Get("Retry-After-Ms") != c.wantMS {
				t.Errorf("upstream %q/%q relayed as %q/%q", c.ra, c.ms, r.header.Get("Retry-After"), r.header.Get("Retry-After-Ms"))
			}
			// The same on a successful answer.
			e.openai.SetResponder(func(providertest.Record) providertest.Response {
				return providertest.Response{Header: hdr, Body: providertest.ChatCompletion("gpt-4o-mini", "hi")}
			})
			r = e.chat(t, keys[0], "gpt-4o-mini")
			expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
			if r.header.Get("Retry-After") != c.wantRA {
				t.Errorf("upstream %q relayed on 200 as %q", c.ra, r.header.Get("Retry-After"))
			}
		}
		e.openai.SetResponder(nil)
	})

	t.Run("together 403 is not an auth failure", func(t *testing.T) {
		e.together.SetResponder(func(providertest.Record) providertest.Response {
			return providertest.Response{Status: 403, Body: `{"error":{"message":"Input validation error: inputs tokens + max_new_tokens must be <= 8193","type":"invalid_request_error"}}`}
		})
		r := e.chat(t, keys[0], "meta-llama/Llama-3.3-70B-Instruct-Turbo")
		expectError(t, r, 403, gateway.CodeUpstreamError, "together returned 403", "max_new_tokens")
	})

	t.Run("azure key rejected", func(t *testing.T) {
		e.azure.AcceptOnly("someone-else")
		defer e.azure.AcceptOnly()
		r := e.chat(t, keys[0], "my-gpt")
		expectError(t, r, 502, gateway.CodePlatformCredentialRejected, "azure")
	})

	// Error logging is structured and names no key.
	if e.observed.FilterMessage("upstream error").Len() == 0 {
		t.Error("upstream errors were not logged")
	}
	for _, en := range e.observed.FilterMessage("upstream error").AllUntimed() {
		if en.ContextMap()["provider"] == nil || en.ContextMap()["credential_source"] == nil {
			t.Errorf("log entry lacks provider/credential_source: %v", en.ContextMap())
		}
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	e := newEnv(t, options{configure: func(e *env, p map[string]*gateway.ProviderConfig) {
		p[providers.OpenAI].Endpoint.BaseURL = testfix.ClosedURL(t)
	}})
	keys, _ := e.account(t, "acme", 1)
	r := e.chat(t, keys[0], "gpt-4o-mini")
	d := expectError(t, r, 502, gateway.CodeUpstreamUnreachable, "could not reach openai")
	if d.Type != "api_error" {
		t.Errorf("type %q", d.Type)
	}
	if lr := e.record(t, r.id); lr.Status != 502 || lr.ErrorCode != gateway.CodeUpstreamUnreachable {
		t.Errorf("record %+v", lr)
	}
	logged := e.observed.FilterMessage("upstream request failed").AllUntimed()
	if len(logged) != 1 || logged[0].ContextMap()["provider"] != "openai" || logged[0].ContextMap()["request_id"] != r.id {
		t.Errorf("logged %+v", logged)
	}

	// A BYOK base_url that refuses connections.
	e.putCred(t, "acme", providers.OpenAI, canaryOpenAI("by"), store.Extras{BaseURL: testfix.ClosedURL(t)})
	r = e.chat(t, keys[0], "gpt-4o-mini")
	expectError(t, r, 502, gateway.CodeUpstreamUnreachable)
}

func TestUpstreamTimeout(t *testing.T) {
	e := newEnv(t, options{headerTimeout: 200 * time.Millisecond})
	keys, _ := e.account(t, "acme", 1)
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Delay: 10 * time.Second}
	})
	r := e.chat(t, keys[0], "gpt-4o-mini")
	expectError(t, r, 504, gateway.CodeUpstreamTimeout, "openai did not answer in time")
	if lr := e.record(t, r.id); lr.Status != 504 || lr.ErrorCode != gateway.CodeUpstreamTimeout {
		t.Errorf("record %+v", lr)
	}
	// The timeout bounds the wait for headers only, not a slow stream.
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Events: []string{"1", "2", "3", "4", "[DONE]"}, EventDelay: 100 * time.Millisecond}
	})
	r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"gpt-4o-mini","stream":true}`)
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	if got := testfix.SSEData(t, r.body); !slices.Equal(got, []string{"1", "2", "3", "4", "[DONE]"}) {
		t.Errorf("stream %q", got)
	}
}

func TestRequestLog(t *testing.T) {
	e := newEnv(t, options{})
	keys, descs := e.account(t, "acme", 2)
	byok := canaryOpenAI("by")
	cred := e.putCred(t, "acme", providers.OpenAI, byok, store.Extras{})
	cred = e.putCred(t, "acme", providers.OpenAI, byok, store.Extras{}) // version 2
	if cred.Version != 2 {
		t.Fatalf("version %d", cred.Version)
	}

	type want struct {
		key                 int
		model, provider, up string
		source              string
		status              int
		code                string
		stream              bool
		endpoint            string
		byokVersion         uint64
	}
	var replies []*reply
	var wants []want
	add := func(r *reply, w want) { replies, wants = append(replies, r), append(wants, w) }

	add(e.chat(t, keys[0], "openai/gpt-4o-mini"), want{0, "openai/gpt-4o-mini", "openai", "gpt-4o-mini", "byok", 200, "", false, "chat.completions", 2})
	add(e.post(t, "/v1/chat/completions", keys[1], `{"model":"sonar","stream":true}`), want{1, "sonar", "perplexity", "sonar", "platform", 200, "", true, "chat.completions", 0})
	add(e.post(t, "/v1/embeddings", keys[0], `{"model":"text-embedding-3-small","input":"x"}`), want{0, "text-embedding-3-small", "openai", "text-embedding-3-small", "byok", 200, "", false, "embeddings", 2})
	add(e.chat(t, keys[1], "nope-model"), want{1, "nope-model", "", "", "", 404, "model_not_found", false, "chat.completions", 0})
	add(e.chat(t, keys[0], "mistral-large-latest"), want{0, "mistral-large-latest", "mistral", "mistral-large-latest", "", 400, "no_credential", false, "chat.completions", 0})
	add(e.chat(t, keys[0], "my-gpt"), want{0, "my-gpt", "azure", "deploy-1", "platform", 200, "", false, "chat.completions", 0})
	e.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Status: 429, Body: `{"error":{"message":"slow down","code":"rate_limit_exceeded"}}`}
	})
	add(e.chat(t, keys[1], "gpt-4o"), want{1, "gpt-4o", "openai", "gpt-4o", "byok", 429, "rate_limit_exceeded", false, "chat.completions", 2})

	recs := e.records(t, "acme")
	if len(recs) != len(replies) {
		t.Fatalf("%d records for %d requests", len(recs), len(replies))
	}
	byID := map[string]store.LogRecord{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	for i, r := range replies {
		w := wants[i]
		lr, ok := byID[r.id]
		if !ok {
			t.Errorf("no record for request %d (%s)", i, r.id)
			continue
		}
		if r.status != w.status {
			t.Errorf("request %d: status %d, want %d", i, r.status, w.status)
		}
		got := want{-1, lr.Model, lr.Provider, lr.UpstreamModel, lr.CredentialSource, lr.Status, lr.ErrorCode, lr.Stream, lr.Endpoint, lr.CredentialVersion}
		for k, d := range descs {
			if lr.KeyID == d.ID {
				got.key = k
			}
		}
		if got != w {
			t.Errorf("request %d record\n got %+v\nwant %+v", i, got, w)
		}
		if lr.AccountID != "acme" || lr.LatencyMS <= 0 || lr.Time.IsZero() || time.Since(lr.Time) > time.Minute {
			t.Errorf("request %d: account %q latency %v time %v", i, lr.AccountID, lr.LatencyMS, lr.Time)
		}
		if w.source == "byok" && lr.CredentialFingerprint != store.Fingerprint(byok) {
			t.Errorf("request %d: fingerprint %q, want %q", i, lr.CredentialFingerprint, store.Fingerprint(byok))
		}
		if w.source != "byok" && (lr.CredentialFingerprint != "" || lr.CredentialVersion != 0) {
			t.Errorf("request %d: platform credential with fingerprint/version %q/%d", i, lr.CredentialFingerprint, lr.CredentialVersion)
		}
		if w.status == 200 && lr.TTFBMS <= 0 {
			t.Errorf("request %d: no ttfb", i)
		}
	}
	// Newest first.
	for i := 1; i < len(recs); i++ {
		if recs[i-1].ID < recs[i].ID {
			t.Errorf("records not newest first")
		}
	}
	// Filtering by key.
	k1, _, err := e.s.Logs(store.LogFilter{KeyID: descs[1].ID})
	if err != nil || len(k1) != 3 {
		t.Errorf("key filter: %d records, %v", len(k1), err)
	}
	// "Last used" clocks move.
	ks, _ := e.s.APIKeys("acme")
	for _, k := range ks {
		if k.LastUsedAt == nil {
			t.Errorf("key %s has no last_used_at", k.ID)
		}
	}
	creds, _ := e.s.Credentials("acme")
	if creds["openai"].LastUsedAt == nil {
		t.Error("BYOK credential has no last_used_at")
	}
}

// TestSecretCanary drives every path a key could leak through with
// distinctive canary keys; the environment's cleanup then checks that no
// canary reached a response, a log line, a request-log record or the
// database file. This test makes sure those paths are actually exercised.
func TestSecretCanary(t *testing.T) {
	e := newEnv(t, options{headerTimeout: time.Second})
	keys, _ := e.account(t, "acme", 1)
	byok, _ := e.account(t, "byok", 1)
	bkey := canaryOpenAI("by")
	e.putCred(t, "byok", providers.OpenAI, bkey, store.Extras{Organization: "org-x"})
	mkey := canaryPlain("mi")
	e.putCred(t, "byok", providers.Mistral, mkey, store.Extras{})

	// Every provider echoes every key it gets, in every way it can.
	echo := func(rec providertest.Record) providertest.Response {
		k := rec.Credential
		return providertest.Response{Status: 401,
			Header: map[string]string{"X-Echo-Key": k, "Retry-After": k, "X-Request-Id": k},
			Body: fmt.Sprintf(`{"error":{"message":"Incorrect API key provided: %s (%s...%s)","type":"invalid_request_error","param":%q,"code":%q},"detail":%q}`,
				k, k[:14], k[len(k)-4:], k, k, k)}
	}
	for _, f := range e.fakes {
		f.SetResponder(echo)
	}
	for _, k := range []string{keys[0], byok[0]} {
		for _, m := range []string{"gpt-4o-mini", "mistral-small-latest", "sonar", "my-gpt", "meta-llama/Llama-3.3-70B-Instruct-Turbo"} {
			e.chat(t, k, m)
		}
	}
	// The refused BYOK keys are held back now: replacing them (the same
	// keys, new versions) sends them upstream again.
	e.putCred(t, "byok", providers.OpenAI, bkey, store.Extras{Organization: "org-x"})
	e.putCred(t, "byok", providers.Mistral, mkey, store.Extras{})
	// Non-auth statuses that echo the key.
	for _, status := range []int{400, 404, 429, 500, 503} {
		e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
			r := echo(rec)
			r.Status = status
			return r
		})
		e.chat(t, keys[0], "gpt-4o-mini")
		e.chat(t, byok[0], "gpt-4o-mini")
	}
	// Successful answers, streams, timeouts and an unreachable BYOK host.
	for _, f := range e.fakes {
		f.SetResponder(nil)
	}
	e.post(t, "/v1/chat/completions", byok[0], `{"model":"gpt-4o-mini","stream":true}`)
	e.chat(t, byok[0], "mistral-small-latest")
	e.do(t, "GET", "/v1/models", byok[0], nil)
	e.openai.SetResponder(func(providertest.Record) providertest.Response { return providertest.Response{Delay: 5 * time.Second} })
	expectError(t, e.chat(t, byok[0], "gpt-4o-mini"), 504, gateway.CodeUpstreamTimeout)
	e.putCred(t, "byok", providers.OpenAI, bkey, store.Extras{BaseURL: testfix.ClosedURL(t)})
	expectError(t, e.chat(t, byok[0], "gpt-4o-mini"), 502, gateway.CodeUpstreamUnreachable)
	// The keys themselves sent to the gateway as Agent Router keys.
	expectError(t, e.chat(t, bkey, "gpt-4o-mini"), 401, gateway.CodeInvalidAPIKey)
	expectError(t, e.chat(t, mkey, "gpt-4o-mini"), 401, gateway.CodeInvalidAPIKey)

	if e.observed.Len() == 0 || len(e.logBuf.Bytes()) == 0 {
		t.Fatal("nothing was logged: the log canary check would be vacuous")
	}
	if n := len(e.records(t, "")); n < 20 {
		t.Fatalf("only %d request-log records", n)
	}
	// Check now as well as at cleanup, so a failure points at this test.
	e.mu.Lock()
	seen := append([]byte(nil), e.seen.Bytes()...)
	e.mu.Unlock()
	for _, s := range []string{e.platformOpenAI, e.platformAzure, e.platformPerplexity, e.platformTogether, bkey, mkey} {
		if w := leak(seen, s); w != "" {
			// Show where, with the canary itself masked.
			i := max(0, strings.Index(string(seen), strings.TrimSuffix(w, "…")))
			where := strings.ReplaceAll(string(seen[max(0, i-300):min(len(seen), i+100)]), s, providers.Mask(s))
			t.Errorf("%s leaked into a response (%q), in:\n%s", providers.Mask(s), w, where)
		}
		if w := leak(e.logBuf.Bytes(), s); w != "" {
			t.Errorf("%s leaked into the log (%q)", providers.Mask(s), w)
		}
	}
}

func TestUnownedPaths(t *testing.T) {
	e := newEnv(t, options{})
	for _, p := range []string{"/", "/v1/chat/completions/", "/v1/completions", "/v1/models/gpt-4o", "/v2/chat/completions"} {
		req := httptestRequest(p)
		if e.g.Owns(req) {
			t.Errorf("gateway owns %s", p)
		}
	}
	for _, p := range []string{"/v1/chat/completions", "/v1/embeddings", "/v1/models"} {
		if !e.g.Owns(httptestRequest(p + "?x=1")) {
			t.Errorf("gateway does not own %s", p)
		}
	}
}

func httptestRequest(target string) *http.Request {
	r, _ := http.NewRequest("GET", "http://example.com"+target, nil)
	return r
}

func TestNew(t *testing.T) {
	s := storetest.Open(t)
	if _, err := gateway.New(gateway.Config{}); err == nil {
		t.Error("New without a store")
	}
	if _, err := gateway.New(gateway.Config{Store: s, Providers: map[string]*gateway.ProviderConfig{"openia": {}}}); err == nil || !strings.Contains(err.Error(), "openia") {
		t.Errorf("unknown provider: %v", err)
	}
	_, err := gateway.New(gateway.Config{Store: s, Providers: map[string]*gateway.ProviderConfig{
		"openai": {Models: map[string]string{"fast": "gpt-4o-mini"}},
		"azure":  {Models: map[string]string{"fast": "dep"}},
	}})
	if err == nil || !strings.Contains(err.Error(), `"fast"`) {
		t.Errorf("duplicate model: %v", err)
	}
	g, err := gateway.New(gateway.Config{Store: s, Providers: map[string]*gateway.ProviderConfig{"openai": {APIKey: "sk-x"}, "mistral": nil}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if !g.PlatformKeyConfigured("openai") || g.PlatformKeyConfigured("mistral") || g.PlatformKeyConfigured("gemini") || g.PlatformKeyConfigured("nope") {
		t.Error("PlatformKeyConfigured")
	}
}

// The model name is client data that every request-log record keeps: a
// huge one must be refused, not forwarded, echoed or stored in full.
func TestOversizedModelName(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	for _, model := range []string{"no-such-" + strings.Repeat("m", 1<<20), "gpt-" + strings.Repeat("é", 300)} {
		r := e.chat(t, keys[0], model)
		expectError(t, r, 404, gateway.CodeModelNotFound, "too long")
		if len(r.body) > 1024 {
			t.Errorf("error body is %d bytes", len(r.body))
		}
		lr := e.record(t, r.id)
		if len(lr.Model) > 256 || !strings.HasPrefix(model, lr.Model) || lr.Model == "" {
			t.Errorf("record keeps a %d-byte model", len(lr.Model))
		}
		if lr.Status != 404 || lr.ErrorCode != gateway.CodeModelNotFound || lr.Provider != "" {
			t.Errorf("record %d %q %q", lr.Status, lr.ErrorCode, lr.Provider)
		}
	}
	// 256 bytes is still a model name.
	long := "gpt-" + strings.Repeat("x", 252)
	expectOK(t, e.chat(t, keys[0], long), providers.OpenAI, gateway.SourcePlatform)
	if rec, _ := e.openai.Last(); rec.Model != long || len(e.openai.Records()) != 1 {
		t.Errorf("fake got %d requests", len(e.openai.Records()))
	}
}

// A Responses stream the provider ends with its own response.failed event
// reaches the client as sent, and the request log says it failed.
// TestAnswerContentLength: a whole answer reaches the client with its exact
// Content-Length, never chunked, whether small (the server sets the length)
// or large (relay sets it).
func TestAnswerContentLength(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	sizes := []int{0, 100, 5000, 200 << 10}
	for n := 1700; n < 1950; n++ { // answers of about 1.9 to 2.2 KiB: across autoContentLength
		sizes = append(sizes, n)
	}
	for _, size := range sizes {
		content := strings.Repeat("x", size)
		e.openai.handle(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, content)
		})
		resp, err := e.srv.Client().Do(func() *http.Request {
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions", strings.NewReader(chatBody("gpt-4o-mini")))
			req.Header.Set("Authorization", "Bearer "+keys[0])
			return req
		}())
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("size %d: %d %v", size, resp.StatusCode, err)
		}
		if resp.ContentLength != int64(len(b)) || len(resp.TransferEncoding) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
			t.Errorf("size %d: Content-Length %d (header %q), transfer encoding %v, body %d bytes", size, resp.ContentLength, resp.Header.Get("Content-Length"), resp.TransferEncoding, len(b))
		}
		if got := gjson.GetBytes(b, "choices.0.message.content").String(); got != content {
			t.Errorf("size %d: content of %d bytes came back", size, len(got))
		}
	}
}

func TestResponsesPassthroughFailureRecorded(t *testing.T) {
	e := newEnv(t, options{})
	keys, _ := e.account(t, "acme", 1)
	for _, tc := range []struct{ code, want string }{
		{"server_error", "server_error"},
		{"", "upstream_stream_error"},
		{"not a code {", "upstream_stream_error"},
	} {
		failed := fmt.Sprintf(`{"type":"response.failed","sequence_number":1,"response":{"id":"resp_f","status":"failed","error":{"code":%q,"message":"boom"}}}`, tc.code)
		e.openai.handle(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_f\"}}\n\n")
			fmt.Fprintf(w, "event: response.failed\ndata: %s\n\n", failed)
		})
		r := e.post(t, "/v1/responses", keys[0], `{"model":"gpt-4o-mini","input":"hi","stream":true}`)
		if r.status != 200 || !bytes.Contains(r.body, []byte("data: "+failed+"\n\n")) || bytes.Count(r.body, []byte("response.failed")) != 2 {
			t.Fatalf("code %q: %s", tc.code, r)
		}
		if rec := e.record(t, r.id); rec.ErrorCode != tc.want || rec.API != "responses" {
			t.Errorf("code %q: record error_code %q api %q, want %q", tc.code, rec.ErrorCode, rec.API, tc.want)
		}
	}
}
