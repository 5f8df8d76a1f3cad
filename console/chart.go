package console

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// barChart is a server-rendered stacked bar chart over a time range, for
// the Usage page and the money charts after it: one bar for every bucket of
// the range (empty ones too, so the time axis is true), a labelled time
// axis, a y-axis scale with round ticks, and each bucket's values in an SVG
// <title> (a tooltip on hover, read by screen readers). It needs no
// JavaScript: view computes the geometry, and the "barchart" template
// (templates/chart.html) draws it.
type barChart struct {
	// Label is the chart's accessible name.
	Label string
	// Series are the stacked layers, bottom first.
	Series []chartSeries
	// From is the first bucket's start and Step the bucket size: time.Hour
	// or 24 hours (UTC days). Values[i] is bucket i, one value per series.
	From   time.Time
	Step   time.Duration
	Values [][]float64
	// Format writes a value (ticks, tooltips). Default: a whole number with
	// thousands separators.
	Format func(float64) string
	// Unit follows a bucket's total in its tooltip ("requests").
	Unit string
}

// chartSeries is one stacked layer: its name in tooltips and its CSS
// class (the colour, shared with the legend's swatch).
type chartSeries struct {
	Name, Class string
}

// Chart geometry, in SVG user units: the viewBox is chartW × chartH and
// keeps its aspect ratio (text is never stretched); the plot sits inside
// the margins.
const (
	chartW, chartH                   = 960.0, 260.0
	plotLeft, plotRight              = 64.0, 12.0
	plotTop, plotBottom              = 14.0, 44.0
	plotW, plotH                     = chartW - plotLeft - plotRight, chartH - plotTop - plotBottom
	maxTimeLabels, maxValueTicksHint = 8, 5
)

// chartView is what the template draws, in SVG user units.
type chartView struct {
	Label              string
	W, H               float64
	Left, Right        float64 // the plot's edges
	Top, Bottom, PlotH float64
	TickX              float64 // right edge of the value labels
	TickMarkY          float64 // end of the time ticks
	TimeY, DateY       float64 // baselines of the time labels' two lines
	Ticks              []chartTick
	Buckets            []chartBucket
}

type chartTick struct {
	Y     float64
	Label string
}

type chartBucket struct {
	X, W, Center float64 // the bar, and the centre of its slot
	SlotX, SlotW float64
	Title        string
	Bars         []chartBar
	// TimeLabel is set on the buckets the time axis names (one or two
	// lines: the time, and the date where it changes).
	TimeLabel, DateLabel string
}

type chartBar struct {
	Y, H  float64
	Class string
}

// buckets is how many buckets of step fit from from to to (to exclusive,
// a partial last bucket counted).
func buckets(from, to time.Time, step time.Duration) int {
	if !to.After(from) {
		return 0
	}
	return int((to.Sub(from) + step - 1) / step)
}

