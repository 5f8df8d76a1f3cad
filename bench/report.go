package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The three paths every phase drives, in this order in the table.
const (
	tDirect  = "direct"
	tCaddy   = "caddy"
	tGateway = "gateway"
)

var targetLabels = map[string]string{tDirect: "direct", tCaddy: "plain Caddy", tGateway: "gateway"}

// results holds one value per metric, target and round.
type results struct {
	rounds int
	slowN  int // streams asked for in (d)
	v      map[string]map[string][]float64
	notes  []string // failures and late sends, listed under the table
}

func newResults(rounds int) *results {
	return &results{rounds: rounds, v: map[string]map[string][]float64{}}
}

func (r *results) add(metric, target string, round int, v float64) {
	m := r.v[metric]
	if m == nil {
		m = map[string][]float64{}
		r.v[metric] = m
	}
	s := m[target]
	if s == nil {
		s = make([]float64, r.rounds)
		for i := range s {
			s[i] = math.NaN()
		}
		m[target] = s
	}
	s[round] = v
}

func (r *results) values(metric, target string) []float64 {
	var out []float64
	for _, v := range r.v[metric][target] {
		if !math.IsNaN(v) {
			out = append(out, v)
		}
	}
	return out
}

// paired returns f(a, b) for every round where both targets have a value:
// ratios and differences are taken within a round (the targets ran back to
// back), then summarised across rounds.
func (r *results) paired(metric, a, b string, f func(x, y float64) float64) []float64 {
	xa, xb := r.v[metric][a], r.v[metric][b]
	var out []float64
	for i := range xa {
		if i < len(xb) && !math.IsNaN(xa[i]) && !math.IsNaN(xb[i]) {
			if v := f(xa[i], xb[i]); !math.IsNaN(v) && !math.IsInf(v, 0) {
				out = append(out, v)
			}
		}
	}
	return out
}

func ratio(x, y float64) float64 { return x / y }
func diff(x, y float64) float64  { return x - y }

// summary is the median and the spread (min, max) of the rounds.
type summary struct {
	med, min, max float64
	n             int
}

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{med: med, min: s[0], max: s[len(s)-1], n: len(s)}
}

