package console

import (
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

func TestBarChartLayout(t *testing.T) {
	from := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	c := barChart{Label: "requests", Unit: "requests", Series: []chartSeries{{"BYOK", "byok"}, {"Platform", "platform"}},
		From: from, Step: time.Hour, Values: make([][]float64, 24)}
	for i := range c.Values {
		c.Values[i] = []float64{0, 0}
	}
	c.Values[15] = []float64{3, 2}
	c.Values[16] = []float64{1, 0}
	v := c.view()
	if len(v.Buckets) != 24 {
		t.Fatalf("%d buckets, want 24", len(v.Buckets))
	}
	// The tallest bar fills the plot: the axis tops at 5 (ticks 0..5).
	var labels []string
	for _, tk := range v.Ticks {
		labels = append(labels, tk.Label)
	}
	if got := strings.Join(labels, " "); got != "0 1 2 3 4 5" {
		t.Fatalf("y ticks %q", got)
	}
	b := v.Buckets[15]
	if len(b.Bars) != 2 || b.Bars[0].Class != "byok" || b.Bars[1].Class != "platform" {
		t.Fatalf("bars of bucket 15: %+v", b.Bars)
	}
	if h := b.Bars[0].H + b.Bars[1].H; h < plotH-0.1 || h > plotH+0.1 {
		t.Fatalf("the largest stack is %.2f high, want the plot's %.2f", h, plotH)
	}
	if b.Bars[1].Y+b.Bars[1].H != b.Bars[0].Y {
		t.Fatal("platform is not stacked on BYOK")
	}
	if want := "Dec 7, 15:00–16:00 UTC: BYOK 3, Platform 2 (5 requests)"; b.Title != want {
		t.Fatalf("title %q, want %q", b.Title, want)
	}
	if v.Buckets[0].Title != "Dec 7, 00:00–01:00 UTC: BYOK 0, Platform 0 (0 requests)" || len(v.Buckets[0].Bars) != 0 {
		t.Fatalf("an empty bucket: %+v", v.Buckets[0])
	}
	// Every third hour is named, on round hours; the date once.
	var times []string
	for _, b := range v.Buckets {
		if b.TimeLabel != "" {
			times = append(times, b.TimeLabel+"/"+b.DateLabel)
		}
	}
	if got := strings.Join(times, " "); got != "00:00/Dec 7 03:00/ 06:00/ 09:00/ 12:00/ 15:00/ 18:00/ 21:00/" {
		t.Fatalf("time labels %q", got)
	}
	// Buckets tile the plot left to right.
	for i := 1; i < len(v.Buckets); i++ {
		if v.Buckets[i].SlotX <= v.Buckets[i-1].SlotX {
			t.Fatal("buckets out of order")
		}
	}
	if last := v.Buckets[23]; last.SlotX+last.SlotW > v.Right+0.1 {
		t.Fatal("the last bucket overflows the plot")
	}
}

func TestBarChartScalesAndLabels(t *testing.T) {
	for _, c := range []struct {
		max       float64
		format    func(float64) string
		wantTicks string
	}{
		{0, nil, "0 1"},
		{7, nil, "0 2 4 6 8"},
		{1234, nil, "0 500 1,000 1,500"},
		{0.37, func(x float64) string { return fmt.Sprintf("$%.2f", x) }, "$0.00 $0.10 $0.20 $0.30 $0.40"},
	} {
		ch := barChart{Series: []chartSeries{{"A", "a"}}, From: time.Unix(0, 0), Step: time.Hour, Values: [][]float64{{c.max}}, Format: c.format}
		var got []string
		for _, tk := range ch.view().Ticks {
			got = append(got, tk.Label)
		}
		if strings.Join(got, " ") != c.wantTicks {
			t.Errorf("max %v: ticks %q, want %q", c.max, strings.Join(got, " "), c.wantTicks)
		}
	}
	// How many buckets get a time label, for each range of the page.
	day := 24 * time.Hour
	end := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		n      int
		step   time.Duration
		labels int
		last   bool
	}{{24, time.Hour, 8, false}, {7, day, 7, true}, {30, day, 5, true}, {90, day, 7, true}, {168, time.Hour, 7, false}} {
		ch := barChart{Series: []chartSeries{{"A", "a"}}, From: end.Add(-time.Duration(c.n) * c.step), Step: c.step, Values: make([][]float64, c.n)}
		v := ch.view()
		labels := 0
		for _, b := range v.Buckets {
			if b.TimeLabel != "" {
				labels++
			}
		}
		if labels != c.labels || (c.last && v.Buckets[c.n-1].TimeLabel == "") {
			t.Errorf("%d buckets of %v: %d labels (want %d), last labelled %v", c.n, c.step, labels, c.labels, v.Buckets[c.n-1].TimeLabel != "")
		}
	}
}