// view lays the chart out.
func (c barChart) view() chartView {
	format := c.Format
	if format == nil {
		format = formatCount
	}
	v := chartView{Label: c.Label, W: chartW, H: chartH, Left: plotLeft, Right: chartW - plotRight,
		Top: plotTop, Bottom: plotTop + plotH, PlotH: plotH, TickX: plotLeft - 8,
		TickMarkY: plotTop + plotH + 5, TimeY: plotTop + plotH + 19, DateY: plotTop + plotH + 36}
	var max float64
	for _, vals := range c.Values {
		var sum float64
		for _, x := range vals {
			sum += x
		}
		max = math.Max(max, sum)
	}
	top, step := niceScale(max)
	for y := 0.0; y <= top+step/2; y += step {
		v.Ticks = append(v.Ticks, chartTick{Y: round2(plotTop + plotH - plotH*y/top), Label: format(y)})
	}

	n := len(c.Values)
	if n == 0 {
		return v
	}
	slot := plotW / float64(n)
	every := labelEvery(n, c.Step)
	prevDate := ""
	for i, vals := range c.Values {
		t := c.From.Add(time.Duration(i) * c.Step).UTC()
		b := chartBucket{SlotX: round2(plotLeft + float64(i)*slot), SlotW: round2(slot),
			X: round2(plotLeft + float64(i)*slot + slot*0.1), W: round2(math.Max(slot*0.8, 0.5)),
			Center: round2(plotLeft + (float64(i)+0.5)*slot)}
		y := plotTop + plotH
		var parts []string
		var sum float64
		for s, x := range vals {
			sum += x
			if s < len(c.Series) {
				parts = append(parts, c.Series[s].Name+" "+format(x))
			}
			if x <= 0 || s >= len(c.Series) {
				continue
			}
			h := plotH * x / top
			y -= h
			b.Bars = append(b.Bars, chartBar{Y: round2(y), H: round2(h), Class: c.Series[s].Class})
		}
		b.Title = bucketName(t, c.Step) + ": " + strings.Join(parts, ", ") + " (" + format(sum) + " " + c.Unit + ")"
		if labelled(i, n, t, every, c.Step) {
			date := t.Format("Jan 2")
			if c.Step < 24*time.Hour {
				b.TimeLabel = t.Format("15:04")
				if date != prevDate {
					b.DateLabel = date
				}
			} else {
				b.TimeLabel = date
			}
			prevDate = date
		}
		v.Buckets = append(v.Buckets, b)
	}
	return v
}

// bucketName names a bucket in a tooltip: "Dec 7, 15:00–16:00 UTC" or
// "Dec 7 2026 (UTC day)".
func bucketName(t time.Time, step time.Duration) string {
	if step < 24*time.Hour {
		return t.Format("Jan 2, 15:04") + "–" + t.Add(step).Format("15:04") + " UTC"
	}
	return t.Format("Jan 2 2006") + " (UTC day)"
}

// labelEvery is the distance between labelled buckets: the smallest round
// step that names at most maxTimeLabels of n.
func labelEvery(n int, step time.Duration) int {
	steps := []int{1, 2, 7, 14, 28, 56}
	if step < 24*time.Hour {
		steps = []int{1, 2, 3, 4, 6, 12, 24, 48, 72, 168, 336, 672}
	}
	for _, s := range steps {
		if (n+s-1)/s <= maxTimeLabels {
			return s
		}
	}
	return (n + maxTimeLabels - 1) / maxTimeLabels
}

// labelled says whether bucket i (of n, starting at t) gets a time label:
// hours on round hours of the clock (00:00, 06:00...), days counted back
// from the last bucket (today is always named).
func labelled(i, n int, t time.Time, every int, step time.Duration) bool {
	if step < 24*time.Hour {
		if every <= 24 {
			return t.Hour()%every == 0
		}
		return t.Hour() == 0 && (t.Unix()/86400)%int64(every/24) == 0
	}
	return (n-1-i)%every == 0
}

// niceScale is the top of the y axis (≥ max) and the distance between its
// ticks: 1, 2 or 5 times a power of ten, about maxValueTicksHint ticks.
// An empty chart gets 0–1.
func niceScale(max float64) (top, step float64) {
	if max <= 0 {
		return 1, 1
	}
	raw := max / maxValueTicksHint
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		step = m * mag
		if step >= raw {
			break
		}
	}
	if max >= 1 && step < 1 {
		step = 1 // counts: no fractional ticks
	}
	return math.Ceil(max/step) * step, step
}

// formatCount writes a whole number with thousands separators.
func formatCount(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// formatUSD writes dollars for the money charts' ticks and tooltips: cents
// from a dollar up, fewer decimals' worth of precision below ("$0.0042").
func formatUSD(x float64) string {
	switch ax := math.Abs(x); {
	case ax == 0:
		return "$0"
	case ax >= 1:
		return "$" + strconv.FormatFloat(x, 'f', 2, 64)
	default:
		// Three significant digits, never an exponent.
		dec := min(int(math.Ceil(-math.Log10(ax)))+2, 9)
		s := strings.TrimRight(strconv.FormatFloat(x, 'f', dec, 64), "0")
		return "$" + strings.TrimSuffix(s, ".")
	}
}
