package pricing

import (
	"encoding/json"
	"slices"
	"strconv"
)

// Shadow is a BYOK request's shadow cost: what its usage would have cost
// on the platform's price book and contract. Its tokens, price version and
// priced row are the request's Cost's (the same usage, priced with the
// same version), so only the total is kept, or why there is none: it is on
// every BYOK request's record, and a second whole Cost there doubled what
// each record stored and the request allocated.
type Shadow struct {
	// NanoUSD is the total in nano-USD; 0 and not to be summed when
	// Unpriced.
	NanoUSD Nano
	// Unpriced says the platform's prices do not cover the usage (Reason
	// says why), where the BYOK key's contract may still price it.
	Unpriced bool
	Reason   Reason
	// Set says there is a shadow cost at all: a BYOK request that made a
	// metered call. A platform request has none.
	Set bool
}

// Shadow keeps what a shadow cost needs of c, the usage priced at the
// platform's prices.
func (c Cost) Shadow() Shadow {
	return Shadow{NanoUSD: c.NanoUSD, Unpriced: c.Unpriced, Reason: c.Reason, Set: !c.IsZero()}
}

// IsZero reports whether there is no shadow cost (the request log omits
// it).
func (s Shadow) IsZero() bool { return !s.Set }

// Priced reports whether s is a total to sum: set and not unpriced.
func (s *Shadow) Priced() bool { return s.Set && !s.Unpriced }

// USD is the total as a decimal string, or "" when unpriced or unset.
func (s *Shadow) USD() string {
	if !s.Priced() {
		return ""
	}
	return s.NanoUSD.String()
}

// shadowJSON is a Shadow's serialised form: the keys of costJSON it keeps,
// so a record stored with a whole cost object as its shadow (before the
// shadow was kept compact) reads back.
type shadowJSON struct {
	TotalUSD     string `json:"total_usd,omitempty"`
	TotalNanoUSD *Nano  `json:"total_nano_usd,omitempty"`
	Unpriced     bool   `json:"unpriced,omitempty"`
	Reason       string `json:"unpriced_reason,omitempty"`
}

// MarshalJSON writes {"total_usd":"0.0049","total_nano_usd":4900000}, or
// {"unpriced":true,"unpriced_reason":"no_price_for_model"}.
func (s Shadow) MarshalJSON() ([]byte, error) {
	return s.AppendJSON(nil), nil
}

// AppendJSON appends s as MarshalJSON writes it, without allocating.
func (s *Shadow) AppendJSON(b []byte) []byte {
	if s.Unpriced {
		b = append(b, `{"unpriced":true,"unpriced_reason":"`...)
		b = append(b, s.Reason.String()...)
		return append(b, `"}`...)
	}
	b = append(b, `{"total_usd":"`...)
	b = s.NanoUSD.AppendUSD(b)
	b = append(b, `","total_nano_usd":`...)
	b = strconv.AppendInt(b, int64(s.NanoUSD), 10)
	return append(b, '}')
}

// UnmarshalJSON reads the form MarshalJSON writes, or a whole cost object.
func (s *Shadow) UnmarshalJSON(data []byte) error {
	var j shadowJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*s = Shadow{Unpriced: j.Unpriced, Set: true}
	if j.Unpriced {
		if i := slices.Index(reasonNames[:], j.Reason); i > 0 {
			s.Reason = Reason(i)
		}
	} else if j.TotalNanoUSD != nil {
		s.NanoUSD = *j.TotalNanoUSD
	}
	return nil
}
