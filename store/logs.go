package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	bolt "go.etcd.io/bbolt"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// LogRecord is one request-log entry. It never holds a key, a prompt or a
// completion.
type LogRecord struct {
	ID string `json:"id"`
	// Instance is the fleet member that served the request, set on
	// fleet-wide reads only (not stored).
	Instance              string    `json:"instance,omitempty"`
	Time                  time.Time `json:"time"`
	AccountID             string    `json:"account"`
	KeyID                 string    `json:"key_id"`
	Endpoint              string    `json:"endpoint"`
	Model                 string    `json:"model"`
	Provider              string    `json:"provider,omitempty"`
	UpstreamModel         string    `json:"upstream_model,omitempty"`
	CredentialSource      string    `json:"credential_source,omitempty"`
	CredentialVersion     uint64    `json:"credential_version,omitempty"`
	CredentialFingerprint string    `json:"credential_fingerprint,omitempty"`
	Status                int       `json:"status"`
	ErrorCode             string    `json:"error_code,omitempty"`
	Stream                bool      `json:"stream"`
	LatencyMS             float64   `json:"latency_ms"`
	TTFBMS                float64   `json:"ttfb_ms,omitempty"`
	// Tokens, in OpenAI's terms (prompt includes cached input, completion
	// includes reasoning), from the provider's own usage fields.
	PromptTokens     int64 `json:"prompt_tokens,omitempty"`
	CompletionTokens int64 `json:"completion_tokens,omitempty"`
	TotalTokens      int64 `json:"total_tokens,omitempty"`
	CachedTokens     int64 `json:"cached_tokens,omitempty"`
	ReasoningTokens  int64 `json:"reasoning_tokens,omitempty"`
	// UsageRaw is the provider's own usage object, for billing.
	UsageRaw json.RawMessage `json:"usage_raw,omitempty"`
	// Cost is what the request cost: the usage the provider reported,
	// split by token class and priced with the price version the request
	// started under (and the contract term of its credential), with who
	// paid (paid_by: byok or platform). Unpriced — never 0 — when no price
	// or no usage exists. Absent when the request made no metered call
	// (models, stored responses, token counts, refusals before an attempt).
	Cost pricing.Cost `json:"cost,omitzero"`
	// ShadowCost, on a BYOK request, is what the same usage would have
	// cost on the platform's price book and contract: what the account's
	// own key saved the platform.
	ShadowCost pricing.Shadow `json:"shadow_cost,omitzero"`
	// Route names the route that planned the request, if any.
	Route string `json:"route,omitempty"`
	// Profile names the routing profile the request resolved its model
	// through (the API key's, or the one the console chose), if any.
	Profile string `json:"profile,omitempty"`
	// Source says where a request came from when it was not API traffic:
	// "console" for the console's playground. Empty for API traffic.
	Source string `json:"source,omitempty"`
	// API is the front door the request came in by: "chat",
	// "embeddings", "messages" (Anthropic's Messages API) or "responses"
	// (OpenAI's Responses API). Records written before front doors have
	// none; APIOf reads them as their endpoint says.
	API string `json:"api,omitempty"`
	// Limit names the budget or rate limit that refused the request
	// (error_code budget_exceeded or rate_limit_exceeded), "provider" when
	// the BYOK key's own provider limit did. LimitShadow names the first
	// shadow budget that would have refused it (the request went on).
	Limit       string `json:"limit,omitempty"`
	LimitShadow string `json:"limit_shadow_refused,omitempty"`
	// Omitted names what a translation left out of the request because the
	// provider has no equivalent ("web_search"), as the response's
	// X-Agent-Router-Omitted header said.
	Omitted []string `json:"omitted,omitempty"`
	// Attempts lists every upstream try, in order.
	Attempts []Attempt `json:"attempts,omitempty"`
}

// APIOf returns the record's front door, reading older records (without
// API) from their endpoint: "embeddings", or "chat".
func APIOf(r *LogRecord) string {
	switch {
	case r.API != "":
		return r.API
	case r.Endpoint == "embeddings":
		return "embeddings"
	}
	return "chat"
}

// SourceAPI selects API traffic in LogFilter.Source: records with no source.
const SourceAPI = "api"

