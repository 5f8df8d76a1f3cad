package gateway_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// The playground path: ServeAccount serves an account without an API key,
// through the same pipeline as API traffic, and says so in the log.
func TestServeAccount(t *testing.T) {
	e := newEnv(t, options{})
	keys, descs := e.account(t, "acme", 1)
	e.account(t, "other", 0)
	_, otherKeys := e.account(t, "third", 1)
	byok := canaryOpenAI("pg")
	e.putCred(t, "acme", providers.OpenAI, byok, store.Extras{})

	// Not streamed: the BYOK key reaches the provider, the answer is
	// OpenAI's, with the gateway's headers.
	r := e.playground(t, "acme", "", "", chatBody("gpt-4o-mini"))
	expectOK(t, r, providers.OpenAI, gateway.SourceBYOK)
	if last, _ := e.openai.Last(); last.Credential != byok {
		t.Errorf("openai fake got %s, want the account's BYOK key", providers.Mask(last.Credential))
	}
	if got := gjson.GetBytes(r.body, "choices.0.message.content").String(); got != "Hello from the fake" {
		t.Errorf("answer %q", got)
	}
	rec := e.record(t, r.id)
	if rec.Source != "console" || rec.AccountID != "acme" || rec.KeyID != "" || rec.CredentialSource != gateway.SourceBYOK ||
		rec.Status != 200 || rec.Endpoint != "chat.completions" || rec.TotalTokens != 16 {
		t.Errorf("record %+v", rec)
	}

	// Streamed, attributed to one of the account's keys: platform key for
	// a provider without BYOK.
	r = e.playground(t, "acme", descs[0].ID, "", `{"model":"sonar","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	expectOK(t, r, providers.Perplexity, gateway.SourcePlatform)
	if !strings.Contains(string(r.body), "data: [DONE]") || !strings.Contains(r.header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("not a stream: %s", r.body)
	}
	if rec := e.record(t, r.id); rec.KeyID != descs[0].ID || rec.Source != "console" || !rec.Stream || rec.Status != 200 {
		t.Errorf("streamed record %+v", rec)
	}

	// API traffic has no source.
	r = e.chat(t, keys[0], "gpt-4o-mini")
	expectOK(t, r, providers.OpenAI, gateway.SourceBYOK)
	if rec := e.record(t, r.id); rec.Source != "" {
		t.Errorf("API record source %q", rec.Source)
	}

	// The request-log filter tells them apart.
	for src, want := range map[string]int{"console": 2, "api": 1, "": 3} {
		recs, _, err := e.s.Logs(store.LogFilter{AccountID: "acme", Source: src})
		if err != nil || len(recs) != want {
			t.Errorf("source %q: %d records (%v), want %d", src, len(recs), err, want)
		}
	}

	// Pipeline errors are the API's, and logged.
	r = e.playground(t, "acme", "", "", `{"model":"nonesuch-model","messages":[]}`)
	expectError(t, r, 404, gateway.CodeModelNotFound)
	if rec := e.record(t, r.id); rec.Source != "console" || rec.Status != 404 {
		t.Errorf("error record %+v", rec)
	}
	r = e.playground(t, "other", "", "", chatBody("mistral-small-latest"))
	expectError(t, r, 400, gateway.CodeNoCredential)

	// Refusals before the pipeline: unknown account, another account's
	// key, an unknown profile. Nothing reaches a provider, nothing is logged.
	e.openai.Reset()
	e.perplexity.Reset()
	n := len(e.records(t, ""))
	expectError(t, e.playground(t, "nobody", "", "", chatBody("gpt-4o-mini")), 404, gateway.CodeAccountNotFound)
	expectError(t, e.playground(t, "", "", "", chatBody("gpt-4o-mini")), 404, gateway.CodeAccountNotFound)
	expectError(t, e.playground(t, "acme", otherKeys[0].ID, "", chatBody("gpt-4o-mini")), 404, gateway.CodeAPIKeyNotFound)
	expectError(t, e.playground(t, "acme", "key_nonesuch", "", chatBody("gpt-4o-mini")), 404, gateway.CodeAPIKeyNotFound)
	expectError(t, e.playground(t, "acme", "", "nope", chatBody("gpt-4o-mini")), 400, gateway.CodeProfileNotFound, `"nope"`)
	e.expectNoUpstream(t)
	if got := len(e.records(t, "")); got != n {
		t.Errorf("refusals were logged: %d records, want %d", got, n)
	}
}

func profileRouting() (routing.Config, map[string]routing.Config) {
	site := routing.Config{
		Aliases: map[string]string{"fast": "gpt-4o-mini", "site-only": "sonar"},
		Routes: map[string]*routing.Route{
			"smart": {Targets: []routing.Target{{Model: "gpt-4o"}}},
		},
	}
	profiles := map[string]routing.Config{
		"team": {
			// Shadows the site's alias of the same name.
			Aliases: map[string]string{"fast": "anthropic/claude-haiku-4-5", "team-only": "smart"},
			// Shadows the site's route, and its targets may name the
			// site's aliases.
			Routes: map[string]*routing.Route{"smart": {Targets: []routing.Target{{Model: "site-only", Credential: routing.PinPlatform}}}},
		},
		"empty": {},
	}
	return site, profiles
}

// A key bound to a profile resolves through the profile, then the site's
// aliases and routes, then plain models; other keys never see the profile.
func TestProfiles(t *testing.T) {
	site, profiles := profileRouting()
	e := newEnv(t, options{routing: site, profiles: profiles})
	if got := e.g.Profiles(); !slices.Equal(got, []string{"empty", "team"}) {
		t.Errorf("Profiles() = %v", got)
	}
	if _, err := e.s.CreateAccount("acme", ""); err != nil {
		t.Fatal(err)
	}
	plainKey, plain, err := e.s.CreateAPIKey("acme", "plain")
	if err != nil {
		t.Fatal(err)
	}
	teamKey, team, err := e.s.CreateAPIKeyWithProfile("acme", "team", "team")
	if err != nil {
		t.Fatal(err)
	}
	e.addSecret("", plainKey)
	e.addSecret("", teamKey)
	if team.Profile != "team" || plain.Profile != "" {
		t.Fatalf("profiles %q %q", team.Profile, plain.Profile)
	}

	cases := []struct {
		key, model, provider, upstream, route, profile string
	}{
		{teamKey, "fast", providers.Anthropic, "claude-haiku-4-5", "", "team"},
		{plainKey, "fast", providers.OpenAI, "gpt-4o-mini", "", ""},
		{teamKey, "smart", providers.Perplexity, "sonar", "smart", "team"},
		{plainKey, "smart", providers.OpenAI, "gpt-4o", "smart", ""},
		{teamKey, "team-only", providers.Perplexity, "sonar", "smart", "team"},
		{teamKey, "site-only", providers.Perplexity, "sonar", "", "team"},
		{teamKey, "gpt-4o", providers.OpenAI, "gpt-4o", "", "team"},
	}
	for _, c := range cases {
		r := e.chat(t, c.key, c.model)
		if r.status != 200 || r.header.Get(gateway.HeaderProvider) != c.provider {
			t.Errorf("%s with %s key: %v via %s, want %s", c.model, c.profile, r, r.header.Get(gateway.HeaderProvider), c.provider)
			continue
		}
		rec := e.record(t, r.id)
		if rec.UpstreamModel != c.upstream || rec.Route != c.route || rec.Profile != c.profile {
			t.Errorf("%s with %q key: record upstream %q route %q profile %q", c.model, c.profile, rec.UpstreamModel, rec.Route, rec.Profile)
		}
	}
	expectError(t, e.chat(t, plainKey, "team-only"), 404, gateway.CodeModelNotFound)

	// /v1/models and ModelsFor list the profile's names for its keys only.
	ids := func(ms []gateway.ModelInfo) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	teamModels, siteModels := ids(e.g.ModelsFor("acme", "team")), ids(e.g.ModelsFor("acme", ""))
	if !slices.Contains(teamModels, "team-only") || !slices.Contains(teamModels, "site-only") || slices.Contains(siteModels, "team-only") {
		t.Errorf("team %v\nsite %v", teamModels, siteModels)
	}
	if !slices.Equal(ids(e.g.ModelsFor("acme", "nonesuch")), siteModels) {
		t.Errorf("an unknown profile should list the site's models")
	}
	for _, m := range e.g.ModelsFor("acme", "team") {
		switch {
		case m.ID == "gpt-4o-mini" && (m.Provider != providers.OpenAI || m.OwnedBy != providers.OpenAI),
			m.ID == "team-only" && (m.Provider != "" || m.OwnedBy != "agent_router"),
			m.ID == "mistral-small-latest": // no key for mistral
			t.Errorf("model %+v", m)
		}
	}
	r := e.do(t, http.MethodGet, "/v1/models", teamKey, nil)
	var listed []string
	for _, m := range gjson.GetBytes(r.body, "data.#.id").Array() {
		listed = append(listed, m.String())
	}
	if !slices.Equal(listed, teamModels) {
		t.Errorf("/v1/models %v\nModelsFor %v", listed, teamModels)
	}
	r = e.do(t, http.MethodGet, "/v1/models", plainKey, nil)
	if strings.Contains(string(r.body), "team-only") {
		t.Errorf("an unbound key lists the profile's names: %s", r.body)
	}

	// Rebinding takes effect on the next request.
	if _, err := e.s.SetAPIKeyProfile("acme", plain.ID, "team"); err != nil {
		t.Fatal(err)
	}
	expectOK(t, e.chat(t, plainKey, "fast"), providers.Anthropic, gateway.SourcePlatform)
	if _, err := e.s.SetAPIKeyProfile("acme", plain.ID, ""); err != nil {
		t.Fatal(err)
	}
	expectOK(t, e.chat(t, plainKey, "fast"), providers.OpenAI, gateway.SourcePlatform)

	// The playground: the key's profile applies, an explicit one wins.
	expectOK(t, e.playground(t, "acme", team.ID, "", chatBody("fast")), providers.Anthropic, gateway.SourcePlatform)
	expectOK(t, e.playground(t, "acme", team.ID, "empty", chatBody("fast")), providers.OpenAI, gateway.SourcePlatform)
	expectOK(t, e.playground(t, "acme", plain.ID, "team", chatBody("fast")), providers.Anthropic, gateway.SourcePlatform)
}

// A key bound to a profile the running config lacks (removed by a reload)
// keeps working with the site's routing, and the log says so once.
func TestProfileMissing(t *testing.T) {
	site, _ := profileRouting()
	e := newEnv(t, options{routing: site})
	if _, err := e.s.CreateAccount("acme", ""); err != nil {
		t.Fatal(err)
	}
	key, desc, err := e.s.CreateAPIKeyWithProfile("acme", "stale", "team")
	if err != nil {
		t.Fatal(err)
	}
	e.addSecret("", key)
	for i := 0; i < 3; i++ {
		r := e.chat(t, key, "fast")
		expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
		if rec := e.record(t, r.id); rec.Profile != "" || rec.UpstreamModel != "gpt-4o-mini" {
			t.Errorf("record profile %q upstream %q", rec.Profile, rec.UpstreamModel)
		}
	}
	logged := e.observed.FilterMessage("api key is bound to a routing profile the running config does not have; serving it with the site's aliases and routes").AllUntimed()
	if len(logged) != 1 {
		t.Fatalf("%d log lines about the missing profile, want 1", len(logged))
	}
	if f := logged[0].ContextMap(); f["key_id"] != desc.ID || f["profile"] != "team" {
		t.Errorf("log fields %v", f)
	}
}

func TestProfileConfigErrors(t *testing.T) {
	s := storetest.Open(t)
	base := func() gateway.Config {
		return gateway.Config{Store: s, Providers: map[string]*gateway.ProviderConfig{
			providers.OpenAI: {Models: map[string]string{"house": "gpt-4o"}},
		}}
	}
	for _, c := range []struct {
		name     string
		profiles map[string]routing.Config
		want     string
	}{
		{"bad name", map[string]routing.Config{"no spaces": {}}, "routing profile"},
		{"declared model", map[string]routing.Config{"p": {Aliases: map[string]string{"house": "gpt-4o"}}}, `alias "house" is also a declared model`},
		{"unknown model", map[string]routing.Config{"p": {Aliases: map[string]string{"x": "nonesuch-model"}}}, "profile p"},
		{"cycle", map[string]routing.Config{"p": {Aliases: map[string]string{"a": "b", "b": "a"}}}, "alias cycle"},
	} {
		cfg := base()
		cfg.Profiles = c.profiles
		if _, err := gateway.New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
