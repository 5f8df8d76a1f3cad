package providertest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// AdminServer is a fake provider that also serves its organisation's admin
// usage and cost APIs, the records a business unit's own provider keeps:
// OpenAI's /v1/organization/usage/completions, /v1/organization/costs and
// the projects' api_keys; Anthropic's /v1/organizations/usage_report/messages,
// /v1/organizations/cost_report and /v1/organizations/api_keys
// (admin_openai.go, admin_anthropic.go; money.md §3).
//
// Its figures come from what it actually served: every 2xx answer the
// embedded fake gives to a POST is read back (admin_capture.go) into a
// UsageEvent — the key that asked (as the key id AddKey gave it, or null
// when the fake does not know the key, as Workbench usage is), the model
// the answer named, the tokens the answer reported, the fake's clock at
// the request. InjectUsage adds usage the gateway never sent (a leaked or
// shadow-used key); SetLateness delays when usage becomes visible, as the
// providers' reports lag; SetPageBuckets makes pagination real with small
// pages; FailAdmin simulates an outage or rate limiting; RevokeAdmin a
// revoked admin key.
//
// The admin endpoints accept only admin keys (AddAdminKey): OpenAI's
// "Bearer sk-admin-…", Anthropic's x-api-key "sk-ant-admin…" with an
// anthropic-version header. Every admin request is recorded apart from the
// data plane's (AdminRecords), so tests can check which key reached which
// endpoint.
type AdminServer struct {
	*Server

	mu        sync.Mutex
	clock     func() time.Time
	keys      []*AdminKey
	byKey     map[string]*AdminKey
	admins    map[string]bool
	events    []UsageEvent
	lateness  time.Duration
	pageCap   int
	listCap   int
	factor    map[string]float64
	outage    []Response
	outageAll *Response
	adminRecs []Record
	seq       int
}

// AdminKey is a provider API key as the organisation's admin API lists it.
type AdminKey struct {
	// ID is the provider's key id ("key_…" at OpenAI, "apikey_…" at
	// Anthropic); AddKey assigns one when empty.
	ID   string
	Name string
	// Redacted is what the admin API shows of the key: OpenAI's
	// redacted_value, Anthropic's partial_key_hint. AddKey derives it from
	// the key when empty (RedactOpenAI, RedactAnthropic).
	Redacted string
	// Project is the OpenAI project the key belongs to (default
	// "proj_default"); Workspace the Anthropic workspace ("" is the
	// default workspace, reported as null).
	Project   string
	Workspace string
	// Status is "active" unless set.
	Status  string
	Created time.Time
}

// UsageEvent is one request's usage in the fake's own records.
type UsageEvent struct {
	// Time is when the request arrived, by the fake's clock.
	Time time.Time
	// KeyID is the provider key id; "" is reported as null (a key the fake
	// does not know: Workbench, the console, a deleted key).
	KeyID string
	// Project / Workspace scope the usage like the key's (see AdminKey).
	Project, Workspace string
	Model              string
	// Input is the uncached input; the classes do not overlap.
	Input, CacheRead, CacheWrite5m, CacheWrite1h, Output int64
	// Requests is how many model requests the event counts (default 1).
	Requests int64
	// Embeddings marks usage OpenAI reports under /usage/embeddings, not
	// /usage/completions (it is in /costs all the same).
	Embeddings bool
	// Delay makes the event visible this much later than the lateness
	// the fake applies to every event.
	Delay time.Duration
	// OutOfBand marks usage injected with InjectUsage (never sent through
	// the fake's data plane).
	OutOfBand bool
}

// NewOpenAIAdmin starts a fake OpenAI with its organisation admin API.
func NewOpenAIAdmin() *AdminServer { return startAdmin("openai") }

// NewAnthropicAdmin starts a fake Anthropic with its organisation admin API.
func NewAnthropicAdmin() *AdminServer { return startAdmin("anthropic") }

func startAdmin(kind string) *AdminServer {
	a := &AdminServer{Server: NewHandler(kind), byKey: map[string]*AdminKey{}, admins: map[string]bool{},
		factor: map[string]float64{}, clock: time.Now}
	a.Server.Server = httptest.NewServer(a)
	return a
}

