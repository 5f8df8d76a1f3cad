package reconcile

import "time"

// GatewayUsage is the gateway's own count of what it sent with one
// credential, for one model, in one UTC hour: the gateway side of the
// ledger. The wiring builds it from the request log and its rollups
// (WIRING.md); tests build it from what they sent.
type GatewayUsage struct {
	// Account is the account the credential belongs to ("" for the
	// platform's own key).
	Account  string `json:"account"`
	Provider string `json:"provider"`
	// Credential is the key's fingerprint (the request log's
	// credential_fingerprint).
	Credential string `json:"credential"`
	// Model is the upstream model the provider was asked for; it is
	// compared under the price book's canonical name, so an alias and its
	// dated snapshot are one model.
	Model string `json:"model"`
	// Hour is the start of the UTC hour the upstream calls started in.
	Hour time.Time `json:"hour"`
	// Requests counts upstream calls made with the credential (each
	// attempt of a fallback chain that reached the provider is one).
	Requests int64  `json:"requests"`
	Tokens   Tokens `json:"tokens"`
	// CostNanoUSD is what the gateway priced those calls at (integer
	// nano-USD); Unpriced counts the calls it could not price, which are
	// not in the sum.
	CostNanoUSD int64 `json:"cost_nano_usd"`
	Unpriced    int64 `json:"unpriced,omitempty"`
	// CostOnly marks usage the provider reports in another usage report
	// than the one reconciled (OpenAI embeddings are under
	// /usage/embeddings): it counts in the cost rows only.
	CostOnly bool `json:"cost_only,omitempty"`
}
