package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// fakeTokens sums the fake's own records of key (by key id) per model in
// the current hour: the provider's side, read from the fake directly, not
// through the reconciler.
func fakeTokens(f *providertest.AdminServer, keyID string, hour time.Time) map[string]reconcile.Tokens {
	out := map[string]reconcile.Tokens{}
	for _, ev := range f.Usage() {
		if ev.KeyID != keyID || !ev.Time.Truncate(time.Hour).Equal(hour) {
			continue
		}
		t := out[ev.Model]
		t.Add(reconcile.Tokens{Input: ev.Input, CacheRead: ev.CacheRead, CacheWrite5m: ev.CacheWrite5m, CacheWrite1h: ev.CacheWrite1h, Output: ev.Output})
		out[ev.Model] = t
	}
	return out
}

// TestReconcileThroughTheGateway: requests through the real gateway with
// the account's BYOK key → the fake providers' own records → the
// reconciler → the ledger in the store: every token row of the key
// matches the fake's records exactly, class by class, per model and hour;
// each day's cost is within 1 %; and the usage-reader slot says so.
func TestReconcileThroughTheGateway(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		t.Run(provider, func(t *testing.T) {
			e := newRecEnv(t)
			listed := e.fakes[provider].AddKey("sk-someone-elses-key-not-ours-0123456789", providertest.AdminKey{}) // the org's other key
			e.byokKey(provider, 1, providertest.AdminKey{Project: "proj_a", Workspace: "wrkspc_01A"})
			e.reader(provider)
			awayFromTheHour(t, 20*time.Second)
			hour := time.Now().UTC().Truncate(time.Hour)
			models := modelsOf(provider)
			for range 3 {
				e.send(provider, models[0], false)
				e.send(provider, models[1], true)
			}
			res := e.run(recAccount, provider, 0)
			if !res.OK || res.Window.Days() != reconcile.DefaultDays {
				t.Fatalf("run: %+v", res)
			}
			if len(res.Matches) != 1 || res.Matches[0].Status != reconcile.Matched {
				t.Fatalf("the BYOK key was not matched: %+v", res.Matches)
			}
			keyID := res.Matches[0].KeyID
			fp := store.Fingerprint(e.byok[provider])
			want := fakeTokens(e.fakes[provider], keyID, hour)
			if len(want) != 2 {
				t.Fatalf("the fake recorded %d models this hour: %+v", len(want), want)
			}
			var tokenRows, costRows int
			for _, r := range e.ledger(recAccount, provider) {
				switch {
				case r.Kind == reconcile.KindTokens && r.Credential == fp:
					tokenRows++
					w, ok := want[r.Model]
					if !ok || r.Status != reconcile.StatusMatch || *r.Gateway.Tokens != w || *r.ProviderSide.Tokens != w || r.Gateway.Requests != 3 {
						t.Errorf("token row %s %s: %s gateway %+v provider %+v, the fake's %+v", r.Model, r.Start, r.Status, r.Gateway, r.ProviderSide, w)
					}
				case r.Kind == reconcile.KindCost && r.Gateway != nil:
					costRows++
					if r.Delta.CostPPM > 10_000 || r.Delta.CostPPM < -10_000 || r.Status != reconcile.StatusMatch {
						t.Errorf("cost row %s: %s, delta %d ppm (%+v vs %+v)", r.Start, r.Status, r.Delta.CostPPM, r.Gateway, r.ProviderSide)
					}
					t.Logf("cost %s: gateway %s, provider %s, delta %d ppm", r.Start.Format("2006-01-02"),
						pricing.Nano(r.Gateway.CostNanoUSD), pricing.Nano(r.ProviderSide.CostNanoUSD), r.Delta.CostPPM)
				case r.Kind == reconcile.KindTokens && r.KeyID == listed.ID:
					t.Errorf("a row for a key nobody used: %+v", r)
				}
			}
			if tokenRows != 2 || costRows != 1 {
				t.Fatalf("%d token rows, %d cost rows; want 2 and 1", tokenRows, costRows)
			}
			st, err := e.o.UsageReader(recAccount, provider)
			if err != nil || st.LastRun == nil || !st.LastRun.OK || len(st.Alerts) != 0 || len(st.Unmatched) != 0 {
				t.Fatalf("usage-reader slot: %+v %v", st, err)
			}
			// A second run over the same data writes the same ledger.
			before := e.ledgerJSON(recAccount, provider)
			e.run(recAccount, provider, 0)
			if after := e.ledgerJSON(recAccount, provider); after != before {
				t.Fatalf("a second run changed the ledger:\n%s\n%s", before, after)
			}
		})
	}
}

