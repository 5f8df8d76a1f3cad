package limits

import (
	"math/bits"
	"time"
)

// EventKind is what an Event reports.
type EventKind uint8

const (
	// EventThreshold: a budget's settled spend crossed one of its alert
	// thresholds (Percent) in the current window.
	EventThreshold EventKind = iota
	// EventWouldRefuse: a shadow budget would have refused a request (the
	// first in the window; Status counts them all).
	EventWouldRefuse
)

func (k EventKind) String() string {
	if k == EventWouldRefuse {
		return "would_refuse"
	}
	return "threshold"
}

// Event is an alert for a log line, a metric and the console's banner.
// Each is emitted once per window and threshold (fleet-wide when the
// backend is shared).
type Event struct {
	Kind         EventKind
	LimitID      string
	Scope        Scope
	Window       WindowKind
	RollingHours int
	WindowStart  time.Time
	// Percent is the threshold crossed (EventThreshold).
	Percent int
	// Amount is the budget; Spent what was settled in the window when the
	// event fired (fleet-wide as this instance knew it).
	Amount, Spent USD
	At            time.Time

	counter string // the counter's key and slot: what the fleet claims once
	slot    int64
}

const shadowBit = 15

// markOnce sets bit in the alert state of window slot cur and reports
// whether it was new. Calendar windows re-arm when they roll.
func (c *counter) markOnce(cur int64, bit uint) bool {
	c.rearm(cur)
	if c.alerted&(1<<bit) != 0 {
		return false
	}
	c.alerted |= 1 << bit
	return true
}

func (c *counter) rearm(cur int64) {
	if c.alertSlot == cur {
		return
	}
	c.alertSlot = cur
	if c.win.n == 1 {
		c.alerted = 0 // a new calendar window
	} else {
		c.alerted &^= 1 << shadowBit // a rolling window: once per slot
	}
}

// crossings records the thresholds of rule that the window's settled
// spend has newly reached: it returns them as bits (bit i: rule.alerts[i])
// with the spend. A rolling window re-arms a threshold once spend falls
// below it. Called with c.mu held.
func (c *counter) crossings(rule *budgetRule, cur int64) (fresh uint16, spent int64) {
	c.rearm(cur)
	used, _ := c.usedIn(cur)
	spent = used + c.others
	for i, pct := range rule.alerts {
		bit := uint16(1) << i
		switch {
		case spent <= 0 || !atLeastPercent(spent, int64(rule.Amount), pct):
			c.alerted &^= bit
		case c.alerted&bit == 0:
			c.alerted |= bit
			fresh |= bit
		}
	}
	return fresh, spent
}

// thresholdEvents emits an event for each bit of fresh.
func (l *Limiter) thresholdEvents(rule *budgetRule, fresh uint16, spent, cur int64, now time.Time) {
	c := rule.c
	for i, pct := range rule.alerts {
		if fresh&(1<<i) != 0 {
			l.emit(Event{Kind: EventThreshold, LimitID: rule.ID, Scope: rule.Scope, Window: rule.Window,
				RollingHours: rule.RollingHours, WindowStart: c.win.start(c.win.first(cur)), Percent: int(pct),
				Amount: rule.Amount, Spent: USD(spent), At: now, counter: c.key, slot: cur})
		}
	}
}

// atLeastPercent reports spent ≥ pct % of amount, exactly (128 bits).
func atLeastPercent(spent, amount, pct int64) bool {
	h1, l1 := bits.Mul64(uint64(spent), 100)
	h2, l2 := bits.Mul64(uint64(amount), uint64(pct))
	return h1 > h2 || h1 == h2 && l1 >= l2
}

// emit hands an event to the limiter's event goroutine without blocking;
// when its queue is full the event is dropped and counted.
func (l *Limiter) emit(e Event) {
	if l.cfg.OnEvent == nil {
		return
	}
	select {
	case l.events <- e:
	default:
		l.dropped.Add(1)
	}
}

// DroppedEvents is how many events were dropped because the event queue
// was full.
func (l *Limiter) DroppedEvents() int64 { return l.dropped.Load() }