// Attempt is one upstream try of a request.
type Attempt struct {
	Provider         string `json:"provider"`
	Model            string `json:"model"`
	CredentialSource string `json:"credential_source,omitempty"`
	Status           int    `json:"status,omitempty"`
	ErrorClass       string `json:"error_class,omitempty"`
	// Skipped says why a target was not tried (no byok key, policy,
	// invalid credential in cool-down...).
	Skipped    string  `json:"skipped,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

// LogFilter selects request-log records, newest first. Empty fields match
// every record.
type LogFilter struct {
	AccountID        string
	KeyID            string
	Provider         string
	CredentialSource string
	// Source matches the record's source: "api" selects API traffic
	// (records without a source), any other value that source exactly.
	Source string
	// Status matches one status exactly; 0 matches any.
	Status int
	// StatusClass matches a class of statuses (2 for 2xx, 4 for 4xx, 5
	// for 5xx); 0 matches any.
	StatusClass int
	// From and To bound the record's Time, To exclusive. Like paging and
	// pruning, they rely on ids sorting by time (the gateway's ids start
	// with the time in hex nanoseconds), so a range is a seek, not a scan
	// of the whole log.
	From, To time.Time
	// Before is a cursor: only records with an id below it are returned.
	Before string
	// Limit caps the result; 0 means 100, and at most 1000 are returned.
	Limit int
	// MaxScan, when positive, bounds how many records one call reads: a
	// filter that matches little then returns fewer than Limit records
	// (maybe none) and a cursor to go on searching, instead of reading the
	// whole log at once.
	MaxScan int
}

const logQueue = 8192

type logWriter struct {
	s        *Store
	ch       chan *LogRecord
	flushReq chan flushRequest
	quit     chan struct{}
	done     chan struct{}
	once     sync.Once
	dropped  atomic.Uint64
	forced   atomic.Uint64 // syncLog calls
	interval time.Duration
	maxN     int
	maxAge   time.Duration

	usage          usageRollup
	cred           credRollup // credential_usage.go
	usageInterval  time.Duration
	usageRetention time.Duration
}

type flushRequest struct {
	ack chan struct{}
	// usage also merges the usage rollups into bbolt.
	usage bool
}

func startLogWriter(s *Store, o Options) *logWriter {
	w := &logWriter{
		s: s, ch: make(chan *LogRecord, logQueue), flushReq: make(chan flushRequest), quit: make(chan struct{}), done: make(chan struct{}),
		interval: o.LogFlushInterval, maxN: o.LogMaxRecords, maxAge: o.LogMaxAge,
		usage:         usageRollup{pending: make(map[usageDims]*UsageCounters)},
		usageInterval: o.UsageFlushInterval, usageRetention: o.UsageRetention,
	}
	if w.usageInterval <= 0 {
		w.usageInterval = 10 * time.Second
	}
	if w.usageRetention <= 0 {
		w.usageRetention = 2160 * time.Hour
	}
	if w.interval <= 0 {
		w.interval = 250 * time.Millisecond
	}
	if w.maxN <= 0 {
		w.maxN = 100000
	}
	if w.maxAge <= 0 {
		w.maxAge = 720 * time.Hour
	}
	go w.run()
	return w
}

// Record queues rec for writing and returns at once; a request never waits
// on bbolt. When the queue is full the record is dropped and counted (and
// is missing from the usage rollups too). The writer owns rec from here on:
// the caller must not change it.
func (s *Store) Record(rec *LogRecord) {
	select {
	case s.log.ch <- rec:
	default:
		s.log.dropped.Add(1)
	}
}

// DroppedLogRecords counts records dropped because the queue was full.
func (s *Store) DroppedLogRecords() uint64 { return s.log.dropped.Load() }

// FlushLog writes every record queued before the call, and merges the
// usage rollups into bbolt, then returns.
func (s *Store) FlushLog() { s.syncLog(true) }

// SyncLog waits until every request-log record queued before the call is
// written (not the usage rollups): for a caller about to read a record it
// just caused.
func (s *Store) SyncLog() { s.syncLog(false) }

// ForcedLogSyncs counts the callers that made the log writer write early
// (FlushLog, SyncLog): each costs a write transaction.
func (s *Store) ForcedLogSyncs() uint64 { return s.log.forced.Load() }

// syncLog waits until the writer has consumed (and written) every record
// queued before the call; with usage, it also merges the usage rollups.
func (s *Store) syncLog(usage bool) {
	s.log.forced.Add(1)
	req := flushRequest{ack: make(chan struct{}), usage: usage}
	select {
	case s.log.flushReq <- req:
		<-req.ack
	case <-s.log.done:
	}
}

func (w *logWriter) run() {
	defer close(w.done)
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	usageTick := time.NewTicker(w.usageInterval)
	defer usageTick.Stop()
	var batch []*LogRecord
	lastPrune := time.Time{}
	flush := func() {
		if len(batch) > 0 {
			if err := w.s.writeLogs(batch); err != nil {
				w.dropped.Add(uint64(len(batch)))
			}
			batch = batch[:0]
		}
		if time.Since(lastPrune) > 10*time.Second {
			w.s.pruneLogs(w.maxN, w.maxAge)
			w.s.pruneUsage(w.usageRetention)
			w.s.pruneResponses(ResponseRetention)
			lastPrune = time.Now()
		}
	}
	for {
		select {
		case rec := <-w.ch:
			batch = w.take(batch, rec)
			if len(batch) >= 512 {
				flush()
			}
		case req := <-w.flushReq:
			batch = w.drain(batch)
			flush()
			w.s.persistClocks()
			if req.usage {
				w.s.flushUsage()
			}
			close(req.ack)
		case <-w.quit:
			batch = w.drain(batch)
			flush()
			w.s.persistClocks()
			w.s.flushUsage()
			return
		case <-tick.C:
			flush()
		case <-usageTick.C:
			// The clocks go with the usage rollups: a scan of every
			// clock (one per key and credential, 600,000 at scale) on
			// each log tick cost more than the log.
			w.s.persistClocks()
			w.s.flushUsage()
		}
	}
}

// take appends rec to the batch and counts it in the usage rollups.
func (w *logWriter) take(batch []*LogRecord, rec *LogRecord) []*LogRecord {
	w.usage.add(rec)
	w.cred.add(rec)
	return append(batch, rec)
}

// drain appends every record already queued.
func (w *logWriter) drain(batch []*LogRecord) []*LogRecord {
	for {
		select {
		case rec := <-w.ch:
			batch = w.take(batch, rec)
		default:
			return batch
		}
	}
}

// stop flushes what is queued and ends the writer. Records queued after it
// are dropped, never written to a closed file.
func (w *logWriter) stop() {
	w.once.Do(func() { close(w.quit) })
	<-w.done
}

// logFillPercent packs log pages full: record ids sort by time, so writes
// append at the end and half-empty pages (bbolt's default split) would
// double the file for nothing.
const logFillPercent = 0.95

// logChunks pools the 64 KiB chunks a batch of records is encoded into.
// bbolt keeps the values it is given until the transaction ends, and
// nothing of them after, so one batch's chunks serve the next: a fresh
// chunk per batch was a kilobyte per request to collect.
var logChunks = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func (s *Store) writeLogs(batch []*LogRecord) error {
	var chunks [4]*[]byte
	used := chunks[:0]
	defer func() {
		for _, c := range used {
			*c = (*c)[:0]
			logChunks.Put(c)
		}
	}()
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs.name)
		b.FillPercent = logFillPercent
		added := 0
		// One cursor for the batch (each Bucket.Get makes its own): a
		// record rewritten under an id already there is not counted again.
		cur := b.Cursor()
		// The batch's encoded records go into 64 KiB chunks, none reused
		// before the transaction ends; a new chunk (not a grown copy of
		// the old one) starts when one is nearly full.
		var enc []byte
		for _, r := range batch {
			k := []byte(r.ID)
			if got, _ := cur.Seek(k); !bytes.Equal(got, k) {
				added++
			}
			if cap(enc)-len(enc) < 4<<10 {
				c := logChunks.Get().(*[]byte)
				used = append(used, c)
				enc = (*c)[:0]
			}
			start := len(enc)
			enc = r.appendJSON(enc)
			if err := b.Put(k, enc[start:len(enc):len(enc)]); err != nil {
				return err
			}
		}
		return addLogCount(tx, added)
	})
}

// The number of request-log records is kept in meta, updated in the
// transactions that change it, so retention never walks the whole bucket
// (bucket stats read every page, which drags the whole mmapped file into
// memory).
var metaLogCount = []byte("log_count")

func logCount(tx *bolt.Tx) int {
	if v := tx.Bucket(bucketMeta.name).Get(metaLogCount); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return tx.Bucket(bucketLogs.name).Stats().KeyN // a store from before the count: once
}

func addLogCount(tx *bolt.Tx, delta int) error {
	if delta == 0 && tx.Bucket(bucketMeta.name).Get(metaLogCount) != nil {
		return nil
	}
	n := logCount(tx) + delta
	if n < 0 {
		n = 0
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(n))
	return tx.Bucket(bucketMeta.name).Put(metaLogCount, buf[:])
}

// errNothingPruned rolls back a prune transaction that deleted nothing, so
// that an idle store does not commit (and fsync) on every prune.
var errNothingPruned = errors.New("nothing to prune")

// pruneBatch bounds the records one prune transaction deletes, so the
// writer never holds the write lock for long.
const pruneBatch = 5000

// pruneLogs keeps at most maxN records, none older than maxAge. It collects
// the doomed keys in one cursor pass, then deletes them: re-seeking the
// first key after every delete walks the emptied pages again each time,
// which made a large prune quadratic (it took half the gateway's CPU under
// load in the benchmark).
func (s *Store) pruneLogs(maxN int, maxAge time.Duration) {
	cutoff := now().Add(-maxAge)
	for {
		deleted := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketLogs.name)
			excess := logCount(tx) - maxN
			var doomed [][]byte
			c := b.Cursor()
			for k, v := c.First(); k != nil && len(doomed) < pruneBatch; k, v = c.Next() {
				if len(doomed) >= excess {
					var r struct {
						Time time.Time `json:"time"`
					}
					if json.Unmarshal(v, &r) == nil && !r.Time.Before(cutoff) {
						break
					}
				}
				doomed = append(doomed, append([]byte(nil), k...))
			}
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			if deleted = len(doomed); deleted == 0 {
				return errNothingPruned
			}
			return addLogCount(tx, -deleted)
		})
		if err != nil || deleted < pruneBatch {
			return
		}
	}
}

// Logs returns request-log records matching f, newest first, and the cursor
// for the next page ("" when there is none). Records that arrive while a
// client pages never shift the pages it has not read yet.
func (s *Store) Logs(f LogFilter) (recs []LogRecord, next string, err error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	recs = []LogRecord{}
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLogs.name).Cursor()
		// Start below upper (exclusive), or at the newest record.
		var upper []byte
		if f.Before != "" {
			upper = []byte(f.Before)
		}
		if hint := timeIDHint(f.To); hint != nil && (upper == nil || bytes.Compare(hint, upper) < 0) {
			// The gateway's ids start with their time in hex: the record
			// at the hint is the first one at or after To, if its time
			// says so. Then it and every newer id are out of range.
			if k, v := c.Seek(hint); k != nil && (upper == nil || bytes.Compare(k, upper) < 0) {
				var r struct {
					Time time.Time `json:"time"`
				}
				if json.Unmarshal(v, &r) == nil && !r.Time.Before(f.To) {
					upper = append([]byte(nil), k...)
				}
			}
		}
		var k, v []byte
		if upper != nil {
			// Seek lands on the first key >= upper; step below it.
			if k, _ = c.Seek(upper); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		} else {
			k, v = c.Last()
		}
		pre := f.prefilter()
		from := timeIDHint(f.From)
		scanned := 0
		var last []byte
		for ; k != nil; k, v = c.Prev() {
			if f.MaxScan > 0 && scanned == f.MaxScan && last != nil {
				// Out of budget: the next page resumes below the last
				// record read.
				next = string(last)
				return nil
			}
			scanned++
			last = k
			// A record whose filtered fields differ cannot match: skip it
			// without decoding it, so a filter that matches little does
			// not decode the whole log.
			if !pre(v) {
				if from != nil && len(k) >= len(from) && isHex(k[:len(from)]) && bytes.Compare(k[:len(from)], from) < 0 {
					return nil // a gateway id older than From: so is every id below it
				}
				continue
			}
			var r LogRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if !f.From.IsZero() && r.Time.Before(f.From) {
				return nil // ids sort by time: every older id is older still
			}
			if !f.match(&r) {
				continue
			}
			if len(recs) == f.Limit {
				next = recs[len(recs)-1].ID
				return nil
			}
			recs = append(recs, r)
		}
		return nil
	})
	return recs, next, err
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// prefilter returns a cheap test of a record's raw JSON against the
// filter's string fields: gjson reads just those fields, which sit near the
// start of a record.
func (f *LogFilter) prefilter() func(v []byte) bool {
	type field struct{ path, value string }
	var fields []field
	for _, p := range []field{{"account", f.AccountID}, {"key_id", f.KeyID}, {"provider", f.Provider}, {"credential_source", f.CredentialSource}} {
		if p.value != "" {
			fields = append(fields, p)
		}
	}
	return func(v []byte) bool {
		for _, p := range fields {
			if gjson.GetBytes(v, p.path).String() != p.value {
				return false
			}
		}
		return true
	}
}

func (f *LogFilter) match(r *LogRecord) bool {
	return (f.AccountID == "" || r.AccountID == f.AccountID) &&
		(f.KeyID == "" || r.KeyID == f.KeyID) &&
		(f.Provider == "" || r.Provider == f.Provider) &&
		(f.CredentialSource == "" || r.CredentialSource == f.CredentialSource) &&
		(f.Source == "" || r.Source == f.Source || f.Source == SourceAPI && r.Source == "") &&
		(f.Status == 0 || r.Status == f.Status) &&
		(f.StatusClass == 0 || r.Status/100 == f.StatusClass) &&
		(f.To.IsZero() || r.Time.Before(f.To))
}

// timeIDHint is the id prefix of a gateway request at t: its time in
// nanoseconds as 16 hex digits. nil when t is unset or out of range.
func timeIDHint(t time.Time) []byte {
	if t.IsZero() || t.Year() < 1971 || t.Year() > 2261 {
		return nil
	}
	return []byte(fmt.Sprintf("%016x", t.UnixNano()))
}

// Log returns one request-log record by id.
func (s *Store) Log(id string) (LogRecord, error) {
	var r LogRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs.name).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("request %q: %w", id, ErrNotFound)
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}
