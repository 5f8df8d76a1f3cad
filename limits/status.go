package limits

import "time"

// Status is one limit's state, for the console and the admin API.
type Status struct {
	Kind    LimitKind `json:"-"`
	KindStr string    `json:"kind"`
	ID      string    `json:"id"`
	Scope
	Window       WindowKind `json:"window,omitempty"`
	RollingHours int        `json:"rolling_hours,omitempty"`
	Payer        Payer      `json:"payer,omitempty"`
	Mode         Mode       `json:"mode,omitempty"`
	// Limit, Spent, Reserved, Held and Remaining are in nano-USD for
	// budgets and the spillover allowance, in requests or tokens for rate
	// limits. Spent is settled in the current window fleet-wide (the rest
	// of the fleet as of the last exchange with the backend); Reserved and
	// Held are this instance's requests in flight and unused slice.
	Limit     int64 `json:"limit"`
	Spent     int64 `json:"spent"`
	Reserved  int64 `json:"reserved"`
	Held      int64 `json:"held,omitempty"`
	Remaining int64 `json:"remaining"`
	// WindowStart and ResetAt bound the current window (zero for
	// concurrency).
	WindowStart time.Time `json:"window_start,omitzero"`
	ResetAt     time.Time `json:"reset_at,omitzero"`
	// WouldRefuse counts the requests a shadow budget would have refused.
	WouldRefuse int64 `json:"would_refuse,omitempty"`
}

// Status lists every limit of the installed policy with its counter.
func (l *Limiter) Status() []Status {
	p := l.policy.Load()
	now := l.cfg.Now()
	var out []Status
	for _, b := range p.budgets {
		s := Status{Kind: b.kind, ID: b.ID, Scope: b.Scope, Window: b.Window, RollingHours: b.RollingHours, Payer: b.Payer, Mode: b.Mode}
		l.fill(&s, b.c, now)
		out = append(out, s)
	}
	for _, r := range p.rates {
		for _, x := range []struct {
			c    *counter
			kind LimitKind
		}{{r.rpm, KindRPM}, {r.tpm, KindTPM}, {r.conc, KindConcurrent}} {
			if x.c != nil {
				s := Status{Kind: x.kind, ID: r.ID, Scope: r.Scope}
				l.fill(&s, x.c, now)
				out = append(out, s)
			}
		}
	}
	return out
}

func (l *Limiter) fill(s *Status, c *counter, now time.Time) {
	s.KindStr = s.Kind.String()
	cur := c.slotNow(now)
	c.mu.Lock()
	used, oldest := c.usedIn(cur)
	s.Spent, s.Reserved, s.Held = used+c.others, c.reserved, max(c.held, 0)
	c.mu.Unlock()
	s.Limit = c.limit.Load()
	s.Remaining = max(s.Limit-s.Spent-s.Reserved, 0)
	s.WouldRefuse = c.wouldRefuse.Load()
	if c.win.n > 0 {
		s.WindowStart = c.win.start(c.win.first(cur))
		s.ResetAt = c.win.reset(cur, oldest)
	}
}
