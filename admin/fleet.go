package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Fleet-wide reads. In fleet mode each instance keeps its own request log
// and usage rollups; these functions ask every live member (through its
// admin API's /agent_router/fleet/local/ routes, with the exact filter) and
// merge the answers: logs newest first with a fleet-wide cursor, usage
// summed. A member that does not answer is reported, never silently left
// out. Single-node they are the store's own answers.

// MemberError says which member did not answer, and why.
type MemberError struct {
	Member string `json:"member"`
	Error  string `json:"error"`
}

// fleetTimeout bounds one member's answer.
const fleetTimeout = 3 * time.Second

var fleetHTTP = &http.Client{Timeout: fleetTimeout}

// fleetCursorPrefix marks a fleet-wide log cursor: a base64 JSON object of
// member id -> that member's cursor ("-" once it has nothing older).
const fleetCursorPrefix = "fleet."

// askMember posts in to a member's local route and decodes its answer.
func askMember(ctx context.Context, m store.Member, route string, in, out any) error {
	if m.AdminAddress == "" {
		return errors.New("it has no admin_address configured")
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, fleetTimeout)
	defer cancel()
	addr := m.AdminAddress
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(addr, "/")+Prefix+"fleet/local/"+route, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := fleetHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, clip(strings.TrimSpace(string(b))))
	}
	return json.Unmarshal(b, out)
}

