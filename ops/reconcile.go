package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Reconciliation (issue 23): the gateway's own counts of what it sent with
// each key, against the providers' own usage and cost records of the same
// keys, read with a usage-reader (admin) key per account and provider
// (usage_readers.go). Package reconcile reads and compares; these
// operations gather its inputs from the store (credentials, the owner's
// key choices, the fleet's credential usage), run it one scope at a time,
// keep the ledger and the last result in the store, and answer the admin
// API and the console.

// Reconciling is what reconciliation needs from the running config. A nil
// *Reconciling (no config) still lists, shows and removes usage readers;
// runs and tests are Unavailable.
type Reconciling struct {
	// NewReader builds a provider's admin reader with an admin key: over
	// the egress-guarded HTTP client, to the configured admin endpoint.
	// Required for runs and tests.
	NewReader func(provider, adminKey string) (reconcile.Reader, error)
	// Platform lists the platform's own credentials for a provider (the
	// configured platform key's fingerprint and masked form), the
	// credentials of the platform's scope (account ""). nil: none.
	Platform func(provider string) []reconcile.Credential
	// Book prices calibration and names models canonically. nil: the
	// store's current price version (the book requests are priced with),
	// or the embedded default book before one is published.
	Book *pricing.Book
	// Tolerance of the comparison; zero fields take their defaults.
	Tolerance reconcile.Tolerance
	// Days is the window of a scheduled run, in UTC days ending today.
	// Default: reconcile.DefaultDays.
	Days int
	// Retention: ledger days older than this are pruned after a
	// scheduled pass. Default: 400 days.
	Retention time.Duration
	// OnResult is told each run's result, successful or not (metrics, log
	// lines); nil: nobody.
	OnResult func(reconcile.Result)
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (rc *Reconciling) now() time.Time {
	if rc != nil && rc.Now != nil {
		return rc.Now().UTC()
	}
	return time.Now().UTC()
}

func (rc *Reconciling) days() int {
	if rc.Days > 0 {
		return min(rc.Days, reconcile.MaxDays)
	}
	return reconcile.DefaultDays
}

// ReaderProviders are the providers whose admin APIs report usage and cost
// per key (reference/money.md §3): usage readers exist for these only.
var ReaderProviders = []string{"openai", "anthropic"}

// CheckReaderProvider refuses a provider without a usage reader
// (NotFound: the provider is part of the resource's name).
func CheckReaderProvider(provider string) error {
	if !slices.Contains(ReaderProviders, provider) {
		return errorf(NotFound, "no usage reader for provider %q: the providers whose admin APIs report usage per key are %v", clip(provider), ReaderProviders)
	}
	return nil
}

// ReasonGatewayIncomplete is a run that could not read the gateway's own
// side in full (a fleet member did not answer): comparing part of it would
// flag the missing part as out-of-band use.
const ReasonGatewayIncomplete reconcile.Reason = "gateway_side_incomplete"

// ReasonStore is a run whose inputs could not be read from the store.
const ReasonStore reconcile.Reason = "store_unavailable"

// RunRecord is what the store keeps of a scope's runs: the last one, and
// the last one that completed (whose alerts, matches and proposals stand
// until the next completes).
type RunRecord struct {
	Last   reconcile.Result  `json:"last"`
	LastOK *reconcile.Result `json:"last_ok,omitempty"`
}

// runLocks serialises the runs of one scope in this process (a scheduled
// run and an owner's run on demand): both are idempotent, but the admin
// APIs rate-limit.
var runLocks sync.Map // reconcile.Scope -> *sync.Mutex

// RunReconcile reconciles one scope (account "" is the platform's) over
// the last days UTC days (0: the configured window; at most
// reconcile.MaxDays), now. The result says what happened; a run that
// failed left the ledger as it was. The error is for the caller's own
// failures (no such account, no reader, bad days), not the run's.
func (o *Ops) RunReconcile(ctx context.Context, account, provider string, days int) (reconcile.Result, error) {
	if err := o.checkScope(account, provider); err != nil {
		return reconcile.Result{}, err
	}
	rc, err := o.reconciling()
	if err != nil {
		return reconcile.Result{}, err
	}
	if days < 0 || days > reconcile.MaxDays {
		return reconcile.Result{}, errorf(Invalid, "days must be 1 to %d", reconcile.MaxDays)
	}
	if days == 0 {
		days = rc.days()
	}
	if _, err := o.Store.UsageReader(account, provider); err != nil {
		return reconcile.Result{}, err
	}
	return o.runScope(ctx, reconcile.Scope{Account: account, Provider: provider}, days), nil
}

// runScope runs one scope and records its result.
func (o *Ops) runScope(ctx context.Context, scope reconcile.Scope, days int) reconcile.Result {
	mu, _ := runLocks.LoadOrStore(scope, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	rc := o.Reconcile
	now := rc.now()
	window := reconcile.LastDays(now, days)
	res, err := o.reconcileOnce(ctx, scope, window, now)
	if err != nil && res.Reason == "" {
		res = reconcile.Result{Scope: scope, Window: window, At: now, Reason: reconcile.ReasonOf(err), Error: err.Error()}
	}
	o.recordRun(scope, res)
	if rc.OnResult != nil {
		rc.OnResult(res)
	}
	return res
}

// reconcileOnce gathers a scope's inputs and runs it.
func (o *Ops) reconcileOnce(ctx context.Context, scope reconcile.Scope, window reconcile.Window, now time.Time) (reconcile.Result, error) {
	rc := o.Reconcile
	fail := func(reason reconcile.Reason, err error) (reconcile.Result, error) {
		return reconcile.Result{Scope: scope, Window: window, At: now, Reason: reason, Error: err.Error()}, err
	}
	_, key, err := o.Store.OpenUsageReader(scope.Account, scope.Provider)
	if err != nil {
		return fail(ReasonStore, err)
	}
	reader, err := rc.NewReader(scope.Provider, key)
	key = ""
	if err != nil {
		return fail(reconcile.ReasonConfig, err)
	}
	gw, err := o.gatewayUsage(ctx, scope, window)
	if err != nil {
		return fail(ReasonGatewayIncomplete, err)
	}
	creds, err := o.scopeCredentials(scope, gw)
	if err != nil {
		return fail(ReasonStore, err)
	}
	book := o.priceBook()
	applyContracts(book, creds, gw)
	r := &reconcile.Reconciler{Ledger: storeLedger{o.Store}, Book: book, Tolerance: rc.Tolerance, Now: func() time.Time { return now }}
	return r.Run(ctx, reconcile.Job{Scope: scope, Window: window, Credentials: creds, Gateway: gw, Reader: reader})
}

var defaultBook = sync.OnceValue(func() *pricing.Book { return pricing.MustCompile(pricing.Default()) })

// priceBook is the book the reconciliation prices with: the configured
// one, else the store's current price version (operators' price blocks
// included), else the embedded default.
func (o *Ops) priceBook() *pricing.Book {
	if rc := o.Reconcile; rc != nil && rc.Book != nil {
		return rc.Book
	}
	if v := o.Store.Prices().Current(); v != nil {
		return v.Book()
	}
	return defaultBook()
}

// recordRun keeps the run's result (and, when it completed, as the last
// completed one).
func (o *Ops) recordRun(scope reconcile.Scope, res reconcile.Result) {
	rec, _ := o.runRecord(scope.Account, scope.Provider)
	rec.Last = res
	if res.OK {
		rec.LastOK = &res
	}
	b, err := json.Marshal(rec)
	if err == nil {
		err = o.Store.PutReconcileRun(scope.Account, scope.Provider, b)
	}
	_ = err // a result that cannot be kept (the account was deleted meanwhile, etcd down) is still reported
}

func (o *Ops) runRecord(account, provider string) (RunRecord, error) {
	runs, err := o.Store.ReconcileRuns(account)
	if err != nil {
		return RunRecord{}, err
	}
	var rec RunRecord
	if b, ok := runs[provider]; ok {
		if err := json.Unmarshal(b, &rec); err != nil {
			return RunRecord{}, err
		}
	}
	return rec, nil
}

// ReconcileAll runs every scope that has a usage reader, one at a time
// (the platform's first), over the configured window, then prunes the
// ledger; it returns the results. The scheduler calls it on the elected
// instance.
func (o *Ops) ReconcileAll(ctx context.Context) []reconcile.Result {
	rc := o.Reconcile
	if rc == nil || rc.NewReader == nil {
		return nil
	}
	readers, err := o.Store.AllUsageReaders()
	if err != nil {
		return nil
	}
	var out []reconcile.Result
	for _, r := range readers {
		if ctx.Err() != nil {
			break
		}
		if !slices.Contains(ReaderProviders, r.Provider) {
			continue
		}
		out = append(out, o.runScope(ctx, reconcile.Scope{Account: r.AccountID, Provider: r.Provider}, rc.days()))
	}
	o.pruneLedger(rc)
	return out
}

func (o *Ops) pruneLedger(rc *Reconciling) {
	keep := rc.Retention
	if keep <= 0 {
		keep = 400 * 24 * time.Hour
	}
	cutoff := rc.now().Add(-keep)
	for range 100 { // batches of 100 (an etcd transaction's size)
		n, err := o.Store.PruneLedger(cutoff, 100)
		if err != nil || n < 100 {
			return
		}
	}
}

// --- inputs ---

// gatewayUsage is the gateway's side of a scope's window, from every
// member's credential usage: an account's BYOK traffic, or (account "")
// the platform key's traffic of every account. A member that does not
// answer fails it.
func (o *Ops) gatewayUsage(ctx context.Context, scope reconcile.Scope, w reconcile.Window) ([]reconcile.GatewayUsage, error) {
	q := store.CredentialUsageQuery{From: w.From, To: w.To, Provider: scope.Provider, Source: "byok", Account: scope.Account}
	var platformFP string
	if scope.Account == "" {
		q.Source, q.Account = "platform", ""
		// The request log names no fingerprint for the platform key:
		// its traffic is the configured key's (with several handlers
		// holding different keys, the first).
		if creds := o.platformCreds(scope.Provider); len(creds) > 0 {
			platformFP = creds[0].Fingerprint
		}
	}
	rows, err := FleetCredentialUsage(ctx, o.Store, q)
	if err != nil {
		return nil, err
	}
	type k struct {
		fp, model string
		hour      int64
		costOnly  bool
	}
	sums := map[k]*reconcile.GatewayUsage{}
	var order []k
	for _, r := range rows {
		fp := r.Fingerprint
		if scope.Account == "" {
			fp = platformFP
		}
		// OpenAI reports embeddings under /usage/embeddings, which is not
		// read: their cost is in /costs, their tokens nowhere compared.
		key := k{fp, r.Model, r.Hour.Unix(), scope.Provider == "openai" && r.API == "embeddings"}
		g := sums[key]
		if g == nil {
			g = &reconcile.GatewayUsage{Account: scope.Account, Provider: scope.Provider, Credential: fp, Model: r.Model, Hour: r.Hour, CostOnly: key.costOnly}
			sums[key] = g
			order = append(order, key)
		}
		g.Requests += r.Requests
		g.Tokens.Add(reconcile.Tokens{Input: r.Input, CacheRead: r.CacheRead, CacheWrite5m: r.CacheWrite5m, CacheWrite1h: r.CacheWrite1h, Output: r.Output})
		g.CostNanoUSD += r.CostNanoUSD
		g.Unpriced += r.Unpriced
	}
	out := make([]reconcile.GatewayUsage, len(order))
	for i, key := range order {
		out[i] = *sums[key]
	}
	return out, nil
}

func (o *Ops) platformCreds(provider string) []reconcile.Credential {
	if o.Reconcile == nil || o.Reconcile.Platform == nil {
		return nil
	}
	return o.Reconcile.Platform(provider)
}

// scopeCredentials lists a scope's credentials: the current key, and every
// other fingerprint the gateway side names (a key rotated within the
// window), each with the masked form it had and the owner's choice.
func (o *Ops) scopeCredentials(scope reconcile.Scope, gw []reconcile.GatewayUsage) ([]reconcile.Credential, error) {
	notes, err := o.Store.KeyNotes(scope.Account, scope.Provider)
	if err != nil {
		return nil, err
	}
	var creds []reconcile.Credential
	if scope.Account == "" {
		creds = o.platformCreds(scope.Provider)
	} else {
		cur, err := o.Store.Credentials(scope.Account)
		if err != nil {
			return nil, err
		}
		if c, ok := cur[scope.Provider]; ok {
			creds = append(creds, reconcile.Credential{Fingerprint: c.Fingerprint, Masked: c.Masked, Project: c.Extras.Project})
		}
	}
	// Remember the current keys' masked forms, for after a rotation.
	for _, c := range creds {
		if c.Masked != "" && notes[c.Fingerprint].Masked != c.Masked {
			n, err := o.Store.UpdateKeyNote(scope.Account, scope.Provider, c.Fingerprint, func(n *store.KeyNote) error { n.Masked = c.Masked; return nil })
			if err == nil {
				notes[c.Fingerprint] = n
			}
		}
	}
	for _, g := range gw {
		if g.Credential != "" && !slices.ContainsFunc(creds, func(c reconcile.Credential) bool { return c.Fingerprint == g.Credential }) {
			creds = append(creds, reconcile.Credential{Fingerprint: g.Credential, Masked: notes[g.Credential].Masked})
		}
	}
	accepted, err := o.acceptedTerms(scope)
	if err != nil {
		return nil, err
	}
	// The BYOK slot's own contract terms (the owner's, and the accepted
	// proposals adoptTerm added; they priced whichever key the slot held)
	// count too, so calibration proposes nothing for a rate a term
	// explains; an accepted term from the same instant as one of them is
	// the same term.
	var own []pricing.ContractTerm
	if scope.Account != "" {
		if own, err = o.Store.ContractTerms(scope.Account, scope.Provider); err != nil {
			return nil, err
		}
	}
	for i := range creds {
		creds[i].Chosen = notes[creds[i].Fingerprint].ChosenKeyID
		terms := accepted[creds[i].Fingerprint]
		if len(own) > 0 {
			terms = mergeTerms(own, terms)
		}
		if len(terms) > 0 {
			creds[i].Contract, _ = pricing.NewContract(terms)
		}
	}
	return creds, nil
}

// mergeTerms is own and the terms of extra that start at another instant.
func mergeTerms(own, extra []pricing.ContractTerm) []pricing.ContractTerm {
	out := slices.Clone(own)
	for _, t := range extra {
		if !slices.ContainsFunc(own, func(o pricing.ContractTerm) bool { return o.EffectiveFrom.Equal(t.EffectiveFrom) }) {
			out = append(out, t)
		}
	}
	return out
}

// --- the ledger in the store ---

// storeLedger keeps a reconcile.Ledger in the store: one value per scope
// and UTC day.
type storeLedger struct{ s *store.Store }

func (l storeLedger) Replace(_ context.Context, scope reconcile.Scope, w reconcile.Window, rows []reconcile.Row) error {
	days := map[time.Time][]reconcile.Row{}
	for _, r := range rows {
		d := r.Start.UTC().Truncate(24 * time.Hour)
		days[d] = append(days[d], r)
	}
	enc := make(map[time.Time][]byte, len(days))
	for d, rs := range days {
		b, err := json.Marshal(rs)
		if err != nil {
			return err
		}
		enc[d] = b
	}
	return l.s.ReplaceLedgerDays(scope.Account, scope.Provider, w.From, w.To, enc)
}

func (l storeLedger) Rows(_ context.Context, scope reconcile.Scope, w reconcile.Window) ([]reconcile.Row, error) {
	days, err := l.s.LedgerDays(scope.Account, scope.Provider, w.From, w.To)
	if err != nil {
		return nil, err
	}
	var out []reconcile.Row
	for _, b := range days {
		var rs []reconcile.Row
		if err := json.Unmarshal(b, &rs); err != nil {
			return nil, err
		}
		for _, r := range rs {
			if w.Contains(r.Start) {
				out = append(out, r)
			}
		}
	}
	reconcile.SortRows(out)
	return out, nil
}

// --- the owner's choices ---

// ChooseProviderKey records the owner's choice of the provider key behind
// one of the scope's credentials (a fingerprint the last run could not
// match, or matched ambiguously); keyID "" withdraws it. The choice is
// bound to the fingerprint: a rotated key is matched afresh.
func (o *Ops) ChooseProviderKey(account, provider, fingerprint, keyID string) (store.KeyNote, error) {
	if err := CheckReaderProvider(provider); err != nil {
		return store.KeyNote{}, err
	}
	if !fingerprintPattern.MatchString(fingerprint) {
		return store.KeyNote{}, errorf(Invalid, "fingerprint must look like fp_ and 12 hex digits")
	}
	if keyID != "" && !keyIDPattern.MatchString(keyID) {
		return store.KeyNote{}, errorf(Invalid, "provider_key_id must be 1 to 128 letters, digits, '_', '-' or '.'")
	}
	return o.Store.UpdateKeyNote(account, provider, fingerprint, func(n *store.KeyNote) error {
		n.ChosenKeyID, n.ChosenAt = keyID, time.Time{}
		if keyID != "" {
			n.ChosenAt = time.Now().UTC()
		}
		return nil
	})
}

// --- calibration proposals ---

// ProposalView is a calibration proposal with its id, and whether the
// owner accepted it.
type ProposalView struct {
	ID string `json:"id"`
	reconcile.Proposal
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	// ContractFrom, on an accepted proposal of an account, is when the term
	// it added to the BYOK credential's contract takes effect: the
	// requests from then on are priced under it (issue 21's contract
	// terms). Unset when the key the proposal names no longer serves.
	ContractFrom *time.Time `json:"contract_from,omitempty"`
}

// ProposalID identifies a proposal by what it proposes (the same term for
// the same keys is the same proposal, whichever run made it).
func ProposalID(p reconcile.Proposal) string {
	b, _ := json.Marshal(struct {
		A, P, K, W string
		C          []string
		T          pricing.ContractTerm
	}{p.Account, p.Provider, p.KeyID, p.Workspace, p.Credentials, p.Term})
	h := sha256.Sum256(b)
	return "prop_" + hex.EncodeToString(h[:8])
}

// acceptedProposal is what the store keeps of an accepted proposal.
type acceptedProposal struct {
	ProposalView
	AcceptedBy string `json:"accepted_by,omitempty"`
}

// AcceptProposal accepts one of the last completed run's proposals: its
// contract term is kept for the credentials it names, from its
// effective_from on (the next UTC midnight: never the days already
// billed). For an account whose current BYOK key is one of them, the term
// also becomes a contract term of that credential, so the requests from
// then on are priced under it and the chargeback follows; the
// reconciler applies accepted terms to the gateway side's hours itself
// too (applyContracts), and calibration proposes nothing again for a rate
// the term explains. A proposal accepted already is a Conflict.
func (o *Ops) AcceptProposal(account, provider, id, by string) (ProposalView, error) {
	if err := CheckReaderProvider(provider); err != nil {
		return ProposalView{}, err
	}
	rec, err := o.runRecord(account, provider)
	if err != nil {
		return ProposalView{}, err
	}
	var found *reconcile.Proposal
	if rec.LastOK != nil {
		for i, p := range rec.LastOK.Proposals {
			if ProposalID(p) == id {
				found = &rec.LastOK.Proposals[i]
			}
		}
	}
	if found == nil {
		return ProposalView{}, errorf(NotFound, "no proposal %s in the last reconciliation of %s", clip(id), provider)
	}
	if _, err := pricing.NewContract([]pricing.ContractTerm{found.Term}); err != nil {
		return ProposalView{}, &Error{Kind: Invalid, Err: err}
	}
	acc, err := o.accepted(account, provider)
	if err != nil {
		return ProposalView{}, err
	}
	if slices.ContainsFunc(acc, func(a acceptedProposal) bool { return a.ID == id }) {
		return ProposalView{}, &Error{Kind: Conflict, Err: fmt.Errorf("proposal %s: %w", id, store.ErrExists)}
	}
	t := time.Now().UTC()
	v := ProposalView{ID: id, Proposal: *found, AcceptedAt: &t}
	if v.ContractFrom, err = o.adoptTerm(account, provider, id, found); err != nil {
		return ProposalView{}, err
	}
	b, err := json.Marshal(acceptedProposal{v, by})
	if err != nil {
		return ProposalView{}, err
	}
	if err := o.Store.PutAcceptedProposal(account, provider, id, b); err != nil {
		return ProposalView{}, err
	}
	return v, nil
}

// adoptTerm adds an accepted proposal's term to the contract of the
// account's BYOK credential when the key it names still serves, and
// returns when it takes effect (nil when nothing was added: the platform's
// contract is the config's, and a rotated key's contract is its
// successor's to decide).
func (o *Ops) adoptTerm(account, provider, id string, p *reconcile.Proposal) (*time.Time, error) {
	if account == "" {
		return nil, nil
	}
	cur, err := o.Store.Credentials(account)
	if err != nil {
		return nil, err
	}
	c, ok := cur[provider]
	if !ok || !slices.Contains(p.Credentials, c.Fingerprint) {
		return nil, nil
	}
	term := p.Term
	if term.Note == "" {
		term.Note = "reconciliation proposal " + id
	}
	added, err := o.Store.AddContractTerm(account, provider, term)
	if err != nil {
		return nil, err
	}
	return &added.EffectiveFrom, nil
}

// accepted returns the scope's accepted proposals.
func (o *Ops) accepted(account, provider string) ([]acceptedProposal, error) {
	raw, err := o.Store.AcceptedProposals(account, provider)
	if err != nil {
		return nil, err
	}
	out := make([]acceptedProposal, 0, len(raw))
	for _, b := range raw {
		var a acceptedProposal
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// acceptedTerms are the accepted terms by credential fingerprint.
func (o *Ops) acceptedTerms(scope reconcile.Scope) (map[string][]pricing.ContractTerm, error) {
	acc, err := o.accepted(scope.Account, scope.Provider)
	if err != nil {
		return nil, err
	}
	out := map[string][]pricing.ContractTerm{}
	for _, a := range acc {
		for _, fp := range a.Credentials {
			// Two accepted terms from the same instant: the later
			// acceptance wins (NewContract refuses a tie).
			out[fp] = slices.DeleteFunc(out[fp], func(t pricing.ContractTerm) bool { return t.EffectiveFrom.Equal(a.Term.EffectiveFrom) })
			out[fp] = append(out[fp], a.Term)
		}
	}
	return out, nil
}

// applyContracts prices the gateway side's hours again where an accepted
// term is in force for the credential (the same term adoptTerm added to
// its contract, so a request priced under it is priced alike; an hour
// before the term was adopted is priced under it for the comparison
// only). The hour's tokens
// are priced together, with the mean request's prompt for the
// long-context rule.
func applyContracts(book *pricing.Book, creds []reconcile.Credential, gw []reconcile.GatewayUsage) {
	contracts := map[string]*pricing.Contract{}
	for _, c := range creds {
		if c.Contract != nil {
			contracts[c.Fingerprint] = c.Contract
		}
	}
	if len(contracts) == 0 {
		return
	}
	for i := range gw {
		g := &gw[i]
		c := contracts[g.Credential]
		if c == nil || g.Requests == 0 {
			continue
		}
		if _, ok := c.InForce(g.Hour); !ok {
			continue
		}
		u := g.Tokens.Usage()
		u.PromptTokens = (u.Input + u.CacheRead + u.CacheWrite5m + u.CacheWrite1h) / g.Requests
		if cost := book.CostAt(g.Provider, g.Model, u, c, g.Hour); !cost.Unpriced {
			g.CostNanoUSD, g.Unpriced = int64(cost.NanoUSD), 0
		}
	}
}

// errNoReconcile is the answer of a run or test without the config.
var errNoReconcile = errors.New("reconciliation is not configured on this server")

func (o *Ops) reconciling() (*Reconciling, error) {
	if o.Reconcile == nil || o.Reconcile.NewReader == nil {
		return nil, &Error{Kind: Unavailable, Err: errNoReconcile}
	}
	return o.Reconcile, nil
}

// checkScope refuses an unknown provider and a missing account.
func (o *Ops) checkScope(account, provider string) error {
	if err := CheckReaderProvider(provider); err != nil {
		return err
	}
	if account != "" {
		if _, err := o.Store.Account(account); err != nil {
			return err
		}
	}
	return nil
}

var (
	fingerprintPattern = regexp.MustCompile(`^fp_[0-9a-f]{12}$`)
	keyIDPattern       = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
)
