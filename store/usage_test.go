package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// usageQuiet keeps the writer from flushing logs or usage on its own: only
// FlushLog, syncLog and Close write.
var usageQuiet = Options{LogFlushInterval: time.Hour, UsageFlushInterval: time.Hour}

// Three hours across a UTC midnight, so hour and day buckets differ.
var (
	uh0 = time.Date(2030, 5, 1, 22, 0, 0, 0, time.UTC)
	uh1 = uh0.Add(time.Hour)
	uh2 = uh0.Add(2 * time.Hour) // 2030-05-02T00:00Z
)

type urec struct {
	at                                              time.Time
	account, key, provider, model, upstream, source string
	status                                          int
	code                                            string
	stream                                          bool
	prompt, completion, cached, reasoning           int64
	latency                                         float64
}

// usageFixture: two accounts, three hours, streamed and non-streamed
// requests, failures with and without a provider. Latencies are exact in
// binary so sums compare exactly.
var usageFixture = []urec{
	{uh0.Add(5 * time.Minute), "acme", "key_a1", "openai", "gpt-4o", "gpt-4o-2024-08-06", "byok", 200, "", true, 100, 20, 50, 0, 10.5},
	{uh0.Add(10 * time.Minute), "acme", "key_a1", "openai", "gpt-4o", "gpt-4o-2024-08-06", "platform", 200, "", false, 200, 30, 0, 0, 20},
	{uh0.Add(59*time.Minute + 59*time.Second), "globex", "key_g1", "openai", "gpt-4o-mini", "", "platform", 200, "", false, 11, 1, 0, 0, 1.25},
	{uh1.Add(1 * time.Minute), "acme", "key_a2", "anthropic", "claude-sonnet", "claude-sonnet-4-5", "byok", 200, "", true, 300, 40, 100, 10, 30},
	{uh1.Add(2 * time.Minute), "acme", "key_a1", "", "no-such-model", "", "", 404, "model_not_found", false, 0, 0, 0, 0, 1},
	{uh1.Add(30 * time.Minute), "globex", "key_g1", "openai", "gpt-4o-mini", "gpt-4o-mini", "platform", 429, "rate_limit_exceeded", true, 0, 0, 0, 0, 2.5},
	{uh2, "globex", "key_g1", "openai", "gpt-4o-mini", "gpt-4o-mini", "platform", 200, "", true, 10, 5, 0, 0, 4},
	{uh2.Add(15 * time.Minute), "acme", "key_a1", "openai", "gpt-4o", "gpt-4o-2024-08-06", "byok", 502, "upstream_error", false, 0, 0, 0, 0, 8},
	{uh2.Add(20 * time.Minute), "globex", "key_g2", "mistral", "mistral-large", "mistral-large-latest", "byok", 200, "", false, 7, 3, 0, 0, 6},
	// A stream that broke after its 200: an error all the same.
	{uh2.Add(59*time.Minute + 59*time.Second), "acme", "key_a2", "anthropic", "claude-sonnet", "claude-sonnet-4-5", "byok", 200, "stream_interrupted", true, 50, 7, 0, 3, 16},
}

// Outside the three hours: one hour before and one after.
var usageOutside = []urec{
	{uh0.Add(-time.Second), "acme", "key_a1", "openai", "gpt-4o", "gpt-4o-2024-08-06", "byok", 200, "", false, 1000, 1000, 0, 0, 1000},
	{uh2.Add(time.Hour), "globex", "key_g1", "openai", "gpt-4o-mini", "gpt-4o-mini", "platform", 200, "", true, 1000, 1000, 0, 0, 1000},
}

