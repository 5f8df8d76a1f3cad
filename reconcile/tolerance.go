package reconcile

import "time"

// Tolerance says how close the two sides must be, and when the provider's
// figures are final. The zero value of a field takes its default.
type Tolerance struct {
	// CostPPM is how far a day's cost may differ and still match, in parts
	// per million of the larger side. Default: 10000 (1 %).
	CostPPM int64 `json:"cost_ppm"`
	// CostFloorNanoUSD is the smallest difference ever called a mismatch.
	// Default: 1000 (one millionth of a dollar).
	CostFloorNanoUSD int64 `json:"cost_floor_nano_usd"`
	// OutOfBandTokens is how many tokens the provider may record on one of
	// our keys in an hour beyond what the gateway sent before the row is
	// out_of_band. Default: 0 (tokens match exactly: any excess is use of
	// the key outside the gateway). Negative means 0.
	OutOfBandTokens int64 `json:"out_of_band_tokens"`
	// Lateness is how long after a period ends the provider's figures for
	// it may still change. Default: 24h.
	Lateness time.Duration `json:"lateness"`
	// CalibrationPPM is how far the provider's effective rate may differ
	// from the price book's before it counts toward a proposal. Default:
	// 5000 (0.5 %).
	CalibrationPPM int64 `json:"calibration_ppm"`
	// CalibrationDays is how many consecutive settled days must differ the
	// same way before a contract term is proposed. Default: 3.
	CalibrationDays int `json:"calibration_days"`
	// CalibrationMinNanoUSD is the smallest day's book value a rate is
	// judged on (a few cents of rounding on a tiny day say nothing).
	// Default: 10000 (a hundred-thousandth of a dollar).
	CalibrationMinNanoUSD int64 `json:"calibration_min_nano_usd"`
}

func (t Tolerance) withDefaults() Tolerance {
	if t.CostPPM <= 0 {
		t.CostPPM = 10_000
	}
	if t.CostFloorNanoUSD <= 0 {
		t.CostFloorNanoUSD = 1000
	}
	t.OutOfBandTokens = max(t.OutOfBandTokens, 0)
	if t.Lateness <= 0 {
		t.Lateness = 24 * time.Hour
	}
	if t.CalibrationPPM <= 0 {
		t.CalibrationPPM = 5000
	}
	if t.CalibrationDays <= 0 {
		t.CalibrationDays = 3
	}
	if t.CalibrationMinNanoUSD <= 0 {
		t.CalibrationMinNanoUSD = 10_000
	}
	return t
}

// settled reports whether a period ending at end is final at now.
func (t Tolerance) settled(end, now time.Time) bool { return !now.Before(end.Add(t.Lateness)) }

// costMatch reports whether a cost difference is within the tolerance of
// the larger side.
func (t Tolerance) costMatch(gateway, provider int64) bool {
	diff := abs(provider - gateway)
	return diff <= t.CostFloorNanoUSD || diff <= ppmOf(max(abs(gateway), abs(provider)), t.CostPPM)
}

// ppmOf is v × ppm / 1e6, without overflowing for any real amount.
func ppmOf(v, ppm int64) int64 { return v/1_000_000*ppm + v%1_000_000*ppm/1_000_000 }

// relPPM is diff relative to base in parts per million (0 for base 0).
func relPPM(diff, base int64) int64 {
	if base == 0 {
		return 0
	}
	return int64(float64(diff) / float64(base) * 1e6)
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
