package store

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// quiet keeps the log writer from flushing on its own during a test: only
// FlushLog and Close write.
var quiet = Options{LogFlushInterval: time.Hour}

func reqID(i int) string { return fmt.Sprintf("req_%08d", i) }

func logRec(i int, account, keyID string, at time.Time) *LogRecord {
	return &LogRecord{
		ID: reqID(i), Time: at, AccountID: account, KeyID: keyID,
		Endpoint: "chat.completions", Model: "gpt-4o", Provider: "openai", UpstreamModel: "gpt-4o",
		CredentialSource: "byok", CredentialVersion: 3, CredentialFingerprint: "fp_0123456789ab",
		Status: 200, Stream: i%2 == 0, LatencyMS: float64(i) + 0.5, TTFBMS: 1.25,
	}
}

func ids(recs []LogRecord) string {
	var out []string
	for _, r := range recs {
		out = append(out, strings.TrimPrefix(r.ID, "req_0000"))
	}
	return strings.Join(out, ",")
}

func TestLogRecordAndGet(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), quiet)
	at := time.Date(2030, 1, 1, 10, 0, 0, 5000, time.UTC)
	want := logRec(1, "acctA", "key_1", at)
	want.ErrorCode = "rate_limit"
	want.Status = 429
	s.Record(want)
	s.FlushLog()

	got, err := s.Log(reqID(1))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(at) {
		t.Errorf("time = %v, want %v", got.Time, at)
	}
	got.Time = want.Time
	if !reflect.DeepEqual(got, *want) {
		t.Errorf("Log = %+v\nwant %+v", got, *want)
	}
	if _, err := s.Log("req_missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Log(missing): %v, want ErrNotFound", err)
	}
	if s.DroppedLogRecords() != 0 {
		t.Errorf("dropped %d records", s.DroppedLogRecords())
	}
}

// Close writes what is still queued; records queued after Close are dropped,
// never block, and never reach a closed file.
func TestCloseFlushesQueuedRecords(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), quiet)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		s.Record(logRec(i, "acctA", "k", at))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	s.FlushLog() // returns at once on a closed store
	s.Record(logRec(99, "acctA", "k", at))

	s2 := openStore(t, path, masterKey(1), quiet)
	recs, _, err := s2.Logs(LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(recs); got != "0005,0004,0003,0002,0001" {
		t.Errorf("after reopen: %s, want the five records queued before Close", got)
	}
}

// Record never waits: when the queue is full, records are dropped and
// counted.
func TestRecordDoesNotBlockWhenQueueFull(t *testing.T) {
	s, _ := newStore(t)
	s.Close() // no writer drains the queue any more
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < logQueue+7; i++ {
			s.Record(&LogRecord{ID: reqID(i)})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked on a full queue")
	}
	if got := s.DroppedLogRecords(); got != 7 {
		t.Errorf("DroppedLogRecords = %d, want 7", got)
	}
}

