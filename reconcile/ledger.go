package reconcile

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"
)

// Kind is what a ledger row compares.
type Kind string

const (
	// KindTokens rows compare tokens per credential, model and UTC hour.
	KindTokens Kind = "tokens"
	// KindCost rows compare cost per credential (OpenAI) or workspace
	// (Anthropic) and UTC day.
	KindCost Kind = "cost"
)

// Status is a ledger row's verdict.
type Status string

const (
	// StatusMatch: tokens equal class by class; cost within the tolerance.
	StatusMatch Status = "match"
	// StatusDrift: the two sides differ, and the provider's data for the
	// period is final.
	StatusDrift Status = "drift"
	// StatusOutOfBand: the provider recorded more on one of our keys than
	// the gateway sent with it, beyond the tolerance: use of the key that
	// did not go through the gateway.
	StatusOutOfBand Status = "out_of_band"
	// StatusProviderOnly: usage the provider recorded on a key that is not
	// one of this scope's credentials (another key, Workbench, a null key).
	StatusProviderOnly Status = "provider_only"
	// StatusPending: the sides differ but the provider's data for the
	// period may still arrive (up to the lateness, 24 h).
	StatusPending Status = "pending"
	// StatusUnmapped: the credential's provider key is not known yet (the
	// owner must choose it): the gateway side only.
	StatusUnmapped Status = "unmapped"
)

// Row is one line of the ledger. Its JSON is what the store keeps and the
// admin API returns.
//
//	{"kind":"tokens","account":"acct_1","provider":"openai","credential":"fp_3b1c…",
//	 "provider_key_id":"key_abc","model":"gpt-4o-mini",
//	 "start":"2026-11-02T13:00:00Z","end":"2026-11-02T14:00:00Z",
//	 "gateway":{"requests":3,"tokens":{"input":33,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":15}},
//	 "provider_side":{"requests":3,"tokens":{…}},
//	 "delta":{"tokens":{…}},"status":"match","settled":true}
//
//	{"kind":"cost","account":"acct_1","provider":"anthropic","credential":"fp_3b1c…",
//	 "credentials":["fp_3b1c…"],"provider_key_id":"apikey_01…","workspace":"wrkspc_01…",
//	 "start":"2026-11-02T00:00:00Z","end":"2026-11-03T00:00:00Z",
//	 "gateway":{"requests":40,"cost_nano_usd":1368000,"cost_usd":"0.001368"},
//	 "provider_side":{"requests":-1,"cost_nano_usd":1368000,"cost_usd":"0.001368",
//	   "workspace_cost_nano_usd":2736000,"share_ppm":500000},
//	 "delta":{},"status":"match","settled":true}
//
// TestRowJSON pins the field names.
type Row struct {
	Kind     Kind   `json:"kind"`
	Account  string `json:"account"`
	Provider string `json:"provider"`
	// Credential is the fingerprint of our credential ("" on
	// provider_only rows and on a workspace's cost row).
	Credential string `json:"credential,omitempty"`
	// Credentials lists our credentials in an Anthropic workspace's cost
	// row.
	Credentials []string `json:"credentials,omitempty"`
	// KeyID is the provider's key id ("" where the provider reports a null
	// key, or none is mapped).
	KeyID string `json:"provider_key_id,omitempty"`
	// Workspace is the Anthropic workspace of a cost row ("" is the
	// default workspace).
	Workspace string `json:"workspace,omitempty"`
	// Model is the canonical model of a tokens row.
	Model string    `json:"model,omitempty"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Gateway and ProviderSide are the two sides (nil when a side has no
	// figure for the row).
	Gateway      *Side  `json:"gateway,omitempty"`
	ProviderSide *Side  `json:"provider_side,omitempty"`
	Delta        Delta  `json:"delta"`
	Status       Status `json:"status"`
	// Settled says the provider's data for the period is final (its end is
	// more than the lateness ago).
	Settled bool   `json:"settled"`
	Note    string `json:"note,omitempty"`
}

// Side is one side's figures on a row.
type Side struct {
	// Requests is the request count (-1 where the provider reports none).
	Requests int64   `json:"requests"`
	Tokens   *Tokens `json:"tokens,omitempty"`
	// CostNanoUSD and CostUSD are the cost on a cost row (nano-USD and a
	// decimal string in USD).
	CostNanoUSD int64  `json:"cost_nano_usd,omitempty"`
	CostUSD     string `json:"cost_usd,omitempty"`
	// Unpriced counts the gateway's calls without a price (not in the
	// cost).
	Unpriced int64 `json:"unpriced,omitempty"`
	// WorkspaceNanoUSD is an Anthropic workspace's whole token cost, of
	// which CostNanoUSD is our keys' share (SharePPM, by the list-price
	// value of each key's tokens); OtherNanoUSD what the workspace was
	// billed besides tokens.
	WorkspaceNanoUSD int64 `json:"workspace_cost_nano_usd,omitempty"`
	SharePPM         int64 `json:"share_ppm,omitempty"`
	OtherNanoUSD     int64 `json:"other_cost_nano_usd,omitempty"`
}

// Delta is the provider side minus the gateway side.
type Delta struct {
	Tokens      *Tokens `json:"tokens,omitempty"`
	CostNanoUSD int64   `json:"cost_nano_usd,omitempty"`
	// CostPPM is the cost delta relative to the larger side, in parts per
	// million (10000 is 1 %).
	CostPPM int64 `json:"cost_ppm,omitempty"`
}

// Scope is whose records a run reconciles: an account's credentials at one
// provider (Account "" is the platform's own key), read with one admin key.
type Scope struct {
	Account  string `json:"account"`
	Provider string `json:"provider"`
}

// Ledger keeps the rows. The wiring persists it in the store; MemoryLedger
// is the in-process one.
type Ledger interface {
	// Replace makes rows the scope's rows for the window: every row of the
	// scope starting inside w is dropped, rows are kept. It is all or
	// nothing.
	Replace(ctx context.Context, s Scope, w Window, rows []Row) error
	// Rows returns the scope's rows that start inside w, in ledger order.
	Rows(ctx context.Context, s Scope, w Window) ([]Row, error)
}

// MemoryLedger is a Ledger in memory, safe for concurrent use.
type MemoryLedger struct {
	mu   sync.Mutex
	rows map[Scope][]Row
}

func (l *MemoryLedger) Replace(_ context.Context, s Scope, w Window, rows []Row) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rows == nil {
		l.rows = map[Scope][]Row{}
	}
	kept := slices.DeleteFunc(slices.Clone(l.rows[s]), func(r Row) bool { return w.Contains(r.Start) })
	kept = append(kept, rows...)
	SortRows(kept)
	l.rows[s] = kept
	return nil
}

func (l *MemoryLedger) Rows(_ context.Context, s Scope, w Window) ([]Row, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Row
	for _, r := range l.rows[s] {
		if w.Contains(r.Start) {
			out = append(out, r)
		}
	}
	return out, nil
}

// SortRows puts rows in ledger order: by start, kind, credential, key,
// workspace, model.
func SortRows(rows []Row) {
	slices.SortStableFunc(rows, func(a, b Row) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Credential, b.Credential),
			cmp.Compare(a.KeyID, b.KeyID), cmp.Compare(a.Workspace, b.Workspace), cmp.Compare(a.Model, b.Model))
	})
}