func (u urec) record(id int) *LogRecord {
	return &LogRecord{
		ID: fmt.Sprintf("%016x%08x", u.at.UnixNano(), id), Time: u.at, AccountID: u.account, KeyID: u.key,
		Endpoint: "chat.completions", Model: u.model, Provider: u.provider, UpstreamModel: u.upstream,
		CredentialSource: u.source, Status: u.status, ErrorCode: u.code, Stream: u.stream,
		PromptTokens: u.prompt, CompletionTokens: u.completion, TotalTokens: u.prompt + u.completion,
		CachedTokens: u.cached, ReasoningTokens: u.reasoning, LatencyMS: u.latency,
	}
}

func recordAll(s *Store, recs []urec, firstID int) {
	for i, u := range recs {
		s.Record(u.record(firstID + i))
	}
}

// wantUsage computes a query's answer the plain way, record by record, for
// the records in recs.
func wantUsage(recs []urec, q UsageQuery) UsageResult {
	size := time.Hour
	if q.Bucket == "" {
		q.Bucket = "hour"
	}
	if q.Bucket == "day" {
		size = 24 * time.Hour
	}
	from, to := q.From.Truncate(size).UTC(), q.To.Truncate(size).UTC()
	if !to.Equal(q.To) {
		to = to.Add(size)
	}
	res := UsageResult{Bucket: q.Bucket, From: from, To: to, GroupBy: q.GroupBy, Series: []UsageBucket{}, Totals: []UsageGroup{}}
	if res.GroupBy == nil {
		res.GroupBy = []string{}
	}
	type acc struct {
		key map[string]string
		c   UsageCounters
	}
	series := map[time.Time]map[string]*acc{}
	totals := map[string]*acc{}
	for _, u := range recs {
		if u.at.Before(from) || !u.at.Before(to) || (q.AccountID != "" && u.account != q.AccountID) {
			continue
		}
		model := UnresolvedModel // no provider accepted the name
		if u.status >= 200 && u.status < 300 && u.upstream != "" {
			model = u.upstream
		}
		vals := map[string]string{DimAccount: u.account, DimKeyID: u.key, DimProvider: u.provider, DimModel: model, DimCredentialSource: u.source}
		key := map[string]string{}
		var id []string
		for _, g := range res.GroupBy {
			key[g] = vals[g]
			id = append(id, g+"="+vals[g])
		}
		c := UsageCounters{
			Requests: 1, PromptTokens: u.prompt, CompletionTokens: u.completion, TotalTokens: u.prompt + u.completion,
			CachedTokens: u.cached, ReasoningTokens: u.reasoning, LatencyMSSum: u.latency,
		}
		if u.status >= 400 || u.code != "" {
			c.Errors = 1
		}
		b := u.at.Truncate(size)
		if series[b] == nil {
			series[b] = map[string]*acc{}
		}
		for _, m := range []map[string]*acc{series[b], totals} {
			a := m[strings.Join(id, "\x00")]
			if a == nil {
				a = &acc{key: key}
				m[strings.Join(id, "\x00")] = a
			}
			a.c.Add(&c)
		}
		res.Total.Add(&c)
	}
	groups := func(m map[string]*acc) []UsageGroup {
		var ids []string
		for id := range m {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		out := []UsageGroup{}
		for _, id := range ids {
			out = append(out, UsageGroup{Key: m[id].key, UsageCounters: m[id].c})
		}
		return out
	}
	var times []time.Time
	for t := range series {
		times = append(times, t)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for _, t := range times {
		res.Series = append(res.Series, UsageBucket{Time: t, Groups: groups(series[t])})
	}
	res.Totals = groups(totals)
	return res
}

func mustUsage(t *testing.T, s *Store, q UsageQuery) UsageResult {
	t.Helper()
	res, err := s.Usage(q)
	if err != nil {
		t.Fatalf("Usage(%+v): %v", q, err)
	}
	checkTotals(t, res)
	return res
}

// checkTotals: each group's total is the sum of its series, and the grand
// total the sum of every group.
func checkTotals(t *testing.T, res UsageResult) {
	t.Helper()
	id := func(k map[string]string) string { b, _ := json.Marshal(k); return string(b) }
	sums := map[string]*UsageCounters{}
	var all UsageCounters
	for _, b := range res.Series {
		for _, g := range b.Groups {
			if sums[id(g.Key)] == nil {
				sums[id(g.Key)] = new(UsageCounters)
			}
			sums[id(g.Key)].Add(&g.UsageCounters)
			all.Add(&g.UsageCounters)
		}
	}
	if len(sums) != len(res.Totals) {
		t.Errorf("%d groups in the series, %d in totals", len(sums), len(res.Totals))
	}
	for _, g := range res.Totals {
		if s := sums[id(g.Key)]; s == nil || *s != g.UsageCounters {
			t.Errorf("totals[%v] = %+v, series sum %+v", g.Key, g.UsageCounters, s)
		}
	}
	if all != res.Total {
		t.Errorf("total = %+v, series sum %+v", res.Total, all)
	}
}

func sameUsage(t *testing.T, what string, got, want UsageResult) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestUsageRollups(t *testing.T) {
	setClock(t, uh2.Add(3*time.Hour))
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	all := append(append([]urec{}, usageFixture...), usageOutside...)
	recordAll(s, all, 1)
	s.FlushLog()

	// Hand-checked numbers for the three hours, every account.
	res := mustUsage(t, s, UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimCredentialSource, DimProvider}})
	want := UsageCounters{Requests: 10, Errors: 4, PromptTokens: 678, CompletionTokens: 106, TotalTokens: 784, CachedTokens: 150, ReasoningTokens: 13, LatencyMSSum: 99.25}
	if res.Total != want {
		t.Errorf("total = %+v\nwant %+v", res.Total, want)
	}
	if len(res.Series) != 3 || !res.Series[0].Time.Equal(uh0) || !res.Series[2].Time.Equal(uh2) {
		t.Errorf("series = %+v, want three hours from %v", res.Series, uh0)
	}
	var keys []string
	for _, g := range res.Totals {
		keys = append(keys, g.Key[DimCredentialSource]+"/"+g.Key[DimProvider])
	}
	// The request refused before a provider was chosen keeps empty values.
	if got := strings.Join(keys, ","); got != "/,byok/anthropic,byok/mistral,byok/openai,platform/openai" {
		t.Errorf("totals keys = %s", got)
	}
	if g := res.Totals[0]; g.Requests != 1 || g.Errors != 1 || len(g.Key) != 2 {
		t.Errorf("no-provider group = %+v", g)
	}

	for _, tc := range []struct {
		name string
		q    UsageQuery
	}{
		{"no grouping, hours", UsageQuery{From: uh0, To: uh2.Add(time.Hour)}},
		{"credential_source", UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimCredentialSource}}},
		{"provider", UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimProvider}}},
		{"model", UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimModel}}},
		{"key_id", UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimKeyID}}},
		{"account", UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimAccount}}},
		{"every dimension", UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimAccount, DimKeyID, DimProvider, DimModel, DimCredentialSource}}},
		{"model and credential_source", UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimModel, DimCredentialSource}}},
		{"days", UsageQuery{From: uh0, To: uh2.Add(time.Hour), Bucket: "day"}},
		{"days by provider", UsageQuery{From: uh0, To: uh2.Add(time.Hour), Bucket: "day", GroupBy: []string{DimProvider}}},
		{"account acme", UsageQuery{AccountID: "acme", From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimKeyID, DimProvider}}},
		{"account globex by day", UsageQuery{AccountID: "globex", From: uh0, To: uh2.Add(time.Hour), Bucket: "day", GroupBy: []string{DimModel}}},
		{"account with no usage", UsageQuery{AccountID: "initech", From: uh0, To: uh2.Add(time.Hour)}},
		{"the middle hour", UsageQuery{From: uh1, To: uh2, GroupBy: []string{DimAccount}}},
		{"mid-hour bounds widen to whole hours", UsageQuery{From: uh1.Add(20 * time.Minute), To: uh1.Add(40 * time.Minute), GroupBy: []string{DimAccount}}},
		{"everything, outside hours too", UsageQuery{From: uh0.Add(-5 * time.Hour), To: uh2.Add(5 * time.Hour), GroupBy: []string{DimAccount}}},
		{"acme over everything", UsageQuery{AccountID: "acme", From: uh0.Add(-5 * time.Hour), To: uh2.Add(5 * time.Hour)}},
		{"days, mid-day bounds", UsageQuery{From: uh1, To: uh2.Add(time.Minute), Bucket: "day", GroupBy: []string{DimCredentialSource}}},
		{"empty range", UsageQuery{From: uh2.Add(10 * time.Hour), To: uh2.Add(12 * time.Hour)}},
		{"other time zone", UsageQuery{From: uh0.In(time.FixedZone("X", 5*3600+1800)), To: uh2.Add(time.Hour).In(time.FixedZone("Y", -7*3600))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameUsage(t, tc.name, mustUsage(t, s, tc.q), wantUsage(all, tc.q))
		})
	}

	// The three hours of acme alone add up with globex to the whole.
	acme := mustUsage(t, s, UsageQuery{AccountID: "acme", From: uh0, To: uh2.Add(time.Hour)})
	globex := mustUsage(t, s, UsageQuery{AccountID: "globex", From: uh0, To: uh2.Add(time.Hour)})
	sum := acme.Total
	sum.Add(&globex.Total)
	if sum != want {
		t.Errorf("acme + globex = %+v, want %+v", sum, want)
	}

	// Default range: the 24 hours before now (uh2+3h), widened to hours.
	def := mustUsage(t, s, UsageQuery{})
	if def.Bucket != "hour" || !def.To.Equal(uh2.Add(3*time.Hour)) || !def.From.Equal(uh2.Add(-21*time.Hour)) || def.Total.Requests != 12 {
		t.Errorf("default query: bucket %s from %v to %v, %d requests", def.Bucket, def.From, def.To, def.Total.Requests)
	}
	if b, _ := json.Marshal(mustUsage(t, s, UsageQuery{From: uh2.Add(10 * time.Hour), To: uh2.Add(11 * time.Hour)})); !strings.Contains(string(b), `"group_by":[],"series":[],"totals":[]`) {
		t.Errorf("empty answer should carry empty arrays: %s", b)
	}
}