func TestLogsFilterAndPaging(t *testing.T) {
	s, _ := newStore(t)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// 30 records: accounts alternate A,B,A,B...; keys k1 for i%3==0, else k2.
	var all, byA, byK1, byAK1 []string
	for i := 1; i <= 30; i++ {
		acct, key := "acctA", "k2"
		if i%2 == 0 {
			acct = "acctB"
		}
		if i%3 == 0 {
			key = "k1"
		}
		s.Record(logRec(i, acct, key, at.Add(time.Duration(i)*time.Second)))
		id := strings.TrimPrefix(reqID(i), "req_0000")
		all = append([]string{id}, all...)
		if acct == "acctA" {
			byA = append([]string{id}, byA...)
		}
		if key == "k1" {
			byK1 = append([]string{id}, byK1...)
			if acct == "acctA" {
				byAK1 = append([]string{id}, byAK1...)
			}
		}
	}
	s.FlushLog()

	for _, tc := range []struct {
		name   string
		f      LogFilter
		want   []string
		paging int
	}{
		{"all", LogFilter{}, all, 0},
		{"account", LogFilter{AccountID: "acctA"}, byA, 0},
		{"key", LogFilter{KeyID: "k1"}, byK1, 0},
		{"account and key", LogFilter{AccountID: "acctA", KeyID: "k1"}, byAK1, 0},
		{"no match", LogFilter{AccountID: "nobody"}, nil, 0},
		{"pages of 7", LogFilter{}, all, 7},
		{"pages of 10 (exact multiple)", LogFilter{}, all, 10},
		{"account pages of 4", LogFilter{AccountID: "acctB"}, diff(all, byA), 4},
		{"key pages of 3", LogFilter{KeyID: "k1"}, byK1, 3},
		{"page of 1", LogFilter{AccountID: "acctA", KeyID: "k1"}, byAK1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Limit = tc.paging
			var got []string
			pages := 0
			for {
				recs, next, err := s.Logs(f)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				if tc.paging > 0 && len(recs) > tc.paging {
					t.Fatalf("page of %d records, limit %d", len(recs), tc.paging)
				}
				for _, r := range recs {
					if (f.AccountID != "" && r.AccountID != f.AccountID) || (f.KeyID != "" && r.KeyID != f.KeyID) {
						t.Errorf("record %s does not match the filter", r.ID)
					}
					got = append(got, strings.TrimPrefix(r.ID, "req_0000"))
				}
				if next == "" {
					break
				}
				if len(recs) == 0 || next != recs[len(recs)-1].ID {
					t.Fatalf("next = %q, want the last id of a non-empty page", next)
				}
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				f.Before = next
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %s\nwant %s", strings.Join(got, ","), strings.Join(tc.want, ","))
			}
			if tc.paging > 0 {
				if wantPages := (len(tc.want) + tc.paging - 1) / tc.paging; pages != max(wantPages, 1) {
					t.Errorf("%d pages, want %d (no empty last page)", pages, wantPages)
				}
			}
		})
	}

	// Cursors that are not record ids.
	if recs, _, _ := s.Logs(LogFilter{Before: "req_99999999"}); len(recs) != 30 {
		t.Errorf("Before above every id: %d records, want 30", len(recs))
	}
	if recs, _, _ := s.Logs(LogFilter{Before: "req_00000010x"}); !strings.HasPrefix(ids(recs), "0010,0009,") {
		t.Errorf("Before between ids: starts %s, want 0010,0009", ids(recs))
	}
	if recs, next, _ := s.Logs(LogFilter{Before: reqID(1)}); len(recs) != 0 || next != "" {
		t.Errorf("Before the oldest: %d records, next %q; want none", len(recs), next)
	}
	if recs, next, _ := s.Logs(LogFilter{Before: "a"}); len(recs) != 0 || next != "" {
		t.Errorf("Before below every id: %d records, next %q", len(recs), next)
	}
}

func diff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

func TestLogsLimitDefaultsAndCap(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), quiet)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 1105
	for i := 1; i <= n; i++ {
		s.Record(&LogRecord{ID: reqID(i), Time: at, AccountID: "a", KeyID: "k"})
	}
	s.FlushLog()
	if s.DroppedLogRecords() != 0 {
		t.Fatalf("dropped %d records", s.DroppedLogRecords())
	}
	recs, next, _ := s.Logs(LogFilter{})
	if len(recs) != 100 || recs[0].ID != reqID(n) || next != reqID(n-99) {
		t.Errorf("default limit: %d records from %s, next %q; want 100 from %s", len(recs), recs[0].ID, next, reqID(n))
	}
	recs, next, _ = s.Logs(LogFilter{Limit: 5000})
	if len(recs) != 1000 || next != reqID(n-999) {
		t.Errorf("limit 5000: %d records, next %q; want the 1000 cap", len(recs), next)
	}
	recs, next, _ = s.Logs(LogFilter{Limit: 5000, Before: next})
	if len(recs) != n-1000 || next != "" || recs[len(recs)-1].ID != reqID(1) {
		t.Errorf("second page: %d records, next %q", len(recs), next)
	}
}

