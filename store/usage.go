package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Usage rollups: per hour and per (account, key id, provider, model,
// credential source, front door, BYOK credential), the counters of
// UsageCounters: requests, tokens, and money (cost by payer, the BYOK
// requests' shadow platform cost, unpriced requests, tokens by price class
// and the price versions used). The log writer
// goroutine adds each record it consumes to an in-memory rollup (the request
// path does no extra work: Record stays one non-blocking channel send), and
// merges the rollup into the "usage" bucket every UsageFlushInterval, on
// FlushLog and on Close. A clean shutdown loses nothing; a crash loses at most
// one flush interval. Records Record drops because the queue is full are
// counted neither in the log nor in the rollups (DroppedLogRecords counts
// them).
//
// Bucket layout: key = hour (8-byte big-endian unix seconds) followed by the
// five dimensions, each as a uvarint length and its bytes (account first, so
// one account's rows within an hour share a prefix), and for front doors
// other than chat completions a sixth, the api (rows written before front
// doors, and chat rows, have none), and for BYOK requests a seventh, the
// credential's fingerprint (after an api dimension, empty for chat); value
// = the JSON of UsageCounters. A time range is a cursor seek.

// Usage dimensions, as named in UsageQuery.GroupBy and in a group's key.
const (
	DimCredentialSource = "credential_source"
	DimProvider         = "provider"
	DimModel            = "model"
	DimKeyID            = "key_id"
	DimAccount          = "account"
	// DimAPI is the front door: "chat", "embeddings", "messages",
	// "responses" (LogRecord.API).
	DimAPI = "api"
	// DimCredential is the BYOK credential that served, by fingerprint
	// (LogRecord.CredentialFingerprint): "" for the platform key. A
	// rotated key is a new credential.
	DimCredential = "credential"
)

// UsageDimensions lists every dimension a usage query can group by.
var UsageDimensions = []string{DimCredentialSource, DimProvider, DimModel, DimKeyID, DimAccount, DimAPI, DimCredential}

// maxPriceVersions bounds the price versions one rollup row lists.
const maxPriceVersions = 32

// MaxUsageRange bounds the time range of one usage query.
const MaxUsageRange = 366 * 24 * time.Hour

// ErrInvalidQuery marks a query the store refuses (bad bucket, unknown
// dimension, inverted or too long range). Its message says what to fix.
var ErrInvalidQuery = errors.New("invalid query")

// UsageCounters are the counters of one rollup.
type UsageCounters struct {
	Requests int64 `json:"requests"`
	// Errors counts requests answered with a status >= 400 or an error code.
	Errors           int64   `json:"errors"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	ReasoningTokens  int64   `json:"reasoning_tokens"`
	LatencyMSSum     float64 `json:"latency_ms_sum"`

	// Money, in nano-USD (1e-9 USD), by who paid: the account's own
	// provider contract (BYOK) or the platform. ShadowCostNanoUSD is what
	// the BYOK requests would have cost on the platform's price book.
	// Unpriced counts the requests whose cost is unknown (no price for
	// the model, no usage on the answer): they are in no sum, never $0.
	BYOKCostNanoUSD     int64 `json:"byok_cost_nano_usd"`
	PlatformCostNanoUSD int64 `json:"platform_cost_nano_usd"`
	ShadowCostNanoUSD   int64 `json:"shadow_cost_nano_usd"`
	Unpriced            int64 `json:"unpriced"`
	// Tokens by price class, as the costs counted them: uncached input,
	// cache reads, cache writes for 5 minutes and 1 hour, output
	// (reasoning included, as ReasoningTokens counts it).
	InputTokens        int64 `json:"input_tokens,omitempty"`
	CacheReadTokens    int64 `json:"cache_read_tokens,omitempty"`
	CacheWrite5mTokens int64 `json:"cache_write_5m_tokens,omitempty"`
	CacheWrite1hTokens int64 `json:"cache_write_1h_tokens,omitempty"`
	OutputTokens       int64 `json:"output_tokens,omitempty"`
	// PriceVersions lists the price versions the costs were priced
	// under, sorted (at most 32).
	PriceVersions []string `json:"price_versions,omitempty"`
}

// CostNanoUSD is the cost of every priced request, whoever paid.
func (c UsageCounters) CostNanoUSD() int64 { return c.BYOKCostNanoUSD + c.PlatformCostNanoUSD }

// Add adds o's counts to c (the admin API sums members' usage with it).
func (c *UsageCounters) Add(o *UsageCounters) {
	c.Requests += o.Requests
	c.Errors += o.Errors
	c.PromptTokens += o.PromptTokens
	c.CompletionTokens += o.CompletionTokens
	c.TotalTokens += o.TotalTokens
	c.CachedTokens += o.CachedTokens
	c.ReasoningTokens += o.ReasoningTokens
	c.LatencyMSSum += o.LatencyMSSum
	c.BYOKCostNanoUSD += o.BYOKCostNanoUSD
	c.PlatformCostNanoUSD += o.PlatformCostNanoUSD
	c.ShadowCostNanoUSD += o.ShadowCostNanoUSD
	c.Unpriced += o.Unpriced
	c.InputTokens += o.InputTokens
	c.CacheReadTokens += o.CacheReadTokens
	c.CacheWrite5mTokens += o.CacheWrite5mTokens
	c.CacheWrite1hTokens += o.CacheWrite1hTokens
	c.OutputTokens += o.OutputTokens
	for _, v := range o.PriceVersions {
		c.addVersion(v)
	}
}

// addVersion adds a price version to the sorted list, never sharing the
// slice it was given (Add's argument may be another row's).
func (c *UsageCounters) addVersion(v string) {
	i, found := slices.BinarySearch(c.PriceVersions, v)
	if found || v == "" || len(c.PriceVersions) >= maxPriceVersions {
		return
	}
	c.PriceVersions = slices.Insert(slices.Clip(c.PriceVersions), i, v)
}

// addCost counts a request's cost: by payer when priced, as unpriced
// otherwise; and its tokens by class and its price version.
func (c *UsageCounters) addCost(r *LogRecord) {
	cost := &r.Cost
	if cost.IsZero() {
		return
	}
	switch {
	case cost.Unpriced:
		c.Unpriced++
	case cost.PaidBy == "byok":
		c.BYOKCostNanoUSD += int64(cost.NanoUSD)
	default:
		c.PlatformCostNanoUSD += int64(cost.NanoUSD)
	}
	if s := &r.ShadowCost; s.Priced() {
		c.ShadowCostNanoUSD += int64(s.NanoUSD)
	}
	t := &cost.Tokens
	c.InputTokens += t.Input
	c.CacheReadTokens += t.CacheRead
	c.CacheWrite5mTokens += t.CacheWrite5m
	c.CacheWrite1hTokens += t.CacheWrite1h
	c.OutputTokens += t.Output
	if t.ReasoningApart {
		c.OutputTokens += t.Reasoning
	}
	c.addVersion(cost.Version)
}

func (c *UsageCounters) addRecord(r *LogRecord) {
	c.Requests++
	if r.Status >= 400 || r.ErrorCode != "" {
		c.Errors++
	}
	c.PromptTokens += r.PromptTokens
	c.CompletionTokens += r.CompletionTokens
	c.TotalTokens += r.TotalTokens
	c.CachedTokens += r.CachedTokens
	c.ReasoningTokens += r.ReasoningTokens
	c.LatencyMSSum += r.LatencyMS
	c.addCost(r)
}

// usageDims identifies one rollup row.
type usageDims struct {
	hour                                    int64 // unix seconds, a multiple of 3600
	account, keyID, provider, model, source string
	// api is the front door; "" for chat completions, so chat rows keep
	// the key they had before front doors (five dimensions).
	api string
	// credential is the BYOK credential's fingerprint ("" for the
	// platform key).
	credential string
}

// maxDimLen bounds each dimension in a row's key (a model name comes from
// the client and bbolt keys are at most 32 KiB).
const maxDimLen = 256

func clip(s string) string {
	if len(s) <= maxDimLen {
		return s
	}
	s = s[:maxDimLen]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// UnresolvedModel is the usage model of requests no provider accepted.
const UnresolvedModel = "-"

func dimsOf(r *LogRecord) usageDims {
	t := r.Time
	if t.IsZero() || t.Unix() < 0 {
		t = now() // no usable time on the record: count it now
	}
	// A model name is kept only when a provider accepted it (the same rule
	// as the metrics): an unknown or rejected name is client data, and a
	// row per invented name would grow the store without bound.
	model := UnresolvedModel
	if r.Status >= 200 && r.Status < 300 && r.UpstreamModel != "" {
		model = r.UpstreamModel
	}
	return usageDims{
		hour: hourOf(t.Unix()), account: clip(r.AccountID), keyID: clip(r.KeyID),
		provider: clip(r.Provider), model: clip(model), source: clip(r.CredentialSource),
		api: usageAPI(r), credential: clip(r.CredentialFingerprint),
	}
}

// usageAPI is a record's front door as its rollup key holds it: "" for
// chat completions.
func usageAPI(r *LogRecord) string {
	if api := APIOf(r); api != "chat" {
		return clip(api)
	}
	return ""
}

func hourOf(unix int64) int64 { return unix - unix%3600 }

func (d usageDims) dim(name string) string {
	switch name {
	case DimCredentialSource:
		return d.source
	case DimProvider:
		return d.provider
	case DimModel:
		return d.model
	case DimKeyID:
		return d.keyID
	case DimAccount:
		return d.account
	case DimAPI:
		if d.api == "" {
			return "chat"
		}
		return d.api
	case DimCredential:
		return d.credential
	}
	return ""
}

func hourKey(hour int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 64), uint64(hour))
}

func appendDim(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// accountPrefix is the key prefix of the account's rows in one hour.
func accountPrefix(hour int64, account string) []byte {
	return appendDim(hourKey(hour), account)
}

func (d usageDims) key() []byte {
	b := accountPrefix(d.hour, d.account)
	for _, s := range []string{d.keyID, d.provider, d.model, d.source} {
		b = appendDim(b, s)
	}
	if d.api != "" || d.credential != "" {
		b = appendDim(b, d.api)
	}
	if d.credential != "" {
		b = appendDim(b, d.credential)
	}
	return b
}

func parseUsageKey(k []byte) (usageDims, bool) {
	if len(k) < 8 {
		return usageDims{}, false
	}
	d := usageDims{hour: int64(binary.BigEndian.Uint64(k))}
	rest := k[8:]
	for _, p := range []*string{&d.account, &d.keyID, &d.provider, &d.model, &d.source} {
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return usageDims{}, false
		}
		*p = string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
	}
	// A sixth dimension, the front door (none, or empty: chat), and a
	// seventh, the BYOK credential.
	for _, p := range []*string{&d.api, &d.credential} {
		if len(rest) == 0 {
			break
		}
		n, w := binary.Uvarint(rest)
		if w <= 0 || uint64(len(rest)-w) < n {
			return usageDims{}, false
		}
		*p = string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
	}
	return d, len(rest) == 0
}

// usageRollup holds the rollups not yet merged into bbolt. The log writer
// goroutine is the only writer; queries read it under mu.
type usageRollup struct {
	mu      sync.Mutex
	pending map[usageDims]*UsageCounters
}

// add counts one request. Called by the log writer goroutine only.
func (u *usageRollup) add(r *LogRecord) {
	d := dimsOf(r)
	u.mu.Lock()
	c := u.pending[d]
	if c == nil {
		c = new(UsageCounters)
		u.pending[d] = c
	}
	c.addRecord(r)
	u.mu.Unlock()
}

// flushUsage merges the pending rollups into the usage bucket. It holds the
// rollup lock across the commit, so a concurrent query sees each request
// exactly once: in memory before the commit, in bbolt after it. Only the
// log writer goroutine adds to the rollup, so the lock never delays a
// request. On failure the rollups stay pending for the next flush.
func (s *Store) flushUsage() {
	s.flushCredentialUsage()
	u := &s.log.usage
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pending) == 0 {
		return
	}
	err := mergeRollups(s.db, bucketUsage.name, u.pending, (*UsageCounters).Add)
	if err == nil {
		clear(u.pending)
	}
}

// mergeRollups adds the pending rows to the bucket's rows with the same
// key (key(d)), in one transaction and in key order (bbolt inserts in key
// order fastest; keys start with the hour, so most are appends).
func mergeRollups[D interface {
	comparable
	key() []byte
}, C any](db *bolt.DB, bucket []byte, pending map[D]*C, add func(sum, old *C)) error {
	type row struct {
		k []byte
		c *C
	}
	rows := make([]row, 0, len(pending))
	for d, c := range pending {
		rows = append(rows, row{d.key(), c})
	}
	slices.SortFunc(rows, func(a, b row) int { return bytes.Compare(a.k, b.k) })
	return db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		b.FillPercent = logFillPercent
		for _, r := range rows {
			sum := *r.c
			if old := b.Get(r.k); old != nil {
				var oc C
				if err := json.Unmarshal(old, &oc); err != nil {
					return err
				}
				add(&sum, &oc)
			}
			if err := putJSON(b, r.k, sum); err != nil {
				return err
			}
		}
		return nil
	})
}

// pruneUsage deletes the rollups of hours that ended before retention.
func (s *Store) pruneUsage(retention time.Duration) {
	s.pruneHours(bucketCredUsage.name, retention)
	s.pruneHours(bucketUsage.name, retention)
}

// pruneHours deletes the rows of a bucket keyed by their hour first (the
// usage and credential-usage rollups) whose hour ended before retention.
func (s *Store) pruneHours(bucket []byte, retention time.Duration) {
	cutoff := hourOf(now().Add(-retention).Unix())
	_ = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		var doomed [][]byte // collected first: see pruneLogs
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) < cutoff; k, _ = c.Next() {
			doomed = append(doomed, append([]byte(nil), k...))
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if len(doomed) == 0 {
			return errNothingPruned
		}
		return nil
	})
}

// UsageQuery selects usage rollups.
type UsageQuery struct {
	// AccountID limits the answer to one account; "" means every account.
	AccountID string
	// From and To bound the time range, To exclusive. They are widened to
	// whole buckets (From rounded down, To up). Default: To is now, From
	// is 24 hours before To.
	From, To time.Time
	// Bucket is "hour" (default) or "day" (UTC days).
	Bucket string
	// GroupBy lists the dimensions to group by, among UsageDimensions;
	// none gives one group per bucket.
	GroupBy []string
}

// UsageResult answers a UsageQuery.
type UsageResult struct {
	Bucket  string    `json:"bucket"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	GroupBy []string  `json:"group_by"`
	// Series has one entry per bucket with usage, oldest first.
	Series []UsageBucket `json:"series"`
	// Totals sums each group over the whole range.
	Totals []UsageGroup `json:"totals"`
	// Total sums everything.
	Total UsageCounters `json:"total"`
}

// UsageBucket is one hour or day of a usage series.
type UsageBucket struct {
	Time   time.Time    `json:"time"`
	Groups []UsageGroup `json:"groups"`
}

// UsageGroup is the counters of one group: Key maps each GroupBy dimension
// to its value ("" for requests refused before a provider was chosen).
type UsageGroup struct {
	Key map[string]string `json:"key"`
	UsageCounters
}

// normalize checks q, applies defaults and widens the range to whole buckets.
func (q *UsageQuery) normalize() error {
	switch q.Bucket {
	case "":
		q.Bucket = "hour"
	case "hour", "day":
	default:
		return fmt.Errorf("%w: bucket must be hour or day", ErrInvalidQuery)
	}
	var dims []string
	for _, g := range q.GroupBy {
		if !slices.Contains(UsageDimensions, g) {
			return fmt.Errorf("%w: unknown group_by dimension %q (use %s)", ErrInvalidQuery, clip(g), strings.Join(UsageDimensions, ", "))
		}
		if !slices.Contains(dims, g) {
			dims = append(dims, g)
		}
	}
	q.GroupBy = dims
	if q.GroupBy == nil {
		q.GroupBy = []string{}
	}
	if q.To.IsZero() {
		q.To = now()
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-24 * time.Hour)
	}
	if !q.From.Before(q.To) {
		return fmt.Errorf("%w: from must be before to", ErrInvalidQuery)
	}
	if q.To.Sub(q.From) > MaxUsageRange {
		return fmt.Errorf("%w: the time range is longer than 366 days", ErrInvalidQuery)
	}
	size := q.bucketSeconds()
	from, to := q.From.Unix(), q.To.Unix()
	if q.To.Nanosecond() > 0 {
		to++
	}
	from -= mod(from, size)
	if r := mod(to, size); r != 0 {
		to += size - r
	}
	q.From, q.To = time.Unix(from, 0).UTC(), time.Unix(to, 0).UTC()
	return nil
}

