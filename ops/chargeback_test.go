package ops_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

// TestFleetChargeback: in fleet mode the chargeback sums every member's
// rollups (each instance keeps its own request log and usage), cost by
// payer, shadow cost and price versions included.
func TestFleetChargeback(t *testing.T) {
	c := etcdtest.Start(t, 1)
	master := make([]byte, store.MasterKeySize)
	rand.Read(master)
	a := openMember(t, c, "a", master)
	b := openMember(t, c, "b", master)
	if _, err := a.CreateAccount("acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(a.Members()) != 2 || !b.Snapshot().HasAccount("acme") {
		if time.Now().After(deadline) {
			t.Fatal("the fleet did not come up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	book := pricing.MustCompile(pricing.Default())
	at := time.Now().UTC().Add(-time.Hour)
	for i, s := range []*store.Store{a, b} {
		cost := book.Cost("openai", "gpt-4o", pricing.Usage{Input: 1150, CacheRead: 200, Output: 300, Reasoning: 120})
		cost.PaidBy, cost.Version = "byok", fmt.Sprintf("%d-aaaaaaaaaaaa", i+1)
		shadow := cost
		shadow.PaidBy = ""
		s.Record(&store.LogRecord{ID: fmt.Sprintf("%016x%08x", at.UnixNano()+int64(i), i), Time: at, AccountID: "acme", Provider: "openai",
			UpstreamModel: "gpt-4o", Status: 200, CredentialSource: "byok", CredentialFingerprint: "fp_0123456789ab", Cost: cost, ShadowCost: shadow.Shadow()})
		s.FlushLog()
	}
	o := &ops.Ops{Store: a}
	cb, err := o.Chargeback(context.Background(), "acme", at.Format("2006-01"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cb.Missing) != 0 || len(cb.Rows) != 1 {
		t.Fatalf("missing %v, rows %+v", cb.Missing, cb.Rows)
	}
	r := cb.Rows[0]
	if r.Requests != 2 || r.CostUSD != "0.01225" || r.ShadowCostUSD != "0.01225" || len(r.PriceVersions) != 2 || r.Tokens.CacheRead != 400 {
		t.Errorf("fleet row %+v", r)
	}
	if _, err := o.Chargeback(context.Background(), "nobody", at.Format("2006-01")); ops.KindOf(err) != ops.NotFound {
		t.Errorf("an unknown account: %v", err)
	}
}
