package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Credential usage: the gateway's side of the reconciliation ledger. Per
// UTC hour and per (credential source, account, provider, credential
// fingerprint, upstream model, front door), the upstream calls the gateway
// made and the tokens the provider reported for them, by price class. The
// usage rollups (usage.go) are per API key and model; the providers'
// records are per provider key, so this rollup keeps the fingerprint, and
// tokens by class (the rollups keep OpenAI's prompt/completion split only).
//
// It is fed like the usage rollups, by the log writer goroutine from each
// record it consumes (nothing on the request path), merged into the local
// bucket "credential_usage" with them and pruned with them. It is local:
// in fleet mode the reconciler asks every member for its own (package peer).
//
// Key: hour (8-byte big-endian unix seconds), then source, account,
// provider, fingerprint, model, api, each as a uvarint length and its
// bytes. Value: the JSON of credCounters.

var bucketCredUsage = &bucket{name: []byte("credential_usage"), scope: local,
	doc: "hour + source, account, provider, fingerprint, model, api -> CredentialCounters"}

// CredentialUsage is one hour of what the gateway sent with one credential
// for one model.
type CredentialUsage struct {
	Hour time.Time `json:"hour"`
	// Source is the credential source: "byok" or "platform".
	Source  string `json:"credential_source"`
	Account string `json:"account"`
	// Provider is the upstream provider, Fingerprint the BYOK credential's
	// ("" for the platform key, which the request log does not name).
	Provider    string `json:"provider"`
	Fingerprint string `json:"credential_fingerprint,omitempty"`
	// Model is the upstream model the provider was asked for.
	Model string `json:"model"`
	// API is the front door ("chat", "embeddings", "messages",
	// "responses").
	API string `json:"api"`
	CredentialCounters
}

// CredentialCounters are the counts of one rollup row.
type CredentialCounters struct {
	// Requests counts the upstream calls served.
	Requests int64 `json:"requests"`
	// Tokens by price class, as pricing.FromProvider reads the provider's
	// own usage object (Input is the uncached input; Output includes
	// reasoning).
	Input        int64 `json:"input"`
	CacheRead    int64 `json:"cache_read"`
	CacheWrite5m int64 `json:"cache_write_5m"`
	CacheWrite1h int64 `json:"cache_write_1h"`
	Output       int64 `json:"output"`
	// NoUsage counts the calls whose answer reported no usage.
	NoUsage int64 `json:"no_usage,omitempty"`
	// CostNanoUSD is what the gateway priced the calls at (callCost);
	// Unpriced counts the calls it could not price (not in the sum).
	CostNanoUSD int64 `json:"cost_nano_usd"`
	Unpriced    int64 `json:"unpriced,omitempty"`
}

func (c *CredentialCounters) add(o *CredentialCounters) {
	c.Requests += o.Requests
	c.Input += o.Input
	c.CacheRead += o.CacheRead
	c.CacheWrite5m += o.CacheWrite5m
	c.CacheWrite1h += o.CacheWrite1h
	c.Output += o.Output
	c.NoUsage += o.NoUsage
	c.CostNanoUSD += o.CostNanoUSD
	c.Unpriced += o.Unpriced
}

type credDims struct {
	hour                                               int64
	source, account, provider, fingerprint, model, api string
}

func (d credDims) key() []byte {
	b := hourKey(d.hour)
	for _, s := range []string{d.source, d.account, d.provider, d.fingerprint, d.model, d.api} {
		b = appendDim(b, s)
	}
	return b
}

func parseCredKey(k []byte) (credDims, bool) {
	if len(k) < 8 {
		return credDims{}, false
	}
	d := credDims{hour: int64(binary.BigEndian.Uint64(k))}
	rest := k[8:]
	for _, p := range []*string{&d.source, &d.account, &d.provider, &d.fingerprint, &d.model, &d.api} {
		n, m := binary.Uvarint(rest)
		if m <= 0 || uint64(len(rest)-m) < n {
			return credDims{}, false
		}
		*p = string(rest[m : m+int(n)])
		rest = rest[m+int(n):]
	}
	return d, len(rest) == 0
}

// credentialCall reads one request-log record as an upstream call made
// with a credential: only an answer a provider served (a 2xx, or any
// answer that reported usage, such as a stream cut mid-way) counts.
func credentialCall(r *LogRecord) (credDims, CredentialCounters, bool) {
	if r.Provider == "" || r.UpstreamModel == "" || (r.CredentialSource != "byok" && r.CredentialSource != "platform") {
		return credDims{}, CredentialCounters{}, false
	}
	served := r.Status >= 200 && r.Status < 300
	if !served && len(r.UsageRaw) == 0 {
		return credDims{}, CredentialCounters{}, false
	}
	t := r.Time
	if t.IsZero() || t.Unix() < 0 {
		t = now()
	}
	d := credDims{hour: hourOf(t.Unix()), source: r.CredentialSource, account: clip(r.AccountID), provider: clip(r.Provider),
		fingerprint: clip(r.CredentialFingerprint), model: clip(r.UpstreamModel), api: clip(APIOf(r))}
	c := CredentialCounters{Requests: 1}
	if len(r.UsageRaw) == 0 {
		c.NoUsage, c.Unpriced = 1, 1
		return d, c, true
	}
	// A priced record carries its tokens by class (the gateway read them
	// once, to price the request); an older one is read again.
	u := r.Cost.Tokens
	if r.Cost.Version == "" || r.Cost.Reason == pricing.NoUsage {
		u = pricing.FromProvider(r.Provider, r.UsageRaw)
	}
	c.Input, c.CacheRead, c.CacheWrite5m, c.CacheWrite1h, c.Output = u.Input, u.CacheRead, u.CacheWrite5m, u.CacheWrite1h, u.Output
	if u.ReasoningApart {
		c.Output += u.Reasoning
	}
	if nano, ok := callCost(r, u); ok {
		c.CostNanoUSD = nano
	} else {
		c.Unpriced = 1
	}
	return d, c, true
}

