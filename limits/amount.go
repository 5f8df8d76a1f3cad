package limits

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// USD is an amount of money in nano-USD (1e-9 USD), the unit costs are
// kept in (pricing.Nano). Its JSON form is a decimal string in USD
// ("2000", "0.25"); a bare JSON number is read as the same digits, never
// through a float.
type USD int64

// maxUSD bounds an amount: a billion dollars, so that an amount times a
// percentage still fits 64 bits on the paths that need it.
const maxUSD USD = 1_000_000_000 * 1_000_000_000

var (
	errAmountEmpty     = errors.New("empty: write a decimal number of USD such as \"25\" or \"0.50\"")
	errAmountNegative  = errors.New("negative")
	errAmountSyntax    = errors.New("not a decimal number of USD (digits, an optional fraction; no sign, exponent or spaces)")
	errAmountPrecision = errors.New("more than 9 decimals (the unit is 1e-9 USD)")
	errAmountRange     = errors.New("more than 1,000,000,000 USD")
)

// ParseUSD reads a decimal string in USD into an exact amount. It refuses
// signs, exponents, spaces and more than 9 decimals: an amount is never
// rounded.
func ParseUSD(s string) (USD, error) {
	if s == "" {
		return 0, errAmountEmpty
	}
	if s[0] == '-' {
		if _, err := ParseUSD(s[1:]); err == nil || err == errAmountPrecision || err == errAmountRange {
			return 0, errAmountNegative
		}
		return 0, errAmountSyntax
	}
	intPart, frac := s, ""
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			intPart, frac = s[:i], s[i+1:]
			if frac == "" {
				return 0, errAmountSyntax
			}
			break
		}
	}
	if intPart == "" || !allDigits(intPart) || !allDigits(frac) {
		return 0, errAmountSyntax
	}
	for len(frac) > 9 {
		if frac[len(frac)-1] != '0' {
			return 0, errAmountPrecision
		}
		frac = frac[:len(frac)-1]
	}
	var v uint64
	for _, part := range [2]string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if v > uint64(maxUSD) { // stays far below 2^64 / 10
				return 0, errAmountRange
			}
			v = v*10 + uint64(part[i]-'0')
		}
	}
	for range 9 - len(frac) {
		if v > uint64(maxUSD) {
			return 0, errAmountRange
		}
		v *= 10
	}
	if v > uint64(maxUSD) {
		return 0, errAmountRange
	}
	return USD(v), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// MustUSD is ParseUSD for constants in tests and defaults; it panics on
// an error.
func MustUSD(s string) USD {
	v, err := ParseUSD(s)
	if err != nil {
		panic(fmt.Sprintf("limits.MustUSD(%q): %v", s, err))
	}
	return v
}

// Nano is the amount as a pricing.Nano.
func (u USD) Nano() pricing.Nano { return pricing.Nano(u) }

// String writes the amount in USD without trailing zeros ("0.5", "2000").
func (u USD) String() string { return pricing.Nano(u).String() }

// MarshalJSON writes the amount as a decimal string in USD.
func (u USD) MarshalJSON() ([]byte, error) {
	b := append(make([]byte, 0, 24), '"')
	b = pricing.Nano(u).AppendUSD(b)
	return append(b, '"'), nil
}

// UnmarshalJSON reads a decimal string ("25.00") or a bare JSON number
// written the same way (25.00); anything else is an error saying so.
func (u *USD) UnmarshalJSON(data []byte) error {
	s := string(data)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		unq, err := strconv.Unquote(s)
		if err != nil {
			return errAmountSyntax
		}
		s = unq
	} else if s == "null" {
		return errAmountEmpty
	}
	v, err := ParseUSD(s)
	if err != nil {
		return err
	}
	*u = v
	return nil
}
