package gateway

import (
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
)

// The cost of a request. A request takes the price book's current version
// when it starts (serve) and is priced with it when the provider's usage
// reaches the record (served; a whole answer's before its header goes out,
// for X-Agent-Router-Cost), so a price change in the middle of a stream
// does not touch it. Pricing reads the provider's own usage block
// (providers.Usage.Raw), dispatched on the provider that answered whatever
// door translated it, and allocates nothing: the cost is a value on the
// record.
//
// One book prices every payer: the embedded list prices with the operator's
// price overrides (list-price corrections, new models, deployments). What a
// payer negotiated is a contract over it: the BYOK credential's own terms
// for its requests, the platform's (the provider block's contract) for the
// platform's requests and for a BYOK request's shadow cost.

// HeaderCost is on every non-streamed answer of a metered endpoint that
// could be priced: the request's cost in USD ("0.0042"), as the request
// log's cost.total_usd. Streams have no trailer for it; their cost is in
// the request log.
const HeaderCost = "X-Agent-Router-Cost"

// priceAttempt prices the usage u the provider reported for the attempt
// that served (x.cred is its credential; x.rec names its provider and
// model) and puts the cost on the record, with the platform's shadow cost
// when a BYOK key served. No usage on an answer is unpriced (NoUsage), never
// free. It returns the cost, which stays available as a value to whatever
// settles the request (budgets).
func (g *Gateway) priceAttempt(x *exchange, u *providers.Usage) pricing.Cost {
	rec := x.rec
	if !x.ep.metered || x.prices == nil {
		return pricing.Cost{}
	}
	provider, model := rec.Provider, rec.UpstreamModel
	var c pricing.Cost
	var shadow pricing.Shadow
	if !u.Reported() {
		c = pricing.Unpriced(provider, model, pricing.NoUsage)
		c.Version = x.prices.ID
		if x.cred.source == SourceBYOK {
			shadow = c.Shadow()
		}
	} else {
		pu := usageOf(provider, u)
		c = x.prices.Cost(provider, model, pu, x.cred.contract, rec.Time)
		if x.cred.source == SourceBYOK {
			var platform *pricing.Contract
			if pc := g.providers[provider]; pc != nil {
				platform = pc.Contract
			}
			shadow = x.prices.Cost(provider, model, pu, platform, rec.Time).Shadow()
		}
	}
	c.PaidBy = x.cred.source
	rec.Cost, rec.ShadowCost = c, shadow
	return c
}

// usageOf reads the provider's usage by token class. An OpenAI-shaped
// answer (OpenAI, Azure, Mistral, Together) is read from the counts its
// adapter already took from the block, and so is an answer whose usage
// came without the provider's own object (a path that kept only the
// counts); the other providers' blocks say more than the counts (cache
// writes by lifetime, reasoning apart, the tier) and are read again.
func usageOf(provider string, u *providers.Usage) pricing.Usage {
	if len(u.Raw) == 0 || pricing.OpenAIShaped(provider) {
		pu := pricing.FromCounts(u.PromptTokens, u.CachedTokens, u.CompletionTokens, u.ReasoningTokens)
		pu.Tier = pricing.ParseTier(u.ServiceTier)
		return pu
	}
	pu := pricing.FromProvider(provider, u.Raw)
	if pu.Tier == pricing.Standard {
		// OpenAI and Azure report the tier beside the usage object.
		pu.Tier = pricing.ParseTier(u.ServiceTier)
	}
	return pu
}

// setCostHeader sets X-Agent-Router-Cost for a priced cost, formatted into
// the exchange's own buffer: the header's value and slice live in the
// exchange, which the request allocates anyway.
func (x *exchange) setCostHeader(c *pricing.Cost) {
	if c.Unpriced || c.IsZero() {
		return
	}
	x.hdr.put(x.w.Header(), HeaderCost, c.NanoUSD.AppendUSD(x.hdr.next()))
}
