package limits

import (
	"sync"
	"sync/atomic"
	"time"
)

// counterKind is how a counter is charged.
type counterKind uint8

const (
	// spend: reserved at admission, replaced by the actual amount at
	// settlement (dollars, tokens).
	spend counterKind = iota
	// count: taken at admission for good (requests per minute).
	count
	// gauge: held while a request is in flight (concurrency); no window.
	gauge
)

// slot is the amount settled in one slot of a window.
type slot struct{ idx, used int64 }

// counter is the mutable state of one limit: settled amounts per slot,
// what is reserved by requests in flight and, in fleet mode, the unused
// slice of the fleet's limit this instance holds. It outlives policy
// changes: a limit keeps its counter while its key (id and window) stays.
//
// mu guards the numbers and is held only for arithmetic: no I/O, no
// callback. io serialises the background work (restore, acquire, report)
// on one counter and is never taken on the request path.
type counter struct {
	key  string
	kind counterKind
	win  window

	limit atomic.Int64 // the ceiling, set at install
	hard  atomic.Bool  // refuses when spent (fleet: takes slices)

	mu       sync.Mutex
	slots    []slot
	reserved int64
	// Fleet mode: held is this instance's unused slice (negative after a
	// settlement above its reservation: a debt the next slice pays);
	// others what the rest of the fleet had settled or held in the window
	// at the last exchange with the backend.
	held      int64
	others    int64
	lastGrant int64
	need      int64 // the largest amount a request waited for since the last acquire
	exhausted int64 // 1 + the slot in which the fleet's pool was found empty; 0 when not
	restored  bool
	down      bool   // the last backend call failed
	ver       uint64 // bumped on every change; reported == ver when the backend has it all
	reported  uint64
	lastUse   int64 // wall unix nano of the last charge
	lastShort int64 // wall unix nano of the last request this instance's slice was too short for
	seen      int64 // wall unix nano of the last exchange with the backend
	wake      chan struct{}
	alerted   uint16 // thresholds crossed in alertSlot (bit i: threshold i; bit 15: shadow refusal)
	alertSlot int64

	io          sync.Mutex
	queued      atomic.Bool
	wouldRefuse atomic.Int64
}

func newCounter(key string, kind counterKind, w window) *counter {
	c := &counter{key: key, kind: kind, win: w, wake: make(chan struct{})}
	if w.n > 0 {
		c.slots = make([]slot, w.n)
		for i := range c.slots {
			c.slots[i].idx = -1
		}
	}
	return c
}

// usedIn is what is settled in the window whose newest slot is cur, and
// the oldest slot holding any of it (cur when none).
func (c *counter) usedIn(cur int64) (sum, oldest int64) {
	oldest = cur
	first := c.win.first(cur)
	for _, s := range c.slots {
		if s.idx >= first && s.idx <= cur && s.used != 0 {
			sum += s.used
			oldest = min(oldest, s.idx)
		}
	}
	return sum, oldest
}

// add settles v into slot idx.
func (c *counter) add(idx, v int64) {
	if len(c.slots) == 0 {
		return
	}
	s := &c.slots[idx%int64(len(c.slots))]
	if s.idx != idx {
		if s.idx > idx { // a slot older than the ring keeps: out of every window
			return
		}
		s.idx, s.used = idx, 0
	}
	s.used += v
}

// total is the fleet-wide amount the window holds against the limit, as
// this instance knows it: settled here and elsewhere, and reserved here.
func (c *counter) total(cur int64) int64 {
	used, _ := c.usedIn(cur)
	return used + c.others + c.reserved
}

// take charges amt at admission. exact counters compare with the limit;
// fleet counters (hard ones) draw from the held slice. With force the
// amount is charged even when it does not fit (soft and shadow budgets).
// It reports whether amt fit.
func (c *counter) take(cur, amt, limit int64, fleet, force bool, now int64) bool {
	fits := c.total(cur)+amt <= limit // one instance: against the limit itself
	if fleet && c.hard.Load() {
		fits = c.held >= amt // a fleet: against this instance's slice
	}
	if !fits {
		if fleet {
			c.lastShort = now
			c.need = max(c.need, amt)
		}
		if !force {
			return false
		}
	}
	if fleet && c.hard.Load() {
		c.held -= amt
	}
	if c.kind == count {
		c.add(cur, amt)
	} else {
		c.reserved += amt
	}
	c.ver++
	c.lastUse = now
	return fits
}

// untake undoes a take of the same admission (the request was refused by
// another limit).
func (c *counter) untake(cur, amt int64, fleet bool) {
	if fleet && c.hard.Load() {
		c.held += amt
	}
	if c.kind == count {
		c.add(cur, -amt)
	} else {
		c.reserved -= amt
	}
	c.ver++
}

// settle replaces a reservation of r by the actual amount, in the slot
// current at settlement (a reservation taken before a window rolled is
// carried into the new window, so the new window cannot be overrun by
// requests in flight across the edge).
func (c *counter) settle(cur, r, actual int64, fleet bool) {
	c.reserved -= r
	if c.kind == spend {
		c.add(cur, actual)
	} else {
		actual = 0 // a gauge gives its slot back
	}
	if fleet && c.hard.Load() {
		c.held += r - actual
	}
	c.ver++
}

// slotNow is the slot of now in the counter's window.
func (c *counter) slotNow(now time.Time) int64 { return c.win.slot(now) }
