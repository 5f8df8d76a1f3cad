package reconcile

import (
	"errors"
	"math/big"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// parseNano reads a provider's decimal amount into integer nano-USD,
// rounding half away from zero at 1e-9 USD. scale is the amount's unit as
// a power of ten of a dollar: 0 for dollars (OpenAI's amount.value, a JSON
// number such as 0.06 or 1.5e-05), -2 for cents (Anthropic's amount, a
// decimal string such as "123.45", which is $1.2345).
//
// The text is checked before big.Rat sees it: a short plain decimal with
// an exponent of at most two digits, so a hostile answer cannot make it
// build a number of a billion digits.
func parseNano(s string, scale int) (int64, error) {
	if !plainDecimal(s) {
		return 0, errors.New("not a decimal amount")
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, errors.New("not a decimal amount")
	}
	exp := 9 + scale
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil)))
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	// Round half away from zero: |2m| ≥ den.
	if new(big.Int).Abs(new(big.Int).Mul(m, big.NewInt(2))).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return 0, errors.New("amount out of range")
	}
	return q.Int64(), nil
}

// plainDecimal accepts [-]digits[.digits][e[+-]d[d]], at most 40 bytes.
func plainDecimal(s string) bool {
	if len(s) == 0 || len(s) > 40 {
		return false
	}
	i := 0
	if s[0] == '-' {
		i++
	}
	digits := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		n := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			n++
		}
		if n == 0 || n > 2 {
			return false
		}
	}
	return i == len(s)
}

// usd formats nano-USD as a decimal string in USD ("0.0453").
func usd(nano int64) string { return pricing.Nano(nano).String() }
