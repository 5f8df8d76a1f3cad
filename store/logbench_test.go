package store

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkWriteLogs is the log writer's cost per record for a batch size:
// encoding plus the share of one bbolt commit (and fdatasync).
//
//	./xcaddy.sh test -run '^$' -bench WriteLogs -benchmem ./store/
func BenchmarkWriteLogs(b *testing.B) {
	for _, batch := range []int{128, 512, 2048} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openStore(&testing.T{}, b.TempDir()+"/bench.db", masterKey(1), Options{LogFlushInterval: time.Hour})
			defer s.Close()
			recs := make([]*LogRecord, batch)
			n := 0
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range recs {
					n++
					recs[j] = &LogRecord{ID: fmt.Sprintf("%016x%08x", time.Now().UnixNano(), n), Time: time.Now(), AccountID: "acme", KeyID: "key_0123456789abcdef",
						Endpoint: "/v1/chat/completions", Model: "gpt-4o-mini", Provider: "openai", UpstreamModel: "gpt-4o-mini", CredentialSource: "byok",
						CredentialVersion: 3, CredentialFingerprint: "fp_a4b58eab1d2a", Status: 200, LatencyMS: 1.234, TTFBMS: 0.9,
						PromptTokens: 12, CompletionTokens: 9, TotalTokens: 21, UsageRaw: []byte(`{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}`),
						Attempts: []Attempt{{Provider: "openai", Model: "gpt-4o-mini", CredentialSource: "byok", Status: 200, DurationMS: 1.1}}}
				}
				if err := s.writeLogs(recs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenFullLog is opening a store whose request log holds 100,000
// records: bbolt rebuilds its free-page list by scanning the file, since
// the list is not written at every commit (see openLocal).
//
//	./xcaddy.sh test -run '^$' -bench OpenFullLog -benchtime 5x ./store/
func BenchmarkOpenFullLog(b *testing.B) {
	path := b.TempDir() + "/full.db"
	s, err := Open(path, masterKey(1), Options{LogFlushInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*LogRecord, 1000)
	for n := 0; n < 100; n++ {
		for j := range recs {
			recs[j] = &LogRecord{ID: fmt.Sprintf("%016x%08x", n, j), Time: time.Now(), AccountID: "acme", KeyID: "key_0123456789abcdef",
				Endpoint: "/v1/chat/completions", Model: "gpt-4o-mini", Provider: "openai", Status: 200, LatencyMS: 1.5,
				UsageRaw: []byte(`{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}`),
				Attempts: []Attempt{{Provider: "openai", Model: "gpt-4o-mini", Status: 200, DurationMS: 1.1}}}
		}
		if err := s.writeLogs(recs); err != nil {
			b.Fatal(err)
		}
	}
	// Prune half, as retention does, so the file has free pages to find.
	s.pruneLogs(50000, time.Hour)
	s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, err := Open(path, masterKey(1), Options{LogFlushInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