func TestUsageQueryErrors(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	for _, tc := range []struct {
		q    UsageQuery
		want string
	}{
		{UsageQuery{Bucket: "week"}, "bucket must be hour or day"},
		{UsageQuery{GroupBy: []string{"provider", "colour"}}, `unknown group_by dimension "colour"`},
		{UsageQuery{From: uh1, To: uh0}, "from must be before to"},
		{UsageQuery{From: uh1, To: uh1}, "from must be before to"},
		{UsageQuery{From: uh0, To: uh0.Add(MaxUsageRange + time.Second)}, "longer than 366 days"},
	} {
		_, err := s.Usage(tc.q)
		if !errors.Is(err, ErrInvalidQuery) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Usage(%+v) = %v, want ErrInvalidQuery with %q", tc.q, err, tc.want)
		}
	}
	if _, err := s.Usage(UsageQuery{From: uh0, To: uh0.Add(MaxUsageRange), GroupBy: []string{"model", "model"}}); err != nil {
		t.Errorf("366 days, repeated dimension: %v", err)
	}
}

func usageRows(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketUsage.name).Stats().KeyN; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// A request counts as soon as the writer has consumed its record, before
// any flush; flushing moves it to bbolt without counting it twice, and new
// traffic on the same rows adds up across memory and bbolt.
func TestUsageVisibleBeforeFlush(t *testing.T) {
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	q := UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimAccount, DimModel}}
	recordAll(s, usageFixture[:5], 1)
	s.syncLog(false) // records consumed and logged; usage stays in memory
	if n := usageRows(t, s); n != 0 {
		t.Fatalf("usage bucket has %d rows before a usage flush", n)
	}
	sameUsage(t, "in memory", mustUsage(t, s, q), wantUsage(usageFixture[:5], q))

	s.FlushLog()
	if n := usageRows(t, s); n == 0 {
		t.Fatal("FlushLog wrote no usage rows")
	}
	sameUsage(t, "flushed", mustUsage(t, s, q), wantUsage(usageFixture[:5], q))

	// The same rows again, plus the rest: half in bbolt, half in memory.
	recordAll(s, usageFixture, 100)
	s.syncLog(false)
	both := append(append([]urec{}, usageFixture[:5]...), usageFixture...)
	sameUsage(t, "bbolt + memory", mustUsage(t, s, q), wantUsage(both, q))
	s.FlushLog()
	sameUsage(t, "merged", mustUsage(t, s, q), wantUsage(both, q))
	if s.DroppedLogRecords() != 0 {
		t.Errorf("dropped %d records", s.DroppedLogRecords())
	}
}

