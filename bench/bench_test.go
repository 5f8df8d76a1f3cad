package main

import (
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// These tests check that the fake upstream, the load generator and the
// report work together; they never assert timings (the machine is shared).

func newTestFake(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewServer(&fake{pace: time.Millisecond, slowInterval: 20 * time.Millisecond, slowEvents: 3})
	t.Cleanup(srv.Close)
	return srv, strings.TrimPrefix(srv.URL, "http://")
}

func TestFakeAndClient(t *testing.T) {
	_, addr := newTestFake(t)
	const body = `{"model":"gpt-4o-mini","stream":true,"messages":[]}`
	plain := buildRequest(addr, "ar_test", `{"model":"gpt-4o-mini","messages":[]}`)
	stream := buildRequest(addr, "ar_test", body)
	paced := buildRequest(addr, "ar_test", strings.Replace(body, `"stream":true`, `"stream":true,`+markerPaced, 1))
	slow := buildRequest(addr, "ar_test", strings.Replace(body, `"stream":true`, `"stream":true,`+markerSlow, 1))

	c := &client{addr: addr, deadline: time.Now().Add(10 * time.Second)}
	defer c.close()
	for i := 0; i < 3; i++ { // the same connection, kept alive
		if err := c.plain(plain); err != nil {
			t.Fatalf("plain: %v", err)
		}
	}
	if len(completionJSON) != completionSize {
		t.Errorf("completion is %d bytes, want %d", len(completionJSON), completionSize)
	}
	st, err := c.stream(stream, time.Now(), nil, nil)
	if err != nil || !st.done || st.events != streamEvents+2 {
		t.Fatalf("stream: %+v %v, want %d events and [DONE]", st, err, streamEvents+2)
	}
	var ev eventLog
	opened := 0
	st, err = c.stream(paced, time.Now(), &ev, func() { opened++ })
	if err != nil || !st.done || opened != 1 {
		t.Fatalf("paced: %+v %v opened %d", st, err, opened)
	}
	if len(ev.delays) != streamEvents+1 || len(ev.gaps) != streamEvents {
		t.Errorf("paced: %d delays and %d gaps, want %d and %d", len(ev.delays), len(ev.gaps), streamEvents+1, streamEvents)
	}
	for _, d := range ev.delays {
		if d < -time.Second || d > time.Minute {
			t.Errorf("event delay %v: the timestamp was not parsed", d)
		}
	}
	st, err = c.stream(slow, time.Now(), nil, nil)
	if err != nil || st.events != 3+2 {
		t.Fatalf("slow: %+v %v, want 5 events", st, err)
	}

	now := time.Now()
	cr := closedLoop(addr, plain, 4, now.Add(50*time.Millisecond), now.Add(200*time.Millisecond))
	if cr.errs.n.Load() != 0 || len(cr.lat) == 0 || cr.all < int64(len(cr.lat)) {
		t.Errorf("closed loop: %d latencies, %d all, %s", len(cr.lat), cr.all, cr.errs.String())
	}
	or := openLoop(addr, plain, 200, 4, 50*time.Millisecond, 200*time.Millisecond, false, false)
	if or.errs.n.Load() != 0 || or.sent != 50 || len(or.lat) == 0 {
		t.Errorf("open loop: sent %d, %d latencies, %s", or.sent, len(or.lat), or.errs.String())
	}
	or = openLoop(addr, paced, 50, 4, 0, 100*time.Millisecond, true, true)
	if or.errs.n.Load() != 0 || len(or.ttfb) != 5 || len(or.events.delays) != 5*(streamEvents+1) {
		t.Errorf("open loop, paced: %d streams, %d delays, %s", len(or.ttfb), len(or.events.delays), or.errs.String())
	}
	samples := 0
	sr := slowStreams(addr, slow, 20, 20*time.Millisecond, 10*time.Second, func() { samples++ })
	if sr.ok != 20 || sr.maxOpen < 1 || sr.maxOpen > 20 || samples == 0 {
		t.Errorf("slow streams: %d ok, %d open at most, %d samples, %s", sr.ok, sr.maxOpen, samples, sr.errs.String())
	}
}

func TestStamp(t *testing.T) {
	ns := time.Now().UnixNano()
	line := appendStamp([]byte(chunkPrefix[len("data: "):]), ns)
	line = append(line, contentSuffix...)
	if got := parseStamp(line); got != ns {
		t.Errorf("parseStamp = %d, want %d", got, ns)
	}
	if parseStamp([]byte(`{"choices":[]}`)) != 0 {
		t.Error("parseStamp found a stamp in an event without one")
	}
}

func TestStats(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	if p := percentile(d, 50); p != 5 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(d, 99); p != 10 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(nil, 99); p != 0 {
		t.Errorf("p99 of nothing = %v", p)
	}
	if s := summarize([]float64{3, 1, 2}); s.med != 2 || s.min != 1 || s.max != 3 {
		t.Errorf("summarize = %+v", s)
	}
	if s := summarize([]float64{4, 1, 2, 3}); s.med != 2.5 {
		t.Errorf("median of four = %v", s.med)
	}

	r := newResults(3)
	r.slowN = 1000
	for round, v := range []float64{1000, 1100, 900} {
		r.add("a.rps", tDirect, round, 4*v)
		r.add("a.rps", tCaddy, round, v)
		r.add("a.rps", tGateway, round, v*1.02)
		r.add("c.p50", tCaddy, round, 0.700)
		r.add("c.p50", tGateway, round, 0.750)
		r.add("d.peak", tGateway, round, 150)
		r.add("d.open", tGateway, round, 1000)
	}
	r.add("a.p99", tCaddy, 0, 10) // only one round has both values
	r.add("a.p99", tGateway, 0, 12)
	r.add("a.p99", tGateway, 1, math.NaN())
	if got := summarize(r.paired("a.rps", tGateway, tCaddy, ratio)).med; math.Abs(got-1.02) > 1e-9 {
		t.Errorf("paired ratio = %v", got)
	}
	table := r.table()
	for _, want := range []string{"| (a) | throughput, req/s | 4,000 (3,600–4,400) | 1,000 (900–1,100) |", "| 1.02 |", "+50 µs", "| (d) | peak RSS"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	v := strings.Join(r.verdicts(), "\n")
	for _, want := range []string{"throughput ≥ 1.0 × plain Caddy: 1.02 × (rounds 1.02–1.02) — **met**",
		"p99 ≤ 1.1 × plain Caddy: 1.20 × (rounds 1.20–1.20) — **not met**, 0.10 × over",
		"added p50 ≤ 100 µs over plain Caddy at the fixed rate: +50 µs", "< 200 MB RSS: peak 150.0 MB"} {
		if !strings.Contains(v, want) {
			t.Errorf("verdicts lack %q:\n%s", want, v)
		}
	}
}

// The fake's Messages stream ends with message_stop, which the client takes
// as the end of a stream, and its deltas carry the fake's timestamp.
func TestFakeMessagesStream(t *testing.T) {
	_, addr := newTestFake(t)
	req := buildRequestTo("/v1/messages", addr, "ar_test", `{"model":"claude-haiku-4-5","stream":true,"max_tokens":5,"messages":[]}`)
	c := &client{addr: addr, deadline: time.Now().Add(10 * time.Second)}
	defer c.close()
	var ev eventLog
	st, err := c.stream(req, time.Now(), &ev, nil)
	if err != nil || !st.done || st.events != streamEvents+5 {
		t.Fatalf("messages stream: %+v %v, want %d events and message_stop", st, err, streamEvents+5)
	}
	if len(ev.delays) != streamEvents {
		t.Errorf("%d stamped events, want %d", len(ev.delays), streamEvents)
	}
}