// SetClock replaces the fake's clock (default time.Now): served usage is
// stamped with it, lateness is judged by it, an end_time left out means it.
func (a *AdminServer) SetClock(now func() time.Time) {
	a.mu.Lock()
	a.clock = now
	a.mu.Unlock()
}

func (a *AdminServer) now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.clock().UTC()
}

// AddKey registers key as one of the organisation's API keys: its usage is
// then reported under the key's id, and the admin API lists it. It returns
// the key as listed (with its id and redacted form).
func (a *AdminServer) AddKey(key string, k AdminKey) AdminKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	if k.ID == "" {
		if a.Kind == "anthropic" {
			k.ID = fmt.Sprintf("apikey_01Fake%04d", a.seq)
		} else {
			k.ID = fmt.Sprintf("key_fake%04d", a.seq)
		}
	}
	if k.Redacted == "" {
		if a.Kind == "anthropic" {
			k.Redacted = RedactAnthropic(key)
		} else {
			k.Redacted = RedactOpenAI(key)
		}
	}
	if k.Project == "" && a.Kind != "anthropic" {
		k.Project = "proj_default"
	}
	if k.Status == "" {
		k.Status = "active"
	}
	if k.Name == "" {
		k.Name = "key " + k.ID
	}
	if k.Created.IsZero() {
		k.Created = a.clock().UTC()
	}
	kk := k
	a.keys = append(a.keys, &kk)
	a.byKey[key] = &kk
	return kk
}

// RedactOpenAI is the fake's redacted_value: the key's first 6 characters,
// "..." and its last 4 (OpenAI's reference shows "sk-abc...def").
func RedactOpenAI(key string) string { return redact(key, 6, 4) }

// RedactAnthropic is the fake's partial_key_hint: the key's first 16
// characters, "..." and its last 4 ("sk-ant-api03-R2D...igAA" in
// Anthropic's reference).
func RedactAnthropic(key string) string { return redact(key, 16, 4) }

func redact(key string, head, tail int) string {
	if len(key) < head+tail+4 {
		return "..."
	}
	return key[:head] + "..." + key[len(key)-tail:]
}

// AddAdminKey makes key an admin key the admin endpoints accept.
func (a *AdminServer) AddAdminKey(key string) {
	a.mu.Lock()
	a.admins[key] = true
	a.mu.Unlock()
}

// RevokeAdmin makes the admin endpoints refuse key from now on (401).
func (a *AdminServer) RevokeAdmin(key string) {
	a.mu.Lock()
	delete(a.admins, key)
	a.mu.Unlock()
}

// InjectUsage adds usage the fake never served: on key (a key given to
// AddKey; any other key, or "", is reported with a null key id), at
// e.Time (default: now by the fake's clock). It is how a test makes
// out-of-band use of a key appear.
func (a *AdminServer) InjectUsage(key string, e UsageEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = a.clock().UTC()
	}
	if k := a.byKey[key]; k != nil {
		e.KeyID, e.Project, e.Workspace = k.ID, k.Project, k.Workspace
	} else if e.Project == "" && a.Kind != "anthropic" {
		e.Project = "proj_default"
	}
	if e.Requests == 0 {
		e.Requests = 1
	}
	e.OutOfBand = true
	a.events = append(a.events, e)
}

// SetLateness delays every event's visibility in the admin reports by d
// after its time (the providers' usage can lag by up to a day).
func (a *AdminServer) SetLateness(d time.Duration) {
	a.mu.Lock()
	a.lateness = d
	a.mu.Unlock()
}

// SetPageBuckets caps the time buckets per page of the usage and cost
// reports at n (0: as many as the request's limit), and SetListPage the
// keys per page of the key listings, so a test makes pagination real.
func (a *AdminServer) SetPageBuckets(n int) {
	a.mu.Lock()
	a.pageCap = n
	a.mu.Unlock()
}

// SetListPage caps the keys (and projects) per page of the listings.
func (a *AdminServer) SetListPage(n int) {
	a.mu.Lock()
	a.listCap = n
	a.mu.Unlock()
}

