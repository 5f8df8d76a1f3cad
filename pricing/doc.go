// Package pricing owns what a request costs: the dated price book and the
// arithmetic. It is Caddy-free and HTTP-free; the gateway, the request log,
// the rollups and the config wire it in (see WIRING.md).
//
// It owns:
//
//   - The price book. An embedded default table (prices.json: every model
//     of the providers' catalog, each row naming its source, the table
//     carrying a version and an "as of" date) of decimal strings in USD per
//     1M tokens: input, cache read, cache write 5 min and 1 h, output,
//     reasoning where a provider prices it apart; long-context tiers and
//     batch / flex / priority service tiers where a provider has them.
//     Table, Row, PriceSet; Default, ParseTable.
//   - Sanity bounds at load (check.go): a negative, malformed, per-token-
//     looking or absurd price is refused with the model and field named.
//   - Operator overrides (Override, Apply) on top of the default table, and
//     an import of LiteLLM's price file into overrides (ImportLiteLLM).
//   - Versions (Version, Registry): every change of the effective book is a
//     new immutable version (sequence + content hash, time, a diff); a
//     request keeps the *Version it started under. Record is the JSON a
//     store persists.
//   - Cost (Usage → Cost): integer arithmetic only, exact to 1e-9 USD
//     (decimal.go explains the unit), unit prices and tokens by class on the
//     result, Unpriced — never $0 — when the book has no price. Contract
//     terms of a BYOK credential (discount or explicit rates, from an
//     effective date) as a pure function of the request's start time.
//   - Reading each provider's native usage block into a Usage (usage.go),
//     without allocating.
//
// Computing a cost allocates nothing (BenchmarkCost); formatting it for the
// log does, and belongs to the record writer.
package pricing