// The Usage page draws every bucket of its range on a labelled time axis,
// each with its values in a <title>, server-rendered (no script involved
// here: a plain HTTP client reads it).
func TestUsagePageChart(t *testing.T) {
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	at := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour).Add(10 * time.Minute)
	for i, src := range []string{"byok", "byok", "platform"} {
		f.s.Record(&store.LogRecord{ID: fmt.Sprintf("%016x%08x", at.UnixNano()+int64(i), i), Time: at, AccountID: "acme",
			Model: "gpt-4o", UpstreamModel: "gpt-4o", Provider: "openai", CredentialSource: src, Status: 200, TotalTokens: 10})
	}
	f.s.FlushLog()
	c := f.signedIn("owner@acme.test")
	groups := regexp.MustCompile(`<g class="bucket"><title>([^<]*)</title>`)
	for _, tc := range []struct {
		query   string
		buckets int
		title   string
	}{
		{"range=24h", 24, at.Truncate(time.Hour).Format("Jan 2, 15:04") + "–" + at.Truncate(time.Hour).Add(time.Hour).Format("15:04") + " UTC: BYOK 2, Platform 1 (3 requests)"},
		{"range=7d", 7, ": BYOK 2, Platform 1 (3 requests)"},
		{"range=7d&bucket=hour", 168, ": BYOK 2, Platform 1 (3 requests)"},
		{"range=90d", 90, ": BYOK 2, Platform 1 (3 requests)"},
	} {
		st, page := c.get("/console/usage?" + tc.query)
		if st != 200 {
			t.Fatalf("%s: %d", tc.query, st)
		}
		// The requests chart (the cost chart, after it, has the same buckets).
		body := page[:strings.Index(page, `id="cost"`)]
		if costs := page[strings.Index(page, `id="cost"`):]; len(groups.FindAllString(costs, -1)) != tc.buckets {
			t.Fatalf("%s: the cost chart has not one bar per bucket", tc.query)
		}
		m := groups.FindAllStringSubmatch(body, -1)
		if len(m) != tc.buckets || !strings.Contains(body, fmt.Sprintf(`data-buckets="%d"`, tc.buckets)) {
			t.Fatalf("%s: %d buckets drawn, want %d", tc.query, len(m), tc.buckets)
		}
		found, empty := 0, 0
		for _, g := range m {
			title := html.UnescapeString(g[1])
			if strings.Contains(title, tc.title) {
				found++
			}
			if strings.HasSuffix(title, "BYOK 0, Platform 0 (0 requests)") {
				empty++
			}
		}
		if found != 1 || empty != tc.buckets-1 {
			t.Fatalf("%s: %d buckets titled %q, %d empty ones (want 1 and %d)", tc.query, found, tc.title, empty, tc.buckets-1)
		}
		// A y-axis scale up to the tallest bar, and a labelled time axis.
		if !strings.Contains(body, `dominant-baseline="middle">3</text>`) || !strings.Contains(body, `dominant-baseline="middle">0</text>`) {
			t.Fatalf("%s: no y-axis ticks 0..3", tc.query)
		}
		if n := strings.Count(body, `class="tick time"`); n < 4 || n > maxTimeLabels {
			t.Fatalf("%s: %d time labels", tc.query, n)
		}
	}
	// 24 hours: the round hours of the clock are named.
	_, body := c.get("/console/usage?range=24h")
	for _, h := range []string{"00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"} {
		if !strings.Contains(body, `text-anchor="middle">`+h+`</text>`) {
			t.Errorf("24h: no %s label", h)
		}
	}
}

func TestFormatUSD(t *testing.T) {
	for x, want := range map[float64]string{0: "$0", 2.5: "$2.50", 1234.567: "$1234.57", 0.0042: "$0.0042", 0.00002: "$0.00002",
		0.3: "$0.3", 0.123456: "$0.123", 1e-9: "$0.000000001", 0.006125: "$0.00613"} {
		if got := formatUSD(x); got != want {
			t.Errorf("formatUSD(%v) = %q, want %q", x, got, want)
		}
	}
}
