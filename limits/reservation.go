package limits

import "github.com/agentrouter/caddy-agentrouter/pricing"

// holdKind is what a reservation holds on one counter.
type holdKind uint8

const (
	holdMoney  holdKind = iota // dollars: settled to the actual cost
	holdTokens                 // tokens: settled to the actual tokens
	holdCount                  // one request a minute: taken for good
	holdGauge                  // one request in flight: given back
)

type hold struct {
	c    *counter
	amt  int64
	cur  int64 // the counter's slot at admission
	what holdKind
	rule *budgetRule // the budget, for alerts (money holds)
}

// Reservation is what an admitted request holds until its usage arrives:
// its worst-case cost on each budget that counts it, its tokens, its
// request and its slot in flight. It is a value the caller keeps with the
// request (no allocation); Settle or Release it exactly once — a second
// call does nothing.
type Reservation struct {
	l     *Limiter
	n     int
	holds [maxHolds]hold
	// Cost is the worst-case cost reserved on dollar budgets (0 when none
	// applied); Tokens the input estimate plus the bounded output.
	Cost   USD
	Tokens int64
	priced bool
}

// reset readies r for an admission. The holds past n are already zero:
// undo, Settle and Release clear what they used.
func (r *Reservation) reset(l *Limiter) {
	if r.n > 0 { // a reservation reused before it was settled: its holds stay charged
		r.holds = [maxHolds]hold{}
	}
	r.l, r.n, r.Cost, r.Tokens, r.priced = l, 0, 0, 0, false
}

func (r *Reservation) push(h hold) {
	r.holds[r.n] = h
	r.n++
}

// Held reports whether the reservation still holds anything.
func (r *Reservation) Held() bool { return r.n > 0 }

// undo gives back everything admission took (the request was refused).
func (r *Reservation) undo() {
	for i := range r.holds[:r.n] {
		h := &r.holds[i]
		h.c.mu.Lock()
		h.c.untake(h.cur, h.amt, r.l.fleet)
		h.c.mu.Unlock()
		r.holds[i] = hold{}
	}
	r.n = 0
}

// Actual is what a request really used, for Settle.
type Actual struct {
	// Tokens is input (all classes: uncached, cache reads and writes) plus
	// output, as the provider reported them.
	Tokens int64
	// Reported says Tokens come from the provider's usage. When false (no
	// usage: a cut stream) the reserved tokens stay charged.
	Reported bool
	// Cost is the request's cost; Priced says it is one. When false the
	// reserved worst case stays charged on dollar budgets (or, with
	// UnpricedRate, Tokens at that rate): never free.
	Cost   USD
	Priced bool
}

// ActualOf reads a pricing.Cost (from pricing.Version.Cost) into an
// Actual: its tokens by class summed, its total when it has one.
// An unpriced cost with reason NoUsage has no tokens either.
func ActualOf(c *pricing.Cost) Actual {
	u := &c.Tokens
	t := u.Input + u.CacheRead + u.CacheWrite5m + u.CacheWrite1h + u.Output
	if u.ReasoningApart {
		t += u.Reasoning
	}
	return Actual{Tokens: t, Reported: !(c.Unpriced && c.Reason == pricing.NoUsage), Cost: USD(c.NanoUSD), Priced: !c.Unpriced}
}

// Settle replaces the reservation with what the request used: its cost on
// each dollar budget, its tokens on each tokens-per-minute limit, and
// gives back its slot in flight. The amounts land in the window current
// now (a reservation taken before a window rolled was carried into the
// new one). Threshold crossings are emitted as events.
func (r *Reservation) Settle(a Actual) {
	if r.n == 0 {
		return
	}
	l := r.l
	now := l.cfg.Now()
	money := int64(r.Cost)
	switch {
	case a.Priced:
		money = int64(a.Cost)
	case a.Reported && l.cfg.UnpricedRate > 0:
		money = ratedCost(a.Tokens, l.cfg.UnpricedRate)
	}
	tokens := r.Tokens
	if a.Reported {
		tokens = a.Tokens
	}
	for i := range r.holds[:r.n] {
		h := &r.holds[i]
		c := h.c
		cur := c.slotNow(now)
		var fresh uint16
		var spent int64
		c.mu.Lock()
		switch h.what {
		case holdMoney:
			c.settle(cur, h.amt, money, l.fleet)
			if h.rule != nil && len(h.rule.alerts) > 0 {
				fresh, spent = c.crossings(h.rule, cur)
			}
		case holdTokens:
			c.settle(cur, h.amt, tokens, l.fleet)
		case holdGauge:
			c.settle(cur, h.amt, 0, l.fleet)
		}
		c.mu.Unlock()
		if fresh != 0 {
			l.thresholdEvents(h.rule, fresh, spent, cur, now)
		}
		r.holds[i] = hold{}
	}
	r.n = 0
}

// Release gives the reservation back: the request failed or was cancelled
// before it used anything (no usage, nothing billed). The request still
// counts against requests per minute.
func (r *Reservation) Release() {
	if r.n == 0 {
		return
	}
	for i := range r.holds[:r.n] {
		h := &r.holds[i]
		if h.what != holdCount {
			h.c.mu.Lock()
			h.c.reserved -= h.amt
			if r.l.fleet && h.c.hard.Load() {
				h.c.held += h.amt
			}
			h.c.ver++
			h.c.mu.Unlock()
		}
		r.holds[i] = hold{}
	}
	r.n = 0
}
