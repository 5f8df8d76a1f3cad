package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// richUsage has every token class the book prices: uncached input, cache
// reads, 5-minute and 1-hour cache writes, output with reasoning inside.
// Providers without cache writes report the writes as plain input (the
// fakes' Usage says how each renders it).
var richUsage = providertest.Usage{Input: 1000, CacheRead: 200, CacheWrite5m: 100, CacheWrite1h: 50, Output: 300, Reasoning: 120}

// costEnv is an environment with all eight providers (the two the other
// tests do not reach, Gemini and Cohere, added with platform keys) and a
// price book whose only change to the default is an Azure deployment's
// price (the book has no Azure rows: deployments are named by each
// resource).
type costEnv struct {
	*env
	gemini, cohere *fake
	reg            *pricing.Registry
	byMistral      string // the account's own Mistral key (Mistral has no platform key)
}

func newCostEnv(t *testing.T, o options) *costEnv {
	t.Helper()
	ce := &costEnv{reg: o.prices}
	if ce.reg == nil {
		ce.reg = pricing.NewRegistry()
		book, err := pricing.Apply(pricing.Default(), []pricing.Override{{Provider: providers.Azure, Model: "deploy-1",
			Standard: pricing.PriceSet{Input: "2.50", CacheRead: "1.25", Output: "10"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := ce.reg.Publish(book); err != nil {
			t.Fatal(err)
		}
		o.prices = ce.reg
	}
	configure := o.configure
	o.configure = func(e *env, pcs map[string]*gateway.ProviderConfig) {
		ce.gemini, ce.cohere = newFake(providers.Gemini, "gemini"), newFake(providers.Cohere, "cohere")
		e.fakes = append(e.fakes, ce.gemini, ce.cohere)
		gk, ck := "AIzaSyCANARYgm"+randAlnum(25), "CANARYco"+randAlnum(32)
		e.addSecret(providers.Gemini, gk)
		e.addSecret(providers.Cohere, ck)
		pcs[providers.Gemini] = &gateway.ProviderConfig{APIKey: gk, Endpoint: providers.Endpoint{BaseURL: ce.gemini.BaseURL()}}
		pcs[providers.Cohere] = &gateway.ProviderConfig{APIKey: ck, Endpoint: providers.Endpoint{BaseURL: ce.cohere.BaseURL()}}
		if configure != nil {
			configure(e, pcs)
		}
	}
	ce.env = newEnv(t, o)
	return ce
}

// fakeFor returns the fake serving provider.
func (ce *costEnv) fakeFor(provider string) *fake {
	for _, f := range ce.fakes {
		if f.name == provider {
			return f
		}
	}
	panic("no fake for " + provider)
}

// goldenCosts are richUsage priced by hand with prices.json (USD per 1M
// tokens), one model per provider:
var goldenCosts = []struct {
	provider, model, want string
	tokens                pricing.Usage
	partial               bool
}{
	// 1150 input × 2.50 + 200 cached × 1.25 + 180 output × 10 + 120
	// reasoning × 10 (billed as output) = 0.002875 + 0.00025 + 0.0018 + 0.0012.
	{providers.OpenAI, "gpt-4o", "0.006125", pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120, PromptTokens: 1350}, false},
	// 1000 × 3 + 200 × 0.30 + 100 × 3.75 (5 m write, 1.25×) + 50 × 6 (1 h
	// write, 2×) + 300 × 15: each write charged once, at its multiplier.
	{providers.Anthropic, "claude-sonnet-4-5", "0.008235", pricing.Usage{Input: 1000, CacheRead: 200, CacheWrite5m: 100, CacheWrite1h: 50, Output: 300}, false},
	// 1150 × 0.30 + 200 × 0.03 + (180 candidates + 120 thoughts) × 2.50.
	{providers.Gemini, "gemini-2.5-flash", "0.001101", pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120, PromptTokens: 1350}, false},
	// The override's deploy-1 prices are gpt-4o's.
	{providers.Azure, "my-gpt", "0.006125", pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120, PromptTokens: 1350}, false},
	// 1150 × 0.50 + 200 × 0.05 + 300 × 1.50.
	{providers.Mistral, "mistral-large-latest", "0.001035", pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120, PromptTokens: 1350}, false},
	// No cache price: cached reads at the input price, 1350 × 0.88 + 300 × 0.88.
	{providers.Together, "meta-llama/Llama-3.3-70B-Instruct-Turbo", "0.001452", pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120, PromptTokens: 1350}, false},
	// 1350 × 3 + 300 × 15; the per-request search fee is not a token
	// price: partial.
	{providers.Perplexity, "sonar-pro", "0.00855", pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120, PromptTokens: 1350}, true},
	// Billed units: 1150 × 2.50 + 200 cached × 2.50 (no cache price) + 300 × 10.
	{providers.Cohere, "command-a-03-2025", "0.006375", pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, PromptTokens: 1350}, false},
}

