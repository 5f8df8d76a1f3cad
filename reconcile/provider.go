package reconcile

import (
	"context"
	"time"
)

// Reader reads one provider organisation's own records through its admin
// API, with one admin key. NewOpenAI and NewAnthropic return one.
type Reader interface {
	// Provider names the provider ("openai", "anthropic").
	Provider() string
	// Keys lists the organisation's API keys with their redacted forms.
	// projects narrows an OpenAI listing to those projects (all when
	// empty); Anthropic lists the whole organisation.
	Keys(ctx context.Context, projects []string) ([]ProviderKey, error)
	// Usage returns the token usage in w, per hour, API key and model.
	Usage(ctx context.Context, w Window) ([]ProviderUsage, error)
	// Costs returns the cost in w, per day and CostScope.
	Costs(ctx context.Context, w Window) ([]ProviderCost, error)
	// CostScope says what a cost figure is attributed to.
	CostScope() CostScope
	// Ping makes one cheap authenticated call to the usage endpoint (the
	// last hour, one bucket): the Test button of a usage-reader key.
	Ping(ctx context.Context) error
}

// CostScope is what a provider's cost report can be grouped by.
type CostScope string

const (
	// CostByKey: OpenAI's costs group by api_key_id.
	CostByKey CostScope = "api_key"
	// CostByWorkspace: Anthropic's cost_report groups by workspace, not key.
	CostByWorkspace CostScope = "workspace"
)

// ProviderKey is one of the organisation's API keys as its admin API lists
// it. Redacted is what the provider shows of the key (OpenAI's
// redacted_value "sk-abc...def", Anthropic's partial_key_hint).
type ProviderKey struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Redacted string `json:"redacted"`
	// Project is the OpenAI project of the key, Workspace the Anthropic
	// workspace ("" is the default workspace).
	Project   string `json:"project,omitempty"`
	Workspace string `json:"workspace,omitempty"`
	Status    string `json:"status,omitempty"`
}

// ProviderUsage is one hour of one key's usage of one model, as the
// provider recorded it.
type ProviderUsage struct {
	Hour time.Time `json:"hour"`
	// KeyID is "" where the provider reports a null key: Workbench or
	// console use, or a key the organisation no longer lists.
	KeyID string `json:"provider_key_id"`
	// Workspace is the Anthropic workspace ("" the default one), or the
	// OpenAI project.
	Workspace string `json:"workspace,omitempty"`
	Model     string `json:"model"`
	Tokens    Tokens `json:"tokens"`
	// Requests is the provider's request count, -1 where it reports none
	// (Anthropic's usage report).
	Requests int64 `json:"requests"`
}

// ProviderCost is one day of cost, in nano-USD, for a key (OpenAI) or a
// workspace (Anthropic), as the provider billed it.
type ProviderCost struct {
	Day       time.Time `json:"day"`
	KeyID     string    `json:"provider_key_id,omitempty"`
	Workspace string    `json:"workspace,omitempty"`
	// NanoUSD is the cost of tokens; OtherNanoUSD what else the provider
	// billed in the same scope (web search, code execution), which the
	// gateway's price book does not price. OpenAI's per-key cost is one
	// figure: all of it is in NanoUSD.
	NanoUSD      int64 `json:"nano_usd"`
	OtherNanoUSD int64 `json:"other_nano_usd,omitempty"`
}