// TestReconcileFlagsOutOfBandUse: usage of the account's key that never
// went through the gateway is flagged by the first run after the provider
// shows it — in the result, the stored slot, the operator's alert list —
// and not before.
func TestReconcileFlagsOutOfBandUse(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		t.Run(provider, func(t *testing.T) {
			e := newRecEnv(t)
			key := e.byokKey(provider, 1, providertest.AdminKey{})
			e.reader(provider)
			awayFromTheHour(t, 20*time.Second)
			model := modelsOf(provider)[0]
			e.send(provider, model, false)
			// Someone uses the key outside the gateway; the provider shows
			// it two seconds later.
			visible := time.Now().Add(2 * time.Second)
			e.fakes[provider].InjectUsage(key, providertest.UsageEvent{Model: model, Input: 50, Output: 20, Delay: 2 * time.Second})
			res := e.run(recAccount, provider, 0)
			if !res.OK || len(res.Alerts) != 0 {
				t.Fatalf("a run before the provider shows the use: %+v", res)
			}
			time.Sleep(time.Until(visible) + 50*time.Millisecond)
			res = e.run(recAccount, provider, 0)
			if !res.OK || len(res.Alerts) != 1 {
				t.Fatalf("the first run after: %+v", res)
			}
			a := res.Alerts[0]
			if a.Credential != store.Fingerprint(key) || a.ExcessTokens != 70 || a.Hours != 1 {
				t.Fatalf("alert: %+v", a)
			}
			if provider == "openai" && a.ExcessRequests != 1 {
				t.Fatalf("excess requests: %+v", a)
			}
			oob := map[reconcile.Kind]int{}
			for _, r := range e.ledger(recAccount, provider) {
				if r.Status == reconcile.StatusOutOfBand {
					oob[r.Kind]++
				}
			}
			// The hour's token row, and the day's cost row (the key's at
			// OpenAI, its workspace's at Anthropic): billed more, with
			// out-of-band use that day.
			if oob[reconcile.KindTokens] != 1 || oob[reconcile.KindCost] != 1 {
				t.Fatalf("out_of_band rows: %v", oob)
			}
			st, _ := e.o.UsageReader(recAccount, provider)
			all, err := e.o.Alerts()
			if len(st.Alerts) != 1 || err != nil || len(all) != 1 || all[0].Account != recAccount {
				t.Fatalf("standing alert: slot %+v, list %+v %v", st.Alerts, all, err)
			}
		})
	}
}