// TestGoldenCostPerProvider sends the same usage through the real gateway
// to each of the eight providers' fakes, whole and streamed, and checks the
// cost on the request log against the hand-priced golden value, the
// X-Agent-Router-Cost header on whole answers, and that streamed and
// non-streamed cost the same.
func TestGoldenCostPerProvider(t *testing.T) {
	ce := newCostEnv(t, options{})
	keys, _ := ce.account(t, "acme", 1)
	ce.byMistral = randAlnum(32)
	ce.putCred(t, "acme", providers.Mistral, ce.byMistral, store.Extras{})
	version := ce.reg.Current().ID
	for _, g := range goldenCosts {
		t.Run(g.provider, func(t *testing.T) {
			ce.fakeFor(g.provider).SetUsage(&richUsage)
			source := gateway.SourcePlatform
			if g.provider == providers.Mistral {
				source = gateway.SourceBYOK
			}
			whole := ce.chat(t, keys[0], g.model)
			expectOK(t, whole, g.provider, source)
			if got := whole.header.Get(gateway.HeaderCost); got != g.want {
				t.Errorf("%s = %q, want %q", gateway.HeaderCost, got, g.want)
			}
			streamed := ce.post(t, "/v1/chat/completions", keys[0],
				fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"hi"}]}`, g.model))
			expectOK(t, streamed, g.provider, source)
			if got := streamed.header.Get(gateway.HeaderCost); got != "" {
				t.Errorf("a stream carries %s %q: its cost is known only after the header", gateway.HeaderCost, got)
			}
			for _, r := range []*reply{whole, streamed} {
				rec := ce.record(t, r.id)
				c := rec.Cost
				if c.Unpriced || c.USD() != g.want || c.NanoUSD.String() != g.want {
					t.Errorf("stream=%v: cost %+v, want %s USD", rec.Stream, c, g.want)
				}
				if c.Version != version || c.PaidBy != source || c.Partial != g.partial {
					t.Errorf("stream=%v: version %q paid_by %q partial %v, want %q %q %v", rec.Stream, c.Version, c.PaidBy, c.Partial, version, source, g.partial)
				}
				if c.Tokens != g.tokens {
					t.Errorf("stream=%v: tokens %+v, want %+v", rec.Stream, c.Tokens, g.tokens)
				}
				if source == gateway.SourceBYOK {
					// No platform contract: the shadow is the list price.
					if s := rec.ShadowCost; s.USD() != g.want {
						t.Errorf("shadow cost %+v, want %s USD", s, g.want)
					}
				} else if !rec.ShadowCost.IsZero() {
					t.Errorf("a platform request carries a shadow cost: %+v", rec.ShadowCost)
				}
			}
		})
	}
}

// TestCostThroughTheDoors: the Messages and Responses doors price the
// provider's own usage block, passed through or translated, whole and
// streamed, the same as chat completions.
func TestCostThroughTheDoors(t *testing.T) {
	ce := newCostEnv(t, options{})
	keys, _ := ce.account(t, "acme", 1)
	for _, f := range ce.fakes {
		f.SetUsage(&richUsage)
	}
	for _, g := range goldenCosts[:2] { // OpenAI and Anthropic: each door is native on one, translated on the other
		for _, door := range []struct{ path, body string }{
			{"/v1/messages", `{"model":%q,"max_tokens":100,%s"messages":[{"role":"user","content":"hi"}]}`},
			{"/v1/responses", `{"model":%q,%s"input":"hi"}`},
		} {
			for _, stream := range []bool{false, true} {
				flag := ""
				if stream {
					flag = `"stream":true,`
				}
				r := ce.post(t, door.path, keys[0], fmt.Sprintf(door.body, g.model, flag))
				if r.status != http.StatusOK {
					t.Fatalf("%s %s stream=%v: %v", door.path, g.model, stream, r)
				}
				rec := ce.record(t, r.id)
				if rec.Cost.USD() != g.want || rec.Cost.Tokens != g.tokens {
					t.Errorf("%s %s stream=%v: cost %s tokens %+v, want %s %+v", door.path, g.model, stream, rec.Cost.USD(), rec.Cost.Tokens, g.want, g.tokens)
				}
				if h := r.header.Get(gateway.HeaderCost); stream && h != "" || !stream && h != g.want {
					t.Errorf("%s %s stream=%v: %s %q", door.path, g.model, stream, gateway.HeaderCost, h)
				}
			}
		}
	}
}

// TestUnpricedIsNeverZero: a model the book has no price for is unpriced
// with the reason, with no total and no header (bifrost#6036: a missing
// price silently cost $0); an answer without usage is unpriced too.
func TestUnpricedIsNeverZero(t *testing.T) {
	ce := newCostEnv(t, options{})
	keys, _ := ce.account(t, "acme", 1)
	r := ce.chat(t, keys[0], "azure/other-deployment")
	expectOK(t, r, providers.Azure, gateway.SourcePlatform)
	if h := r.header.Get(gateway.HeaderCost); h != "" {
		t.Errorf("unpriced answer carries %s %q", gateway.HeaderCost, h)
	}
	c := ce.record(t, r.id).Cost
	if !c.Unpriced || c.Reason != pricing.NoModel || c.NanoUSD != 0 || c.USD() != "" || c.Tokens.Output != 5 {
		t.Errorf("cost %+v, want unpriced no_price_for_model with its tokens", c)
	}

	ce.openai.SetResponder(func(providertest.Record) providertest.Response {
		return providertest.Response{Body: `{"id":"x","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi"}}]}`}
	})
	r = ce.chat(t, keys[0], "gpt-4o")
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	if c := ce.record(t, r.id).Cost; !c.Unpriced || c.Reason != pricing.NoUsage || c.Version == "" {
		t.Errorf("answer without usage: cost %+v, want unpriced no_usage under a version", c)
	}
}

// TestFreeEndpointsHaveNoCost: listing models and counting tokens are not
// billed; their records carry no cost object at all.
func TestFreeEndpointsHaveNoCost(t *testing.T) {
	ce := newCostEnv(t, options{})
	keys, _ := ce.account(t, "acme", 1)
	for _, r := range []*reply{
		ce.do(t, http.MethodGet, "/v1/models", keys[0], nil),
		ce.post(t, "/v1/messages/count_tokens", keys[0], `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}`),
	} {
		if r.status != http.StatusOK {
			t.Fatalf("%v", r)
		}
		if rec := ce.record(t, r.id); !rec.Cost.IsZero() || r.header.Get(gateway.HeaderCost) != "" {
			t.Errorf("%s: cost %+v, header %q", rec.Endpoint, rec.Cost, r.header.Get(gateway.HeaderCost))
		}
	}
}

// TestStreamCutIsCosted: a stream the provider cut after reporting its
// input usage (Anthropic's message_start) is priced with what it reported:
// the tokens were consumed even though the answer failed.
func TestStreamCutIsCosted(t *testing.T) {
	ce := newCostEnv(t, options{})
	keys, _ := ce.account(t, "acme", 1)
	ce.anthropic.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		ev := providertest.AnthropicStream("claude-sonnet-4-5", []string{"Hel", "lo"}, providertest.AnthropicUsage{Input: 1000, CacheRead: 200, Output: 300})
		for _, e := range ev[:4] { // message_start, ping, block start, one delta: then the connection breaks
			fmt.Fprint(w, e)
		}
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	r := ce.post(t, "/v1/chat/completions", keys[0], `{"model":"claude-sonnet-4-5","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "upstream_stream_error") {
		t.Fatalf("want a 200 stream ending in an error event, got %v", r)
	}
	rec := ce.record(t, r.id)
	if rec.ErrorCode != "upstream_stream_error" {
		t.Fatalf("error code %q", rec.ErrorCode)
	}
	// message_start's usage: 1000 input × 3 + 200 cached × 0.30 + 1 output
	// token (what message_start reports) × 15.
	if c := rec.Cost; c.Unpriced || c.USD() != "0.003075" || c.Tokens.Input != 1000 || c.Tokens.CacheRead != 200 {
		t.Errorf("cut stream cost %+v, want 0.003075 for the usage it reported", c)
	}
}

