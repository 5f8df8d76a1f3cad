package ops_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// thirtyOneDays sets up 20 accounts, each with a BYOK key of one OpenAI
// organisation and that organisation's usage reader, and 31 days of
// traffic, 4 hours a day, on every key: the gateway's side in the store's
// credential usage (as its log writer gets it), the provider's in the
// fake's records.
func thirtyOneDays(t testing.TB) (*recEnv, []string) {
	e := newRecEnv(t)
	f := e.fakes["openai"]
	f.SetPageBuckets(24)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var accounts []string
	for i := range 20 {
		acc := fmt.Sprintf("bu%02d", i)
		if _, err := e.s.CreateAccount(acc, acc); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("sk-proj-%sBU%02dkey0123456789abcdef%02dQ", strings.Repeat("Xy9", 12), i, i)
		f.AddKey(key, providertest.AdminKey{})
		if _, err := e.o.SaveBYOK(acc, "openai", ops.BYOKInput{APIKey: &key}); err != nil {
			t.Fatal(err)
		}
		admin := openAIAdmin
		if _, err := e.o.SaveUsageReader(acc, "openai", ops.UsageReaderInput{APIKey: &admin}); err != nil {
			t.Fatal(err)
		}
		fp := store.Fingerprint(key)
		for d := 30; d >= 1; d-- {
			for _, h := range []int{2, 9, 14, 21} {
				at := today.AddDate(0, 0, -d).Add(time.Duration(h)*time.Hour + 5*time.Minute)
				e.s.Record(&store.LogRecord{ID: fmt.Sprintf("%016x%02d", at.UnixNano(), i), Time: at, AccountID: acc, Provider: "openai",
					UpstreamModel: "gpt-4o-mini", CredentialSource: "byok", CredentialFingerprint: fp, Status: 200,
					UsageRaw: []byte(`{"prompt_tokens":1200,"completion_tokens":300}`)})
				f.InjectUsage(key, providertest.UsageEvent{Time: at, Model: "gpt-4o-mini", Input: 1200, Output: 300})
			}
		}
		accounts = append(accounts, acc)
	}
	e.s.FlushLog()
	e.o.Reconcile.Days = reconcile.MaxDays
	return e, accounts
}

// TestThirtyOneDaysTwentyCredentials: a scheduled pass over 20 accounts'
// keys and 31 days, through the store and the fake's admin API, is well
// under the 10 s; every token row matches.
func TestThirtyOneDaysTwentyCredentials(t *testing.T) {
	e, accounts := thirtyOneDays(t)
	start := time.Now()
	res := e.o.ReconcileAll(context.Background())
	took := time.Since(start)
	rows := 0
	for _, r := range res {
		if !r.OK {
			t.Fatalf("run: %+v", r)
		}
		rows += r.Rows
	}
	t.Logf("31 days × 20 credentials: %d runs, %d ledger rows in %v", len(res), rows, took.Round(time.Millisecond))
	if len(res) != 20 || took > 10*time.Second {
		t.Fatalf("%d runs in %v", len(res), took)
	}
	// Each account's own key matches hour by hour; the organisation's
	// other 19 keys show in its ledger as provider_only.
	for _, acc := range accounts[:3] {
		own := 0
		for _, r := range e.ledger(acc, "openai") {
			if r.Kind == reconcile.KindTokens && r.Credential != "" {
				own++
				if r.Status != reconcile.StatusMatch {
					t.Fatalf("%s: %+v", acc, r)
				}
			}
		}
		if own != 4*2 { // the ledger's default read: the last 3 days, of which 2 had traffic
			t.Fatalf("%s: %d rows of its own key", acc, own)
		}
	}
}

// BenchmarkReconcileAll31Days: one scheduled pass over 20 accounts' keys
// and 31 days, through the store and the fake's admin API:
// go test -run '^$' -bench ReconcileAll31Days -benchtime 5x ./ops/
func BenchmarkReconcileAll31Days(b *testing.B) {
	e, _ := thirtyOneDays(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, r := range e.o.ReconcileAll(ctx) {
			if !r.OK {
				b.Fatalf("run: %+v", r)
			}
		}
	}
}
