package store

import (
	"reflect"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// TestUsageCostRollups: the rollups sum cost by payer, the BYOK requests'
// shadow platform cost, the unpriced requests (in no sum), tokens by price
// class and the price versions, per BYOK credential; the sums survive the
// flush to the file and a reopen.
func TestUsageCostRollups(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), usageQuiet)
	book := pricing.MustCompile(pricing.Default())
	priced := func(provider, model, version, paidBy string, u pricing.Usage) pricing.Cost {
		c := book.Cost(provider, model, u)
		c.Version, c.PaidBy = version, paidBy
		return c
	}
	u := pricing.Usage{Input: 1000, CacheRead: 200, CacheWrite5m: 100, CacheWrite1h: 50, Output: 300}
	// claude-sonnet-4-5: 0.003 + 0.00006 + 0.000375 + 0.0003 + 0.0045 = 0.008235
	byok := priced("anthropic", "claude-sonnet-4-5", "1-aaa", "byok", u)
	shadow := priced("anthropic", "claude-sonnet-4-5", "1-aaa", "", u)
	platform := priced("anthropic", "claude-sonnet-4-5", "2-bbb", "platform", u)
	unpriced := pricing.Unpriced("azure", "deploy-x", pricing.NoModel)
	unpriced.Version, unpriced.PaidBy = "2-bbb", "platform"
	recs := []*LogRecord{
		{ID: "1", Time: uh0, AccountID: "acme", Provider: "anthropic", UpstreamModel: "claude-sonnet-4-5", Status: 200,
			CredentialSource: "byok", CredentialFingerprint: "fp_old", Cost: byok, ShadowCost: shadow.Shadow()},
		{ID: "2", Time: uh0, AccountID: "acme", Provider: "anthropic", UpstreamModel: "claude-sonnet-4-5", Status: 200,
			CredentialSource: "byok", CredentialFingerprint: "fp_new", Cost: byok, ShadowCost: shadow.Shadow(), API: "messages"},
		{ID: "3", Time: uh0, AccountID: "acme", Provider: "anthropic", UpstreamModel: "claude-sonnet-4-5", Status: 200,
			CredentialSource: "platform", Cost: platform},
		{ID: "4", Time: uh0, AccountID: "acme", Provider: "azure", UpstreamModel: "deploy-x", Status: 200,
			CredentialSource: "platform", Cost: unpriced},
	}
	for _, r := range recs {
		s.Record(r)
	}
	s.SyncLog() // consumed (and rolled up in memory), not merged into the file
	q := UsageQuery{AccountID: "acme", From: uh0, To: uh1, GroupBy: []string{DimCredentialSource, DimCredential}}
	check := func(when string) {
		res := mustUsage(t, s, q)
		tot := res.Total
		if tot.BYOKCostNanoUSD != 2*8235000 || tot.PlatformCostNanoUSD != 8235000 || tot.ShadowCostNanoUSD != 2*8235000 || tot.Unpriced != 1 {
			t.Errorf("%s: total byok %d platform %d shadow %d unpriced %d", when, tot.BYOKCostNanoUSD, tot.PlatformCostNanoUSD, tot.ShadowCostNanoUSD, tot.Unpriced)
		}
		if tot.CostNanoUSD() != 3*8235000 || !reflect.DeepEqual(tot.PriceVersions, []string{"1-aaa", "2-bbb"}) {
			t.Errorf("%s: cost %d, versions %v", when, tot.CostNanoUSD(), tot.PriceVersions)
		}
		if tot.InputTokens != 3000 || tot.CacheReadTokens != 600 || tot.CacheWrite5mTokens != 300 || tot.CacheWrite1hTokens != 150 || tot.OutputTokens != 900 {
			t.Errorf("%s: tokens by class %+v", when, tot)
		}
		got := map[string]int64{}
		for _, g := range res.Totals {
			got[g.Key[DimCredentialSource]+"/"+g.Key[DimCredential]] = g.CostNanoUSD()
		}
		want := map[string]int64{"byok/fp_old": 8235000, "byok/fp_new": 8235000, "platform/": 8235000}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: by credential %v, want %v", when, got, want)
		}
	}
	check("in memory")
	s.FlushLog()
	check("flushed")
	s.Close()
	s = openStore(t, path, masterKey(1), usageQuiet)
	check("reopened")
}
