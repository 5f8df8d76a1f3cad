package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Timeout bounds the wait for one member's answer: the operations ask
// every member at once, so one slow member costs at most this much,
// however many it holds up.
const Timeout = 3 * time.Second

// Bounds on a question and its answer: a log page at most MaxLogs records
// of about maxLogRecord bytes each, at most MaxUsageQueries usage queries
// at once, a usage answer maxUsageAnswer bytes.
const (
	MaxLogs         = 1000
	MaxUsageQueries = 8
	maxLogRecord    = 8 << 10
	maxLogsAnswer   = 8 << 20
	maxUsageAnswer  = 16 << 20
)

// LogPage is a member's answer to a log read: its own records matching the
// filter, newest first, and its cursor of the next page.
type LogPage struct {
	Records []store.LogRecord `json:"records"`
	Next    string            `json:"next"`
}

type usageBatch struct {
	Queries []store.UsageQuery `json:"queries"`
}

type usageAnswers struct {
	Results []store.UsageResult `json:"results"`
}

var client = &http.Client{
	Timeout: Timeout,
	// Peers are dialed directly (never through an environment proxy), and
	// a redirect is an error, not a second request.
	Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: Timeout}).DialContext},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Logs asks member m for its request-log records matching f (f.Limit at
// most MaxLogs), signed with s's peer keys. The answer is used only when it
// is signed by a fleet member, no larger than the question calls for, and
// holds no more records than asked and only the asked account's.
func Logs(ctx context.Context, s *store.Store, m store.Member, f store.LogFilter) (LogPage, error) {
	var page LogPage
	limit := min(int64(f.Limit)*maxLogRecord+64<<10, maxLogsAnswer)
	if err := ask(ctx, s, m, "logs", f, &page, limit); err != nil {
		return LogPage{}, err
	}
	if err := checkLogs(page, f); err != nil {
		return LogPage{}, err
	}
	return page, nil
}

// Usage asks member m for its usage rollups for each of qs (at most
// MaxUsageQueries, with their ranges resolved: every member must answer
// for the same one). Asked for one account, the member groups by account
// too, so that every group of its answer can be checked to be that
// account's; the answer is used only when it passes that check, and each
// total is recomputed from the checked groups rather than taken on the
// member's word.
func Usage(ctx context.Context, s *store.Store, m store.Member, qs []store.UsageQuery) ([]store.UsageResult, error) {
	asked := make([]store.UsageQuery, len(qs))
	for i, q := range qs {
		asked[i] = q
		if q.AccountID != "" && !slices.Contains(q.GroupBy, store.DimAccount) {
			asked[i].GroupBy = append(slices.Clip(q.GroupBy), store.DimAccount)
		}
	}
	var out usageAnswers
	if err := ask(ctx, s, m, "usage", usageBatch{asked}, &out, maxUsageAnswer); err != nil {
		return nil, err
	}
	if err := checkUsage(out.Results, qs); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// ask posts in to a member's peer route, signed with s's peer keys, and
// decodes its signed answer of at most limit bytes.
func ask(ctx context.Context, s *store.Store, m store.Member, route string, in, out any, limit int64) error {
	if m.PeerAddress == "" {
		return errors.New("it has no peer address (peer_listen) configured")
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	addr := m.PeerAddress
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(addr, "/")+Prefix+route, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	keys := s.PeerKeys()
	macs := signRequest(req, body, keys)
	resp, err := client.Do(req)
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
	if err := checkAnswer(resp, b, keys, macs); err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// checkLogs checks a member's log page against the filter it answers.
func checkLogs(page LogPage, f store.LogFilter) error {
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

// checkUsage checks a member's answers to the asked queries (qs as the
// caller wrote them): one per query, for the asked range, and — for a
// query of one account — only groups of that account. It then drops the
// account dimension the caller did not ask for, and recomputes each total
// from the checked groups.
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

// clip shortens a member's words quoted in an error.
func clip(v string) string {
	if len(v) > 64 {
		return v[:64] + "…"
	}
	return v
}
