package limits

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Config tunes a Limiter. The zero value works: single node, in memory.
type Config struct {
	// ReserveOutputCap bounds the output tokens a reservation assumes, so
	// that a coding agent's 32k max_tokens does not pin a budget: the
	// reservation is input + min(max output, cap). The settlement charges
	// what was really used; a request whose output outruns the cap can
	// overshoot a hard budget by the difference (see the package doc).
	// Default 4096; negative: no cap (reserve the whole max output).
	ReserveOutputCap int64
	// DefaultMaxOutput is the output a reservation assumes when neither
	// the request (max_tokens) nor the model says. Default 4096.
	DefaultMaxOutput int64
	// BytesPerToken estimates input tokens from the body's size when the
	// caller has no count. Default 3 (JSON and English run near 4 bytes a
	// token; 3 errs toward reserving more).
	BytesPerToken int64
	// UnpricedRate, when > 0, is what a request on a model the price book
	// does not know counts against dollar budgets: USD per 1M tokens, input
	// and output alike. Zero (the default): a hard dollar budget refuses
	// such a request. An unpriced request is never counted as free.
	UnpricedRate pricing.Price

	// Backend keeps the counters' shared state: settled spend per window
	// (so a restart keeps it) and, in fleet mode, the slices of each limit
	// the instances hold. Nil: memory only, one instance.
	Backend Backend
	// FlushInterval is how often changed counters are written to the
	// backend (and, in fleet mode, the rest of the fleet's spend is read).
	// Default 1s.
	FlushInterval time.Duration
	// ReturnAfter is how long a slice of a limit may sit unused on an
	// instance before it is given back to the fleet. Default 5s.
	ReturnAfter time.Duration
	// SliceWait is how long, in fleet mode, a request waits for a new
	// slice when this instance's is empty and the fleet may still have
	// some (once per slice, not per request: slices are fetched ahead at
	// half use). After it the answer is a 429 with Retry-After 1. Default
	// 250ms; negative: never wait.
	SliceWait time.Duration
	// FailOpen admits requests on a hard limit whose slice ran out while
	// the backend is unreachable (the overshoot is then unbounded until it
	// is back). Default false: such requests get 429 (Transient).
	FailOpen bool

	// RefreshInterval is how often, in fleet mode, a counter nobody here
	// is using reads the rest of the fleet's spend (for Status and
	// alerts; a counter in use learns it with every slice). Default 30s.
	RefreshInterval time.Duration

	// Now is the clock windows are read on (default time.Now); tests
	// swap it. The background's own pace (flushes, idle slices) follows
	// the wall clock.
	Now func() time.Time
	// OnEvent receives threshold crossings and shadow refusals, once per
	// window (fleet-wide when the backend is shared), on a goroutine of
	// the limiter's. Nil: events are dropped.
	OnEvent func(Event)
}

// Limiter enforces a policy of budgets and rate limits: Admit before a
// request's first attempt, Settle when its usage arrives, Release when it
// fails without usage. Safe for concurrent use.
type Limiter struct {
	cfg     Config
	fleet   bool
	backend Backend

	policy atomic.Pointer[Policy]

	mu       sync.Mutex // Install, Close
	counters map[string]*counter
	closed   bool

	queue   chan *counter
	events  chan Event
	done    chan struct{}
	bg      context.Context // the background's calls; cancelled by Close
	stop    context.CancelFunc
	wg      sync.WaitGroup
	dropped atomic.Int64

	swappedClock bool // Config.Now is not time.Now: read the wall clock apart
}

// wall is the wall clock in unix nano at now (the limiter's clock), for
// the background's pace.
func (l *Limiter) wall(now time.Time) int64 {
	if l.swappedClock {
		return time.Now().UnixNano()
	}
	return now.UnixNano()
}