// Close merges what is in memory: after a clean shutdown every request is
// counted, and rollups of the same hour from several runs add up.
func TestUsageCloseKeepsEverything(t *testing.T) {
	path := dbPath(t)
	q := UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimCredentialSource, DimProvider, DimModel, DimKeyID, DimAccount}}
	s := openStore(t, path, masterKey(1), usageQuiet)
	recordAll(s, usageFixture, 1)
	if err := s.Close(); err != nil { // no FlushLog: Close alone
		t.Fatal(err)
	}
	s = openStore(t, path, masterKey(1), usageQuiet)
	sameUsage(t, "after reopen", mustUsage(t, s, q), wantUsage(usageFixture, q))

	recordAll(s, usageFixture[3:], 100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, masterKey(1), usageQuiet)
	twice := append(append([]urec{}, usageFixture...), usageFixture[3:]...)
	sameUsage(t, "after a second run", mustUsage(t, s, q), wantUsage(twice, q))
	day := UsageQuery{Bucket: "day", From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimAccount}}
	sameUsage(t, "days after a second run", mustUsage(t, s, day), wantUsage(twice, day))
}

// A crash loses only the rollups not yet flushed: the file as it was after
// a flush (a consistent copy, taken while the store is open) holds every
// rollup flushed before it.
func TestUsageCrashKeepsFlushedRollups(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), usageQuiet)
	q := UsageQuery{From: uh0, To: uh2.Add(time.Hour), GroupBy: []string{DimAccount, DimProvider}}
	flushed, pending := usageFixture[:6], usageFixture[6:]
	recordAll(s, flushed, 1)
	s.FlushLog()
	recordAll(s, pending, 100)
	s.syncLog(false) // logged, rollups still in memory
	crashed := filepath.Join(t.TempDir(), "crashed.db")
	if err := s.db.View(func(tx *bolt.Tx) error { return tx.CopyFile(crashed, 0o600) }); err != nil {
		t.Fatal(err)
	}
	sameUsage(t, "live", mustUsage(t, s, q), wantUsage(usageFixture, q))

	c := openStore(t, crashed, masterKey(1), usageQuiet)
	sameUsage(t, "after a crash", mustUsage(t, c, q), wantUsage(flushed, q))
	// The request log itself was written before the crash.
	if recs, _, _ := c.Logs(LogFilter{}); len(recs) != len(usageFixture) {
		t.Errorf("crashed copy holds %d log records, want %d", len(recs), len(usageFixture))
	}
}

