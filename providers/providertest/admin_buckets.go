package providertest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// Time buckets, their limits and pages, shared by both providers' usage and
// cost reports. Both take bucket_width 1m, 1h or 1d (cost reports 1d only),
// snap buckets to the start of the minute, hour or day in UTC, and page
// through buckets: limit is a count of buckets (default and maximum per
// width, money.md §3), next_page an opaque cursor.

// width is a bucket width with its limits.
type width struct {
	d           time.Duration
	def, maxLim int
	name        string
}

var widths = map[string]width{
	"1m": {time.Minute, 60, 1440, "1m"},
	"1h": {time.Hour, 24, 168, "1h"},
	"1d": {24 * time.Hour, 7, 31, "1d"},
}

// span is one time bucket.
type span struct{ start, end time.Time }

// bucketQuery is a report request's time range and page, checked.
type bucketQuery struct {
	w     width
	spans []span // every bucket of the range, in order
	limit int
}

// parseBuckets checks the width and limit and lays out the buckets from
// start (snapped down) while keep says a bucket belongs to the range.
// maxLimit overrides the width's maximum (OpenAI's costs take up to 180).
func parseBuckets(q url.Values, start time.Time, keep func(span) bool, only string, maxLimit int) (bucketQuery, error) {
	name := q.Get("bucket_width")
	if name == "" {
		name = "1d"
	}
	w, ok := widths[name]
	if !ok || (only != "" && name != only) {
		if only != "" {
			return bucketQuery{}, fmt.Errorf("bucket_width must be %s", only)
		}
		return bucketQuery{}, fmt.Errorf("bucket_width must be one of 1m, 1h, 1d, got %q", name)
	}
	if maxLimit > 0 {
		w.maxLim = maxLimit
	}
	bq := bucketQuery{w: w, limit: w.def}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > w.maxLim {
			return bucketQuery{}, fmt.Errorf("limit must be between 1 and %d for bucket_width %s", w.maxLim, name)
		}
		bq.limit = n
	}
	t := start.UTC().Truncate(w.d)
	for n := 0; ; n++ {
		s := span{t, t.Add(w.d)}
		if !keep(s) {
			break
		}
		if n > 100_000 {
			return bucketQuery{}, errors.New("time range too long")
		}
		bq.spans = append(bq.spans, s)
		t = s.end
	}
	return bq, nil
}

// page returns the buckets of the page the cursor names (the first page
// when it is empty), the next cursor and whether there are more.
func (a *AdminServer) page(bq bucketQuery, cursor string) ([]span, string, bool, error) {
	from := 0
	if cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil {
			return nil, "", false, errors.New("invalid page cursor")
		}
		at, err := time.Parse(time.RFC3339, string(raw))
		if err != nil {
			return nil, "", false, errors.New("invalid page cursor")
		}
		from = slices.IndexFunc(bq.spans, func(s span) bool { return s.start.Equal(at) })
		if from < 0 {
			return nil, "", false, errors.New("page cursor does not belong to this query")
		}
	}
	to := min(from+a.pageSize(bq.limit), len(bq.spans))
	if to >= len(bq.spans) {
		return bq.spans[from:], "", false, nil
	}
	next := base64.RawURLEncoding.EncodeToString([]byte(bq.spans[to].start.Format(time.RFC3339)))
	return bq.spans[from:to], next, true, nil
}

// values returns a repeated query parameter, written "name[]" (as the
// SDKs send arrays) or "name".
func values(q url.Values, name string) []string {
	return append(slices.Clone(q[name+"[]"]), q[name]...)
}

// checkGroupBy refuses a group_by value the report does not know.
func checkGroupBy(q url.Values, allowed ...string) ([]string, error) {
	g := values(q, "group_by")
	for _, v := range g {
		if !slices.Contains(allowed, v) {
			return nil, fmt.Errorf("group_by %q is not one of %v", v, allowed)
		}
	}
	return g, nil
}

// filter is a report's api_key_ids, models, project_ids or workspace_ids.
type filter map[string][]string

func (f filter) pass(field, v string, null bool) bool {
	want := f[field]
	if len(want) == 0 {
		return true
	}
	return !null && slices.Contains(want, v)
}

// group is one result of a bucket: the grouped-by fields and the sums.
type group struct {
	keyID, project, workspace, model string
	// the fields' null-ness: not grouped by, or a null key id
	nullKey, nullProject, nullWorkspace, nullModel bool
	tokens                                         [nTokenClass]int64
	requests                                       int64
	cost                                           *big.Rat
}

// aggregate sums the events inside s into groups by the fields in by, in
// first-seen order (deterministic: events are kept in time order).
func aggregate(events []UsageEvent, s span, by []string, keep func(UsageEvent) bool, cost func(UsageEvent) *big.Rat) []*group {
	var out []*group
	index := map[[4]string]*group{}
	has := func(f string) bool { return slices.Contains(by, f) }
	for _, e := range events {
		if e.Time.Before(s.start) || !e.Time.Before(s.end) || !keep(e) {
			continue
		}
		g := group{nullKey: !has("api_key_id") || e.KeyID == "", nullProject: !has("project_id"),
			nullWorkspace: !has("workspace_id") || e.Workspace == "", nullModel: !has("model")}
		if !g.nullKey {
			g.keyID = e.KeyID
		}
		if !g.nullProject {
			g.project = e.Project
		}
		if !g.nullWorkspace {
			g.workspace = e.Workspace
		}
		if !g.nullModel {
			g.model = e.Model
		}
		k := [4]string{g.keyID, g.project, g.workspace, g.model}
		if g.nullKey {
			k[0] = "\x00"
		}
		p := index[k]
		if p == nil {
			g.cost = new(big.Rat)
			p = &g
			index[k] = p
			out = append(out, p)
		}
		for c := range nTokenClass {
			p.tokens[c] += e.tokens(c)
		}
		p.requests += e.Requests
		if cost != nil {
			p.cost.Add(p.cost, cost(e))
		}
	}
	return out
}

// orNull is v as a JSON value, or null.
func orNull(v string, null bool) any {
	if null {
		return nil
	}
	return v
}
