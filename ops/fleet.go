package ops

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Fleet-wide reads. In fleet mode each instance keeps its own request log
// and usage rollups; these functions ask every live member at once (over
// package peer, which checks each answer), with the exact filter, and
// merge the answers: logs newest first with a fleet-wide cursor, usage
// summed. A member that does not answer in time (peer.Timeout), or whose
// answer fails a check, is reported in missing, never silently left out.
// Single-node they are the store's own answers.

// MemberError says which member did not answer, and why.
type MemberError struct {
	Member string `json:"member"`
	Error  string `json:"error"`
}

// FleetView is this instance's fleet status and the live members.
type FleetView struct {
	store.FleetStatus
	Members []store.Member `json:"members"`
}

// Fleet is this instance's fleet status and the live members.
func (o *Ops) Fleet() FleetView {
	return FleetView{o.Store.Fleet(), o.Store.Members()}
}

// fleetCursorPrefix marks a fleet-wide log cursor: a base64 JSON object of
// member id -> that member's cursor ("-" once it has nothing older).
const fleetCursorPrefix = "fleet."

// logAnswer is one member's answer to a fleet-wide log read.
type logAnswer struct {
	page peer.LogPage
	err  error
}

// FleetLogs returns the request-log records matching f from every live
// member, newest first, with the cursor of the next page, and the members
// that did not answer. Single-node it is s.Logs.
func FleetLogs(ctx context.Context, s *store.Store, f store.LogFilter) ([]store.LogRecord, string, []MemberError, error) {
	if !s.Fleet().Enabled {
		recs, next, err := s.Logs(f)
		return recs, next, nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	f.Limit = min(limit, peer.MaxLogs)
	cursors, err := decodeFleetCursor(f.Before)
	if err != nil {
		return nil, "", nil, err
	}
	members := s.Members()
	answers := askLogs(ctx, s, members, cursors, f)
	for i, a := range answers {
		if a.err != nil && members[i].Self {
			return nil, "", nil, a.err
		}
	}
	out, taken, missing := mergeLogs(members, answers, f.Limit)
	return out, nextFleetCursor(members, cursors, answers, taken, out), missing, nil
}

func decodeFleetCursor(before string) (map[string]string, error) {
	cursors := map[string]string{}
	if before != "" {
		raw, ok := strings.CutPrefix(before, fleetCursorPrefix)
		b, err := base64.RawURLEncoding.DecodeString(raw)
		if !ok || err != nil || json.Unmarshal(b, &cursors) != nil {
			return nil, fmt.Errorf("%w: bad fleet log cursor", store.ErrInvalidQuery)
		}
	}
	return cursors, nil
}

// askLogs asks every member that has records left (its cursor is not "-")
// for a page of f, at once: this instance's own store directly.
func askLogs(ctx context.Context, s *store.Store, members []store.Member, cursors map[string]string, f store.LogFilter) []logAnswer {
	answers := make([]logAnswer, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		cur := cursors[m.ID]
		if cur == "-" {
			continue
		}
		mf := f
		mf.Before = cur
		wg.Go(func() {
			if m.Self {
				recs, next, err := s.Logs(mf)
				answers[i] = logAnswer{peer.LogPage{Records: recs, Next: next}, err}
				return
			}
			page, err := peer.Logs(ctx, s, m, mf)
			answers[i] = logAnswer{page, err}
		})
	}
	wg.Wait()
	return answers
}

// mergeLogs takes the newest limit records of the answers, each tagged
// with its member; taken counts each member's records in the page.
func mergeLogs(members []store.Member, answers []logAnswer, limit int) (out []store.LogRecord, taken []int, missing []MemberError) {
	type tagged struct {
		store.LogRecord
		member int
	}
	var all []tagged
	for i, a := range answers {
		if a.err != nil {
			missing = append(missing, MemberError{members[i].ID, a.err.Error()})
			continue
		}
		for _, r := range a.page.Records {
			r.Instance = members[i].ID
			all = append(all, tagged{r, i})
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].Time.Equal(all[j].Time) {
			return all[i].Time.After(all[j].Time)
		}
		return all[i].ID > all[j].ID
	})
	if len(all) > limit {
		all = all[:limit]
	}
	taken = make([]int, len(members))
	out = make([]store.LogRecord, len(all))
	for i, r := range all {
		out[i] = r.LogRecord
		taken[r.member]++
	}
	return out, taken, missing
}

