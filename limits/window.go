package limits

import (
	"fmt"
	"sync/atomic"
	"time"
)

// WindowKind names a budget's window. Calendar windows (day, week, month)
// are aligned to UTC: a day starts at 00:00 UTC, a week on Monday 00:00
// UTC, a month on the 1st at 00:00 UTC. A rolling window covers the last
// RollingHours hours.
type WindowKind string

const (
	WindowDay     WindowKind = "day"
	WindowWeek    WindowKind = "week"
	WindowMonth   WindowKind = "month"
	WindowRolling WindowKind = "rolling"
)

// maxRollingHours is the longest rolling window: a year.
const maxRollingHours = 8760

// rollingSlots is how many slots a rolling window is kept in. Spend is
// counted in the slot it settled in; a slot leaves the window only when
// all of it is older than the window, so a rolling window of N hours
// counts each dollar for between N and N + N/24 hours: never less than
// the window (a hard budget never frees money early), at most 1/24 more.
const rollingSlots = 24

// window is a compiled window: how to number its slots and how many of
// them make the window. Counters keep spend per slot; the window's spend
// is the sum of its last n slots.
type window struct {
	kind  WindowKind
	width int64 // seconds per slot; 0 for calendar months
	shift int64 // seconds added before dividing (weeks start on Monday)
	n     int64 // slots in the window: 1 for calendar windows
}

const (
	day  = 86400
	week = 7 * day
)

// Windows of the rate limits and of the concurrency gauge.
var (
	windowMinute = window{kind: "minute", width: 60, n: 1}
	windowNone   = window{kind: "none"} // a gauge: no slots, nothing rolls
	windowMonth  = window{kind: WindowMonth, n: 1}
)

// compileWindow checks a window and compiles it. hours is RollingHours.
func compileWindow(kind WindowKind, hours int) (window, error) {
	if kind != WindowRolling && hours != 0 {
		return window{}, fmt.Errorf("rolling_hours is only for a rolling window (window is %q)", kind)
	}
	switch kind {
	case WindowDay:
		return window{kind: kind, width: day, n: 1}, nil
	case WindowWeek:
		// 1970-01-01 was a Thursday: shifting by 3 days puts slot
		// boundaries on Mondays.
		return window{kind: kind, width: week, shift: 3 * day, n: 1}, nil
	case WindowMonth:
		return windowMonth, nil
	case WindowRolling:
		if hours < 1 || hours > maxRollingHours {
			return window{}, fmt.Errorf("rolling_hours must be between 1 and %d for a rolling window, got %d", maxRollingHours, hours)
		}
		return window{kind: kind, width: int64(hours) * 3600 / rollingSlots, n: rollingSlots + 1}, nil
	case "":
		return window{}, fmt.Errorf("window is missing (day, week, month or rolling)")
	}
	return window{}, fmt.Errorf("window %q is not one of day, week, month, rolling", kind)
}

// slot numbers the slot t falls in. Slots only grow with time.
func (w window) slot(t time.Time) int64 {
	if w.width == 0 {
		if w.n == 0 {
			return 0
		}
		return monthSlot(t)
	}
	s := t.Unix() + w.shift
	if s < 0 {
		return 0
	}
	return s / w.width
}

// monthSpan caches the current month's bounds: numbering a month slot is
// then two comparisons instead of a calendar computation.
type monthSpan struct{ from, to, idx int64 }

var monthCache atomic.Pointer[monthSpan]

func monthSlot(t time.Time) int64 {
	s := t.Unix()
	if m := monthCache.Load(); m != nil && s >= m.from && s < m.to {
		return m.idx
	}
	y, mo, _ := t.UTC().Date()
	m := &monthSpan{from: time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC).Unix(), to: time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC).Unix(),
		idx: int64(y)*12 + int64(mo) - 1}
	monthCache.Store(m) // once a month (or when a test's clock jumps)
	return m.idx
}

// start is when slot idx starts.
func (w window) start(idx int64) time.Time {
	if w.width == 0 {
		return time.Date(int(idx/12), time.Month(idx%12+1), 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Unix(idx*w.width-w.shift, 0).UTC()
}

// first is the oldest slot of the window whose newest slot is cur.
func (w window) first(cur int64) int64 { return cur - w.n + 1 }

// reset is when the window that contains slot cur next frees spend: the
// end of a calendar window; for a rolling one, when the oldest slot with
// spend in it (oldest; cur when none) leaves the window.
func (w window) reset(cur, oldest int64) time.Time {
	if w.n <= 1 {
		return w.start(cur + 1)
	}
	return w.start(oldest + w.n)
}

// key is a short stable name of the window, part of a counter's key: a
// budget whose window changes starts a new counter.
func (w window) key() string {
	if w.kind == WindowRolling {
		return fmt.Sprintf("r%d", w.width*rollingSlots/3600)
	}
	return string(w.kind)
}

// hours is the window's nominal length, for comparing amounts across
// windows (caps): a month counts as 31 days, the longest it can be.
func (w window) hours() int64 {
	switch w.kind {
	case WindowDay:
		return 24
	case WindowWeek:
		return 168
	case WindowMonth:
		return 31 * 24
	}
	return w.width * rollingSlots / 3600
}