func (q *UsageQuery) bucketSeconds() int64 {
	if q.Bucket == "day" {
		return 86400
	}
	return 3600
}

func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

// Usage answers q from the flushed rollups and the ones still in memory, so
// a request is visible as soon as the log writer has consumed its record.
func (s *Store) Usage(q UsageQuery) (UsageResult, error) {
	if err := q.normalize(); err != nil {
		return UsageResult{}, err
	}
	from, to := q.From.Unix(), q.To.Unix()
	match := func(d usageDims) bool {
		return d.hour >= from && d.hour < to && (q.AccountID == "" || d.account == q.AccountID)
	}

	// Take the pending rollups and a read transaction under the rollup
	// lock: flushUsage commits under it too, so each request is counted
	// once, either here or in the transaction.
	type row struct {
		d usageDims
		c UsageCounters
	}
	var rows []row
	u := &s.log.usage
	u.mu.Lock()
	tx, err := s.db.Begin(false)
	if err == nil {
		for d, c := range u.pending {
			if match(d) {
				rows = append(rows, row{d, *c})
			}
		}
	}
	u.mu.Unlock()
	if err != nil {
		return UsageResult{}, err
	}
	defer tx.Rollback()

	agg := newUsageAgg(q)
	for _, r := range rows {
		agg.add(r.d, &r.c)
	}
	c := tx.Bucket(bucketUsage.name).Cursor()
	visit := func(k, v []byte) error {
		d, ok := parseUsageKey(k)
		if !ok || !match(d) {
			return nil
		}
		var uc UsageCounters
		if err := json.Unmarshal(v, &uc); err != nil {
			return err
		}
		agg.add(d, &uc)
		return nil
	}
	if q.AccountID == "" {
		for k, v := c.Seek(hourKey(from)); k != nil && len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) < to; k, v = c.Next() {
			if err := visit(k, v); err != nil {
				return UsageResult{}, err
			}
		}
	} else {
		// Visit only the account's rows of each hour that has rows: seek
		// to its prefix, read it, then jump to the next hour.
		k, _ := c.Seek(hourKey(from))
		for k != nil && len(k) >= 8 {
			hour := int64(binary.BigEndian.Uint64(k))
			if hour >= to {
				break
			}
			prefix := accountPrefix(hour, q.AccountID)
			var v []byte
			for k, v = c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if err := visit(k, v); err != nil {
					return UsageResult{}, err
				}
			}
			k, _ = c.Seek(hourKey(hour + 3600))
		}
	}
	return agg.result(), nil
}

