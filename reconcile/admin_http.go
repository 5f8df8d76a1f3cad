package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// Options tunes a Reader's HTTP behaviour. The zero value is usable except
// for HTTPClient, which the caller provides (the wiring passes the
// egress-guarded transport's client).
type Options struct {
	// HTTPClient makes the requests. Its redirect policy is replaced: an
	// admin request never follows a redirect, so the key cannot be carried
	// to another host. Required.
	HTTPClient *http.Client
	// BaseURL is the provider's API root. Default: https://api.openai.com
	// or https://api.anthropic.com.
	BaseURL string
	// MaxAttempts bounds the tries of one request (429 and 5xx are
	// retried). Default: 5.
	MaxAttempts int
	// BaseDelay is the first backoff, doubled at each retry. Default: 1s.
	BaseDelay time.Duration
	// MaxDelay caps one backoff; a Retry-After longer than it ends the
	// request at once (rate_limited) rather than sleeping through the
	// run. Default: 60s.
	MaxDelay time.Duration
	// MaxBody bounds one answer's size. Default: 64 MiB.
	MaxBody int64
	// MaxPages bounds the pages one listing may take. Default: 10,000.
	MaxPages int
}

func (o *Options) defaults(base string) {
	if o.BaseURL == "" {
		o.BaseURL = base
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 60 * time.Second
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 64 << 20
	}
	if o.MaxPages <= 0 {
		o.MaxPages = 10_000
	}
}

// Reason says why a run, or one admin request, failed.
type Reason string

const (
	// ReasonKeyRejected: the provider refused the admin key (401/403): it
	// was revoked, or is not an admin key.
	ReasonKeyRejected Reason = "admin_key_rejected"
	// ReasonRateLimited: still 429 after the retries, or asked to wait
	// longer than MaxDelay.
	ReasonRateLimited Reason = "rate_limited"
	// ReasonUnavailable: 5xx or no connection, after the retries.
	ReasonUnavailable Reason = "provider_unavailable"
	// ReasonBadRequest: the provider refused the request (another 4xx).
	ReasonBadRequest Reason = "bad_request"
	// ReasonBadAnswer: an answer that cannot be read (not JSON, too big, a
	// redirect, a page cursor that repeats).
	ReasonBadAnswer Reason = "bad_answer"
	// ReasonCanceled: the caller's context ended.
	ReasonCanceled Reason = "canceled"
	// ReasonConfig: the run's own input is wrong (no HTTP client, a bad
	// window).
	ReasonConfig Reason = "config"
)

// Error is a failed admin request. Message is the provider's own words,
// scrubbed of anything key-like.
type Error struct {
	Provider string `json:"provider"`
	// Op is what was being read: "usage", "costs", "keys".
	Op      string `json:"op"`
	Status  int    `json:"status,omitempty"`
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s admin %s: %s", e.Provider, e.Op, e.Reason)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// ReasonOf is the Reason of err (ReasonUnavailable for an error that is
// not an *Error).
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ReasonCanceled
	}
	return ReasonUnavailable
}

// adminClient makes a provider's admin requests: one GET at a time, with
// retries, scrubbed errors and a bounded answer.
type adminClient struct {
	provider string
	base     *url.URL
	http     *http.Client
	key      adminKey
	auth     func(h http.Header, key string)
	opts     Options
	// sleep waits d or until ctx ends (tests replace it to record waits).
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
}

func newAdminClient(provider, defaultBase, key string, opts Options, auth func(http.Header, string)) (*adminClient, error) {
	opts.defaults(defaultBase)
	if opts.HTTPClient == nil {
		return nil, &Error{Provider: provider, Op: "setup", Reason: ReasonConfig, Message: "no HTTP client"}
	}
	base, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, &Error{Provider: provider, Op: "setup", Reason: ReasonConfig, Message: "base URL must be an absolute http(s) URL"}
	}
	if key == "" {
		return nil, &Error{Provider: provider, Op: "setup", Reason: ReasonConfig, Message: "no admin key"}
	}
	hc := *opts.HTTPClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &adminClient{provider: provider, base: base, http: &hc, key: newAdminKey(key), auth: auth, opts: opts,
		sleep: sleepCtx, now: time.Now}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// String never shows the key.
func (c *adminClient) String() string { return c.provider + " admin client " + c.base.Host }

func (c *adminClient) fail(op string, status int, reason Reason, msg string) *Error {
	return &Error{Provider: c.provider, Op: op, Status: status, Reason: reason, Message: scrub(msg, c.key)}
}

