package gateway

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// costStep is the cost step of a served request, as served and relayWhole
// run it: price the usage (BYOK: with the credential's contract and the
// platform's shadow) and set X-Agent-Router-Cost.
func costStep(b testing.TB) func() {
	b.Helper()
	reg := pricing.NewRegistry()
	if _, _, err := reg.Publish(pricing.Default()); err != nil {
		b.Fatal(err)
	}
	contract, err := pricing.NewContract([]pricing.ContractTerm{{EffectiveFrom: time.Unix(1, 0), DiscountPercent: "12.5"}})
	if err != nil {
		b.Fatal(err)
	}
	g := &Gateway{providers: map[string]*ProviderConfig{providers.Anthropic: {Contract: contract}}}
	rec := &store.LogRecord{Time: time.Now().UTC(), Provider: providers.Anthropic, UpstreamModel: "claude-sonnet-4-5"}
	w := httptest.NewRecorder()
	x := &exchange{w: w, rec: rec, ep: chatCompletions, prices: reg.Current(),
		cred: credential{source: SourceBYOK, contract: contract}}
	u := providers.Usage{PromptTokens: 1350, CompletionTokens: 300, TotalTokens: 1650,
		Raw: []byte(`{"input_tokens":1000,"cache_creation_input_tokens":150,"cache_read_input_tokens":200,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":50},"output_tokens":300,"service_tier":"standard"}`)}
	w.Header()[HeaderCost] = nil // the header map's slot exists, as on a reused connection
	return func() {
		x.hdr = headerValues{} // a new request's exchange
		c := g.priceAttempt(x, &u)
		x.setCostHeader(&c)
	}
}

// TestCostStepAllocatesNothing holds the cost step at 0 allocations: the
// cost is a value on the record, and its header lives in the exchange.
func TestCostStepAllocatesNothing(t *testing.T) {
	step := costStep(t)
	if n := testing.AllocsPerRun(200, step); n != 0 {
		t.Errorf("the cost step allocates %v times per request, want 0", n)
	}
}

// BenchmarkCostStep: `go test -run '^$' -bench CostStep -benchmem ./gateway/`.
func BenchmarkCostStep(b *testing.B) {
	step := costStep(b)
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}