// callCost is what the gateway charged for one call, in nano-USD, and
// whether it could price it: the record's own cost (priced at the
// request's start with the price version and the credential's contract
// term in force, issue 21). A record written before requests were priced
// has none: it is priced at the embedded default book's list price.
func callCost(r *LogRecord, u pricing.Usage) (int64, bool) {
	if r.Cost.Unpriced {
		return 0, false
	}
	if r.Cost.Version != "" {
		return int64(r.Cost.NanoUSD), true
	}
	c := defaultBook().Cost(r.Provider, r.UpstreamModel, u)
	return int64(c.NanoUSD), !c.Unpriced
}

var defaultBook = sync.OnceValue(func() *pricing.Book { return pricing.MustCompile(pricing.Default()) })

// credRollup holds the credential usage not yet merged into bbolt (as
// usageRollup does for the usage rollups).
type credRollup struct {
	mu      sync.Mutex
	pending map[credDims]*CredentialCounters
}

// add counts one record. Called by the log writer goroutine only.
func (u *credRollup) add(r *LogRecord) {
	d, c, ok := credentialCall(r)
	if !ok {
		return
	}
	u.mu.Lock()
	if u.pending == nil {
		u.pending = map[credDims]*CredentialCounters{}
	}
	if p := u.pending[d]; p != nil {
		p.add(&c)
	} else {
		u.pending[d] = &c
	}
	u.mu.Unlock()
}

// flushCredentialUsage merges the pending rows into the bucket, holding
// the lock across the commit (so a read sees each call exactly once).
func (s *Store) flushCredentialUsage() {
	u := &s.log.cred
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pending) == 0 {
		return
	}
	err := mergeRollups(s.db, bucketCredUsage.name, u.pending, (*CredentialCounters).add)
	if err == nil {
		clear(u.pending)
	}
}

// CredentialUsageQuery selects credential usage.
type CredentialUsageQuery struct {
	// From and To bound the hours, To exclusive; both are whole hours.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Source, Account and Provider select rows ("" for any); Account
	// matters with Source "byok" (platform traffic is the platform's,
	// whichever account sent it).
	Source   string `json:"credential_source,omitempty"`
	Account  string `json:"account,omitempty"`
	Provider string `json:"provider,omitempty"`
}

// MaxCredentialUsageRange bounds one query (a reconciliation covers at
// most 31 days).
const MaxCredentialUsageRange = 32 * 24 * time.Hour

// Check refuses a range that is empty, not whole hours or too long.
func (q CredentialUsageQuery) Check() error {
	switch {
	case !q.From.Equal(q.From.Truncate(time.Hour)) || !q.To.Equal(q.To.Truncate(time.Hour)):
		return fmt.Errorf("%w: from and to must be whole hours", ErrInvalidQuery)
	case !q.To.After(q.From):
		return fmt.Errorf("%w: to must be after from", ErrInvalidQuery)
	case q.To.Sub(q.From) > MaxCredentialUsageRange:
		return fmt.Errorf("%w: at most %v at once", ErrInvalidQuery, MaxCredentialUsageRange)
	}
	return nil
}

func (q CredentialUsageQuery) match(d credDims) bool {
	return (q.Source == "" || d.source == q.Source) && (q.Account == "" || d.account == q.Account) &&
		(q.Provider == "" || d.provider == q.Provider)
}

// CredentialUsage returns this instance's credential usage in the query's
// range (merged and pending), in key order. In fleet mode it is this
// member's share only.
func (s *Store) CredentialUsage(q CredentialUsageQuery) ([]CredentialUsage, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	sums := map[credDims]*CredentialCounters{}
	var order []credDims
	add := func(d credDims, c *CredentialCounters) {
		if p := sums[d]; p != nil {
			p.add(c)
			return
		}
		cc := *c
		sums[d] = &cc
		order = append(order, d)
	}
	from, to := q.From.Unix(), q.To.Unix()
	u := &s.log.cred
	// The lock spans the read of both, as flushCredentialUsage holds it
	// across its commit: a row is in one or the other, never both.
	u.mu.Lock()
	defer u.mu.Unlock()
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCredUsage.name).Cursor()
		for k, v := c.Seek(hourKey(from)); k != nil && len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) < to; k, v = c.Next() {
			d, ok := parseCredKey(k)
			if !ok || !q.match(d) {
				continue
			}
			var cc CredentialCounters
			if err := json.Unmarshal(v, &cc); err != nil {
				return err
			}
			add(d, &cc)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for d, c := range u.pending {
		if d.hour >= from && d.hour < to && q.match(d) {
			add(d, c)
		}
	}
	slices.SortFunc(order, func(a, b credDims) int { return bytes.Compare(a.key(), b.key()) })
	out := make([]CredentialUsage, len(order))
	for i, d := range order {
		out[i] = CredentialUsage{Hour: time.Unix(d.hour, 0).UTC(), Source: d.source, Account: d.account, Provider: d.provider,
			Fingerprint: d.fingerprint, Model: d.model, API: d.api, CredentialCounters: *sums[d]}
	}
	return out, nil
}