// TestPriceChangeMidStream: a stream that started before the price book
// changed is priced with the version it started under; the next request
// with the new one.
func TestPriceChangeMidStream(t *testing.T) {
	ce := newCostEnv(t, options{})
	keys, _ := ce.account(t, "acme", 1)
	old := ce.reg.Current()
	gate := make(chan struct{})
	ce.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		events := providertest.StreamEvents("gpt-4o", []string{"a", "b"})
		events = append(events[:len(events)-1], providertest.UsageChunkOf("gpt-4o", richUsage), "[DONE]")
		return providertest.Response{Events: events, Gate: gate}
	})
	done := make(chan *reply)
	go func() {
		r, err := ce.try(t.Context(), http.MethodPost, "/v1/chat/completions", keys[0],
			strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	// The stream has begun (the fake got it and holds after its first
	// event): change gpt-4o's price.
	deadline := time.Now().Add(bounded)
	for len(ce.openai.Records()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream never reached the provider")
		}
		time.Sleep(time.Millisecond)
	}
	book, err := pricing.Apply(pricing.Default(), []pricing.Override{{Provider: providers.OpenAI, Model: "gpt-4o", Standard: pricing.PriceSet{Input: "5", Output: "20"}}})
	if err != nil {
		t.Fatal(err)
	}
	next, changed, err := ce.reg.Publish(book)
	if err != nil || !changed {
		t.Fatalf("publish: %v %v", changed, err)
	}
	close(gate)
	r := <-done
	if r == nil {
		t.FailNow()
	}
	if c := ce.record(t, r.id).Cost; c.Version != old.ID || c.USD() != "0.006125" {
		t.Errorf("stream begun under %s: cost %s under %s, want 0.006125 under the version it started with", old.ID, c.USD(), c.Version)
	}
	ce.openai.SetResponder(nil)
	ce.openai.SetUsage(&richUsage)
	r = ce.chat(t, keys[0], "gpt-4o")
	// 1150 × 5 + 200 × 1.25 (the override leaves the cached price) + 300 × 20.
	if c := ce.record(t, r.id).Cost; c.Version != next.ID || c.USD() != "0.012" {
		t.Errorf("after the change: cost %s under %s, want 0.012 under %s", c.USD(), c.Version, next.ID)
	}
}

