package reconcile

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Reconciler runs reconciliations and keeps their rows in a Ledger.
type Reconciler struct {
	// Ledger keeps the rows. Required.
	Ledger Ledger
	// Book prices the provider's tokens for calibration and Anthropic's
	// workspace shares, and names models canonically. Default: the
	// embedded default book (pricing.Default()).
	Book *pricing.Book
	// Tolerance; its zero fields take their defaults.
	Tolerance Tolerance
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Job is one run: a scope's credentials, the gateway's aggregates for the
// window, and a Reader with the scope's admin key.
type Job struct {
	Scope Scope
	// Window defaults to LastDays(now, DefaultDays).
	Window      Window
	Credentials []Credential
	Gateway     []GatewayUsage
	Reader      Reader
}

// Result is what a run did, for the wiring to record (the last run and
// its outcome per scope, a metric) and show.
type Result struct {
	Scope  Scope     `json:"scope"`
	Window Window    `json:"window"`
	At     time.Time `json:"at"`
	// OK says the ledger's rows for the window were replaced. When it is
	// false the ledger is as it was, and Reason and Error say why (Error
	// is scrubbed of anything key-like).
	OK         bool           `json:"ok"`
	Reason     Reason         `json:"reason,omitempty"`
	Error      string         `json:"error,omitempty"`
	DurationMS float64        `json:"duration_ms"`
	Rows       int            `json:"rows"`
	Counts     map[Status]int `json:"counts,omitempty"`
	// Matches is how each credential was matched to a provider key; the
	// owner chooses for the ambiguous and missing ones.
	Matches   []Match    `json:"matches,omitempty"`
	Alerts    []Alert    `json:"alerts,omitempty"`
	Proposals []Proposal `json:"proposals,omitempty"`
}

var (
	defaultBookOnce sync.Once
	defaultBook     *pricing.Book
)

func (r *Reconciler) book() *pricing.Book {
	if r.Book != nil {
		return r.Book
	}
	defaultBookOnce.Do(func() { defaultBook = pricing.MustCompile(pricing.Default()) })
	return defaultBook
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC()
	}
	return time.Now().UTC()
}

// Run reads the provider's keys, usage and costs for the job's window,
// compares them with the job's gateway aggregates, and replaces the
// ledger's rows of the scope and window with the result. Running it again
// with the same inputs gives the same rows.
//
// If any read fails (the provider is down, the admin key is refused, the
// context ends), the ledger is left as it was: the Result says why, and
// the error is returned too.
func (r *Reconciler) Run(ctx context.Context, job Job) (Result, error) {
	start := time.Now()
	now := r.now()
	if job.Window == (Window{}) {
		job.Window = LastDays(now, DefaultDays)
	}
	res := Result{Scope: job.Scope, Window: job.Window, At: now}
	done := func(err error) (Result, error) {
		res.DurationMS = float64(time.Since(start).Microseconds()) / 1000
		if err != nil {
			res.OK, res.Reason, res.Error = false, ReasonOf(err), err.Error()
			return res, err
		}
		res.OK = true
		return res, nil
	}
	if err := r.check(job); err != nil {
		return done(err)
	}
	keys, err := job.Reader.Keys(ctx, projectsOf(job.Credentials))
	if err != nil {
		return done(err)
	}
	res.Matches = MapKeys(job.Credentials, keys)
	usage, err := job.Reader.Usage(ctx, job.Window)
	if err != nil {
		return done(err)
	}
	costs, err := job.Reader.Costs(ctx, job.Window)
	if err != nil {
		return done(err)
	}
	out := Compare(Input{Scope: job.Scope, Window: job.Window, Now: now, Credentials: job.Credentials,
		Matches: res.Matches, Gateway: job.Gateway, Usage: usage, Costs: costs, CostScope: job.Reader.CostScope()},
		r.Tolerance, r.book())
	if err := r.Ledger.Replace(ctx, job.Scope, job.Window, out.Rows); err != nil {
		return done(&Error{Provider: job.Scope.Provider, Op: "ledger", Reason: ReasonUnavailable, Message: "saving the ledger: " + err.Error()})
	}
	res.Rows, res.Alerts, res.Proposals = len(out.Rows), out.Alerts, out.Proposals
	res.Counts = map[Status]int{}
	for _, row := range out.Rows {
		res.Counts[row.Status]++
	}
	return done(nil)
}

func (r *Reconciler) check(job Job) error {
	bad := func(msg string) error {
		return &Error{Provider: job.Scope.Provider, Op: "setup", Reason: ReasonConfig, Message: msg}
	}
	switch {
	case r.Ledger == nil:
		return bad("no ledger")
	case job.Reader == nil:
		return bad("no admin reader (no admin key registered?)")
	case job.Reader.Provider() != job.Scope.Provider:
		return bad("the reader is for " + job.Reader.Provider() + ", the scope for " + job.Scope.Provider)
	}
	if err := job.Window.Check(); err != nil {
		return bad(err.Error())
	}
	return nil
}

// projectsOf is the OpenAI projects to list keys in: those the credentials
// are pinned to, or all (nil) when any is not pinned.
func projectsOf(creds []Credential) []string {
	var out []string
	for _, c := range creds {
		if c.Project == "" {
			return nil
		}
		if !slices.Contains(out, c.Project) {
			out = append(out, c.Project)
		}
	}
	return out
}
