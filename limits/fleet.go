package limits

import (
	"context"
	"errors"
	"time"
)

// The limiter's background work: restoring counters from the backend,
// fetching and giving back slices (fleet mode), writing settled spend,
// and delivering events. None of it runs on a request's path; a request
// only signals (enqueue) and, when its slice is empty, may wait for it.

// opTimeout bounds one backend call.
const opTimeout = 5 * time.Second

func (l *Limiter) start() {
	if l.cfg.OnEvent != nil {
		l.wg.Add(1)
		go l.eventLoop()
	}
	if l.backend == nil {
		return
	}
	workers := 4 // a store can group their writes (bbolt's db.Batch)
	for range workers {
		l.wg.Add(1)
		go l.worker()
	}
	l.wg.Add(1)
	go l.tickLoop()
}

// enqueue asks the workers to service c, without blocking: a counter is
// in the queue at most once.
func (l *Limiter) enqueue(c *counter) {
	if l.backend == nil || !c.queued.CompareAndSwap(false, true) {
		return
	}
	select {
	case l.queue <- c:
	default:
		c.queued.Store(false) // the next tick tries again
	}
}

func (l *Limiter) worker() {
	defer l.wg.Done()
	for {
		select {
		case <-l.done:
			return
		case c := <-l.queue:
			c.queued.Store(false)
			ctx, cancel := l.ctx()
			l.service(ctx, c)
			cancel()
		}
	}
}

func (l *Limiter) tickLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.FlushInterval)
	defer t.Stop()
	var epoch uint64
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			if e := l.backend.Epoch(); e != epoch {
				epoch = e
				l.dropHeld()
			}
			l.tick()
		}
	}
}

// tick queues every counter that has something for the backend: a change
// to write, a slice to give back or fetch ahead, a shortfall to retry.
func (l *Limiter) tick() {
	now := time.Now().UnixNano()
	idle := l.cfg.ReturnAfter.Nanoseconds()
	for _, c := range l.policy.Load().counters {
		c.mu.Lock()
		due := c.ver != c.reported || !c.restored || c.down ||
			l.fleet && (c.held > 0 && now-c.lastUse > idle ||
				c.hard.Load() && c.exhausted != 0 && now-c.lastShort < idle ||
				c.held < 0 || now-c.seen > l.cfg.RefreshInterval.Nanoseconds())
		c.mu.Unlock()
		if due {
			l.enqueue(c)
		}
	}
}

// dropHeld forgets every local slice: the backend lost them (the lease
// expired), so the fleet may have granted them again.
func (l *Limiter) dropHeld() {
	l.mu.Lock()
	cs := make([]*counter, 0, len(l.counters))
	for _, c := range l.counters {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		if c.held > 0 {
			c.held = 0
		}
		c.lastGrant = 0
		c.ver++
		c.mu.Unlock()
	}
}

// ctx bounds one background call; Close cancels them all.
func (l *Limiter) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(l.bg, opTimeout)
}

// span is the part of c's history that counts at now.
func (l *Limiter) span(c *counter, now time.Time) Span {
	if c.kind == gauge {
		return Span{Ephemeral: true}
	}
	cur := c.win.slot(now)
	return Span{From: c.win.first(cur), To: cur}
}

// share is this instance's part of c from span.From on: settled per
// slot (a slot newer than span.To too: the clock may have moved on since
// span was taken, and what was spent there must not vanish from the
// backend's sum), what is in flight added to the newest slot (so a crash
// counts it as spent), and the held slice. Called with c.mu held.
func (c *counter) share(span Span) Share {
	var s Share
	newest := span.To
	for _, sl := range c.slots {
		if sl.idx >= span.From && sl.used != 0 {
			s.Used = append(s.Used, SlotUsed{sl.idx, sl.used})
		}
		newest = max(newest, sl.idx)
	}
	if c.reserved != 0 {
		found := false
		for i := range s.Used {
			if s.Used[i].Slot == newest {
				s.Used[i].Used += c.reserved
				found = true
			}
		}
		if !found {
			s.Used = append(s.Used, SlotUsed{newest, c.reserved})
		}
	}
	s.Held = max(c.held, 0)
	return s
}

// restore merges what the backend kept for this instance into c (after a
// restart the slots start empty, so nothing is counted twice) and reads
// the rest of the fleet's spend. Called with c.io held, or at Install.
func (l *Limiter) restore(ctx context.Context, c *counter) error {
	span := l.span(c, l.cfg.Now())
	v, err := l.backend.Load(ctx, c.key, span)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !span.Ephemeral {
		for _, m := range v.Mine {
			c.add(m.Slot, m.Used)
		}
	}
	c.others = v.OthersUsed
	c.restored = true
	return nil
}

