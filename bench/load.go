package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator: each worker owns one keep-alive HTTP/1.1 connection,
// writes a pre-built request and parses the answer with http.ReadResponse.
// That costs a few microseconds per request, much less than net/http's
// Transport (connection pool, a reader and a writer goroutine per
// connection), so more of the two shared cores go to the server under test.

// buildRequest returns the bytes of one POST /v1/chat/completions.
func buildRequest(hostport, auth, body string) []byte {
	return buildRequestTo("/v1/chat/completions", hostport, auth, body)
}

// buildRequestTo is buildRequest for another path (/v1/messages).
func buildRequestTo(path, hostport, auth, body string) []byte {
	var b bytes.Buffer
	b.WriteString("POST " + path + " HTTP/1.1\r\nHost: ")
	b.WriteString(hostport)
	b.WriteString("\r\nUser-Agent: agent-router-bench\r\nContent-Type: application/json\r\n")
	if auth != "" {
		b.WriteString("Authorization: Bearer " + auth + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.Bytes()
}

// client is one keep-alive connection to a target.
type client struct {
	addr     string
	deadline time.Time // for every read and write; bounds a hung request
	conn     net.Conn
	br       *bufio.Reader
	lines    *bufio.Reader
}

func (c *client) connect() error {
	if c.conn != nil {
		return nil
	}
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return err
	}
	if !c.deadline.IsZero() {
		conn.SetDeadline(c.deadline)
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func (c *client) send(req []byte) (*http.Response, error) {
	if err := c.connect(); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(req); err != nil {
		c.close()
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return nil, err
	}
	return resp, nil
}

// plain sends a non-streamed request and reads the whole answer.
func (c *client) plain(req []byte) error {
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		c.close()
		return err
	}
	if resp.Close {
		c.close()
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	if n < 100 {
		return fmt.Errorf("short answer: %d bytes", n)
	}
	return nil
}

// streamResult is what one SSE request measured.
type streamResult struct {
	ttfb   time.Duration // start to the first "data:" line
	total  time.Duration // start to "data: [DONE]"
	events int           // "data:" lines, [DONE] included
	done   bool
}

// eventLog collects, per JSON event, the delay from the fake's write to the
// client's read (wall clock, same machine) and the gap since the previous
// event (monotonic clock).
type eventLog struct {
	delays, gaps []time.Duration
}

// stream sends an SSE request and reads it to the end. start is the time
// latencies are measured from; opened is called at the first event.
func (c *client) stream(req []byte, start time.Time, ev *eventLog, opened func()) (streamResult, error) {
	var st streamResult
	resp, err := c.send(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		if resp.Close {
			c.close()
		}
		return st, fmt.Errorf("status %d", resp.StatusCode)
	}
	if c.lines == nil {
		c.lines = bufio.NewReaderSize(resp.Body, 8<<10)
	} else {
		c.lines.Reset(resp.Body)
	}
	var prev time.Time
	for {
		line, err := c.lines.ReadSlice('\n')
		if len(line) >= 6 && string(line[:6]) == "data: " {
			now := time.Now()
			if st.events == 0 {
				st.ttfb = now.Sub(start)
				if opened != nil {
					opened()
				}
			}
			st.events++
			payload := line[6:]
			if bytes.HasPrefix(payload, []byte("[DONE]")) || bytes.HasPrefix(payload, []byte(msgStopPayload)) {
				st.done = true
				st.total = now.Sub(start)
			} else if ev != nil {
				if ts := parseStamp(payload); ts > 0 {
					ev.delays = append(ev.delays, time.Duration(now.UnixNano()-ts))
				}
				if !prev.IsZero() {
					ev.gaps = append(ev.gaps, now.Sub(prev))
				}
			}
			prev = now
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			c.close()
			return st, err
		}
	}
	if resp.Close {
		c.close()
	}
	if !st.done {
		return st, errors.New("stream ended without data: [DONE]")
	}
	return st, nil
}

// errCounter counts failures and keeps the first one.
type errCounter struct {
	n     atomic.Int64
	mu    sync.Mutex
	first error
}

func (e *errCounter) add(err error) {
	if e.n.Add(1) == 1 {
		e.mu.Lock()
		e.first = err
		e.mu.Unlock()
	}
}

func (e *errCounter) String() string {
	n := e.n.Load()
	if n == 0 {
		return ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Sprintf("%d failed (first: %v)", n, e.first)
}

// maxRequestsPerWorker bounds every request loop by count, besides time.
const maxRequestsPerWorker = 5_000_000

// closedResult is one closed-loop run.
type closedResult struct {
	lat   []time.Duration // requests started and finished inside the window
	all   int64           // every completed request, warm-up included
	errs  errCounter
	begin time.Time // the measurement window
	end   time.Time
}

// closedLoop runs conns workers, each sending its next request as soon as the
// previous one is answered, for warmup+dur; latencies of requests that start
// after the warm-up and finish before the end are kept.
func closedLoop(addr string, req []byte, conns int, begin, end time.Time) *closedResult {
	return closedLoopWith(addr, conns, begin, end, func(c *client) error { return c.plain(req) })
}

// closedStreams is closedLoop for streams: each connection sends the next
// stream as soon as the previous one reached [DONE] (unpaced: at
// saturation, so the CPU each stream costs shows).
func closedStreams(addr string, req []byte, conns int, begin, end time.Time) *closedResult {
	return closedLoopWith(addr, conns, begin, end, func(c *client) error {
		st, err := c.stream(req, time.Now(), nil, nil)
		if err == nil && !st.done {
			err = errNoDone
		}
		return err
	})
}

var errNoDone = errors.New("stream ended without [DONE]")

func closedLoopWith(addr string, conns int, begin, end time.Time, do func(*client) error) *closedResult {
	res := &closedResult{begin: begin, end: end}
	lats := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := &client{addr: addr, deadline: end.Add(15 * time.Second)}
			defer c.close()
			lat := make([]time.Duration, 0, 4096)
			var all int64
			for i := 0; i < maxRequestsPerWorker; i++ {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				err := do(c)
				t1 := time.Now()
				if err != nil {
					res.errs.add(err)
					if !t1.Before(end) {
						break
					}
					time.Sleep(10 * time.Millisecond) // do not spin on a refused connection
					continue
				}
				all++
				if !t0.Before(begin) && t1.Before(end) {
					lat = append(lat, t1.Sub(t0))
				}
			}
			lats[w] = lat
			atomic.AddInt64(&res.all, all)
		}(w)
	}
	wg.Wait()
	for _, l := range lats {
		res.lat = append(res.lat, l...)
	}
	return res
}

// openResult is one open-loop run.
type openResult struct {
	lat    []time.Duration // non-streamed: full latency; streams: unused
	ttfb   []time.Duration
	total  []time.Duration
	events eventLog
	sent   int64
	late   int64 // sends that started more than 1 ms behind schedule
	errs   errCounter
}

// openLoop sends at a fixed rate, whatever the answers do, from workers that
// each own a connection: request i is due at t0 + i/rate. Latency is
// measured from the due time when the generator was behind schedule (all
// workers busy: coordinated omission corrected), and from the actual send
// when a worker was early and slept until the due time (Go's timers wake up
// to ~1 ms late; that slack belongs to the generator, not to the server).
// Requests due in the first warmup are not recorded.
func openLoop(addr string, req []byte, rate float64, workers int, warmup, dur time.Duration, stream, events bool) *openResult {
	res := &openResult{}
	total := int64(rate * (warmup + dur).Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	t0 := time.Now().Add(20 * time.Millisecond)
	from := t0.Add(warmup)
	deadline := t0.Add(warmup + dur + 30*time.Second)
	var next atomic.Int64
	parts := make([]*openResult, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		part := &openResult{}
		parts[w] = part
		go func() {
			defer wg.Done()
			c := &client{addr: addr, deadline: deadline}
			defer c.close()
			for {
				i := next.Add(1) - 1
				if i >= total || !time.Now().Before(deadline) {
					return
				}
				due := t0.Add(time.Duration(i) * interval)
				ref := due
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
					ref = time.Now()
				} else if d < -time.Millisecond {
					part.late++
				}
				part.sent++
				keep := !due.Before(from)
				if !stream {
					err := c.plain(req)
					if err != nil {
						res.errs.add(err)
						continue
					}
					if keep {
						part.lat = append(part.lat, time.Since(ref))
					}
					continue
				}
				var ev *eventLog
				if keep && events {
					ev = &part.events
				}
				st, err := c.stream(req, ref, ev, nil)
				if err != nil {
					res.errs.add(err)
					continue
				}
				if keep {
					part.ttfb = append(part.ttfb, st.ttfb)
					part.total = append(part.total, st.total)
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range parts {
		res.lat = append(res.lat, p.lat...)
		res.ttfb = append(res.ttfb, p.ttfb...)
		res.total = append(res.total, p.total...)
		res.events.delays = append(res.events.delays, p.events.delays...)
		res.events.gaps = append(res.events.gaps, p.events.gaps...)
		res.sent += p.sent
		res.late += p.late
	}
	return res
}

// slowResult is one run of many concurrent slow streams.
type slowResult struct {
	ok      int64
	maxOpen int64
	allOpen time.Duration // how long all n streams were open at once
	errs    errCounter
}

// slowStreams opens n slow streams, spread over ramp, and waits for all of
// them to finish. sample is called every 50 ms until then.
func slowStreams(addr string, req []byte, n int, ramp, limit time.Duration, sample func()) *slowResult {
	res := &slowResult{}
	start := time.Now()
	deadline := start.Add(limit)
	var open atomic.Int64
	var allOpenAt, allOpenEnd atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(ramp * time.Duration(i) / time.Duration(n))))
			c := &client{addr: addr, deadline: deadline}
			defer c.close()
			opened := false
			_, err := c.stream(req, time.Now(), nil, func() {
				opened = true
				cur := open.Add(1)
				for {
					m := atomic.LoadInt64(&res.maxOpen)
					if cur <= m || atomic.CompareAndSwapInt64(&res.maxOpen, m, cur) {
						break
					}
				}
				if cur == int64(n) {
					allOpenAt.Store(time.Now().UnixNano())
				}
			})
			if opened {
				if open.Add(-1) == int64(n-1) {
					allOpenEnd.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
			if err != nil {
				res.errs.add(err)
				return
			}
			atomic.AddInt64(&res.ok, 1)
		}(i)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		sample()
		select {
		case <-done:
			if a, b := allOpenAt.Load(), allOpenEnd.Load(); a > 0 && b > a {
				res.allOpen = time.Duration(b - a)
			}
			return res
		case <-tick.C:
		}
	}
}

// fill sends n non-streamed requests from conns connections as fast as they
// are answered (bounded by limit), and returns how many succeeded.
func fill(addr string, req []byte, conns int, n int64, limit time.Duration) (int64, *errCounter) {
	var next, ok atomic.Int64
	errs := &errCounter{}
	deadline := time.Now().Add(limit)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{addr: addr, deadline: deadline.Add(10 * time.Second)}
			defer c.close()
			for next.Add(1) <= n && time.Now().Before(deadline) {
				if err := c.plain(req); err != nil {
					errs.add(err)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return ok.Load(), errs
}