// A client paging through the log sees every old record once, in order,
// while new records keep arriving.
func TestLogsPagingStableUnderWrites(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), quiet)
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 100; i < 125; i++ {
		s.Record(logRec(i, "acctA", "k", at))
	}
	s.FlushLog()

	var got []string
	f := LogFilter{AccountID: "acctA", Limit: 4}
	newID := 1000
	for page := 0; ; page++ {
		recs, next, err := s.Logs(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got = append(got, r.ID)
		}
		// New traffic between pages, for this account and another.
		for j := 0; j < 3; j++ {
			s.Record(logRec(newID, "acctA", "k", at))
			s.Record(logRec(newID+1, "acctB", "k", at))
			newID += 2
		}
		s.FlushLog()
		if next == "" {
			break
		}
		if page > 50 {
			t.Fatal("paging does not end")
		}
		f.Before = next
	}
	var want []string
	for i := 124; i >= 100; i-- {
		want = append(want, reqID(i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("paged\n%s\nwant\n%s", strings.Join(got, ","), strings.Join(want, ","))
	}
	// The new records are there, on a fresh first page.
	recs, _, _ := s.Logs(LogFilter{AccountID: "acctA", Limit: 1})
	if len(recs) != 1 || recs[0].ID <= reqID(124) {
		t.Errorf("newest record after paging = %v", recs)
	}
}

func TestPruneLogs(t *testing.T) {
	clk := setClock(t, time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC))
	s := openStore(t, dbPath(t), masterKey(1), quiet)
	t0 := clk.Now()
	// Ten records a minute apart, the newest one minute old.
	for i := 1; i <= 10; i++ {
		s.Record(logRec(i, "a", "k", t0.Add(time.Duration(i-11)*time.Minute)))
	}
	s.FlushLog() // also runs the writer's first prune, with the default limits
	all := func() string {
		recs, _, err := s.Logs(LogFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return ids(recs)
	}
	if got := all(); got != "0010,0009,0008,0007,0006,0005,0004,0003,0002,0001" {
		t.Fatalf("default retention dropped records: %s", got)
	}

	s.pruneLogs(8, 24*time.Hour) // by count
	if got := all(); got != "0010,0009,0008,0007,0006,0005,0004,0003" {
		t.Errorf("count limit 8: %s", got)
	}
	s.pruneLogs(100, 5*time.Minute) // by age: records 6..10 are 5..1 minutes old
	if got := all(); got != "0010,0009,0008,0007,0006" {
		t.Errorf("age limit 5m: %s", got)
	}
	clk.Advance(2*time.Minute + time.Second) // records 10..6 are now 3m1s..7m1s old
	s.pruneLogs(100, 5*time.Minute)
	if got := all(); got != "0010,0009" {
		t.Errorf("age limit 5m after 2m: %s", got)
	}
	s.pruneLogs(1, 24*time.Hour)
	if got := all(); got != "0010" {
		t.Errorf("count limit 1: %s", got)
	}
	clk.Advance(time.Hour)
	s.pruneLogs(100, 5*time.Minute)
	if got := all(); got != "" {
		t.Errorf("everything expired: %s", got)
	}
	s.pruneLogs(100, 5*time.Minute) // on an empty log
}

// The writer applies LogMaxRecords and LogMaxAge from Options when it
// flushes.
func TestRetentionOptions(t *testing.T) {
	clk := setClock(t, time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC))
	s := openStore(t, dbPath(t), masterKey(1), Options{LogFlushInterval: time.Hour, LogMaxRecords: 5, LogMaxAge: time.Hour})
	for i := 1; i <= 10; i++ { // 200, 180, ... 20 minutes old
		s.Record(logRec(i, "a", "k", clk.Now().Add(-time.Duration(11-i)*20*time.Minute)))
	}
	s.FlushLog()
	recs, _, _ := s.Logs(LogFilter{})
	if got := ids(recs); got != "0010,0009,0008" {
		t.Errorf("after flush with max 5 records and 1h: %s, want 0010,0009,0008", got)
	}
}

func lastTxID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// An idle store does not write: a flush with no new records and no clock
// that moved commits no transaction (each bbolt commit is an fsync, and the
// writer flushes several times a second).
func TestIdleFlushDoesNotWrite(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), quiet)
	mustAccount(t, s, "acctA")
	plain, _, _ := s.CreateAPIKey("acctA", "k")
	e, _ := s.Snapshot().LookupKey(HashAPIKey(plain))
	e.Touch(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	s.Record(logRec(1, "acctA", "k", time.Now()))
	s.FlushLog()

	before := lastTxID(t, s)
	s.FlushLog()
	s.FlushLog()
	if after := lastTxID(t, s); after != before {
		t.Errorf("idle flushes committed %d transactions", after-before)
	}
	// A moved clock is written on the next flush, once.
	e.Touch(time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC).UnixNano())
	s.FlushLog()
	s.FlushLog()
	if after := lastTxID(t, s); after != before+1 {
		t.Errorf("a moved clock took %d transactions to persist, want 1", after-before)
	}
}

