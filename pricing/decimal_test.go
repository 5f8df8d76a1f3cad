package pricing

import (
	"math"
	"strconv"
	"testing"
)

func TestParsePrice(t *testing.T) {
	for s, want := range map[string]Price{
		"0": 0, "3": 3_000_000_000, "3.75": 3_750_000_000, "0.30": 300_000_000, ".5": 500_000_000, "5.": 5_000_000_000,
		"0.000000001": 1, "0.0375": 37_500_000, "0012.50": 12_500_000_000, "10000": 10_000_000_000_000,
		"999999999.999999999": 999_999_999_999_999_999,
	} {
		got, err := ParsePrice(s)
		if err != nil || got != want {
			t.Errorf("ParsePrice(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for s, want := range map[string]error{
		"": errEmpty, "-1": errNegative, "-0.5": errNegative, "1e-6": errSyntax, "NaN": errSyntax, "Inf": errSyntax,
		"+1": errSyntax, " 1": errSyntax, "1 ": errSyntax, "1,5": errSyntax, ".": errSyntax, "0x10": errSyntax,
		"1.2.3": errSyntax, "--1": errSyntax, "0.0000000001": errPrecision, "99999999999": errRange,
		"1111111111111111111111111111111111111111111111111111111111111111111": errSyntax,
	} {
		if _, err := ParsePrice(s); err != want {
			t.Errorf("ParsePrice(%q) error %v, want %v", s, err, want)
		}
	}
}

// TestPerTokenIsExact: a per-token price is the per-1M price at another
// decimal scale; floats would get these wrong.
func TestPerTokenIsExact(t *testing.T) {
	for s, want := range map[string]string{
		"1.1e-06": "1.1", "3.3e-06": "3.3", "2.75e-07": "0.275", "3.75e-06": "3.75", "5.46875e-07": "0.546875",
		"1.6666666e-07": "0.16666666", "3e-06": "3", "0.000015": "15", "6.25e-08": "0.0625", "1E-5": "10",
		"0.0": "0", "1e+0": "1000000", "2.5e-09": "0.0025",
	} {
		p, err := parsePerToken(s)
		if err != nil || p.String() != want {
			t.Errorf("parsePerToken(%q) = %q, %v; want %q", s, p.String(), err, want)
		}
		if f, _ := strconv.ParseFloat(s, 64); s == "3.3e-06" && strconv.FormatFloat(f*1e6, 'f', -1, 64) == want {
			t.Errorf("float64 got %s right: pick a harder example", s)
		}
	}
	for _, s := range []string{"1e-16", "1.5e-16", "1e", "1e+", "1e1000", "e5", "1e-06x"} {
		if _, err := parsePerToken(s); err == nil {
			t.Errorf("parsePerToken(%q) accepted", s)
		}
	}
}

func TestFormat(t *testing.T) {
	for v, want := range map[Nano]string{0: "0", 1: "0.000000001", 1_500_000_000: "1.5", 45_300_000: "0.0453", -500_000_000: "-0.5", math.MaxInt64: "9223372036.854775807"} {
		if got := v.String(); got != want {
			t.Errorf("Nano(%d) = %q, want %q", int64(v), got, want)
		}
	}
	if unset.String() != "" || Price(0).String() != "0" {
		t.Error("unset or zero price formats wrong")
	}
	// AppendUSD reuses the buffer it is given.
	buf := make([]byte, 0, 32)
	if n := testing.AllocsPerRun(100, func() { buf = Nano(123456789).AppendUSD(buf[:0]) }); n != 0 {
		t.Errorf("AppendUSD allocates %v times", n)
	}
}

func TestFemtoRounding(t *testing.T) {
	var f femto
	f.add(1, 500_000) // 0.5 nano
	if n, _ := f.round(femtoPerNano); n != 1 {
		t.Errorf("0.5 nano rounds to %d, want 1 (half up)", n)
	}
	f = femto{}
	f.add(1, 499_999)
	if n, _ := f.round(femtoPerNano); n != 0 {
		t.Errorf("0.499999 nano rounds to %d", n)
	}
	f = femto{hi: femtoPerNano}
	if _, ok := f.round(femtoPerNano); ok {
		t.Error("a quotient past 64 bits was not refused")
	}
	f = femto{hi: 1 << 63}
	if f.scale(2) {
		t.Error("scale overflow not reported")
	}
	f = femto{hi: math.MaxUint64, lo: math.MaxUint64}
	if f.add(1, 1) {
		t.Error("add overflow not reported")
	}
}

// FuzzParsePrice: parsing never panics, never yields a negative price,
// and a parsed price reads back to itself.
func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{"3.75", "0.000000001", "-1", "1e-6", "NaN", "99999999999", "0.1000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrice(s)
		if err != nil {
			return
		}
		if p < 0 {
			t.Fatalf("%q parsed negative: %d", s, p)
		}
		back, err := ParsePrice(p.String())
		if err != nil || back != p {
			t.Fatalf("%q → %d → %q → %d, %v", s, p, p.String(), back, err)
		}
		// The same value per token (10^-6 of it) parses to the same Price.
		if q, err := parsePerToken(p.String() + "e-6"); err != nil || q != p {
			t.Fatalf("%q per 1M is %d, as per token %d, %v", s, p, q, err)
		}
	})
}
