package limits

import "time"

// Outcome is what admission decided.
type Outcome uint8

const (
	// Allowed: the request may go ahead (with a Reservation to settle).
	Allowed Outcome = iota
	// BudgetExceeded: a hard budget (or the spillover allowance) is spent:
	// answer 402 budget_exceeded. SDKs do not retry a 402.
	BudgetExceeded
	// RateLimited: a rate limit is reached, the fleet's slice is briefly
	// empty, or (Source provider) the BYOK key's own limit is: answer 429
	// rate_limit_exceeded with Retry-After.
	RateLimited
)

// Status is the HTTP status a door answers with.
func (o Outcome) Status() int {
	switch o {
	case BudgetExceeded:
		return 402
	case RateLimited:
		return 429
	}
	return 200
}

// Code is the error code of the answer ("" when allowed).
func (o Outcome) Code() string {
	switch o {
	case BudgetExceeded:
		return "budget_exceeded"
	case RateLimited:
		return "rate_limit_exceeded"
	}
	return ""
}

// LimitSource says whose limit refused: the gateway's own, or the
// provider's limit on a BYOK key (read from its rate-limit headers).
type LimitSource uint8

const (
	SourceGateway LimitSource = iota
	SourceProvider
)

func (s LimitSource) String() string {
	if s == SourceProvider {
		return "provider"
	}
	return "gateway"
}

// LimitKind is which kind of limit a decision is about.
type LimitKind uint8

const (
	KindNone LimitKind = iota
	KindBudget
	KindSpillover
	KindRPM
	KindTPM
	KindConcurrent
	KindProvider
)

var kindNames = [...]string{"", "budget", "spillover", "rpm", "tpm", "concurrent", "provider"}

func (k LimitKind) String() string { return kindNames[k] }

// RateInfo is one dimension of a rate limit, for the
// x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers. Set is
// false when no rate limit of that dimension applies.
type RateInfo struct {
	Set       bool
	Limit     int64
	Remaining int64
	// Reset is how long until the window frees capacity.
	Reset time.Duration
}

// Decision is admission's answer, as data: the doors format it in their
// caller's envelope (OpenAI, Anthropic, Responses) later. It holds no
// pointer into the limiter and costs no allocation.
type Decision struct {
	Outcome Outcome
	Source  LimitSource
	// Kind, LimitID and Scope name the limit that refused (or, with
	// Shadow, the first shadow budget that would have).
	Kind    LimitKind
	LimitID string
	Scope   Scope
	// Window of the budget that refused; RollingHours for a rolling one.
	Window       WindowKind
	RollingHours int
	// Amount, Spent and Reserved: the budget's ceiling, what is settled in
	// its window (fleet-wide, as this instance last saw it) and what this
	// instance has in flight; Need is what this request needed.
	Amount, Spent, Reserved, Need USD
	// ResetAt is when the limit frees capacity (the window's end; for a
	// rolling budget, when its oldest spend leaves); RetryAfter the same as
	// a wait, at least a second on a 429.
	ResetAt    time.Time
	RetryAfter time.Duration
	// Unpriced: a dollar budget applies and the model has no price, so the
	// request cannot be counted (refused by default, never free).
	Unpriced bool
	// Transient: this instance's slice of the fleet's limit was empty and
	// no new one came in time; the limit itself is not reached (429 with a
	// short Retry-After, never 402).
	Transient bool
	// Requests and Tokens describe the tightest rate limit that applies,
	// on allowed answers too.
	Requests, Tokens RateInfo
	// Shadow is the id of a shadow budget that would have refused this
	// request ("" when none): for the request log. The request goes on.
	Shadow string
}

// Allowed reports whether the request may go ahead.
func (d Decision) Allowed() bool { return d.Outcome == Allowed }