type localLogs struct {
	Records []store.LogRecord `json:"records"`
	Next    string            `json:"next"`
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
	cursors := map[string]string{}
	if f.Before != "" {
		raw, ok := strings.CutPrefix(f.Before, fleetCursorPrefix)
		b, err := base64.RawURLEncoding.DecodeString(raw)
		if !ok || err != nil || json.Unmarshal(b, &cursors) != nil {
			return nil, "", nil, fmt.Errorf("%w: bad fleet log cursor", store.ErrInvalidQuery)
		}
	}
	members := s.Members()
	type answer struct {
		page localLogs
		err  error
	}
	answers := make([]answer, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		cur := cursors[m.ID]
		if cur == "-" {
			continue
		}
		mf := f
		mf.Before, mf.Limit = cur, limit
		wg.Go(func() {
			if m.Self {
				recs, next, err := s.Logs(mf)
				answers[i] = answer{localLogs{recs, next}, err}
				return
			}
			answers[i].err = askMember(ctx, m, "logs", mf, &answers[i].page)
		})
	}
	wg.Wait()

	type tagged struct {
		store.LogRecord
		member int
	}
	var all []tagged
	var missing []MemberError
	for i, a := range answers {
		if a.err != nil {
			if members[i].Self {
				return nil, "", nil, a.err
			}
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
	taken := make([]int, len(members))
	out := make([]store.LogRecord, len(all))
	next := map[string]string{}
	for i, r := range all {
		out[i] = r.LogRecord
		taken[r.member]++
		next[members[r.member].ID] = r.ID
	}
	more := false
	for i, m := range members {
		cur, answered := cursors[m.ID], answers[i].err == nil
		switch {
		case cur == "-":
			next[m.ID] = "-"
			continue
		case !answered:
			if cur != "" {
				next[m.ID] = cur
			}
		case taken[i] == len(answers[i].page.Records) && answers[i].page.Next == "":
			next[m.ID] = "-" // all of it shown
			continue
		}
		more = true
	}
	if !more {
		return out, "", missing, nil
	}
	b, _ := json.Marshal(next)
	return out, fleetCursorPrefix + base64.RawURLEncoding.EncodeToString(b), missing, nil
}

// FleetUsage sums the usage of every live member. Single-node it is
// s.Usage.
func FleetUsage(ctx context.Context, s *store.Store, q store.UsageQuery) (store.UsageResult, []MemberError, error) {
	if !s.Fleet().Enabled {
		res, err := s.Usage(q)
		return res, nil, err
	}
	// Resolve the defaults (to: now, from: a day before) once, so every
	// member answers for the same range.
	own, err := s.Usage(q)
	if err != nil {
		return own, nil, err
	}
	q.From, q.To, q.Bucket = own.From, own.To, own.Bucket
	members := s.Members()
	results := make([]store.UsageResult, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m.Self {
			results[i] = own
			continue
		}
		wg.Go(func() { errs[i] = askMember(ctx, m, "usage", q, &results[i]) })
	}
	wg.Wait()
	var missing []MemberError
	var ok []store.UsageResult
	for i, r := range results {
		if errs[i] != nil {
			missing = append(missing, MemberError{members[i].ID, errs[i].Error()})
			continue
		}
		ok = append(ok, r)
	}
	return mergeUsage(own, ok), missing, nil
}

// mergeUsage sums results (same range, bucket and grouping) into one.
func mergeUsage(shape store.UsageResult, results []store.UsageResult) store.UsageResult {
	out := store.UsageResult{Bucket: shape.Bucket, From: shape.From, To: shape.To, GroupBy: shape.GroupBy,
		Series: []store.UsageBucket{}, Totals: []store.UsageGroup{}}
	type series struct {
		t      time.Time
		groups map[string]*store.UsageGroup
		order  []string
	}
	byTime := map[int64]*series{}
	totals := map[string]*store.UsageGroup{}
	var totalOrder []string
	add := func(m map[string]*store.UsageGroup, order *[]string, g store.UsageGroup) {
		k := groupKey(g.Key)
		cur, ok := m[k]
		if !ok {
			cp := store.UsageGroup{Key: g.Key}
			cur = &cp
			m[k] = cur
			*order = append(*order, k)
		}
		cur.UsageCounters.Add(&g.UsageCounters)
	}
	for _, r := range results {
		for _, b := range r.Series {
			sr, ok := byTime[b.Time.UnixNano()]
			if !ok {
				sr = &series{t: b.Time, groups: map[string]*store.UsageGroup{}}
				byTime[b.Time.UnixNano()] = sr
			}
			for _, g := range b.Groups {
				add(sr.groups, &sr.order, g)
			}
		}
		for _, g := range r.Totals {
			add(totals, &totalOrder, g)
		}
		out.Total.Add(&r.Total)
	}
	for _, sr := range byTime {
		b := store.UsageBucket{Time: sr.t}
		sort.Strings(sr.order)
		for _, k := range sr.order {
			b.Groups = append(b.Groups, *sr.groups[k])
		}
		out.Series = append(out.Series, b)
	}
	sort.Slice(out.Series, func(i, j int) bool { return out.Series[i].Time.Before(out.Series[j].Time) })
	sort.Strings(totalOrder)
	for _, k := range totalOrder {
		out.Totals = append(out.Totals, *totals[k])
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

// --- routes ---

// localLogsRoute answers another member's fleet-wide log read with this
// instance's records.
func (a *API) localLogsRoute(w http.ResponseWriter, r *http.Request, s *store.Store, _ []string) error {
	var f store.LogFilter
	if err := decode(r, &f); err != nil {
		return err
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 100
	}
	recs, next, err := s.Logs(f)
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, localLogs{recs, next})
}

// localUsageRoute answers another member's fleet-wide usage read.
func (a *API) localUsageRoute(w http.ResponseWriter, r *http.Request, s *store.Store, _ []string) error {
	var q store.UsageQuery
	if err := decode(r, &q); err != nil {
		return err
	}
	res, err := s.Usage(q)
	if err != nil {
		return storeErr(err)
	}
	return writeJSON(w, http.StatusOK, res)
}

// fleetStatus answers GET /agent_router/fleet: this instance's fleet
// status and the live members.
func (a *API) fleetStatus(w http.ResponseWriter, _ *http.Request, s *store.Store, _ []string) error {
	return writeJSON(w, http.StatusOK, struct {
		store.FleetStatus
		Members []store.Member `json:"members"`
	}{s.Fleet(), s.Members()})
}
