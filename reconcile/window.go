package reconcile

import (
	"fmt"
	"time"
)

// Window is the span a run reconciles: whole UTC days, From inclusive and
// To exclusive, both at midnight UTC. Token rows are per hour inside it,
// cost rows per day; a run replaces the ledger's rows of exactly this span.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

const (
	// DefaultDays is the span of an hourly run: today and the two days
	// before it, which covers the providers' lag of up to 24 hours.
	DefaultDays = 3
	// MaxDays is the longest span one run may cover (on demand).
	MaxDays = 31
	day     = 24 * time.Hour
)

// LastDays is the window of the n UTC days that end with now's day
// (today included).
func LastDays(now time.Time, n int) Window {
	today := now.UTC().Truncate(day)
	return Window{From: today.AddDate(0, 0, -(n - 1)), To: today.AddDate(0, 0, 1)}
}

// Days is the number of days the window covers.
func (w Window) Days() int { return int(w.To.Sub(w.From) / day) }

// Check refuses a window that is not whole UTC days, is empty, or is
// longer than MaxDays.
func (w Window) Check() error {
	switch {
	case !w.From.Equal(w.From.UTC().Truncate(day)) || !w.To.Equal(w.To.UTC().Truncate(day)):
		return fmt.Errorf("reconcile window %s–%s: from and to must be midnight UTC", w.From.Format(time.RFC3339), w.To.Format(time.RFC3339))
	case !w.To.After(w.From):
		return fmt.Errorf("reconcile window %s–%s is empty", w.From.Format(time.RFC3339), w.To.Format(time.RFC3339))
	case w.Days() > MaxDays:
		return fmt.Errorf("reconcile window of %d days: at most %d", w.Days(), MaxDays)
	}
	return nil
}

// Contains reports whether t is inside the window.
func (w Window) Contains(t time.Time) bool { return !t.Before(w.From) && t.Before(w.To) }

// chunks splits the window into consecutive spans of at most n buckets of
// width each: one admin request's allowed range (168 hourly buckets, 31
// daily ones).
func (w Window) chunks(width time.Duration, n int) []Window {
	var out []Window
	step := width * time.Duration(n)
	for from := w.From; from.Before(w.To); from = from.Add(step) {
		out = append(out, Window{From: from, To: minTime(from.Add(step), w.To)})
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