func TestUsageRetention(t *testing.T) {
	clk := setClock(t, time.Date(2030, 6, 1, 12, 30, 0, 0, time.UTC))
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	at := func(d time.Duration) urec {
		u := usageFixture[0]
		u.at = clk.Now().Add(-d)
		return u
	}
	recs := []urec{at(100 * 24 * time.Hour), at(91 * 24 * time.Hour), at(89 * 24 * time.Hour), at(time.Hour), at(0)}
	recordAll(s, recs, 1)
	s.FlushLog()
	q := UsageQuery{From: clk.Now().Add(-365 * 24 * time.Hour), To: clk.Now().Add(time.Hour)}
	if got := mustUsage(t, s, q).Total.Requests; got != 5 {
		t.Fatalf("before pruning: %d requests, want 5", got)
	}
	s.pruneUsage(s.log.usageRetention) // the default, 90 days
	sameUsage(t, "90 days", mustUsage(t, s, q), wantUsage(recs[2:], q))
	clk.Advance(89*24*time.Hour + 30*time.Minute) // recs[2] is now 178d30m old, recs[3] 89d1h30m
	s.pruneUsage(90 * 24 * time.Hour)
	q.From, q.To = clk.Now().Add(-365*24*time.Hour), clk.Now()
	sameUsage(t, "later", mustUsage(t, s, q), wantUsage(recs[3:], q))
	s.pruneUsage(time.Hour) // everything is older than that
	if got := mustUsage(t, s, q).Total.Requests; got != 0 {
		t.Errorf("after pruning to one hour: %d requests, want 0", got)
	}
	s.pruneUsage(time.Hour) // nothing left to prune

	// UsageRetention reaches the writer.
	s2 := openStore(t, dbPath(t), masterKey(1), Options{LogFlushInterval: time.Hour, UsageRetention: 48 * time.Hour})
	if s2.log.usageRetention != 48*time.Hour || s2.log.usageInterval != 10*time.Second {
		t.Errorf("retention %v, interval %v", s2.log.usageRetention, s2.log.usageInterval)
	}
}

