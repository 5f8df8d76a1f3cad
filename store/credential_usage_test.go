package store

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

func TestCredentialUsageByClassAndFingerprint(t *testing.T) {
	p := dbPath(t)
	s := openStore(t, p, masterKey(1), usageQuiet)
	h := time.Date(2030, 5, 1, 10, 0, 0, 0, time.UTC)
	recs := []*LogRecord{
		// OpenAI: 30 prompt tokens of which 10 cached, 5 completion.
		{ID: "1", Time: h.Add(time.Minute), AccountID: "acme", Provider: "openai", UpstreamModel: "gpt-4o-mini", CredentialSource: "byok",
			CredentialFingerprint: "fp_a", Status: 200, UsageRaw: []byte(`{"prompt_tokens":30,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":10}}`)},
		{ID: "2", Time: h.Add(59 * time.Minute), AccountID: "acme", Provider: "openai", UpstreamModel: "gpt-4o-mini", CredentialSource: "byok",
			CredentialFingerprint: "fp_a", Status: 200, UsageRaw: []byte(`{"prompt_tokens":3,"completion_tokens":2}`)},
		// The next hour, another fingerprint (a rotated key).
		{ID: "3", Time: h.Add(61 * time.Minute), AccountID: "acme", Provider: "openai", UpstreamModel: "gpt-4o-mini", CredentialSource: "byok",
			CredentialFingerprint: "fp_b", Status: 200, UsageRaw: []byte(`{"prompt_tokens":4,"completion_tokens":1}`)},
		// Anthropic with both cache-write lifetimes, by the Messages door.
		{ID: "4", Time: h.Add(2 * time.Minute), AccountID: "acme", Provider: "anthropic", UpstreamModel: "claude-sonnet-4-5", CredentialSource: "byok",
			CredentialFingerprint: "fp_c", Status: 200, API: "messages",
			UsageRaw: []byte(`{"input_tokens":7,"output_tokens":9,"cache_read_input_tokens":100,"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20}}`)},
		// A stream cut mid-way that still reported usage counts; a
		// refused request without usage does not; nor does a request
		// no provider served.
		{ID: "5", Time: h.Add(3 * time.Minute), AccountID: "acme", Provider: "openai", UpstreamModel: "gpt-4o-mini", CredentialSource: "byok",
			CredentialFingerprint: "fp_a", Status: 499, UsageRaw: []byte(`{"prompt_tokens":1,"completion_tokens":1}`)},
		{ID: "6", Time: h.Add(4 * time.Minute), AccountID: "acme", Provider: "openai", UpstreamModel: "gpt-4o-mini", CredentialSource: "byok",
			CredentialFingerprint: "fp_a", Status: 429},
		{ID: "7", Time: h.Add(5 * time.Minute), AccountID: "acme", Model: "nope", Status: 404},
		// Platform traffic of two accounts; a 2xx with no usage.
		{ID: "8", Time: h.Add(6 * time.Minute), AccountID: "acme", Provider: "openai", UpstreamModel: "gpt-4o", CredentialSource: "platform",
			Status: 200, UsageRaw: []byte(`{"prompt_tokens":2,"completion_tokens":2}`)},
		{ID: "9", Time: h.Add(7 * time.Minute), AccountID: "globex", Provider: "openai", UpstreamModel: "gpt-4o", CredentialSource: "platform", Status: 200},
	}
	// Half before the flush, half after: a read sees both exactly once.
	for _, r := range recs[:4] {
		s.Record(r)
	}
	s.FlushLog()
	for _, r := range recs[4:] {
		s.Record(r)
	}
	s.SyncLog()
	q := CredentialUsageQuery{From: h, To: h.Add(2 * time.Hour)}
	got, err := s.CredentialUsage(q)
	if err != nil {
		t.Fatal(err)
	}
	want := []CredentialUsage{
		// Key order: each dimension is length-prefixed.
		{Hour: h, Source: "byok", Account: "acme", Provider: "openai", Fingerprint: "fp_a", Model: "gpt-4o-mini", API: "chat",
			CredentialCounters: CredentialCounters{Requests: 3, Input: 20 + 3 + 1, CacheRead: 10, Output: 5 + 2 + 1,
				// gpt-4o-mini list: $0.15 input, $0.075 cached, $0.60 output per 1M.
				CostNanoUSD: (20*150 + 10*75 + 5*600) + (3*150 + 2*600) + (1*150 + 1*600)}},
		{Hour: h, Source: "byok", Account: "acme", Provider: "anthropic", Fingerprint: "fp_c", Model: "claude-sonnet-4-5", API: "messages",
			CredentialCounters: CredentialCounters{Requests: 1, Input: 7, CacheRead: 100, CacheWrite5m: 10, CacheWrite1h: 20, Output: 9,
				// $3 input, $0.30 read, $3.75 5m write, $6 1h write, $15 output per 1M.
				CostNanoUSD: 7*3000 + 100*300 + 10*3750 + 20*6000 + 9*15000}},
		{Hour: h, Source: "platform", Account: "acme", Provider: "openai", Model: "gpt-4o", API: "chat",
			CredentialCounters: CredentialCounters{Requests: 1, Input: 2, Output: 2, CostNanoUSD: 2*2500 + 2*10000}},
		{Hour: h, Source: "platform", Account: "globex", Provider: "openai", Model: "gpt-4o", API: "chat",
			CredentialCounters: CredentialCounters{Requests: 1, NoUsage: 1, Unpriced: 1}},
		{Hour: h.Add(time.Hour), Source: "byok", Account: "acme", Provider: "openai", Fingerprint: "fp_b", Model: "gpt-4o-mini", API: "chat",
			CredentialCounters: CredentialCounters{Requests: 1, Input: 4, Output: 1, CostNanoUSD: 4*150 + 600}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("credential usage:\n got %+v\nwant %+v", got, want)
	}
	// Filters, and the same after a restart (merged, none pending).
	s.Close()
	s = openStore(t, p, masterKey(1), usageQuiet)
	got, err = s.CredentialUsage(CredentialUsageQuery{From: h, To: h.Add(2 * time.Hour), Source: "byok", Account: "acme", Provider: "openai"})
	if err != nil || len(got) != 2 || got[0].Fingerprint != "fp_a" || got[0].Requests != 3 || got[1].Fingerprint != "fp_b" {
		t.Fatalf("filtered after restart: %+v %v", got, err)
	}
	for _, bad := range []CredentialUsageQuery{
		{From: h, To: h},
		{From: h.Add(time.Minute), To: h.Add(time.Hour)},
		{From: h, To: h.Add(40 * 24 * time.Hour)},
	} {
		if _, err := s.CredentialUsage(bad); !errors.Is(err, ErrInvalidQuery) {
			t.Fatalf("query %+v: %v", bad, err)
		}
	}
}

// TestCredentialUsageTakesTheRecordsCost: a priced record's own cost (its
// price version and the credential's contract term) is the gateway side
// the reconciliation compares, not the list price; an unpriced record
// stays unpriced; a record from before requests were priced gets the
// list price.
func TestCredentialUsageTakesTheRecordsCost(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	h := time.Date(2030, 5, 1, 10, 0, 0, 0, time.UTC)
	rec := func(id, fp string, cost pricing.Cost) *LogRecord {
		return &LogRecord{ID: id, Time: h.Add(time.Minute), AccountID: "acme", Provider: "openai", UpstreamModel: "gpt-4o-mini",
			CredentialSource: "byok", CredentialFingerprint: fp, Status: 200, UsageRaw: []byte(`{"prompt_tokens":1000,"completion_tokens":100}`), Cost: cost}
	}
	// The list price of this usage is 1000 × 150 + 100 × 600 = 210,000
	// nano-USD; the contract priced it at half.
	s.Record(rec("1", "fp_contract", pricing.Cost{Version: "3-abc", NanoUSD: 105000, ListNanoUSD: 210000, PaidBy: "byok"}))
	s.Record(rec("2", "fp_unpriced", pricing.Cost{Version: "3-abc", Unpriced: true, Reason: pricing.NoModel, PaidBy: "byok"}))
	s.Record(rec("3", "fp_old", pricing.Cost{}))
	s.SyncLog()
	got, err := s.CredentialUsage(CredentialUsageQuery{From: h, To: h.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cost := map[string][2]int64{}
	for _, g := range got {
		cost[g.Fingerprint] = [2]int64{g.CostNanoUSD, g.Unpriced}
	}
	want := map[string][2]int64{"fp_contract": {105000, 0}, "fp_unpriced": {0, 1}, "fp_old": {210000, 0}}
	if !reflect.DeepEqual(cost, want) {
		t.Fatalf("cost, unpriced by fingerprint: %v, want %v", cost, want)
	}
}

func TestCredentialUsagePruned(t *testing.T) {
	c := setClock(t, time.Date(2030, 5, 1, 10, 30, 0, 0, time.UTC))
	s := openStore(t, dbPath(t), masterKey(1), Options{LogFlushInterval: time.Hour, UsageFlushInterval: time.Hour, UsageRetention: 48 * time.Hour})
	s.Record(&LogRecord{ID: "1", Time: c.Now(), AccountID: "a", Provider: "openai", UpstreamModel: "m", CredentialSource: "byok",
		CredentialFingerprint: "fp", Status: 200, UsageRaw: []byte(`{"prompt_tokens":1}`)})
	s.FlushLog()
	c.Advance(72 * time.Hour)
	s.pruneUsage(48 * time.Hour)
	h := time.Date(2030, 5, 1, 10, 0, 0, 0, time.UTC)
	if got, err := s.CredentialUsage(CredentialUsageQuery{From: h, To: h.Add(time.Hour)}); err != nil || len(got) != 0 {
		t.Fatalf("after retention: %+v %v", got, err)
	}
}