// TestPlatformContract: the platform's contract terms price the platform
// key's requests and a BYOK request's shadow cost, from their
// effective_from on; the BYOK request itself stays at list price.
func TestPlatformContract(t *testing.T) {
	from := time.Now().Add(-time.Hour)
	contract, err := pricing.NewContract([]pricing.ContractTerm{{EffectiveFrom: from, DiscountPercent: "20"}})
	if err != nil {
		t.Fatal(err)
	}
	ce := newCostEnv(t, options{configure: func(e *env, pcs map[string]*gateway.ProviderConfig) {
		pcs[providers.OpenAI].Contract = contract
	}})
	keys, _ := ce.account(t, "acme", 1)
	_, _ = ce.account(t, "byok", 0)
	bk, _, err := ce.s.CreateAPIKey("byok", "k")
	if err != nil {
		t.Fatal(err)
	}
	ce.addSecret("", bk)
	ce.putCred(t, "byok", providers.OpenAI, canaryOpenAI("by"), store.Extras{})
	ce.openai.SetUsage(&richUsage)

	r := ce.chat(t, keys[0], "gpt-4o")
	expectOK(t, r, providers.OpenAI, gateway.SourcePlatform)
	// 0.006125 list, 20 % off.
	c := ce.record(t, r.id).Cost
	if c.USD() != "0.0049" || c.ListNanoUSD.String() != "0.006125" || !c.ContractFrom.Equal(from.UTC()) && !c.ContractFrom.Equal(from) || r.header.Get(gateway.HeaderCost) != "0.0049" {
		t.Errorf("platform cost %s (list %s, contract from %v), header %q; want 0.0049 after 20 %% off 0.006125", c.USD(), c.ListNanoUSD, c.ContractFrom, r.header.Get(gateway.HeaderCost))
	}
	r = ce.chat(t, bk, "gpt-4o")
	expectOK(t, r, providers.OpenAI, gateway.SourceBYOK)
	rec := ce.record(t, r.id)
	if rec.Cost.USD() != "0.006125" || rec.Cost.PaidBy != "byok" || !rec.Cost.ContractFrom.IsZero() {
		t.Errorf("BYOK cost %+v, want the list price 0.006125 paid by byok", rec.Cost)
	}
	if rec.ShadowCost.USD() != "0.0049" {
		t.Errorf("BYOK shadow cost %s, want 0.0049: what the platform would have paid", rec.ShadowCost.USD())
	}
}