// filterRecs is the plain answer to f over recs (oldest first): matching
// records, newest first.
func filterRecs(recs []*LogRecord, f LogFilter) []string {
	var out []string
	for i := len(recs) - 1; i >= 0; i-- {
		r := recs[i]
		if (f.AccountID == "" || r.AccountID == f.AccountID) && (f.KeyID == "" || r.KeyID == f.KeyID) &&
			(f.Provider == "" || r.Provider == f.Provider) && (f.CredentialSource == "" || r.CredentialSource == f.CredentialSource) &&
			(f.Status == 0 || r.Status == f.Status) && (f.From.IsZero() || !r.Time.Before(f.From)) && (f.To.IsZero() || r.Time.Before(f.To)) {
			out = append(out, r.ID)
		}
	}
	return out
}

// pageAll walks every page of f with the given limit; between pages it
// runs between (new traffic).
func pageAll(t *testing.T, s *Store, f LogFilter, limit int, between func()) []string {
	t.Helper()
	f.Limit = limit
	var got []string
	for pages := 1; ; pages++ {
		recs, next, err := s.Logs(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) > limit {
			t.Fatalf("page of %d records, limit %d", len(recs), limit)
		}
		for _, r := range recs {
			got = append(got, r.ID)
		}
		if between != nil {
			between()
		}
		if next == "" {
			return got
		}
		if len(recs) == 0 || next != recs[len(recs)-1].ID {
			t.Fatalf("next = %q, want the last id of a non-empty page", next)
		}
		if pages > 200 {
			t.Fatal("paging does not end")
		}
		f.Before = next
	}
}

