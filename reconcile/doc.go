// Package reconcile checks the gateway's own counts of BYOK traffic against
// the providers' records of the same keys: what an account was billed for
// by its provider equals what the gateway says it sent, or the ledger says
// where and why not — including use of a key that never went through the
// gateway (a leaked or shadow-used key).
//
// It is Caddy-free and runs no HTTP server: it is an HTTP client of the
// providers' organisation admin APIs (money.md §3), and a pure comparison.
// The wiring (admin keys sealed in the store, the console card, the admin
// routes, the per-fleet election, the gateway side from the store's
// credential usage) is in package ops; WIRING.md says where each piece
// landed.
//
// It owns:
//
//   - Readers of the admin usage, cost and key-listing APIs (Reader;
//     NewOpenAI, NewAnthropic): paginated, within the bucket limits (long
//     ranges split into allowed chunks), backing off on 429 and 5xx with
//     Retry-After honoured and a bound, cancellable, over the *http.Client
//     the caller passes. An admin key is sent to its provider's admin
//     endpoints only (no redirects followed) and never appears in an error,
//     a result or a formatted value (scrub.go).
//   - Key mapping (MapKeys): each BYOK credential, known by the masked form
//     and fingerprint the store keeps, matched to the provider's key id by
//     the provider's redacted form; ambiguous or missing is the owner's to
//     choose, never guessed.
//   - The comparison (Compare) of gateway-side aggregates (GatewayUsage, per
//     account, credential, model and UTC hour) with the provider's records:
//     ledger rows (Row) per credential, model and hour for tokens and per
//     credential or workspace and UTC day for cost, with both sides, the
//     deltas and a status; out-of-band alerts (Alert); price calibration
//     proposals (Proposal) as pricing.ContractTerm values.
//   - A run (Reconciler.Run): fetch, compare, replace the ledger's rows of
//     the window (Ledger; MemoryLedger) — or, when a provider is down or the
//     admin key is refused, leave the ledger as it was and say why.
//
// Nothing here logs: every outcome is data the caller records.
package reconcile
