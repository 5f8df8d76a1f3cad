package ops

import (
	"context"
	"slices"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// UsageAnswer is a usage result with the fleet members that did not answer.
type UsageAnswer struct {
	store.UsageResult
	// Missing lists the fleet members that did not answer: their usage
	// is not in the sums.
	Missing []MemberError `json:"missing,omitempty"`
}

// CheckUsageQuery refuses a bucket other than hour or day ("" is the
// store's default) and an unknown group_by dimension; the store checks
// the range.
func CheckUsageQuery(q store.UsageQuery) error {
	if q.Bucket != "" && q.Bucket != "hour" && q.Bucket != "day" {
		return errorf(Invalid, "bucket must be hour or day")
	}
	for _, g := range q.GroupBy {
		if !slices.Contains(store.UsageDimensions, g) {
			return errorf(Invalid, "unknown group_by dimension %q (use %s)", clip(g), strings.Join(store.UsageDimensions, ", "))
		}
	}
	return nil
}

// Usage answers one usage query: the hourly or daily rollups, summed over
// the fleet's live members in fleet mode (FleetUsage). The store fills in
// what is missing (to: now; from: 24 hours before to) and checks the
// range.
func (o *Ops) Usage(ctx context.Context, q store.UsageQuery) (UsageAnswer, error) {
	if err := CheckUsageQuery(q); err != nil {
		return UsageAnswer{}, err
	}
	res, missing, err := FleetUsage(ctx, o.Store, q)
	if err != nil {
		return UsageAnswer{}, err
	}
	return UsageAnswer{UsageResult: res, Missing: missing}, nil
}

// UsageBatch answers several usage queries (at most 8) asking each fleet
// member once, so a page that shows several groupings waits for the fleet
// once (FleetUsageBatch).
func (o *Ops) UsageBatch(ctx context.Context, qs []store.UsageQuery) ([]store.UsageResult, []MemberError, error) {
	for _, q := range qs {
		if err := CheckUsageQuery(q); err != nil {
			return nil, nil, err
		}
	}
	return FleetUsageBatch(ctx, o.Store, qs)
}
