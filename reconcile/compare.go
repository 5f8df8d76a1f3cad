package reconcile

import (
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Input is everything one comparison needs: it is a pure function of it,
// so the same input gives the same rows.
type Input struct {
	Scope  Scope
	Window Window
	// Now decides which periods are settled (their end more than the
	// lateness ago).
	Now         time.Time
	Credentials []Credential
	Matches     []Match
	Gateway     []GatewayUsage
	Usage       []ProviderUsage
	Costs       []ProviderCost
	CostScope   CostScope
}

// Output is the comparison's result: the ledger rows of the window, the
// out-of-band alerts and the calibration proposals.
type Output struct {
	Rows      []Row      `json:"rows"`
	Alerts    []Alert    `json:"alerts,omitempty"`
	Proposals []Proposal `json:"proposals,omitempty"`
}

// comparison holds one Compare's indexes.
type comparison struct {
	in      Input
	tol     Tolerance
	book    *pricing.Book
	credKey map[string]string // fingerprint → provider key id (matched only)
	credWS  map[string]string // fingerprint → the key's workspace or project
	keyCred map[string]string // provider key id → fingerprint
	canons  map[string]string
}

// Compare builds the ledger rows, alerts and proposals for in with the
// tolerance t, pricing with book (the book's canonical model names join an
// alias and its dated snapshot; its list prices weigh Anthropic's
// workspace costs and calibrate).
func Compare(in Input, t Tolerance, book *pricing.Book) Output {
	c := &comparison{in: in, tol: t.withDefaults(), book: book, credKey: map[string]string{},
		credWS: map[string]string{}, keyCred: map[string]string{}, canons: map[string]string{}}
	for _, m := range in.Matches {
		if m.Status == Matched {
			c.credKey[m.Credential], c.credWS[m.Credential], c.keyCred[m.KeyID] = m.KeyID, m.Workspace, m.Credential
		}
	}
	rows := c.tokenRows()
	alerts := c.alerts(rows)
	if in.CostScope == CostByWorkspace {
		rows = append(rows, c.costRowsByWorkspace(rows)...)
	} else {
		rows = append(rows, c.costRowsByKey(rows)...)
	}
	SortRows(rows)
	return Output{Rows: rows, Alerts: alerts, Proposals: c.proposals()}
}

// mine reports whether a gateway row belongs to the scope.
func (c *comparison) mine(g GatewayUsage) bool {
	return g.Account == c.in.Scope.Account && g.Provider == c.in.Scope.Provider
}

// canon is the price book's name for model at the scope's provider (an
// alias or dated snapshot maps to its row's model), or model itself.
func (c *comparison) canon(model string) string {
	if m, ok := c.canons[model]; ok {
		return m
	}
	m := model
	if c.book != nil && c.book.Has(c.in.Scope.Provider, model) {
		m = c.book.Cost(c.in.Scope.Provider, model, pricing.Usage{}).Model
	}
	c.canons[model] = m
	return m
}

// listValue is the book's list price of tokens of model, in nano-USD, and
// whether the book prices it.
func (c *comparison) listValue(model string, t Tokens, contract *pricing.Contract, at time.Time) (int64, bool) {
	if c.book == nil {
		return 0, false
	}
	cost := c.book.CostAt(c.in.Scope.Provider, model, t.Usage(), contract, at)
	return int64(cost.NanoUSD), !cost.Unpriced
}

// contract is the contract of the credential with fingerprint fp.
func (c *comparison) contract(fp string) *pricing.Contract {
	for _, cr := range c.in.Credentials {
		if cr.Fingerprint == fp {
			return cr.Contract
		}
	}
	return nil
}