// SetPriceFactor bills model at f × its list price (all models when model
// is ""): a negotiated discount (0.9) or a price the book does not know.
func (a *AdminServer) SetPriceFactor(model string, f float64) {
	a.mu.Lock()
	a.factor[model] = f
	a.mu.Unlock()
}

// FailAdmin answers the next n admin requests with resp (every one until
// FailAdmin(n=0) when n < 0): an outage (503), rate limiting (429 with a
// Retry-After header). n = 0 clears it.
func (a *AdminServer) FailAdmin(resp Response, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.outage, a.outageAll = nil, nil
	switch {
	case n < 0:
		a.outageAll = &resp
	case n > 0:
		for range n {
			a.outage = append(a.outage, resp)
		}
	}
}

// Usage returns every usage event the fake holds, visible or not.
func (a *AdminServer) Usage() []UsageEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// AdminRecords returns every request the admin endpoints received.
func (a *AdminServer) AdminRecords() []Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.adminRecs)
}

// ServeHTTP serves the admin endpoints itself and hands everything else to
// the embedded fake, reading its answers back into usage events.
func (a *AdminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isAdminPath(r.URL.Path) {
		a.serveAdmin(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	at := a.now()
	cw := &captureWriter{ResponseWriter: w}
	a.Server.ServeHTTP(cw, r)
	if r.Method == http.MethodPost {
		a.recordServed(r, body, at, cw)
	}
}

func isAdminPath(p string) bool {
	return strings.HasPrefix(p, "/v1/organization/") || strings.HasPrefix(p, "/v1/organizations/")
}

// adminRequest is an admin request past the outage switch and the key
// check.
type adminRequest struct {
	r   *http.Request
	now time.Time
}

func (a *AdminServer) serveAdmin(w http.ResponseWriter, r *http.Request) {
	rec := Record{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Time: time.Now()}
	if a.Kind == "anthropic" {
		rec.CredentialHeader, rec.Credential = "X-Api-Key", r.Header.Get("X-Api-Key")
	} else if auth := r.Header.Get("Authorization"); auth != "" {
		rec.CredentialHeader, rec.Credential = "Authorization", strings.TrimPrefix(auth, "Bearer ")
	}
	a.mu.Lock()
	a.adminRecs = append(a.adminRecs, rec)
	var fail *Response
	if a.outageAll != nil {
		fail = a.outageAll
	} else if len(a.outage) > 0 {
		fail = &a.outage[0]
		a.outage = a.outage[1:]
	}
	admin := a.admins[rec.Credential]
	a.mu.Unlock()
	if fail != nil {
		Write(w, r, *fail)
		return
	}
	req := adminRequest{r: r, now: a.now()}
	if a.Kind == "anthropic" {
		if resp := anthropicAdminAuth(r, rec.Credential, admin); resp != nil {
			Write(w, r, *resp)
			return
		}
		a.serveAnthropicAdmin(w, req)
		return
	}
	if resp := openAIAdminAuth(rec.Credential, admin); resp != nil {
		Write(w, r, *resp)
		return
	}
	a.serveOpenAIAdmin(w, req)
}

// visible returns the events the reports show at now, in time order.
func (a *AdminServer) visible(now time.Time) []UsageEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]UsageEvent, 0, len(a.events))
	for _, e := range a.events {
		if !e.Time.Add(a.lateness + e.Delay).After(now) {
			out = append(out, e)
		}
	}
	return out
}

// pageSize is the buckets a page holds: the request's limit, capped by
// SetPageBuckets.
func (a *AdminServer) pageSize(limit int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pageCap > 0 && a.pageCap < limit {
		return a.pageCap
	}
	return limit
}

func (a *AdminServer) listSize(limit int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.listCap > 0 && a.listCap < limit {
		return a.listCap
	}
	return limit
}

// adminKeys returns the registered keys in creation order.
func (a *AdminServer) adminKeys() []AdminKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AdminKey, len(a.keys))
	for i, k := range a.keys {
		out[i] = *k
	}
	return out
}

func (a *AdminServer) priceFactor(model string) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.factor[model]; ok {
		return f
	}
	if f, ok := a.factor[""]; ok {
		return f
	}
	return 1
}
