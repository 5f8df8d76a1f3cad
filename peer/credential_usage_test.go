package peer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// byokCall records one served BYOK call of account with key fp on m.
func (m *fleetMember) byokCall(account, fp string, n int) {
	for i := range n {
		m.s.Record(&store.LogRecord{ID: fmt.Sprintf("%s-%s-c%03d", m.id, account, i), Time: time.Now().UTC(), AccountID: account,
			Provider: "openai", UpstreamModel: "gpt-4o-mini", CredentialSource: "byok", CredentialFingerprint: fp, Status: 200,
			UsageRaw: []byte(`{"prompt_tokens":11,"completion_tokens":5}`)})
	}
	m.s.SyncLog()
}

// TestFleetCredentialUsage: the reconciler's gateway side is every
// member's credential usage, over signed peer reads; an answer outside
// the asked scope, or a member that does not answer, fails the whole read
// (and the run, which leaves the ledger as it was), where a person's usage
// page would show the rest.
func TestFleetCredentialUsage(t *testing.T) {
	c := etcdtest.Start(t, 1)
	master := storetest.MasterKey(t)
	a := startMember(t, c, "a", master)
	b := startMember(t, c, "b", master)
	waitMembers(t, a.s, 2)
	a.byokCall("acme", "fp_aaaaaaaaaaaa", 2)
	b.byokCall("acme", "fp_aaaaaaaaaaaa", 3)
	b.byokCall("globex", "fp_bbbbbbbbbbbb", 4)
	ctx := context.Background()
	hour := time.Now().UTC().Truncate(time.Hour)
	q := store.CredentialUsageQuery{From: hour, To: hour.Add(time.Hour), Source: "byok", Account: "acme", Provider: "openai"}
	rows, err := ops.FleetCredentialUsage(ctx, a.s, q)
	var n int64
	for _, r := range rows {
		n += r.Requests
	}
	if err != nil || n != 5 || len(rows) != 2 {
		t.Fatalf("fleet credential usage: %d calls in %d rows, %v", n, len(rows), err)
	}
	// Unsigned: refused.
	if status, _ := peerPost(t, b, http.MethodPost, "credential_usage", `{}`, nil, time.Time{}, ""); status != http.StatusUnauthorized {
		t.Fatalf("unsigned read: %d", status)
	}
	// b answers globex's rows to a read for acme.
	b.serve(evil(b, func(string) []byte {
		rows, _ := b.s.CredentialUsage(store.CredentialUsageQuery{From: hour, To: hour.Add(time.Hour)})
		out, _ := json.Marshal(map[string]any{"rows": rows})
		return out
	}))
	if _, err := ops.FleetCredentialUsage(ctx, a.s, q); err == nil || !strings.Contains(err.Error(), "another scope") {
		t.Fatalf("rows of another account: %v", err)
	}

	// A run on a with b's peer listener gone: the gateway side is
	// incomplete, the ledger stays as it was.
	fake := providertest.NewOpenAIAdmin()
	defer fake.Close()
	fake.AddAdminKey("sk-admin-FLEETadminKEY0123456789abcdef")
	if _, err := a.s.CreateAccount("acme", "Acme"); err != nil {
		t.Fatal(err)
	}
	admin := "sk-admin-FLEETadminKEY0123456789abcdef"
	o := &ops.Ops{Store: a.s, Reconcile: &ops.Reconciling{NewReader: func(p, key string) (reconcile.Reader, error) {
		return reconcile.NewOpenAI(key, reconcile.Options{HTTPClient: http.DefaultClient, BaseURL: fake.URL, BaseDelay: time.Millisecond})
	}}}
	if _, err := o.SaveUsageReader("acme", "openai", ops.UsageReaderInput{APIKey: &admin}); err != nil {
		t.Fatal(err)
	}
	b.serve(func(w http.ResponseWriter, r *http.Request) {
		(&peer.Handler{Store: func() *store.Store { return b.s }}).ServeHTTP(w, r)
	})
	if res, err := o.RunReconcile(ctx, "acme", "openai", 0); err != nil || !res.OK {
		t.Fatalf("run with every member: %+v %v", res, err)
	}
	ledger := func() string {
		v, err := o.Reconciliation(ctx, "acme", ops.ReconciliationQuery{})
		if err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(v.Rows)
		return string(out)
	}
	before := ledger()
	b.srv.Close()
	res, err := o.RunReconcile(ctx, "acme", "openai", 0)
	if err != nil || res.OK || res.Reason != ops.ReasonGatewayIncomplete || !strings.Contains(res.Error, "b (") {
		t.Fatalf("run with b gone: %+v %v", res, err)
	}
	if after := ledger(); after != before {
		t.Fatal("a run with a member gone changed the ledger")
	}
}
