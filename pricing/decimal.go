package pricing

import (
	"errors"
	"math/bits"
	"strconv"
	"strings"
)

// Price is a unit price as an exact integer: nano-USD per 1M tokens, which is
// the same number as femto-USD (1e-15 USD) per token. One unit serves both
// ways a price is written — "3.75" USD per 1M tokens is 3_750_000_000, and so
// is LiteLLM's 3.75e-06 USD per token — so converting between them is a
// change of decimal scale, never a division.
//
// Why this unit: tokens × Price is then an exact count of femto-USD, and a
// request's total (a sum of at most six such products, done in 128 bits) is
// rounded once to nano-USD (1e-9 USD), the resolution costs are kept at.
// Every published price so far has at most 6 decimals per 1M tokens and
// LiteLLM's per-token figures at most 15 decimals per token, so all of them
// are exact in this unit; a finer one is refused at load, never rounded. An
// int64 holds up to about 9.2e18 units (9,223 USD per token), far above the
// sanity bound.
type Price int64

// unset marks a price the book does not have. It is never a valid price:
// prices are checked to be ≥ 0 when they are parsed.
const unset Price = -1

// Nano is an amount of money in nano-USD (1e-9 USD). An int64 holds about
// 9.2 billion USD.
type Nano int64

const (
	perMillionScale = 9  // decimals of a USD-per-1M-tokens string in a Price
	perTokenScale   = 15 // decimals of a USD-per-token string in a Price
	femtoPerNano    = 1_000_000
)

var (
	errEmpty     = errors.New("empty")
	errNegative  = errors.New("negative")
	errSyntax    = errors.New("not a decimal number")
	errPrecision = errors.New("more precise than the book keeps (9 decimals of USD per 1M tokens)")
	errRange     = errors.New("too large")
)

// ParsePrice reads a decimal string in USD per 1M tokens ("3", "0.30",
// "3.75") into an exact Price. It refuses anything but plain decimal digits
// with an optional fraction: signs, exponents, spaces, NaN, Inf, and more
// than 9 decimals.
func ParsePrice(s string) (Price, error) {
	v, err := parseDecimal(s, perMillionScale, false)
	return Price(v), err
}

// parsePerToken reads a decimal in USD per token, exponent allowed (a JSON
// number such as 3.75e-06, as LiteLLM writes them), into an exact Price.
func parsePerToken(s string) (Price, error) {
	v, err := parseDecimal(s, perTokenScale, true)
	return Price(v), err
}

// parseDecimal parses digits["."digits][("e"|"E")["+"|"-"]digits] into an
// integer count of 10^-scale units. The result is exact or an error: a value
// with nonzero digits below the unit is refused, not rounded.
func parseDecimal(s string, scale int, allowExp bool) (int64, error) {
	if s == "" {
		return 0, errEmpty
	}
	if len(s) > 64 {
		return 0, errSyntax
	}
	i := 0
	if s[0] == '-' {
		// Say "negative" only for something that is otherwise a number.
		if _, err := parseDecimal(s[1:], scale, allowExp); err == nil || err == errPrecision || err == errRange {
			return 0, errNegative
		}
		return 0, errSyntax
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[start:i]
	frac := ""
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		frac = s[fs:i]
	}
	if intPart == "" && frac == "" {
		return 0, errSyntax
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		if !allowExp {
			return 0, errSyntax
		}
		i++
		neg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			neg = s[i] == '-'
			i++
		}
		es := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == es || i-es > 3 {
			return 0, errSyntax
		}
		exp, _ = strconv.Atoi(s[es:i])
		if neg {
			exp = -exp
		}
	}
	if i != len(s) {
		return 0, errSyntax
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	shift := scale + exp - len(frac) // value = digits × 10^shift
	if digits == "" {
		return 0, nil
	}
	if shift < 0 {
		cut := len(digits) + shift // digits kept
		if cut < 0 {
			cut = 0
		}
		if strings.Trim(digits[cut:], "0") != "" {
			return 0, errPrecision
		}
		digits = digits[:cut]
		shift = 0
		if digits == "" {
			return 0, nil
		}
	}
	if len(digits)+shift > 18 { // 10^18 < 2^63 ≈ 9.2e18: refuse anything that may not fit
		return 0, errRange
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, errRange
	}
	for ; shift > 0; shift-- {
		v *= 10
	}
	return v, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// String writes p in USD per 1M tokens with no trailing zeros ("3.75",
// "0.025", "15"); an unset price is "".
func (p Price) String() string {
	if p < 0 {
		return ""
	}
	return string(appendFixed(nil, int64(p), perMillionScale))
}

// AppendDecimal appends p in USD per 1M tokens, as String does, without
// allocating beyond dst; an unset price appends nothing.
func (p Price) AppendDecimal(dst []byte) []byte {
	if p < 0 {
		return dst
	}
	return appendFixed(dst, int64(p), perMillionScale)
}

// IsSet reports whether p is a price (not the book's "no price").
func (p Price) IsSet() bool { return p >= 0 }

// String writes n in USD with no trailing zeros ("0.0453", "12", "-0.5").
func (n Nano) String() string { return string(n.AppendUSD(nil)) }

// AppendUSD appends n in USD, as String does, without allocating beyond dst.
func (n Nano) AppendUSD(dst []byte) []byte { return appendFixed(dst, int64(n), 9) }

// appendFixed appends v × 10^-scale as a decimal with trailing zeros trimmed.
func appendFixed(dst []byte, v int64, scale int) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = uint64(-v)
	}
	var pow uint64 = 1
	for range scale {
		pow *= 10
	}
	dst = strconv.AppendUint(dst, u/pow, 10)
	frac := u % pow
	if frac == 0 {
		return dst
	}
	var buf [20]byte
	n := scale
	for i := n - 1; i >= 0; i-- {
		buf[i] = byte('0' + frac%10)
		frac /= 10
	}
	for n > 0 && buf[n-1] == '0' {
		n--
	}
	dst = append(dst, '.')
	return append(dst, buf[:n]...)
}

// femto is an unsigned 128-bit amount of femto-USD: a request's cost before
// it is rounded to nano-USD.
type femto struct{ hi, lo uint64 }

// add adds tokens × p. It reports false when the sum no longer fits in 128
// bits (never for real usage: 2^40 tokens at the highest sane price is
// about 2^84).
func (f *femto) add(tokens int64, p Price) bool {
	hi, lo := bits.Mul64(uint64(tokens), uint64(p))
	var c uint64
	f.lo, c = bits.Add64(f.lo, lo, 0)
	f.hi, c = bits.Add64(f.hi, hi, c)
	return c == 0
}

// scale multiplies f by m, reporting false on overflow.
func (f *femto) scale(m uint64) bool {
	h1, l1 := bits.Mul64(f.lo, m)
	h2, l2 := bits.Mul64(f.hi, m)
	if h2 != 0 {
		return false
	}
	hi, c := bits.Add64(h1, l2, 0)
	if c != 0 {
		return false
	}
	f.hi, f.lo = hi, l1
	return true
}

// round divides f by d, rounding half up, and reports false when the
// result does not fit a Nano.
func (f femto) round(d uint64) (Nano, bool) {
	if f.hi >= d { // the quotient would not fit 64 bits (and Div64 would panic)
		return 0, false
	}
	q, r := bits.Div64(f.hi, f.lo, d)
	if r >= d-r {
		q++
	}
	if q > 1<<63-1 {
		return 0, false
	}
	return Nano(q), true
}