// percentile returns the p-th percentile (nearest rank) of d, sorting d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(d) {
		i = len(d) - 1
	}
	return d[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// --- the table ---

// unit kinds
const (
	uRate  = "req/s"
	uMS    = "ms"
	uUS    = "µs"
	uMB    = "MB"
	uCount = ""
	uPct   = "%"
)

type row struct {
	phase, metric, label, unit string
	gatewayOnly                bool // no direct column (RSS of the proxies)
}

var rows = []row{
	{"(a)", "a.rps", "throughput, req/s", uRate, false},
	{"(a)", "a.p50", "latency p50, ms", uMS, false},
	{"(a)", "a.p90", "latency p90, ms", uMS, false},
	{"(a)", "a.p99", "latency p99, ms", uMS, false},
	{"(a)", "a.cpu", "server CPU per request, µs", uUS, false},
	{"(a)", "a.gencpu", "load generator CPU per request, µs", uUS, false},
	{"(a)", "a.upconns", "upstream connections opened", uCount, false},
	{"(a)", "a.allocs", "server allocations per request", uCount, false},
	{"(a)", "a.kb", "server bytes allocated per request, kB", uCount, false},
	{"(s)", "s.rps", "streams/s at saturation (closed loop)", uRate, false},
	{"(s)", "s.p50", "stream to [DONE] p50, ms", uMS, false},
	{"(s)", "s.p99", "stream to [DONE] p99, ms", uMS, false},
	{"(s)", "s.cpu", "server CPU per stream, µs", uUS, false},
	{"(s)", "s.allocs", "server allocations per stream", uCount, false},
	{"(s)", "s.kb", "server bytes allocated per stream, kB", uCount, false},
	{"(m)", "m.rps", "Messages streams/s at saturation (passthrough)", uRate, false},
	{"(m)", "m.p50", "Messages stream to message_stop p50, ms", uMS, false},
	{"(m)", "m.p99", "Messages stream to message_stop p99, ms", uMS, false},
	{"(m)", "m.cpu", "server CPU per Messages stream, µs", uUS, false},
	{"(m)", "m.allocs", "server allocations per Messages stream", uCount, false},
	{"(m)", "m.kb", "server bytes allocated per Messages stream, kB", uCount, false},
	{"(b)", "b.ttfb50", "time to first event p50, ms", uMS, false},
	{"(b)", "b.ttfb99", "time to first event p99, ms", uMS, false},
	{"(b)", "b.total50", "total time to [DONE] p50, ms", uMS, false},
	{"(b)", "b.total99", "total time to [DONE] p99, ms", uMS, false},
	{"(b)", "e.delay50", "paced: event delay (fake write → client read) p50, ms", uMS, false},
	{"(b)", "e.delay99", "paced: event delay p99, ms", uMS, false},
	{"(b)", "e.delaymax", "paced: event delay max, ms", uMS, false},
	{"(b)", "e.over1", "paced: events delayed > 1 ms, %", uPct, false},
	{"(b)", "e.gap99", "paced: gap between events p99, ms (sent 5 ms apart)", uMS, false},
	{"(b)", "e.gapmax", "paced: gap between events max, ms", uMS, false},
	{"(c)", "c.p50", "latency p50, ms", uMS, false},
	{"(c)", "c.p99", "latency p99, ms", uMS, false},
	{"(c)", "c.cpu", "server CPU per request at this rate, µs", uUS, false},
	{"(d)", "d.open", "streams open at once", uCount, true},
	{"(d)", "d.base", "RSS before, MB", uMB, true},
	{"(d)", "d.peak", "peak RSS with the streams open, MB", uMB, true},
	{"(d)", "d.growth", "peak − before, MB", uMB, true},
	{"(d)", "d.anon", "peak anonymous RSS (heap, stacks), MB", uMB, true},
	{"(d)", "d.file", "peak file-backed RSS (mapped files), MB", uMB, true},
	{"(d)", "d.store", "the gateway's store file (bbolt, mmapped), MB", uMB, true},
}

func fmtVal(unit string, v float64) string {
	switch unit {
	case uRate:
		return thousands(int64(math.Round(v)))
	case uMS:
		switch {
		case v >= 100:
			return fmt.Sprintf("%.0f", v)
		case v >= 10:
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.2f", v)
	case uUS:
		return fmt.Sprintf("%.0f", v)
	case uMB:
		return fmt.Sprintf("%.1f", v)
	case uPct:
		return fmt.Sprintf("%.2f", v)
	}
	if v == math.Trunc(v) {
		return thousands(int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

// fmtDiff formats gateway − Caddy: latency differences in µs.
func fmtDiff(unit string, v float64) string {
	sign := "+"
	if v < 0 {
		sign = "−"
		v = -v
	}
	switch unit {
	case uMS:
		return fmt.Sprintf("%s%.0f µs", sign, v*1000)
	case uRate:
		return sign + thousands(int64(math.Round(v)))
	case uUS:
		return fmt.Sprintf("%s%.0f µs", sign, v)
	case uMB:
		return fmt.Sprintf("%s%.1f MB", sign, v)
	case uPct:
		return fmt.Sprintf("%s%.2f pt", sign, v)
	}
	return sign + fmtVal(unit, v)
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func cell(s summary, f func(float64) string) string {
	switch {
	case s.n == 0:
		return "–"
	case s.n == 1 || f(s.min) == f(s.max):
		return f(s.med)
	}
	sep := "–"
	if s.min < 0 || strings.HasPrefix(f(s.min), "+") {
		sep = " to " // signed values: "−12 µs (−30 µs to +5 µs)"
	}
	return fmt.Sprintf("%s (%s%s%s)", f(s.med), f(s.min), sep, f(s.max))
}

// table renders the results as one markdown table.
func (r *results) table() string {
	var b strings.Builder
	b.WriteString("| | metric | direct | plain Caddy | gateway | gateway / Caddy | gateway / direct | gateway − Caddy |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	fr := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	for _, rw := range rows {
		if r.v[rw.metric] == nil {
			continue
		}
		fv := func(v float64) string { return fmtVal(rw.unit, v) }
		fd := func(v float64) string { return fmtDiff(rw.unit, v) }
		direct := cell(summarize(r.values(rw.metric, tDirect)), fv)
		gd := cell(summarize(r.paired(rw.metric, tGateway, tDirect, ratio)), fr)
		if rw.gatewayOnly {
			direct, gd = "–", "–"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", rw.phase, rw.label, direct,
			cell(summarize(r.values(rw.metric, tCaddy)), fv),
			cell(summarize(r.values(rw.metric, tGateway)), fv),
			cell(summarize(r.paired(rw.metric, tGateway, tCaddy, ratio)), fr),
			gd,
			cell(summarize(r.paired(rw.metric, tGateway, tCaddy, diff)), fd))
	}
	return b.String()
}

// verdicts checks the targets against the medians.
func (r *results) verdicts() []string {
	var out []string
	mark := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	have := func(metric string) bool { return len(r.paired(metric, tGateway, tCaddy, ratio)) > 0 }
	if have("a.rps") {
		s := summarize(r.paired("a.rps", tGateway, tCaddy, ratio))
		line := fmt.Sprintf("(a) throughput ≥ 1.0 × plain Caddy: %.2f × (rounds %.2f–%.2f) — %s", s.med, s.min, s.max, mark(s.med >= 1.0))
		if s.med < 1.0 {
			line += fmt.Sprintf(", %.1f %% short", (1-s.med)*100)
		}
		out = append(out, line)
	}
	if have("s.rps") {
		s := summarize(r.paired("s.rps", tGateway, tCaddy, ratio))
		out = append(out, fmt.Sprintf("(s) streams/s ≥ 1.0 × plain Caddy: %.2f × (rounds %.2f–%.2f) — %s", s.med, s.min, s.max, mark(s.med >= 1.0)))
	}
	if have("s.cpu") {
		s := summarize(r.paired("s.cpu", tGateway, tCaddy, ratio))
		out = append(out, fmt.Sprintf("(s) CPU per stream ≤ 1.0 × plain Caddy: %.2f × (rounds %.2f–%.2f) — %s", s.med, s.min, s.max, mark(s.med <= 1.0)))
	}
	if have("s.allocs") {
		s := summarize(r.paired("s.allocs", tGateway, tCaddy, diff))
		out = append(out, fmt.Sprintf("(s) allocations per stream ≤ plain Caddy's: %+.0f (rounds %+.0f to %+.0f) — %s", s.med, s.min, s.max, mark(s.med <= 0)))
	}
	if have("a.p99") {
		s := summarize(r.paired("a.p99", tGateway, tCaddy, ratio))
		line := fmt.Sprintf("(a) p99 ≤ 1.1 × plain Caddy: %.2f × (rounds %.2f–%.2f) — %s", s.med, s.min, s.max, mark(s.med <= 1.1))
		if s.med > 1.1 {
			line += fmt.Sprintf(", %.2f × over", s.med-1.1)
		}
		out = append(out, line)
	}
	if have("c.p50") {
		s := summarize(r.paired("c.p50", tGateway, tCaddy, diff))
		us := s.med * 1000
		line := fmt.Sprintf("(c) added p50 ≤ 100 µs over plain Caddy at the fixed rate: %+.0f µs (rounds %+.0f to %+.0f µs) — %s", us, s.min*1000, s.max*1000, mark(us <= 100))
		if us > 100 {
			line += fmt.Sprintf(", %.0f µs over", us-100)
		}
		out = append(out, line)
	}
	if have("b.ttfb50") {
		s := summarize(r.paired("b.ttfb50", tGateway, tCaddy, diff))
		line := fmt.Sprintf("(b) time to first event p50 ≤ plain Caddy + 0.2 ms: %+.0f µs (rounds %+.0f to %+.0f µs) — %s", s.med*1000, s.min*1000, s.max*1000, mark(s.med <= 0.2))
		if s.med > 0.2 {
			line += fmt.Sprintf(", %.0f µs over", (s.med-0.2)*1000)
		}
		out = append(out, line)
	}
	if have("b.ttfb99") {
		s := summarize(r.paired("b.ttfb99", tGateway, tCaddy, ratio))
		line := fmt.Sprintf("(b) time to first event p99 ≤ 1.1 × plain Caddy: %.2f × (rounds %.2f–%.2f) — %s", s.med, s.min, s.max, mark(s.med <= 1.1))
		if s.med > 1.1 {
			line += fmt.Sprintf(", %.2f × over", s.med-1.1)
		}
		out = append(out, line)
	}
	if have("e.delay99") {
		g := summarize(r.values("e.delay99", tGateway))
		c := summarize(r.values("e.delay99", tCaddy))
		gm := summarize(r.values("e.delaymax", tGateway))
		cm := summarize(r.values("e.delaymax", tCaddy))
		line := fmt.Sprintf("(b) no event held back (each relayed within 1 ms): p99 of the delay from the fake's write to the client's read is %.2f ms through the gateway (plain Caddy %.2f ms) — %s",
			g.med, c.med, mark(g.med <= 1.0))
		if len(r.values("e.over1", tGateway)) > 0 {
			line += fmt.Sprintf("; taken literally (every event), %.2f %% of the events through the gateway took over 1 ms end to end (plain Caddy %.2f %%, direct %.2f %%), the worst %.1f ms (plain Caddy %.1f ms)",
				summarize(r.values("e.over1", tGateway)).med, summarize(r.values("e.over1", tCaddy)).med, summarize(r.values("e.over1", tDirect)).med, gm.med, cm.med)
		}
		out = append(out, line)
	}
	if len(r.values("d.peak", tGateway)) > 0 {
		s := summarize(r.values("d.peak", tGateway))
		open := summarize(r.values("d.open", tGateway))
		ok := s.max < 200 && r.slowN >= 1000 && open.min >= float64(r.slowN)
		line := fmt.Sprintf("(d) 1,000 concurrent streams in < 200 MB RSS: peak %.1f MB (highest round %.1f MB) with %s of %s streams open at once — %s",
			s.med, s.max, thousands(int64(open.min)), thousands(int64(r.slowN)), mark(ok))
		if s.max >= 200 {
			line += fmt.Sprintf(", %.1f MB over in the highest round", s.max-200)
		}
		if a := r.values("d.anon", tGateway); len(a) > 0 {
			line += fmt.Sprintf("; of the peak, anonymous memory (heap, stacks) %.1f MB (plain Caddy %.1f MB) and file-backed pages %.1f MB (plain Caddy %.1f MB)",
				summarize(a).med, summarize(r.values("d.anon", tCaddy)).med, summarize(r.values("d.file", tGateway)).med, summarize(r.values("d.file", tCaddy)).med)
			if st := r.values("d.store", tGateway); len(st) > 0 {
				line += fmt.Sprintf(", the mmapped bbolt store being %.0f MB", summarize(st).med)
			}
			line += fmt.Sprintf("; the streams themselves added %.1f MB (plain Caddy %.1f MB)",
				summarize(r.values("d.growth", tGateway)).med, summarize(r.values("d.growth", tCaddy)).med)
		}
		out = append(out, line)
	}
	return out
}