// get fetches path with query q, retrying 429 and 5xx, and returns the
// answer's body.
func (c *adminClient) get(ctx context.Context, op, path string, q url.Values) ([]byte, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	for attempt := 1; ; attempt++ {
		body, status, retryAfter, err := c.once(ctx, op, u.String())
		if err == nil {
			return body, nil
		}
		if err.Reason != ReasonRateLimited && err.Reason != ReasonUnavailable || attempt >= c.opts.MaxAttempts {
			return nil, err
		}
		wait := c.opts.BaseDelay << (attempt - 1)
		if wait > c.opts.MaxDelay || wait <= 0 {
			wait = c.opts.MaxDelay
		}
		if retryAfter > 0 {
			if retryAfter > c.opts.MaxDelay {
				return nil, c.fail(op, status, err.Reason, fmt.Sprintf("the provider asks to retry after %s, longer than the %s allowed", retryAfter, c.opts.MaxDelay))
			}
			wait = retryAfter
		}
		if e := c.sleep(ctx, wait); e != nil {
			return nil, c.fail(op, 0, ReasonCanceled, e.Error())
		}
	}
}

// once makes one request. It returns the body of a 200, or an error with
// the status and the Retry-After the provider asked for.
func (c *adminClient) once(ctx context.Context, op, u string) ([]byte, int, time.Duration, *Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, 0, c.fail(op, 0, ReasonConfig, err.Error())
	}
	req.Header.Set("Accept", "application/json")
	c.auth(req.Header, c.key.value())
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, 0, c.fail(op, 0, ReasonCanceled, ctx.Err().Error())
		}
		// A *url.Error names the URL (never the key, which is in a header).
		return nil, 0, 0, c.fail(op, 0, ReasonUnavailable, err.Error())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.opts.MaxBody+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, 0, c.fail(op, 0, ReasonCanceled, ctx.Err().Error())
		}
		return nil, resp.StatusCode, 0, c.fail(op, resp.StatusCode, ReasonUnavailable, "reading the answer: "+err.Error())
	}
	status := resp.StatusCode
	switch {
	case status == http.StatusOK:
		if int64(len(body)) > c.opts.MaxBody {
			return nil, status, 0, c.fail(op, status, ReasonBadAnswer, fmt.Sprintf("answer larger than %d bytes", c.opts.MaxBody))
		}
		if !gjson.ValidBytes(body) {
			return nil, status, 0, c.fail(op, status, ReasonBadAnswer, "answer is not JSON")
		}
		return body, status, 0, nil
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, status, 0, c.fail(op, status, ReasonKeyRejected, providerMessage(body))
	case status == http.StatusTooManyRequests:
		return nil, status, retryAfter(resp.Header, c.now()), c.fail(op, status, ReasonRateLimited, providerMessage(body))
	case status >= 500:
		return nil, status, retryAfter(resp.Header, c.now()), c.fail(op, status, ReasonUnavailable, providerMessage(body))
	case status >= 300 && status < 400:
		return nil, status, 0, c.fail(op, status, ReasonBadAnswer, "redirect refused: an admin key is sent to its provider's admin endpoint only")
	}
	return nil, status, 0, c.fail(op, status, ReasonBadRequest, providerMessage(body))
}

// providerMessage is the error message of a provider's error body (both
// OpenAI's and Anthropic's put it at error.message), or the start of the
// body.
func providerMessage(body []byte) string {
	if m := gjson.GetBytes(body, "error.message"); m.Type == gjson.String {
		return m.Str
	}
	return string(body[:min(len(body), 200)])
}

// retryAfter reads Retry-After: delay-seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 || s > 1<<31 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// pager walks a cursor-paged listing: next is called with the cursor of
// the page to fetch ("" first) and returns the following cursor, or ""
// when done. A cursor that repeats, or more than MaxPages pages, is a bad
// answer rather than a loop.
func (c *adminClient) pager(op string, next func(cursor string) (string, error)) error {
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages >= c.opts.MaxPages {
			return c.fail(op, 0, ReasonBadAnswer, fmt.Sprintf("more than %d pages", c.opts.MaxPages))
		}
		n, err := next(cursor)
		if err != nil {
			return err
		}
		if n == "" {
			return nil
		}
		if seen[n] {
			return c.fail(op, 0, ReasonBadAnswer, "the page cursor repeats")
		}
		seen[n] = true
		cursor = n
	}
}

// setPage sets (or, for the first page, removes) the cursor parameter.
func setPage(q url.Values, name, cursor string) {
	if cursor == "" {
		q.Del(name)
	} else {
		q.Set(name, cursor)
	}
}

// nextPage is the cursor of the page after this one, "" at the end.
func (c *adminClient) nextPage(op string, page gjson.Result) (string, error) {
	if !page.Get("has_more").Bool() {
		return "", nil
	}
	if n := page.Get("next_page").String(); n != "" {
		return n, nil
	}
	return "", c.fail(op, 200, ReasonBadAnswer, "has_more without next_page")
}

// number is a JSON number's text (or a string holding one).
func number(v gjson.Result) string {
	if v.Type == gjson.String {
		return v.Str
	}
	return v.Raw
}
