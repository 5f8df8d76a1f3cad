package ops

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Usage readers: an organisation admin key per account and provider
// (OpenAI, Anthropic), registered like a BYOK key — sealed, masked, never
// returned, tested, removable — that reads the provider's own usage and
// cost records of the account's keys. Account "" is the platform's own
// contract (the operator's, on the admin API only).

// UsageReaderStatus is the public view of one provider's usage-reader slot.
type UsageReaderStatus struct {
	// Account is "" for the platform's own contract.
	Account  string `json:"account"`
	Provider string `json:"provider"`
	// Status is "active" or "not_configured".
	Status      string     `json:"status"`
	Masked      string     `json:"masked,omitempty"`
	Fingerprint string     `json:"fingerprint,omitempty"`
	Version     uint64     `json:"version,omitempty"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	UpdatedAt   *time.Time `json:"updated_at,omitempty"`
	// LastRun is the scope's last reconciliation, successful or not;
	// Alerts, Unmatched and Proposals come from the last one that
	// completed, and stand until the next one completes.
	LastRun   *RunSummary       `json:"last_run,omitempty"`
	Alerts    []reconcile.Alert `json:"alerts"`
	Unmatched []reconcile.Match `json:"unmatched"`
	Proposals []ProposalView    `json:"proposals"`
}

// RunSummary is what a run did, without its detail.
type RunSummary struct {
	At     time.Time        `json:"at"`
	Window reconcile.Window `json:"window"`
	OK     bool             `json:"ok"`
	// Reason and Error say why a run failed (the ledger is then as it
	// was); Error is scrubbed of anything key-like.
	Reason     reconcile.Reason         `json:"reason,omitempty"`
	Error      string                   `json:"error,omitempty"`
	DurationMS float64                  `json:"duration_ms"`
	Rows       int                      `json:"rows"`
	Counts     map[reconcile.Status]int `json:"counts,omitempty"`
}

func summary(r reconcile.Result) *RunSummary {
	return &RunSummary{At: r.At, Window: r.Window, OK: r.OK, Reason: r.Reason, Error: r.Error, DurationMS: r.DurationMS, Rows: r.Rows, Counts: r.Counts}
}

// UsageReaders is the account's ("" the platform's) usage-reader slot for
// each of ReaderProviders.
func (o *Ops) UsageReaders(account string) ([]UsageReaderStatus, error) {
	stored, err := o.Store.UsageReaders(account)
	if err != nil {
		return nil, err
	}
	runs, err := o.Store.ReconcileRuns(account)
	if err != nil {
		return nil, err
	}
	out := make([]UsageReaderStatus, 0, len(ReaderProviders))
	for _, p := range ReaderProviders {
		st, err := o.readerStatus(account, p, stored, runs)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// UsageReader is the account's usage-reader slot for provider.
func (o *Ops) UsageReader(account, provider string) (UsageReaderStatus, error) {
	if err := o.checkScope(account, provider); err != nil {
		return UsageReaderStatus{}, err
	}
	all, err := o.UsageReaders(account)
	if err != nil {
		return UsageReaderStatus{}, err
	}
	for _, st := range all {
		if st.Provider == provider {
			return st, nil
		}
	}
	return UsageReaderStatus{}, errorf(NotFound, "no usage reader slot for %s", provider)
}

func (o *Ops) readerStatus(account, provider string, stored map[string]store.UsageReader, runs map[string][]byte) (UsageReaderStatus, error) {
	st := UsageReaderStatus{Account: account, Provider: provider, Status: "not_configured",
		Alerts: []reconcile.Alert{}, Unmatched: []reconcile.Match{}, Proposals: []ProposalView{}}
	if r, ok := stored[provider]; ok {
		c, u := r.CreatedAt, r.UpdatedAt
		st.Status, st.Masked, st.Fingerprint, st.Version, st.CreatedAt, st.UpdatedAt = "active", r.Masked, r.Fingerprint, r.Version, &c, &u
	}
	if _, ok := runs[provider]; !ok {
		return st, nil
	}
	rec, err := o.runRecord(account, provider)
	if err != nil {
		return st, err
	}
	st.LastRun = summary(rec.Last)
	if rec.LastOK == nil {
		return st, nil
	}
	st.Alerts = append(st.Alerts, rec.LastOK.Alerts...)
	for _, m := range rec.LastOK.Matches {
		if m.Status != reconcile.Matched {
			st.Unmatched = append(st.Unmatched, m)
		}
	}
	acc, err := o.accepted(account, provider)
	if err != nil {
		return st, err
	}
	for _, p := range rec.LastOK.Proposals {
		v := ProposalView{ID: ProposalID(p), Proposal: p}
		for _, a := range acc {
			if a.ID == v.ID {
				v.AcceptedAt = a.AcceptedAt
			}
		}
		st.Proposals = append(st.Proposals, v)
	}
	return st, nil
}

// UsageReaderInput registers or replaces a usage reader: the body of PUT
// /agent_router/accounts/{account}/usage_readers/{provider}.
type UsageReaderInput struct {
	APIKey *string `json:"api_key"`
}

// adminPrefixes are the admin keys' prefixes: a project key pasted here is
// the usual mistake, and it cannot read an organisation's usage.
var adminPrefixes = map[string]struct{ prefix, hint string }{
	"openai":    {"sk-admin-", "OpenAI admin keys begin with sk-admin- (Organization settings → Admin keys); a project key (sk-proj-…) cannot read usage"},
	"anthropic": {"sk-ant-admin", "Anthropic admin keys begin with sk-ant-admin (Console → Settings → Admin keys); an API key (sk-ant-api03-…) cannot read usage"},
}

// CheckAdminKey reports why key cannot be provider's admin key, in words
// that never include the key.
func CheckAdminKey(provider, key string) error {
	if err := providers.CheckKey(provider, key); err != nil {
		return &Error{Kind: Invalid, Err: err}
	}
	if ap := adminPrefixes[provider]; !strings.HasPrefix(key, ap.prefix) {
		return errorf(Invalid, "api_key is not an admin key: %s", ap.hint)
	}
	return nil
}

// SaveUsageReader checks and seals the account's ("" the platform's) admin
// key for provider, replacing any earlier one.
func (o *Ops) SaveUsageReader(account, provider string, in UsageReaderInput) (UsageReaderStatus, error) {
	if err := o.checkScope(account, provider); err != nil {
		return UsageReaderStatus{}, err
	}
	if in.APIKey == nil {
		return UsageReaderStatus{}, errorf(Invalid, "api_key is required")
	}
	key := providers.NormalizeKey(*in.APIKey)
	if err := CheckAdminKey(provider, key); err != nil {
		return UsageReaderStatus{}, err
	}
	if old, err := o.Store.UsageReader(account, provider); err == nil && old.Masked == key {
		return UsageReaderStatus{}, errorf(Invalid, "api_key equals the stored masked form; send the full key")
	}
	if _, err := o.Store.PutUsageReader(account, provider, key, providers.Mask(key)); err != nil {
		return UsageReaderStatus{}, err
	}
	return o.UsageReader(account, provider)
}

// DeleteUsageReader removes the account's admin key for provider; the
// ledger and the last result stay (the ledger is history).
func (o *Ops) DeleteUsageReader(account, provider string) error {
	if err := o.checkScope(account, provider); err != nil {
		return err
	}
	return o.Store.DeleteUsageReader(account, provider)
}

// ReaderTestOutcome is the answer of a usage-reader test.
type ReaderTestOutcome struct {
	Provider string `json:"provider"`
	// Tested is "stored" or "pasted" (the key in the request, not saved).
	Tested string `json:"tested"`
	// Outcome is "ok", "rejected" (the provider refused the key: revoked,
	// or not an admin key) or "error" (anything else: Reason says what).
	Outcome   string           `json:"outcome"`
	Reason    reconcile.Reason `json:"reason,omitempty"`
	Message   string           `json:"message,omitempty"`
	LatencyMS float64          `json:"latency_ms"`
}

// ErrNoStoredReader is a test of the stored usage reader when there is none.
var ErrNoStoredReader = errors.New("no usage reader is registered for this provider")

// TestUsageReader makes one cheap authenticated call to the provider's
// usage endpoint (the last hour, one bucket) with a pasted admin key (in
// with APIKey set; nothing is saved) or the stored one, through the
// egress-guarded client.
func (o *Ops) TestUsageReader(ctx context.Context, account, provider string, in UsageReaderInput) (ReaderTestOutcome, error) {
	if err := o.checkScope(account, provider); err != nil {
		return ReaderTestOutcome{}, err
	}
	rc, err := o.reconciling()
	if err != nil {
		return ReaderTestOutcome{}, err
	}
	out := ReaderTestOutcome{Provider: provider, Tested: "pasted"}
	var key string
	if in.APIKey != nil {
		key = providers.NormalizeKey(*in.APIKey)
		if err := CheckAdminKey(provider, key); err != nil {
			return ReaderTestOutcome{}, err
		}
	} else {
		out.Tested = "stored"
		if _, key, err = o.Store.OpenUsageReader(account, provider); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return ReaderTestOutcome{}, &Error{Kind: NotFound, is: ErrNoStoredReader,
					Err: errors.New("no usage reader is registered for " + provider + ": send {\"api_key\": \"...\"} to test a key before saving it")}
			}
			return ReaderTestOutcome{}, err
		}
	}
	reader, err := rc.NewReader(provider, key)
	if err != nil {
		return ReaderTestOutcome{}, &Error{Kind: Unavailable, Err: errors.New(string(providers.Scrub([]byte(err.Error()), key)))}
	}
	start := time.Now()
	err = reader.Ping(ctx)
	out.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	switch {
	case err == nil:
		out.Outcome = "ok"
	case reconcile.ReasonOf(err) == reconcile.ReasonKeyRejected:
		out.Outcome, out.Reason = "rejected", reconcile.ReasonKeyRejected
	default:
		out.Outcome, out.Reason = "error", reconcile.ReasonOf(err)
	}
	if err != nil {
		out.Message = string(providers.Scrub([]byte(err.Error()), key))
	}
	return out, nil
}