// Provider, credential source, status and a time range, alone and
// together, with paging, for gateway-shaped ids (time in hex, so a range
// seeks) and for other ids that sort by time too.
func TestLogsFilterByProviderSourceStatusAndTime(t *testing.T) {
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	providers := []string{"openai", "anthropic", ""}
	sources := []string{"byok", "platform", ""}
	statuses := []int{200, 429, 200, 502}
	for _, style := range []string{"gateway", "other"} {
		t.Run(style, func(t *testing.T) {
			s := openStore(t, dbPath(t), masterKey(1), quiet)
			var all []*LogRecord
			newRec := func(i int, at time.Time) *LogRecord {
				r := logRec(i, []string{"acctA", "acctB"}[i%2], "k", at)
				if style == "gateway" {
					r.ID = fmt.Sprintf("%016x%08x", at.UnixNano(), i)
				}
				r.Provider, r.CredentialSource, r.Status = providers[i%3], sources[(i/2)%3], statuses[i%4]
				return r
			}
			for i := 1; i <= 60; i++ { // a minute apart
				r := newRec(i, base.Add(time.Duration(i)*time.Minute))
				all = append(all, r)
				s.Record(r)
			}
			s.FlushLog()

			from, to := base.Add(15*time.Minute), base.Add(45*time.Minute+30*time.Second)
			for _, f := range []LogFilter{
				{Provider: "openai"},
				{Provider: "anthropic", AccountID: "acctB"},
				{CredentialSource: "platform"},
				{Status: 429},
				{Status: 404},
				{From: from},
				{To: to},
				{From: from, To: to},
				{From: from, To: to, Provider: "openai", Status: 200},
				{From: from, To: to, CredentialSource: "byok", AccountID: "acctA"},
				{From: base.Add(20 * time.Minute), To: base.Add(20 * time.Minute)}, // empty range
				{From: base.Add(20 * time.Minute), To: base.Add(21 * time.Minute)}, // one record
				{From: base.Add(time.Hour), To: base.Add(2 * time.Hour)},           // just the last one
				{From: base.Add(-time.Hour), To: base.Add(time.Minute)},            // before the first
				{To: base.Add(100 * time.Hour)},                                    // after the last
			} {
				want := filterRecs(all, f)
				for _, limit := range []int{1, 4, 7, 100} {
					if got := pageAll(t, s, f, limit, nil); strings.Join(got, ",") != strings.Join(want, ",") {
						t.Errorf("%+v, pages of %d:\n got %v\nwant %v", f, limit, got, want)
					}
				}
			}

			// Paging a range while new traffic arrives, newer than the range
			// and newer than every record: the walk is unchanged.
			f := LogFilter{From: from, To: to, Provider: "openai"}
			want := filterRecs(all, f)
			n := 1000
			got := pageAll(t, s, f, 2, func() {
				for j := 0; j < 3; j++ {
					s.Record(newRec(n, base.Add(time.Duration(n)*time.Minute)))
					n++
				}
				s.FlushLog()
			})
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("range under writes:\n got %v\nwant %v", got, want)
			}
			// An open-ended walk under writes sees the old records once.
			f = LogFilter{From: from, Status: 200}
			want = filterRecs(all, f)
			if len(want) == 0 {
				t.Fatal("no records to walk")
			}
			got = pageAll(t, s, LogFilter{From: from, Status: 200, Before: all[len(all)-1].ID + "~"}, 3, func() {
				s.Record(newRec(n, base.Add(time.Duration(n)*time.Minute)))
				n++
				s.FlushLog()
			})
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("open range under writes:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestPruneLargeBacklog prunes more records than one batch, keeping the
// newest, with the stored count in step with the bucket.
func TestPruneLargeBacklog(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "ar.db"), bytes.Repeat([]byte{7}, 32), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Now().UTC()
	const total, keep = 2*pruneBatch + 1234, 1000
	for i := 0; i < total; i++ {
		s.Record(&LogRecord{ID: fmt.Sprintf("%016x%08x", at.UnixNano(), i), Time: at, AccountID: "a"})
		if i%4000 == 3999 {
			s.FlushLog()
		}
	}
	s.FlushLog()
	s.pruneLogs(keep, time.Hour)
	var n, counted int
	var first string
	s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketLogs.name).Stats().KeyN
		counted = logCount(tx)
		k, _ := tx.Bucket(bucketLogs.name).Cursor().First()
		first = string(k)
		return nil
	})
	if n != keep || counted != keep {
		t.Fatalf("after pruning %d records to %d: %d left, count says %d", total, keep, n, counted)
	}
	if want := fmt.Sprintf("%016x%08x", at.UnixNano(), total-keep); first != want {
		t.Errorf("oldest kept %s, want %s", first, want)
	}
}

// MaxScan bounds one call's reading; its cursor resumes the search where it
// stopped, so walking the pages finds every match exactly once. A filter
// with From stops at the first gateway id older than From, matching or not.
func TestLogsMaxScanAndFromStop(t *testing.T) {
	s, _ := newStore(t)
	base := time.Now().Add(-time.Hour).UTC()
	gwID := func(at time.Time, i int) string { return fmt.Sprintf("%016x%08x", at.UnixNano(), i) }
	for i := 0; i < 100; i++ {
		at := base.Add(time.Duration(i) * time.Second)
		r := logRec(i, "acme", "k", at)
		r.ID = gwID(at, i)
		if i%25 == 0 {
			r.Provider = "anthropic"
		}
		s.Record(r)
	}
	s.FlushLog()
	var found []string
	before, calls := "", 0
	for {
		recs, next, err := s.Logs(LogFilter{AccountID: "acme", Provider: "anthropic", Before: before, MaxScan: 10})
		if err != nil {
			t.Fatal(err)
		}
		calls++
		for _, r := range recs {
			found = append(found, r.ID)
		}
		if next == "" {
			break
		}
		before = next
	}
	if len(found) != 4 || calls < 10 {
		t.Fatalf("found %d matches in %d calls", len(found), calls)
	}
	// From: the 30 newest seconds hold one anthropic record (i=75).
	recs, next, err := s.Logs(LogFilter{AccountID: "acme", Provider: "anthropic", From: base.Add(70 * time.Second)})
	if err != nil || len(recs) != 1 || next != "" {
		t.Fatalf("From: %d records, next %q, %v", len(recs), next, err)
	}
}
