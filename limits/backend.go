package limits

import "context"

// Backend keeps the shared side of the counters, so that limits hold
// across restarts and, in fleet mode, across instances. The limiter calls
// it only from its background goroutines (and from Install), never on a
// request's path.
//
// The model: for each counter (one limit: a budget, a spillover
// allowance, a rate limit's rpm, tpm or concurrency) and each instance,
// the backend keeps what the instance settled in each slot of the
// counter's window (Used, which also carries what the instance had in
// flight when it last wrote) and the unused slice of the limit it holds
// (Held). The limit holds across the fleet because an instance admits
// only against its held slice and slices are granted only from
// limit − Σ used − Σ held. Held dies with the instance (a lease), Used
// survives it.
type Backend interface {
	// Exact reports that this is the only instance: the limiter then
	// counts against the whole limit itself and only persists (Load,
	// Report, Claim).
	Exact() bool
	// Load returns what the backend has for a counter over span, this
	// instance's own slots included (to restore them after a restart).
	Load(ctx context.Context, counter string, span Span) (View, error)
	// Acquire writes this instance's share and, atomically with it,
	// grants a new slice: at least need (else nothing) and at most what
	// the limit has left. It returns the grant and the view it was based
	// on.
	Acquire(ctx context.Context, counter string, span Span, limit, need int64, mine Share) (granted int64, v View, err error)
	// Report writes this instance's share (settled spend, held slice, or
	// a slice given back with a smaller Held) and returns the view after.
	Report(ctx context.Context, counter string, span Span, mine Share) (View, error)
	// Claim reports whether this call is the first, fleet-wide, to claim
	// (counter, slot, what): an alert goes out once per window.
	Claim(ctx context.Context, counter string, slot int64, what string) (bool, error)
	// Epoch changes when this instance's held slices were lost (its lease
	// expired): the limiter then drops its local slices.
	Epoch() uint64
}

// Span is the part of a counter's history that counts now: its window's
// slots From..To. A slot newer than To counts too (another instance's
// clock, or this one's, may already be past To: counting it errs toward
// granting less, never more). Ephemeral counters (concurrency) have no
// history; their state dies with the instance.
type Span struct {
	From, To  int64
	Ephemeral bool
}

// SlotUsed is an amount settled in one slot.
type SlotUsed struct{ Slot, Used int64 }

// Share is one instance's part of a counter.
type Share struct {
	Used []SlotUsed
	Held int64
}

// View is a counter as the backend has it.
type View struct {
	// OthersUsed and OthersHeld are the other instances' settled spend
	// from the span's first slot on and their held slices.
	OthersUsed, OthersHeld int64
	// Mine is this instance's own stored slots (Load).
	Mine []SlotUsed
	// Instances is how many instances have a stake in the counter,
	// this one included.
	Instances int
}

func (s Share) used() (sum int64) {
	for _, u := range s.Used {
		sum += u.Used
	}
	return sum
}

// sliceOf is the slice an instance is granted: a share of what is left
// (1/(2n) of it over n instances, at least 2 assumed), at least need,
// never more than is left, nothing when need does not fit. Slices shrink
// as the pool empties, so the last ones are small and the fleet admits
// up to the limit.
func sliceOf(available, need int64, instances int) int64 {
	if available <= 0 || available < need {
		return 0
	}
	n := int64(max(instances, 2))
	s := (available + 2*n - 1) / (2 * n)
	return min(max(s, need), available)
}
