package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Fleet-wide reads. In fleet mode each instance keeps its own request log
// and usage rollups; these functions ask every live member (on its peer
// listener, signed: peer.go), with the exact filter, and merge the
// answers: logs newest first with a fleet-wide cursor, usage summed. A
// member's answer is checked before it is used — signed by a fleet member,
// no larger than the question calls for, and holding only the asked
// account's records — and a member that does not answer in time, or whose
// answer fails a check, is reported in missing, never silently left out.
// Single-node they are the store's own answers.

// MemberError says which member did not answer, and why.
type MemberError struct {
	Member string `json:"member"`
	Error  string `json:"error"`
}

// fleetTimeout bounds the wait for the members' answers to one fleet-wide
// read: every member is asked at once, so one slow member costs at most
// this much, however many it holds up.
const fleetTimeout = 3 * time.Second

// Bounds on a member's answer: a log page at most maxPeerLogs records of
// about maxPeerLogRecord bytes each, a usage answer maxPeerUsageAnswer.
const (
	maxPeerLogs        = 1000
	maxPeerLogRecord   = 8 << 10
	maxPeerLogsAnswer  = 8 << 20
	maxPeerUsageAnswer = 16 << 20
)

var fleetHTTP = &http.Client{
	Timeout: fleetTimeout,
	// Peers are dialed directly (never through an environment proxy), and
	// a redirect is an error, not a second request.
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: fleetTimeout}).DialContext},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// fleetCursorPrefix marks a fleet-wide log cursor: a base64 JSON object of
// member id -> that member's cursor ("-" once it has nothing older).
const fleetCursorPrefix = "fleet."

// askMember posts in to a member's peer route, signed with s's peer keys,
// and decodes its signed answer of at most limit bytes.
func askMember(ctx context.Context, s *store.Store, m store.Member, route string, in, out any, limit int64) error {
	if m.PeerAddress == "" {
		return errors.New("it has no peer address (peer_listen) configured")
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, fleetTimeout)
	defer cancel()
	addr := m.PeerAddress
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(addr, "/")+peerPrefix+route, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	keys := s.PeerKeys()
	macs := signPeerRequest(req, body, keys)
	resp, err := fleetHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return fmt.Errorf("its answer (%d bytes) is larger than the %d bytes allowed", resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("its answer is larger than the %d bytes allowed", limit)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, clip(strings.TrimSpace(string(b))))
	}
	if err := checkPeerAnswer(resp, b, keys, macs); err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

type localLogs struct {
	Records []store.LogRecord `json:"records"`
	Next    string            `json:"next"`
}

// checkLogs checks a member's log page against the filter it answers.
func checkLogs(page localLogs, f store.LogFilter) error {
	if len(page.Records) > f.Limit {
		return fmt.Errorf("it answered %d records where %d were asked for", len(page.Records), f.Limit)
	}
	if f.AccountID == "" {
		return nil
	}
	for _, r := range page.Records {
		if r.AccountID != f.AccountID {
			return errors.New("it answered records of another account")
		}
	}
	return nil
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
	limit = min(limit, maxPeerLogs)
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
			a := &answers[i]
			if a.err = askMember(ctx, s, m, "logs", mf, &a.page, min(int64(limit)*maxPeerLogRecord+64<<10, maxPeerLogsAnswer)); a.err == nil {
				if a.err = checkLogs(a.page, mf); a.err != nil {
					a.page = localLogs{}
				}
			}
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
	if len(qs) == 0 || len(qs) > maxUsageQueries {
		return nil, nil, fmt.Errorf("%w: 1 to %d usage queries at once", store.ErrInvalidQuery, maxUsageQueries)
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
	// Asked for one account, a member groups by account too, so that every
	// group of its answer can be checked to be that account's.
	asked := make([]store.UsageQuery, len(qs))
	for i, q := range qs {
		asked[i] = q
		if q.AccountID != "" && !slices.Contains(q.GroupBy, store.DimAccount) {
			asked[i].GroupBy = append(slices.Clip(q.GroupBy), store.DimAccount)
		}
	}
	members := s.Members()
	answers := make([]usageAnswers, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m.Self {
			continue
		}
		wg.Go(func() {
			if errs[i] = askMember(ctx, s, m, "usage", usageBatch{asked}, &answers[i], maxPeerUsageAnswer); errs[i] == nil {
				errs[i] = checkUsage(answers[i].Results, qs)
			}
		})
	}
	wg.Wait()
	var missing []MemberError
	out := make([]store.UsageResult, len(qs))
	for qi := range qs {
		ok := []store.UsageResult{own[qi]}
		for i, m := range members {
			if !m.Self && errs[i] == nil {
				ok = append(ok, answers[i].Results[qi])
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

// checkUsage checks a member's answers to the asked queries (qs as the
// caller wrote them): one per query, for the asked range, and — for a
// query of one account — only groups of that account. It then drops the
// account dimension the caller did not ask for, and recomputes each total
// from the checked groups rather than taking the member's word for it.
func checkUsage(res []store.UsageResult, qs []store.UsageQuery) error {
	if len(res) != len(qs) {
		return fmt.Errorf("it answered %d usage queries where %d were asked", len(res), len(qs))
	}
	for i := range res {
		r, q := &res[i], qs[i]
		if r.Bucket != q.Bucket || !r.From.Equal(q.From) || !r.To.Equal(q.To) {
			return errors.New("it answered for another range")
		}
		if q.AccountID == "" {
			continue
		}
		strip := !slices.Contains(q.GroupBy, store.DimAccount)
		check := func(gs []store.UsageGroup) error {
			for _, g := range gs {
				if v, ok := g.Key[store.DimAccount]; !ok || v != q.AccountID {
					return errors.New("it answered usage of another account")
				}
				if strip {
					delete(g.Key, store.DimAccount)
				}
			}
			return nil
		}
		for _, b := range r.Series {
			if err := check(b.Groups); err != nil {
				return err
			}
		}
		if err := check(r.Totals); err != nil {
			return err
		}
		r.Total = store.UsageCounters{}
		for _, g := range r.Totals {
			r.Total.Add(&g.UsageCounters)
		}
		r.GroupBy = q.GroupBy
	}
	return nil
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

// fleetStatus answers GET /agent_router/fleet: this instance's fleet
// status and the live members.
func (a *API) fleetStatus(w http.ResponseWriter, _ *http.Request, s *store.Store, _ []string) error {
	return writeJSON(w, http.StatusOK, struct {
		store.FleetStatus
		Members []store.Member `json:"members"`
	}{s.Fleet(), s.Members()})
}