// New starts a limiter with an empty policy (everything allowed) until
// Install gives it one. With a backend it starts its background work
// (flush, and in fleet mode slices); Close stops it.
func New(cfg Config) (*Limiter, error) {
	if cfg.ReserveOutputCap == 0 {
		cfg.ReserveOutputCap = 4096
	}
	if cfg.DefaultMaxOutput <= 0 {
		cfg.DefaultMaxOutput = 4096
	}
	if cfg.BytesPerToken <= 0 {
		cfg.BytesPerToken = 3
	}
	if cfg.UnpricedRate < 0 {
		return nil, errors.New("limits: UnpricedRate is negative")
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.ReturnAfter <= 0 {
		cfg.ReturnAfter = 5 * time.Second
	}
	if cfg.SliceWait == 0 {
		cfg.SliceWait = 250 * time.Millisecond
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 30 * time.Second
	}
	swapped := cfg.Now != nil
	if !swapped {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, backend: cfg.Backend, counters: map[string]*counter{},
		queue: make(chan *counter, 4096), events: make(chan Event, 1024), done: make(chan struct{})}
	l.bg, l.stop = context.WithCancel(context.Background())
	l.fleet = l.backend != nil && !l.backend.Exact()
	l.swappedClock = swapped
	l.policy.Store(&Policy{accounts: map[string]*accountRules{}})
	l.start()
	return l, nil
}

// Install normalises and compiles set and makes it the policy every
// request after it sees. Counters of limits that stay (same id and
// window) keep their spend; new ones are restored from the backend first
// (single node: synchronously, so the first request already sees the
// spend a restart kept). A set with an error changes nothing.
func (l *Limiter) Install(set Set) error {
	if err := set.Normalize(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("limits: the limiter is closed")
	}
	fresh := map[string]*counter{}
	p, err := compile(set, func(key string, kind counterKind, w window) *counter {
		if c := l.counters[key]; c != nil && c.kind == kind {
			return c
		}
		if c := fresh[key]; c != nil {
			return c
		}
		c := newCounter(key, kind, w)
		fresh[key] = c
		return c
	})
	if err != nil {
		return err
	}
	if l.backend != nil && !l.fleet {
		ctx, cancel := l.ctx()
		defer cancel()
		for _, c := range fresh {
			if err := l.restore(ctx, c); err != nil {
				return fmt.Errorf("limits: restoring %s: %w", c.key, err)
			}
		}
	}
	var lowered []*counter
	for i, c := range p.counters {
		if p.limits[i].limit < c.limit.Load() && l.counters[c.key] == c {
			lowered = append(lowered, c)
		}
	}
	p.bind()
	for _, c := range lowered { // slices taken under the old limit may not fit the new one
		c.mu.Lock()
		c.held, c.lastGrant = min(c.held, 0), 0
		c.ver++
		c.mu.Unlock()
	}
	now := time.Now().UnixNano()
	for k, c := range fresh {
		c.lastUse = now // a new limit's first slice is fetched ahead, and given back if unused
		l.counters[k] = c
	}
	kept := map[*counter]bool{}
	for _, c := range p.counters {
		kept[c] = true
	}
	for k, c := range l.counters {
		if !kept[c] {
			delete(l.counters, k)
			l.retire(c)
		}
	}
	l.policy.Store(p)
	if l.fleet {
		for _, c := range fresh {
			l.enqueue(c) // restore, then a first slice for hard limits
		}
	}
	return nil
}

// Policy is the policy in force.
func (l *Limiter) Policy() *Policy { return l.policy.Load() }

// Request is one attempt as admission sees it.
type Request struct {
	// Account and APIKey (the key's id) of the caller.
	Account, APIKey string
	// Provider and Model are the attempt's upstream target (after
	// aliases and routing).
	Provider, Model string
	// Payer is whose key serves the attempt: PayerPlatform or PayerBYOK.
	// Unset counts as the platform's (a wiring slip never slips past a
	// platform budget).
	Payer Payer
	// Spillover marks an attempt that falls back from the account's BYOK
	// key to the platform key: it also draws on the spillover allowance.
	Spillover bool
	// Fallback marks a later attempt of a request already admitted once:
	// it is not counted again against requests per minute.
	Fallback bool
	// InputTokens is the prompt's size when the caller counted it;
	// otherwise BodyBytes / BytesPerToken estimates it.
	InputTokens, BodyBytes int64
	// MaxTokens is the request's own output bound (max_tokens,
	// max_completion_tokens, max_output_tokens); 0 when absent.
	// ModelMaxOutput is the model's maximum output; 0 when unknown.
	MaxTokens, ModelMaxOutput int64
	// Book prices the worst case: the book of the price version the
	// request started under (nil: unpriced). Contract is the serving BYOK
	// credential's contract terms (nil for the platform key), in force at
	// Start (zero: now).
	Book     *pricing.Book
	Contract *pricing.Contract
	Start    time.Time
}

// estimate is the worst case a reservation assumes: input tokens, and
// output tokens bounded by the request, the model and the cap.
func (l *Limiter) estimate(req *Request) (in, out int64) {
	in = req.InputTokens
	if in <= 0 {
		in = (max(req.BodyBytes, 0) + l.cfg.BytesPerToken - 1) / l.cfg.BytesPerToken
	}
	out = req.MaxTokens
	if m := req.ModelMaxOutput; m > 0 && (out <= 0 || out > m) {
		out = m
	}
	if out <= 0 {
		out = l.cfg.DefaultMaxOutput
	}
	if c := l.cfg.ReserveOutputCap; c > 0 && out > c {
		out = c
	}
	return in, out
}

// admission is the state of one Admit call.
type admission struct {
	l     *Limiter
	req   *Request
	r     *Reservation
	d     Decision
	now   time.Time
	nano  int64 // wall clock
	in    int64
	out   int64
	cost  int64
	price uint8 // 0 not yet priced, 1 priced, 2 unpriced
	payer Payer
	left  int64 // what the last counter charged has left (fleet-wide as known)
	cur   int64 // the last counter's slot
}

// Limited reports whether any budget or rate limit counts the account's
// requests: when none does, Admit would admit them with nothing reserved,
// and the caller may skip it (and the state it keeps for it).
func (l *Limiter) Limited(account string) bool {
	return l.policy.Load().accounts[account] != nil
}

// Admit decides whether req may go ahead and, if so, fills r with what it
// reserved: the worst-case cost on every dollar budget that counts the
// request's payer, its tokens on tokens-per-minute limits, one request on
// requests-per-minute limits (not for a Fallback attempt), one slot on
// concurrency limits. A refused request reserves nothing. An allowed one
// must be settled (Settle) or released (Release) exactly once.
//
// It reads the installed policy without locking, takes each counter's
// mutex for a few additions, and allocates nothing.
func (l *Limiter) Admit(req *Request, r *Reservation) Decision {
	r.reset(l)
	a := l.policy.Load().accounts[req.Account]
	if a == nil {
		return Decision{}
	}
	ad := admission{l: l, req: req, r: r, now: l.cfg.Now(), payer: req.Payer}
	if ad.payer != PayerBYOK {
		ad.payer = PayerPlatform
	}
	ad.nano = l.wall(ad.now)
	ad.in, ad.out = l.estimate(req)
	r.Tokens = ad.in + ad.out
	ok := ad.rates(a.rates) && ad.rates(a.keyRates[req.APIKey]) && ad.rates(a.modelRates[req.Model]) &&
		ad.budgets(a.budgets) && ad.budgets(a.keyBudgets[req.APIKey]) && ad.budgets(a.modelBudgets[req.Model])
	if ok && ad.payer == PayerBYOK {
		ok = ad.budgets(a.credBudgets[req.Provider])
	}
	if ok && req.Spillover && a.spill != nil {
		ok = ad.budget(a.spill)
	}
	if !ok {
		r.undo()
	}
	return ad.d
}

// rates charges the rate limits of one scope.
func (ad *admission) rates(rs []*rateRule) bool {
	for _, rl := range rs {
		if rl.conc != nil && !ad.charge(rl.conc, 1, holdGauge, false, nil) {
			return ad.refuseRate(rl, rl.conc, KindConcurrent)
		}
		if rl.rpm != nil && !ad.req.Fallback {
			if !ad.charge(rl.rpm, 1, holdCount, false, nil) {
				return ad.refuseRate(rl, rl.rpm, KindRPM)
			}
			ad.note(&ad.d.Requests, rl.rpm)
		}
		if rl.tpm != nil {
			if !ad.charge(rl.tpm, ad.r.Tokens, holdTokens, false, nil) {
				return ad.refuseRate(rl, rl.tpm, KindTPM)
			}
			ad.note(&ad.d.Tokens, rl.tpm)
		}
	}
	return true
}

// budgets charges the budgets of one scope that count the request's payer.
func (ad *admission) budgets(bs []*budgetRule) bool {
	for _, b := range bs {
		if (b.Payer == PayerAll || b.Payer == ad.payer) && !ad.budget(b) {
			return false
		}
	}
	return true
}

// budget charges one budget with the request's worst-case cost.
func (ad *admission) budget(b *budgetRule) bool {
	cost, priced := ad.worstCost()
	if !priced {
		switch b.Mode {
		case ModeHard:
			ad.d.Unpriced = true
			return ad.refuseBudget(b, false)
		case ModeShadow:
			ad.shadow(b)
		}
		ad.d.Unpriced = true
		return true
	}
	if ad.charge(b.c, cost, holdMoney, b.Mode != ModeHard, b) {
		return true
	}
	if b.Mode == ModeShadow {
		ad.shadow(b)
		return true
	}
	if b.Mode == ModeSoft {
		return true
	}
	return ad.refuseBudget(b, true)
}

// worstCost prices the reservation once per admission: the estimated
// input and the bounded output at the book's (or the contract's) prices.
func (ad *admission) worstCost() (int64, bool) {
	if ad.price == 0 {
		ad.price = 2
		req := ad.req
		if req.Book != nil {
			start := req.Start
			if start.IsZero() {
				start = ad.now
			}
			c := req.Book.CostAt(req.Provider, req.Model, pricing.Usage{Input: ad.in, Output: ad.out}, req.Contract, start)
			if !c.Unpriced {
				ad.cost, ad.price = int64(c.NanoUSD), 1
			}
		}
		if ad.price == 2 && ad.l.cfg.UnpricedRate > 0 {
			ad.cost, ad.price = ratedCost(ad.in+ad.out, ad.l.cfg.UnpricedRate), 1
		}
		ad.r.Cost = USD(ad.cost)
		ad.r.priced = ad.price == 1
	}
	return ad.cost, ad.price == 1
}

// ratedCost is tokens at a price per 1M tokens, in nano-USD, rounded up.
func ratedCost(tokens int64, p pricing.Price) int64 {
	if tokens <= 0 {
		return 0
	}
	// p is nano-USD per 1M tokens; tokens < 2^40 and p < 2^53 in practice,
	// but guard the product.
	const lim = 1 << 62
	if tokens > lim/int64(p+1) {
		return lim
	}
	return (tokens*int64(p) + 999_999) / 1_000_000
}

// charge takes amt from counter c into the reservation. force charges
// even when it does not fit (soft and shadow budgets); the result says
// whether it fit. In fleet mode a hard counter whose slice is short waits
// (SliceWait) for the background to fetch a new one, once.
func (ad *admission) charge(c *counter, amt int64, what holdKind, force bool, rule *budgetRule) bool {
	l := ad.l
	cur := c.slotNow(ad.now)
	c.mu.Lock()
	fits := ad.take(c, cur, amt, force)
	ad.left, ad.cur = c.limit.Load()-c.total(cur), cur
	// Fetch a slice when this one is short or half used, unless the
	// fleet's pool was found empty in this slot (the tick retries that).
	short := l.fleet && c.hard.Load() && c.exhausted != cur+1 && (!fits || c.held*2 < c.lastGrant)
	waitable := !fits && !force && short
	wake := c.wake
	c.mu.Unlock()
	if short {
		l.enqueue(c)
	}
	if waitable && l.cfg.SliceWait > 0 {
		fits = ad.wait(c, cur, amt, wake)
	}
	if fits || force {
		ad.r.push(hold{c: c, amt: amt, cur: cur, what: what, rule: rule})
	}
	return fits
}

// wait waits, at most SliceWait, for the background to bring c a slice
// that covers amt, and takes it. It gives up early when the fleet's pool
// is found empty or the backend unreachable. The cold path only: a
// request whose slice ran out.
func (ad *admission) wait(c *counter, cur, amt int64, wake chan struct{}) bool {
	t := time.NewTimer(ad.l.cfg.SliceWait)
	defer t.Stop()
	for {
		select {
		case <-wake:
		case <-t.C:
			c.mu.Lock()
			fits := ad.take(c, cur, amt, false)
			c.mu.Unlock()
			return fits
		}
		c.mu.Lock()
		fits := ad.take(c, cur, amt, false)
		done := fits || c.exhausted == cur+1 || c.down
		wake = c.wake
		c.mu.Unlock()
		if done {
			return fits
		}
		ad.l.enqueue(c)
	}
}

// take is counter.take with FailOpen: a hard limit whose backend is
// unreachable admits what it cannot cover. Called with c.mu held.
func (ad *admission) take(c *counter, cur, amt int64, force bool) bool {
	fits := c.take(cur, amt, c.limit.Load(), ad.l.fleet, force, ad.nano)
	if !fits && !force && ad.l.cfg.FailOpen && c.down {
		c.take(cur, amt, c.limit.Load(), ad.l.fleet, true, ad.nano)
		return true
	}
	return fits
}

// shadow records that a shadow budget would have refused.
func (ad *admission) shadow(b *budgetRule) {
	if ad.d.Shadow == "" {
		ad.d.Shadow = b.ID
	}
	b.c.wouldRefuse.Add(1)
	c := b.c
	cur := c.slotNow(ad.now)
	c.mu.Lock()
	first := c.markOnce(cur, shadowBit)
	spent, _ := c.usedIn(cur)
	spent += c.others
	c.mu.Unlock()
	if first {
		ad.l.emit(Event{Kind: EventWouldRefuse, LimitID: b.ID, Scope: b.Scope, Window: b.Window, RollingHours: b.RollingHours,
			WindowStart: c.win.start(c.win.first(cur)), Amount: b.Amount, Spent: USD(spent), At: ad.now, counter: c.key, slot: cur})
	}
}

// refuseBudget fills a 402 naming b (or a transient 429 when the fleet's
// slice, not the budget, ran out).
func (ad *admission) refuseBudget(b *budgetRule, counted bool) bool {
	d := &ad.d
	c := b.c
	cur := c.slotNow(ad.now)
	c.mu.Lock()
	used, oldest := c.usedIn(cur)
	d.Spent, d.Reserved = USD(used+c.others), USD(c.reserved)
	transient := counted && ad.l.fleet && c.exhausted != cur+1
	c.mu.Unlock()
	d.Outcome, d.Kind, d.LimitID, d.Scope = BudgetExceeded, b.kind, b.ID, b.Scope
	d.Window, d.RollingHours, d.Amount, d.Need = b.Window, b.RollingHours, b.Amount, USD(ad.cost)
	d.ResetAt = b.win.reset(cur, oldest)
	d.RetryAfter = ceilSecond(d.ResetAt.Sub(ad.now))
	if transient {
		d.Outcome, d.Transient, d.RetryAfter = RateLimited, true, time.Second
	}
	return false
}

// refuseRate fills a 429 naming the rate limit and the counter that
// refused.
func (ad *admission) refuseRate(rl *rateRule, c *counter, kind LimitKind) bool {
	d := &ad.d
	d.Outcome, d.Kind, d.LimitID, d.Scope = RateLimited, kind, rl.ID, rl.Scope
	cur := c.slotNow(ad.now)
	c.mu.Lock()
	transient := ad.l.fleet && c.exhausted != cur+1
	c.mu.Unlock()
	switch {
	case kind == KindConcurrent || transient:
		d.RetryAfter = time.Second
		d.Transient = transient && kind != KindConcurrent
	default:
		d.ResetAt = c.win.start(cur + 1)
		d.RetryAfter = ceilSecond(d.ResetAt.Sub(ad.now))
	}
	if kind == KindRPM {
		ad.rateInfo(&d.Requests, c)
	}
	if kind == KindTPM {
		ad.rateInfo(&d.Tokens, c)
	}
	return false
}

// note fills info from the counter just charged when it is tighter than
// what info holds.
func (ad *admission) note(info *RateInfo, c *counter) {
	left := max(ad.left, 0)
	if !info.Set || left < info.Remaining {
		*info = RateInfo{Set: true, Limit: c.limit.Load(), Remaining: left, Reset: c.win.start(ad.cur + 1).Sub(ad.now)}
	}
}

// rateInfo fills info from counter c when c is tighter than what info
// holds.
func (ad *admission) rateInfo(info *RateInfo, c *counter) {
	cur := c.slotNow(ad.now)
	limit := c.limit.Load()
	c.mu.Lock()
	left := max(limit-c.total(cur), 0)
	c.mu.Unlock()
	if !info.Set || left < info.Remaining {
		*info = RateInfo{Set: true, Limit: limit, Remaining: left, Reset: c.win.start(cur + 1).Sub(ad.now)}
	}
}

func ceilSecond(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}