// service does the backend work c needs: restore it, then in fleet mode
// fetch a slice for a hard limit that is short (or ahead, at half use),
// or give an idle slice back; otherwise write what changed.
func (l *Limiter) service(ctx context.Context, c *counter) {
	c.io.Lock()
	defer c.io.Unlock()
	if !c.restored {
		if err := l.restore(ctx, c); err != nil {
			l.failed(c)
			return
		}
	}
	now := l.cfg.Now()
	nano := time.Now().UnixNano()
	span := l.span(c, now)
	c.mu.Lock()
	hard := c.hard.Load()
	recent := nano-c.lastUse < l.cfg.ReturnAfter.Nanoseconds()
	giveBack := l.fleet && c.held > 0 && (!hard || !recent)
	if giveBack {
		c.held = 0
		c.lastGrant = 0
		c.ver++
	}
	acquire := l.fleet && hard && !giveBack && (c.need > 0 || c.held < 0 ||
		recent && (c.held*2 < c.lastGrant || c.lastGrant == 0) ||
		c.exhausted != 0 && nano-c.lastShort < l.cfg.ReturnAfter.Nanoseconds())
	need := max(c.need-c.held, -c.held, 0)
	c.need = 0
	mine := c.share(span)
	ver := c.ver
	dirty := ver != c.reported
	c.mu.Unlock()

	var v View
	var granted int64
	var err error
	switch {
	case acquire:
		granted, v, err = l.backend.Acquire(ctx, c.key, span, c.limit.Load(), need, mine)
	case giveBack || dirty:
		v, err = l.backend.Report(ctx, c.key, span, mine)
	default: // only the rest of the fleet's spend to read
		v, err = l.backend.Load(ctx, c.key, span)
	}
	if err != nil {
		l.failed(c)
		return
	}
	c.mu.Lock()
	c.down = false
	c.seen = nano
	c.others = v.OthersUsed
	if c.ver == ver {
		c.reported = ver
	}
	if acquire {
		c.held += granted
		if granted > 0 {
			c.lastGrant = granted
		}
		c.exhausted = 0
		if granted == 0 || granted < need {
			c.exhausted = span.To + 1
		}
	}
	c.wakeAll()
	c.mu.Unlock()
}

// failed marks c's backend as unreachable and wakes its waiters (they
// answer 429, or admit with FailOpen).
func (l *Limiter) failed(c *counter) {
	c.mu.Lock()
	c.down = true
	c.wakeAll()
	c.mu.Unlock()
}

// wakeAll releases the requests waiting for a slice. Called with c.mu
// held.
func (c *counter) wakeAll() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// retire gives back a removed counter's slice.
func (l *Limiter) retire(c *counter) {
	c.hard.Store(false)
	l.enqueue(c)
}

func (l *Limiter) eventLoop() {
	defer l.wg.Done()
	for {
		select {
		case <-l.done:
			for { // deliver what is queued, then stop
				select {
				case e := <-l.events:
					l.deliver(e)
				default:
					return
				}
			}
		case e := <-l.events:
			l.deliver(e)
		}
	}
}

// deliver hands e to OnEvent unless another instance (or an earlier life
// of this one) already claimed it for its window.
func (l *Limiter) deliver(e Event) {
	if l.backend != nil {
		ctx, cancel := l.ctx()
		what := "would_refuse"
		if e.Kind == EventThreshold {
			what = "pct" + itoa(e.Percent)
		}
		first, err := l.backend.Claim(ctx, e.counter, e.slot, what)
		cancel()
		if err == nil && !first {
			return
		}
	}
	l.cfg.OnEvent(e)
}

var errFlush = errors.New("limits: the backend was unreachable: some counters were not written")

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

// Close stops the background work, gives every held slice back and
// writes what changed. Requests admitted after Close are still counted,
// in memory only: close the limiter with the process (or the config it
// belongs to).
func (l *Limiter) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	cs := make([]*counter, 0, len(l.counters))
	for _, c := range l.counters {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	close(l.done)
	l.stop() // abort what the background is waiting for
	l.wg.Wait()
	if l.backend == nil {
		return nil
	}
	// One deadline for the last writes: a dead backend does not hold a
	// shutdown for a timeout per counter.
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var first error
	for _, c := range cs {
		c.hard.Store(false) // give slices back
		l.service(ctx, c)
		c.mu.Lock()
		if c.down && first == nil {
			first = errFlush
		}
		c.mu.Unlock()
	}
	return first
}