// TestReconcileTroubleLeavesTheLedger: a provider outage, rate limiting,
// a revoked admin key or a missing fleet member leave the ledger as it was
// and the slot says why; the alerts of the last completed run stand; the
// admin key appears in no result, error or stored record.
func TestReconcileTroubleLeavesTheLedger(t *testing.T) {
	e := newRecEnv(t)
	key := e.byokKey("openai", 1, providertest.AdminKey{})
	e.reader("openai")
	awayFromTheHour(t, 20*time.Second)
	e.send("openai", "gpt-4o-mini", false)
	e.fakes["openai"].InjectUsage(key, providertest.UsageEvent{Model: "gpt-4o-mini", Input: 5, Output: 5})
	if res := e.run(recAccount, "openai", 0); !res.OK || len(res.Alerts) != 1 {
		t.Fatalf("first run: %+v", res)
	}
	before := e.ledgerJSON(recAccount, "openai")
	// More traffic, which a successful run would add to the ledger.
	e.send("openai", "gpt-4o-mini", true)
	f := e.fakes["openai"]
	for _, tc := range []struct {
		name   string
		set    func()
		reason reconcile.Reason
	}{
		{"outage", func() { f.FailAdmin(providertest.Response{Status: 503, Body: `{"error":{"message":"down"}}`}, -1) }, reconcile.ReasonUnavailable},
		{"rate limited", func() {
			f.FailAdmin(providertest.Response{Status: 429, Header: map[string]string{"Retry-After": "3600"}, Body: `{}`}, -1)
		}, reconcile.ReasonRateLimited},
		{"revoked admin key", func() { f.FailAdmin(providertest.Response{}, 0); f.RevokeAdmin(openAIAdmin) }, reconcile.ReasonKeyRejected},
	} {
		tc.set()
		res := e.run(recAccount, "openai", 0)
		if res.OK || res.Reason != tc.reason {
			t.Errorf("%s: %+v", tc.name, res)
		}
		if after := e.ledgerJSON(recAccount, "openai"); after != before {
			t.Errorf("%s changed the ledger", tc.name)
		}
		st, _ := e.o.UsageReader(recAccount, "openai")
		if st.LastRun == nil || st.LastRun.OK || st.LastRun.Reason != tc.reason || len(st.Alerts) != 1 {
			t.Errorf("%s: the slot says %+v, alerts %d", tc.name, st.LastRun, len(st.Alerts))
		}
		b, _ := json.Marshal(res)
		if strings.Contains(string(b), "RECcanary") || strings.Contains(st.LastRun.Error, "RECcanary") {
			t.Errorf("%s: the admin key shows: %s", tc.name, b)
		}
		t.Logf("%s: %s", tc.name, st.LastRun.Error)
	}
	// The store file holds neither the admin key nor the BYOK key in the
	// clear.
	e.s.Close()
	raw, _ := os.ReadFile(e.path)
	for _, needle := range []string{"RECcanary", "AcmeAcme0123456789"} {
		if bytes.Contains(raw, []byte(needle)) {
			t.Errorf("the store file holds %s in plaintext", needle)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.results) != 4 {
		t.Errorf("OnResult heard %d runs, want 4", len(e.results))
	}
}

// TestReconcileUnmatchedKeyIsTheOwnersChoice: a key the provider lists
// under a redacted form that does not match is left to the owner, with the
// organisation's keys as candidates; the owner's choice maps it from the
// next run on. A rotated key's earlier rows keep their match.
func TestReconcileUnmatchedKeyIsTheOwnersChoice(t *testing.T) {
	e := newRecEnv(t)
	e.byokKey("openai", 1, providertest.AdminKey{Redacted: "sk-...????", Name: "bu1 prod"})
	e.reader("openai")
	awayFromTheHour(t, 20*time.Second)
	e.send("openai", "gpt-4o-mini", false)
	res := e.run(recAccount, "openai", 0)
	if !res.OK || len(res.Matches) != 1 || res.Matches[0].Status != reconcile.Missing || len(res.Matches[0].Candidates) < 2 {
		t.Fatalf("an unmatchable key: %+v", res.Matches)
	}
	for _, r := range e.ledger(recAccount, "openai") {
		if r.Credential != "" && r.Kind == reconcile.KindTokens && r.Status != reconcile.StatusUnmapped {
			t.Fatalf("row of the unmatched key: %+v", r)
		}
	}
	st, _ := e.o.UsageReader(recAccount, "openai")
	if len(st.Unmatched) != 1 {
		t.Fatalf("the slot shows %d keys to choose", len(st.Unmatched))
	}
	var keyID string
	for _, c := range st.Unmatched[0].Candidates {
		if c.Name == "bu1 prod" {
			keyID = c.ID
		}
	}
	fp := store.Fingerprint(e.byok["openai"])
	if _, err := e.o.ChooseProviderKey(recAccount, "openai", "fp_nothex", keyID); ops.KindOf(err) != ops.Invalid {
		t.Fatalf("a malformed fingerprint: %v", err)
	}
	if _, err := e.o.ChooseProviderKey(recAccount, "openai", fp, keyID); err != nil {
		t.Fatal(err)
	}
	res = e.run(recAccount, "openai", 0)
	if res.Matches[0].Status != reconcile.Matched || res.Matches[0].By != "owner" {
		t.Fatalf("after the owner's choice: %+v", res.Matches)
	}
	// Rotate: the new key matches by its redacted form; the old key's
	// hour still matches under the owner's choice.
	e.byokKey("openai", 2, providertest.AdminKey{})
	e.send("openai", "gpt-4o-mini", false)
	res = e.run(recAccount, "openai", 0)
	if !res.OK || len(res.Matches) != 2 {
		t.Fatalf("after rotation: %+v", res)
	}
	for _, m := range res.Matches {
		if m.Status != reconcile.Matched {
			t.Fatalf("after rotation: %+v", res.Matches)
		}
	}
	for _, r := range e.ledger(recAccount, "openai") {
		if r.Kind == reconcile.KindTokens && r.Credential != "" && r.Status != reconcile.StatusMatch {
			t.Fatalf("after rotation: %+v", r)
		}
	}
}

// TestReconcilePlatformScope: the platform's own contract is reconciled
// with the platform's usage reader: the platform key's traffic of every
// account, against the organisation's records of the platform key.
func TestReconcilePlatformScope(t *testing.T) {
	e := newRecEnv(t)
	if _, err := e.s.CreateAccount("globex", "Globex"); err != nil {
		t.Fatal(err)
	}
	key := openAIAdmin
	if _, err := e.o.SaveUsageReader("", "openai", ops.UsageReaderInput{APIKey: &key}); err != nil {
		t.Fatal(err)
	}
	awayFromTheHour(t, 20*time.Second)
	e.send("openai", "gpt-4o-mini", false) // acme, no BYOK key: the platform key
	e.send("openai", "gpt-4o-mini", true)
	res := e.run("", "openai", 0)
	if !res.OK || len(res.Matches) != 1 || res.Matches[0].Status != reconcile.Matched || res.Rows == 0 {
		t.Fatalf("platform run: %+v", res)
	}
	for _, r := range e.ledger("", "openai") {
		if r.Kind == reconcile.KindTokens && r.Status != reconcile.StatusMatch {
			t.Fatalf("platform row: %+v", r)
		}
	}
	if rows := e.ledger(recAccount, "openai"); len(rows) != 0 {
		t.Fatalf("the account's ledger got the platform's rows: %+v", rows)
	}
	if readers, _ := e.o.UsageReaders(""); readers[0].Status != "active" {
		t.Fatalf("platform readers: %+v", readers)
	}
}

// TestUsageReaderChecks: what a usage-reader key must be, and its test.
func TestUsageReaderChecks(t *testing.T) {
	e := newRecEnv(t)
	bad := map[string]string{
		"":                                    "empty",
		"sk-proj-notAnAdminKey0123456789abc":  "not an admin key",
		"sk-admin-…abcd":                      "masked",
		"sk-ant-admin01-0123456789abcdefghij": "for anthropic",
	}
	for k, why := range bad {
		k := k
		_, err := e.o.SaveUsageReader(recAccount, "openai", ops.UsageReaderInput{APIKey: &k})
		if ops.KindOf(err) != ops.Invalid || !strings.Contains(err.Error(), why) {
			t.Errorf("key %q: %v (want %q)", why, err, why)
		}
		if err != nil && strings.Contains(err.Error(), "notAnAdmin") {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
	if _, err := e.o.SaveUsageReader(recAccount, "gemini", ops.UsageReaderInput{}); ops.KindOf(err) != ops.NotFound {
		t.Errorf("gemini: %v", err)
	}
	if _, err := e.o.SaveUsageReader("nobody", "openai", ops.UsageReaderInput{}); ops.KindOf(err) != ops.NotFound {
		t.Errorf("unknown account: %v", err)
	}
	ctx := context.Background()
	if _, err := e.o.TestUsageReader(ctx, recAccount, "openai", ops.UsageReaderInput{}); !errors.Is(err, ops.ErrNoStoredReader) {
		t.Errorf("test without a stored reader: %v", err)
	}
	pasted := openAIAdmin
	out, err := e.o.TestUsageReader(ctx, recAccount, "openai", ops.UsageReaderInput{APIKey: &pasted})
	if err != nil || out.Outcome != "ok" || out.Tested != "pasted" {
		t.Fatalf("pasted test: %+v %v", out, err)
	}
	e.reader("openai")
	e.fakes["openai"].RevokeAdmin(openAIAdmin)
	out, err = e.o.TestUsageReader(ctx, recAccount, "openai", ops.UsageReaderInput{})
	if err != nil || out.Outcome != "rejected" || out.Tested != "stored" || strings.Contains(out.Message, "RECcanary") {
		t.Fatalf("stored, revoked: %+v %v", out, err)
	}
	// Only the admin endpoint ever saw the admin key.
	for _, rec := range e.fakes["openai"].AdminRecords() {
		if !strings.HasPrefix(rec.Path, "/v1/organization/") {
			t.Errorf("admin request to %s", rec.Path)
		}
	}
	for _, rec := range e.fakes["openai"].Records() {
		if strings.Contains(rec.Credential, "RECcanary") {
			t.Errorf("the admin key reached the data plane: %s", rec.Path)
		}
	}
	// No config: runs and tests are Unavailable; the slot still lists.
	bare := &ops.Ops{Store: e.s}
	if _, err := bare.RunReconcile(ctx, recAccount, "openai", 0); ops.KindOf(err) != ops.Unavailable {
		t.Errorf("run without the config: %v", err)
	}
	if _, err := e.o.RunReconcile(ctx, recAccount, "openai", 32); ops.KindOf(err) != ops.Invalid {
		t.Errorf("32 days: %v", err)
	}
	if st, err := bare.UsageReaders(recAccount); err != nil || len(st) != 2 {
		t.Errorf("listing without the config: %+v %v", st, err)
	}
	if err := e.o.DeleteUsageReader(recAccount, "openai"); err != nil {
		t.Fatal(err)
	}
	if err := e.o.DeleteUsageReader(recAccount, "openai"); ops.KindOf(err) != ops.NotFound {
		t.Errorf("second delete: %v", err)
	}
}

// TestReconcileProposalAccepted: a provider that bills 10 % below the list
// price for three settled days gets a discount proposal; the owner accepts
// it (kept in the store, shown as accepted), and the next run proposes
// nothing more for a rate the accepted term explains.
func TestReconcileProposalAccepted(t *testing.T) {
	e := newRecEnv(t)
	key := e.byokKey("openai", 1, providertest.AdminKey{})
	e.reader("openai")
	f := e.fakes["openai"]
	f.SetPriceFactor("", 0.9)
	fp := store.Fingerprint(key)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	// Three settled days of traffic (the gateway's side written as its
	// log writer would be given it; the provider's as the fake's own
	// records), a day and more old.
	for d := 4; d >= 2; d-- {
		at := today.AddDate(0, 0, -d).Add(10 * time.Hour)
		e.s.Record(&store.LogRecord{ID: fmt.Sprintf("%016x", at.UnixNano()), Time: at, AccountID: recAccount, Provider: "openai",
			UpstreamModel: "gpt-4o-mini", CredentialSource: "byok", CredentialFingerprint: fp, Status: 200,
			UsageRaw: []byte(`{"prompt_tokens":200000,"completion_tokens":50000}`)})
		f.InjectUsage(key, providertest.UsageEvent{Time: at, Model: "gpt-4o-mini", Input: 200000, Output: 50000})
	}
	res := e.run(recAccount, "openai", 7)
	if !res.OK || len(res.Proposals) != 1 || res.Proposals[0].Term.DiscountPercent != "10" {
		t.Fatalf("proposals: %+v", res.Proposals)
	}
	for _, r := range e.ledger(recAccount, "openai") {
		if r.Kind == reconcile.KindTokens && r.Status != reconcile.StatusMatch {
			t.Fatalf("token row: %+v", r)
		}
	}
	st, _ := e.o.UsageReader(recAccount, "openai")
	if len(st.Proposals) != 1 || st.Proposals[0].AcceptedAt != nil {
		t.Fatalf("slot proposals: %+v", st.Proposals)
	}
	id := st.Proposals[0].ID
	if _, err := e.o.AcceptProposal(recAccount, "openai", "prop_nope", "owner@acme"); ops.KindOf(err) != ops.NotFound {
		t.Fatalf("an unknown proposal: %v", err)
	}
	v, err := e.o.AcceptProposal(recAccount, "openai", id, "owner@acme")
	if err != nil || v.AcceptedAt == nil || v.Term.DiscountPercent != "10" {
		t.Fatalf("accept: %+v %v", v, err)
	}
	if _, err := e.o.AcceptProposal(recAccount, "openai", id, "owner@acme"); ops.KindOf(err) != ops.Conflict {
		t.Fatalf("accepted twice: %v", err)
	}
	// The term is now a contract term of the BYOK credential, from the
	// next UTC midnight: the requests from then on are priced under it.
	c, err := e.o.Contract(recAccount, "openai")
	if err != nil || len(c.Terms) != 1 || c.Terms[0].DiscountPercent != "10" || !c.Terms[0].EffectiveFrom.Equal(today.AddDate(0, 0, 1)) ||
		v.ContractFrom == nil || !v.ContractFrom.Equal(c.Terms[0].EffectiveFrom) || c.InForce != nil {
		t.Fatalf("the credential's contract after accepting: %+v (view %v) %v", c, v.ContractFrom, err)
	}
	st, _ = e.o.UsageReader(recAccount, "openai")
	if len(st.Proposals) != 1 || st.Proposals[0].AcceptedAt == nil {
		t.Fatalf("slot after accepting: %+v", st.Proposals)
	}
	// The term takes effect from the next UTC midnight, never on the days
	// already billed; the key's contract holds it from then on, and it
	// explains the rate: the next run has nothing to propose.
	res = e.run(recAccount, "openai", 7)
	st, _ = e.o.UsageReader(recAccount, "openai")
	if !res.OK || len(res.Proposals) != 0 || len(st.Proposals) != 0 {
		t.Fatalf("after accepting: %+v %+v", res.Proposals, st.Proposals)
	}
}
