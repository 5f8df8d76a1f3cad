package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Canaries: the admin key reaches the provider's admin endpoints and
// nothing else — not the data plane, not an error, a result, the ledger or
// any formatted value — and the BYOK keys never reach the admin endpoints
// nor anything the reconciler returns.
func TestSecretsCanary(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		t.Run(provider, func(t *testing.T) {
			h := newHarness(t, provider, day0)
			key, cred := h.key(1, workspaces(provider)[0])
			h.set(day0.Add(9 * time.Hour))
			h.send(key, modelsFor(provider)[0], false)
			h.set(day0.Add(30 * time.Hour))
			l := &MemoryLedger{}
			w := LastDays(day0, 2)
			ok, err := h.run(l, w, []Credential{cred}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			h.fake.RevokeAdmin(h.adminKey) // the fake now echoes the key in its 401
			failed, ferr := h.run(l, w, []Credential{cred}, Options{})
			if ferr == nil {
				t.Fatal("a revoked key worked")
			}
			r := h.reader(Options{})
			var seen []string
			for _, v := range []any{ok, failed, ferr, r, *clientOf(r), rowsOf(t, l, provider, w)} {
				b, _ := json.Marshal(v)
				seen = append(seen, string(b), fmt.Sprintf("%v %+v %#v %s", v, v, v, v))
			}
			all := strings.Join(seen, "\n")
			for name, secret := range map[string]string{"admin key": h.adminKey, "BYOK key": key} {
				if strings.Contains(all, secret) {
					t.Errorf("the %s is in the reconciler's output", name)
				}
			}
			for _, rec := range h.fake.Records() {
				if strings.Contains(fmt.Sprint(rec.Header), h.adminKey) {
					t.Errorf("the admin key reached the data plane: %s %s", rec.Method, rec.Path)
				}
			}
			admin := h.fake.AdminRecords()
			if len(admin) == 0 {
				t.Fatal("no admin requests recorded")
			}
			for _, rec := range admin {
				if rec.Credential != h.adminKey || strings.Contains(fmt.Sprint(rec.Header)+rec.Query, key) {
					t.Errorf("admin request %s with credential %.12s…", rec.Path, rec.Credential)
				}
				if !strings.HasPrefix(rec.Path, "/v1/organization") {
					t.Errorf("the admin key went to %s", rec.Path)
				}
			}
		})
	}
}

// Whatever a provider echoes that looks like a key is scrubbed.
func TestScrub(t *testing.T) {
	k := newAdminKey("sk-ant-admin01-SECRETsecretSECRET")
	for _, msg := range []string{
		"invalid x-api-key: sk-ant-admin01-SECRETsecretSECRET",
		"Incorrect API key provided: sk-proj-abcdefghijklmnop.",
		"token " + strings.Repeat("A1b2", 12),
	} {
		got := scrub(msg, k)
		if strings.Contains(got, "SECRET") || strings.Contains(got, "abcdefghijklmnop") || strings.Contains(got, "A1b2A1b2A1b2") {
			t.Errorf("scrub(%q) = %q", msg, got)
		}
	}
	if got := scrub(strings.Repeat("é", 400), k); len(got) > maxMessage+len("…") {
		t.Errorf("a long message is %d bytes", len(got))
	}
	if s := fmt.Sprintf("%v %+v %#v %s %q", k, k, k, k, k); strings.Contains(s, "SECRET") {
		t.Errorf("formatted: %s", s)
	}
	if _, err := NewOpenAI("sk-admin-x", Options{}); err != nil && strings.Contains(err.Error(), "sk-admin-x") {
		t.Errorf("setup error quotes the key: %v", err)
	}
}

// Ping, the usage-reader key's Test button: one request to the usage
// endpoint, and a refused key says so.
func TestPing(t *testing.T) {
	for _, provider := range []string{"openai", "anthropic"} {
		h := newHarness(t, provider, day0)
		r := h.reader(Options{})
		if err := r.Ping(context.Background()); err != nil {
			t.Errorf("%s: %v", provider, err)
		}
		h.fake.RevokeAdmin(h.adminKey)
		err := r.Ping(context.Background())
		if ReasonOf(err) != ReasonKeyRejected || strings.Contains(err.Error(), h.adminKey) {
			t.Errorf("%s, revoked: %v", provider, err)
		}
		if recs := h.fake.AdminRecords(); len(recs) != 2 || !strings.Contains(recs[0].Path, "usage") {
			t.Errorf("%s: %d admin requests", provider, len(recs))
		}
	}
}