// nextFleetCursor is the cursor of the page after out: for each member,
// the last of its records shown, else where it stood ("-" once all of it
// was shown); "" when no member has anything left.
func nextFleetCursor(members []store.Member, cursors map[string]string, answers []logAnswer, taken []int, out []store.LogRecord) string {
	next := map[string]string{}
	for _, m := range members {
		if cur := cursors[m.ID]; cur != "" {
			next[m.ID] = cur
		}
	}
	for _, r := range out {
		next[r.Instance] = r.ID
	}
	more := false
	for i, m := range members {
		cur, answered := cursors[m.ID], answers[i].err == nil
		switch {
		case cur == "-":
			continue
		case answered && taken[i] == len(answers[i].page.Records) && answers[i].page.Next == "":
			next[m.ID] = "-" // all of it shown
			continue
		}
		more = true
	}
	if !more {
		return ""
	}
	b, _ := json.Marshal(next)
	return fleetCursorPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// FleetUsage sums the usage of every live member. Single-node it is
// s.Usage.
func FleetUsage(ctx context.Context, s *store.Store, q store.UsageQuery) (store.UsageResult, []MemberError, error) {
	res, missing, err := FleetUsageBatch(ctx, s, []store.UsageQuery{q})
	if err != nil {
		return store.UsageResult{}, nil, err
	}
	return res[0], missing, nil
}

// FleetUsageBatch answers several usage queries (at most 8) with one
// request per member, so a page that shows several groupings waits for
// the fleet once. Single-node it is s.Usage for each.
func FleetUsageBatch(ctx context.Context, s *store.Store, qs []store.UsageQuery) ([]store.UsageResult, []MemberError, error) {
	if len(qs) == 0 || len(qs) > peer.MaxUsageQueries {
		return nil, nil, fmt.Errorf("%w: 1 to %d usage queries at once", store.ErrInvalidQuery, peer.MaxUsageQueries)
	}
	// Resolve the defaults (to: now, from: a day before) once, so every
	// member answers for the same range.
	qs = slices.Clone(qs)
	own := make([]store.UsageResult, len(qs))
	for i := range qs {
		var err error
		if own[i], err = s.Usage(qs[i]); err != nil {
			return nil, nil, err
		}
		qs[i].From, qs[i].To, qs[i].Bucket = own[i].From, own[i].To, own[i].Bucket
	}
	if !s.Fleet().Enabled {
		return own, nil, nil
	}
	members := s.Members()
	answers := make([][]store.UsageResult, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m.Self {
			continue
		}
		wg.Go(func() { answers[i], errs[i] = peer.Usage(ctx, s, m, qs) })
	}
	wg.Wait()
	var missing []MemberError
	out := make([]store.UsageResult, len(qs))
	for qi := range qs {
		ok := []store.UsageResult{own[qi]}
		for i, m := range members {
			if !m.Self && errs[i] == nil {
				ok = append(ok, answers[i][qi])
			}
		}
		out[qi] = mergeUsage(own[qi], ok)
	}
	for i, m := range members {
		if errs[i] != nil {
			missing = append(missing, MemberError{m.ID, errs[i].Error()})
		}
	}
	return out, missing, nil
}

// mergeUsage sums results (same range, bucket and grouping) into one.
func mergeUsage(shape store.UsageResult, results []store.UsageResult) store.UsageResult {
	out := store.UsageResult{Bucket: shape.Bucket, From: shape.From, To: shape.To, GroupBy: shape.GroupBy,
		Series: []store.UsageBucket{}, Totals: []store.UsageGroup{}}
	byTime := map[int64]*groupSums{}
	var totals groupSums
	for _, r := range results {
		for _, b := range r.Series {
			sr, ok := byTime[b.Time.UnixNano()]
			if !ok {
				sr = &groupSums{t: b.Time}
				byTime[b.Time.UnixNano()] = sr
			}
			for _, g := range b.Groups {
				sr.add(g)
			}
		}
		for _, g := range r.Totals {
			totals.add(g)
		}
		out.Total.Add(&r.Total)
	}
	for _, sr := range byTime {
		out.Series = append(out.Series, store.UsageBucket{Time: sr.t, Groups: sr.sorted()})
	}
	sort.Slice(out.Series, func(i, j int) bool { return out.Series[i].Time.Before(out.Series[j].Time) })
	out.Totals = append(out.Totals, totals.sorted()...)
	return out
}

// groupSums sums usage groups by their key (of one bucket, or the totals).
type groupSums struct {
	t      time.Time
	groups map[string]*store.UsageGroup
	order  []string
}

func (s *groupSums) add(g store.UsageGroup) {
	k := groupKey(g.Key)
	cur, ok := s.groups[k]
	if !ok {
		if s.groups == nil {
			s.groups = map[string]*store.UsageGroup{}
		}
		cp := store.UsageGroup{Key: g.Key}
		cur = &cp
		s.groups[k] = cur
		s.order = append(s.order, k)
	}
	cur.UsageCounters.Add(&g.UsageCounters)
}

// sorted is the sums in key order.
func (s *groupSums) sorted() []store.UsageGroup {
	sort.Strings(s.order)
	var out []store.UsageGroup
	for _, k := range s.order {
		out = append(out, *s.groups[k])
	}
	return out
}

func groupKey(k map[string]string) string {
	keys := make([]string, 0, len(k))
	for d := range k {
		keys = append(keys, d)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, d := range keys {
		b.WriteString(d + "=" + k[d] + "\x00")
	}
	return b.String()
}
