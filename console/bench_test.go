package console

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// BenchmarkLogsPage renders one Request Logs page (server side, 50 rows)
// over a log of 100,000 records, 10% of them another account's. Target:
// under 50 ms per page. Run with
//
//	./xcaddy.sh test -run '^$' -bench LogsPage -benchtime 50x ./console/
func BenchmarkLogsPage(b *testing.B) {
	dir := b.TempDir()
	mk := storetest.MasterKey(b)
	s := storetest.OpenWith(b, filepath.Join(dir, "ar.db"), mk, store.Options{LogMaxRecords: 200000, LogFlushInterval: 5 * time.Millisecond})
	s.CreateAccount("acme", "acme")
	s.CreateAccount("globex", "globex")
	_, k1, _ := s.CreateAPIKey("acme", "prod")
	_, k2, _ := s.CreateAPIKey("acme", "ci")
	u, _ := s.CreateUser("acme", "o@acme.test", store.RoleOwner)
	tok, _, _ := s.IssueSetupToken("acme", u.ID, time.Hour)
	s.RedeemSetupToken(tok, testPassword)
	sid, _, _ := s.CreateSession(u)

	const n = 100000
	start := time.Now().Add(-n * time.Second)
	for i := 0; i < n; i++ {
		t0 := start.Add(time.Duration(i) * time.Second)
		rec := &store.LogRecord{ID: fmt.Sprintf("%016x%08x", t0.UnixNano(), i), Time: t0.UTC(), AccountID: "acme", KeyID: k1.ID,
			Endpoint: "chat.completions", Model: "gpt-4o", Provider: "openai", UpstreamModel: "gpt-4o-2024-08-06", CredentialSource: "byok",
			CredentialVersion: 3, CredentialFingerprint: "fp_0123456789ab", Status: 200, LatencyMS: 812, PromptTokens: 120, CompletionTokens: 300, TotalTokens: 420,
			Attempts: []store.Attempt{{Provider: "openai", Model: "gpt-4o", CredentialSource: "byok", Status: 200, DurationMS: 800}}}
		switch {
		case i%10 == 0:
			rec.AccountID, rec.KeyID = "globex", "key_other"
		case i%4 == 0:
			rec.KeyID, rec.CredentialSource, rec.Status = k2.ID, "platform", 503
		}
		s.Record(rec)
		if i%4000 == 3999 {
			s.FlushLog()
		}
	}
	s.FlushLog()
	h, err := New(Config{Store: s})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, query string }{
		{"newest", ""},
		{"filtered_key_platform_5xx", "?key=" + k2.ID + "&source=platform&status=5xx&range=30d"},
		// Worst case: a filter nothing matches; the page stops at its
		// read budget (logScanBudget records) and offers "Older".
		{"no_match_budget", "?provider=anthropic"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest("GET", "/console/logs"+c.query, nil)
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sid})
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				want := logPageSize
				if strings.Contains(c.query, "anthropic") {
					want = 0
				}
				if want == 0 && !strings.Contains(w.Body.String(), `id="partial"`) {
					b.Fatal("the page does not say it stopped at its read budget")
				}
				if w.Code != 200 || strings.Count(w.Body.String(), `<details class="logrow"`) != want {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
