package reconcile

import (
	"testing"
	"time"
)

func TestParseNano(t *testing.T) {
	cases := []struct {
		s     string
		scale int
		want  int64
		ok    bool
	}{
		{"0.06", 0, 60_000_000, true},
		{"1.5e-05", 0, 15_000, true},
		{"1.5E-05", 0, 15_000, true},
		{"0.0000000004", 0, 0, true},   // rounds down
		{"0.0000000005", 0, 1, true},   // half rounds away from zero
		{"-0.0000000005", 0, -1, true}, // credits too
		{"12", 0, 12_000_000_000, true},
		{"123.45", -2, 1_234_500_000, true}, // Anthropic: cents, $1.2345
		{"0.00684", -2, 68_400, true},
		{"0.000000001", -2, 0, true},
		{"", 0, 0, false},
		{"1e100000000", 0, 0, false}, // no billion-digit numbers
		{"0x10", 0, 0, false},
		{"NaN", 0, 0, false},
		{"1.2.3", 0, 0, false},
		{"99999999999999999999", 0, 0, false}, // beyond int64 nano
		{"\"1\"", 0, 0, false},
	}
	for _, c := range cases {
		got, err := parseNano(c.s, c.scale)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseNano(%q, %d) = %d, %v; want %d, ok %v", c.s, c.scale, got, err, c.want, c.ok)
		}
	}
}

func FuzzParseNano(f *testing.F) {
	for _, s := range []string{"0.06", "1.5e-05", "123.45", "-1", "9e99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start := time.Now()
		parseNano(s, 0)
		parseNano(s, -2)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("parseNano(%q) took %s", s, d)
		}
	})
}

func TestMulDiv(t *testing.T) {
	cases := [][4]int64{
		{900, 1_000_000, 1000, 900_000},
		{1, 1, 2, 1},   // half up
		{-1, 1, 2, -1}, // half away from zero
		{1 << 62, 1_000_000, 1 << 62, 1_000_000},
		{5, 5, 0, 0},
		{1 << 62, 1 << 62, 1, 1<<63 - 1},
	}
	for _, c := range cases {
		if got := mulDiv(c[0], c[1], c[2]); got != c[3] {
			t.Errorf("mulDiv(%d, %d, %d) = %d, want %d", c[0], c[1], c[2], got, c[3])
		}
	}
}

func TestWindow(t *testing.T) {
	now := time.Date(2026, 11, 5, 13, 20, 0, 0, time.UTC)
	w := LastDays(now, DefaultDays)
	if !w.From.Equal(time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)) || w.Days() != 3 || w.Check() != nil || !w.Contains(now) {
		t.Errorf("LastDays: %+v", w)
	}
	if LastDays(now, 32).Check() == nil {
		t.Error("a 32-day window accepted")
	}
	if (Window{From: now, To: now.Add(day)}).Check() == nil {
		t.Error("a window not at midnight accepted")
	}
	if (Window{From: w.To, To: w.From}).Check() == nil {
		t.Error("an empty window accepted")
	}
	// 31 days of hourly buckets: 168 at most a request.
	ch := LastDays(now, MaxDays).chunks(time.Hour, 168)
	if len(ch) != 5 || ch[4].To.Sub(ch[4].From) != 72*time.Hour || !ch[4].To.Equal(LastDays(now, MaxDays).To) {
		t.Errorf("chunks: %+v", ch)
	}
}