// The record's own time decides its hour; only a record without one is
// counted at the store clock.
func TestUsageHourOfRecord(t *testing.T) {
	clk := setClock(t, time.Date(2030, 6, 1, 12, 30, 0, 0, time.UTC))
	s := openStore(t, dbPath(t), masterKey(1), usageQuiet)
	s.Record(&LogRecord{ID: "a", Time: time.Date(2030, 6, 1, 9, 59, 59, 999, time.FixedZone("X", 3600)), AccountID: "acme", Status: 200})
	s.Record(&LogRecord{ID: "b", AccountID: "acme", Status: 200})
	s.syncLog(false)
	res := mustUsage(t, s, UsageQuery{From: clk.Now().Add(-5 * time.Hour)})
	if len(res.Series) != 2 || !res.Series[0].Time.Equal(time.Date(2030, 6, 1, 8, 0, 0, 0, time.UTC)) ||
		!res.Series[1].Time.Equal(time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("series = %+v", res.Series)
	}
}

func TestUsageKeyRoundTrip(t *testing.T) {
	long := strings.Repeat("é", 300)
	for _, d := range []usageDims{
		{},
		{hour: 3600 * 500000, account: "acme", keyID: "key_1", provider: "openai", model: "gpt-4o", source: "byok"},
		{hour: 7200, account: "a\x00b", model: "m\x01\x00"},
	} {
		got, ok := parseUsageKey(d.key())
		if !ok || got != d {
			t.Errorf("round trip of %+v = %+v, %v", d, got, ok)
		}
	}
	d := dimsOf(&LogRecord{Time: uh0, Status: 200, UpstreamModel: long})
	if len(d.model) > maxDimLen || !strings.HasPrefix(long, d.model) || len(d.model) < maxDimLen-1 {
		t.Errorf("long model clipped to %d bytes", len(d.model))
	}
	if _, ok := parseUsageKey([]byte{0, 0, 0, 0, 0, 0, 0, 1, 9, 'a'}); ok {
		t.Error("truncated key parsed")
	}
}