// usageAgg sums rows into buckets and groups.
type usageAgg struct {
	q       UsageQuery
	size    int64
	buckets map[int64]map[string]*UsageGroup
	totals  map[string]*UsageGroup
	total   UsageCounters
}

func newUsageAgg(q UsageQuery) *usageAgg {
	return &usageAgg{q: q, size: q.bucketSeconds(), buckets: make(map[int64]map[string]*UsageGroup), totals: make(map[string]*UsageGroup)}
}

func (a *usageAgg) add(d usageDims, c *UsageCounters) {
	vals := make([]string, len(a.q.GroupBy))
	for i, g := range a.q.GroupBy {
		vals[i] = d.dim(g)
	}
	// Lengths make the joined id unambiguous whatever the values hold.
	var id strings.Builder
	for _, v := range vals {
		fmt.Fprintf(&id, "%d:%s", len(v), v)
	}
	group := func(m map[string]*UsageGroup) *UsageGroup {
		g := m[id.String()]
		if g == nil {
			key := make(map[string]string, len(vals))
			for i, dim := range a.q.GroupBy {
				key[dim] = vals[i]
			}
			g = &UsageGroup{Key: key}
			m[id.String()] = g
		}
		return g
	}
	t := d.hour - mod(d.hour, a.size)
	b := a.buckets[t]
	if b == nil {
		b = make(map[string]*UsageGroup)
		a.buckets[t] = b
	}
	group(b).Add(c)
	group(a.totals).Add(c)
	a.total.Add(c)
}

func (a *usageAgg) sorted(m map[string]*UsageGroup) []UsageGroup {
	out := make([]UsageGroup, 0, len(m))
	for _, g := range m {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		for _, dim := range a.q.GroupBy {
			if x, y := out[i].Key[dim], out[j].Key[dim]; x != y {
				return x < y
			}
		}
		return false
	})
	return out
}

func (a *usageAgg) result() UsageResult {
	res := UsageResult{
		Bucket: a.q.Bucket, From: a.q.From, To: a.q.To, GroupBy: a.q.GroupBy,
		Series: make([]UsageBucket, 0, len(a.buckets)), Totals: a.sorted(a.totals), Total: a.total,
	}
	times := make([]int64, 0, len(a.buckets))
	for t := range a.buckets {
		times = append(times, t)
	}
	slices.Sort(times)
	for _, t := range times {
		res.Series = append(res.Series, UsageBucket{Time: time.Unix(t, 0).UTC(), Groups: a.sorted(a.buckets[t])})
	}
	return res
}