// TestBYOKContractTerms: the BYOK credential's contract prices the account's
// requests from its effective_from on: a term that takes effect later does
// not apply yet, and a request made before a term was saved stays at list.
func TestBYOKContractTerms(t *testing.T) {
	ce := newCostEnv(t, options{})
	keys, _ := ce.account(t, "acme", 1)
	ce.putCred(t, "acme", providers.OpenAI, canaryOpenAI("bk"), store.Extras{})
	ce.openai.SetUsage(&richUsage)
	before := ce.chat(t, keys[0], "gpt-4o")

	from := time.Now()
	if _, err := ce.s.AddContractTerm("acme", providers.OpenAI, pricing.ContractTerm{EffectiveFrom: from, DiscountPercent: "10"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ce.s.AddContractTerm("acme", providers.OpenAI, pricing.ContractTerm{EffectiveFrom: from.Add(time.Hour), DiscountPercent: "50"}); err != nil {
		t.Fatal(err)
	}
	after := ce.chat(t, keys[0], "gpt-4o")
	expectOK(t, after, providers.OpenAI, gateway.SourceBYOK)

	if c := ce.record(t, before.id).Cost; c.USD() != "0.006125" || !c.ContractFrom.IsZero() {
		t.Errorf("the request before the term: %s (contract from %v), want the list price 0.006125", c.USD(), c.ContractFrom)
	}
	rec := ce.record(t, after.id)
	// 0.006125 less 10 %; the 50 % term is an hour away.
	if c := rec.Cost; c.USD() != "0.0055125" || c.DiscountPPM != 100000 || !c.ContractFrom.Equal(from.UTC()) || after.header.Get(gateway.HeaderCost) != "0.0055125" {
		t.Errorf("the request after the term: %s (discount %d ppm from %v), header %q; want 0.0055125 under the 10 %% term", c.USD(), c.DiscountPPM, c.ContractFrom, after.header.Get(gateway.HeaderCost))
	}
	if rec.ShadowCost.USD() != "0.006125" {
		t.Errorf("shadow %s: the platform's price ignores the account's contract", rec.ShadowCost.USD())
	}
}
