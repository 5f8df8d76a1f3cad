package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Budgets and rate limits in the data plane (limits/WIRING.md §3 and §4).
// Each attempt of a metered endpoint is admitted in attempt, after its
// credential is chosen and before its upstream call: a BYOK key its
// provider has said is spent (Config.ProviderLimits) is not sent a
// request, then the limiter (Config.Limits) reserves the attempt's worst
// case on every budget and rate limit that counts it. A refused attempt is
// skipped like one without a credential, so a route moves on to its next
// target; only the last refusal is answered, in the door's format. The
// reservation is settled once with the request's real cost where usage
// reaches the record (served), or released when the attempt ends without
// an answer. Free endpoints (listing models, counting tokens, reading or
// deleting a stored response) are not admitted: they cost nothing and
// their provider limits are not the ones a completion spends. The key Test
// (keytest.go) is not an attempt and is never admitted.

// Reasons an attempt is skipped by a limit (the request log's attempts).
const (
	skipBudgetExceeded    = "budget_exceeded"
	skipRateLimited       = "rate_limited"
	skipProviderRateLimit = "byok_key_rate_limited"
)

// Codes of the limit answers: 402 budget_exceeded and 429
// rate_limit_exceeded (limits.Outcome.Code).
const (
	CodeBudgetExceeded    = "budget_exceeded"
	CodeRateLimitExceeded = "rate_limit_exceeded"
)

// HeaderLimitSource says whose limit an answer's rate-limit headers (and a
// limit refusal) are about: "gateway" (a budget or rate limit of Agent
// Router's) or "provider" (the BYOK key's own limit at its provider).
const HeaderLimitSource = "X-Agent-Router-Limit-Source"

var limitSourceNames = [...]string{limits.SourceGateway: "gateway", limits.SourceProvider: "provider"}

// limitState is a request's admission state. A request takes one (from a
// pool: admitting and settling allocate nothing) only when a limit counts
// its account or a provider limit refused its BYOK key, and gives it back
// when it ends (finish); every other request carries none.
type limitState struct {
	req limits.Request
	res limits.Reservation
	// d is the decision that admitted the attempt being served (its rate
	// state goes on the answer); refusal the last refusal, answered when
	// no later attempt serves, and refusedBy the provider it was for.
	d, refusal limits.Decision
	refusedBy  string
	// admitted: an earlier attempt of the request was admitted (a later
	// one is a fallback, not counted again against requests per minute).
	admitted bool
}

var limitStates = sync.Pool{New: func() any { return new(limitState) }}

// limitState returns the request's admission state, taking one from the
// pool on first use.
func (x *exchange) limitState() *limitState {
	if x.lim == nil {
		x.lim = limitStates.Get().(*limitState)
	}
	return x.lim
}

// releaseReservation releases what the current attempt reserved and did
// not settle (nothing when it settled, or reserved nothing).
func (x *exchange) releaseReservation() {
	if x.lim != nil {
		x.lim.res.Release()
	}
}

// releaseLimits gives the request's admission state back to the pool when
// the request ends. Nothing of it outlives the request: the rate-limit
// headers' values are in the exchange (headerValues). The reservation is
// empty once released, and Admit resets it.
func (x *exchange) releaseLimits() {
	l := x.lim
	if l == nil {
		return
	}
	x.lim = nil
	l.res.Release()
	l.req = limits.Request{}
	l.d, l.refusal = limits.Decision{}, limits.Decision{}
	l.refusedBy, l.admitted = "", false
	limitStates.Put(l)
}

// headerValues hold the values of the headers the gateway writes on an
// answer without allocating them — X-Agent-Router-Cost, the rate-limit
// headers and X-Agent-Router-Limit-Source — in the request's exchange,
// which the request allocates anyway: the header map keeps them after the
// handler returns (net/http writes a small answer's header then, and
// Caddy's access log reads it), so they cannot live in anything pooled,
// and an allocation of their own per answer was the one allocation of the
// limits step. Nor can they be shared by every answer: Caddy's header
// directive replaces values in place. A value past the buffer is
// allocated.
type headerValues struct {
	vals   [8][1]string
	buf    [70]byte
	n, pos uint8
}

// next is where the next value is appended: the buffer's free part.
func (hv *headerValues) next() []byte { return hv.buf[hv.pos:hv.pos] }

// set sets header k to the string v (a constant), through a slot of its
// own.
func (hv *headerValues) set(h http.Header, k, v string) {
	if int(hv.n) == len(hv.vals) {
		h[k] = []string{v}
		return
	}
	hv.vals[hv.n][0] = v
	h[k] = hv.vals[hv.n][:]
	hv.n++
}

// put sets header k to v, appended to next's slice (or, when it did not
// fit, wherever append put it).
func (hv *headerValues) put(h http.Header, k string, v []byte) {
	if len(v) == 0 {
		return
	}
	if int(hv.n) == len(hv.vals) {
		h[k] = []string{string(v)}
		return
	}
	if free := len(hv.buf) - int(hv.pos); len(v) <= free && unsafe.SliceData(v) == &hv.buf[hv.pos] {
		hv.pos += uint8(len(v))
	}
	hv.vals[hv.n][0] = unsafe.String(unsafe.SliceData(v), len(v))
	h[k] = hv.vals[hv.n][:]
	hv.n++
}

// admitAttempt checks the attempt's limits once its credential is chosen
// (x.cred): the BYOK key's provider limit, then the gateway's budgets and
// rate limits. ok is false when a limit refuses; res then skips the
// attempt with the refusal as its failure. An allowed attempt holds a
// reservation in x.lim.res until served settles it or attempt releases it.
func (g *Gateway) admitAttempt(x *exchange, t target, att *store.Attempt) (res attemptResult, ok bool) {
	if !x.ep.metered {
		return attemptResult{}, true
	}
	cred := &x.cred
	name := t.provider.Name
	if g.providerLimits != nil && cred.source == SourceBYOK && cred.secret != nil {
		if d := g.providerLimits.Check(cred.secret.Fingerprint); !d.Allowed() {
			return g.refuseAttempt(x, name, t.model, att, &d), false
		}
	}
	if g.limits == nil || !g.limits.Limited(x.c.account) {
		return attemptResult{}, true
	}
	l := x.limitState()
	var maxOut int64
	if spec, ok := providers.Spec(t.model); ok {
		maxOut = int64(spec.MaxOutput)
	}
	payer := limits.PayerPlatform
	if cred.source == SourceBYOK {
		payer = limits.PayerBYOK
	}
	l.req = limits.Request{Account: x.c.account, APIKey: x.c.keyID, Provider: name, Model: t.model,
		Payer: payer, Spillover: cred.source == SourcePlatform && x.snap.Credential(x.c.account, name) != nil,
		Fallback: l.admitted, BodyBytes: int64(len(x.body)), MaxTokens: x.maxTokens, ModelMaxOutput: maxOut,
		Contract: cred.contract, Start: x.rec.Time}
	if x.prices != nil {
		l.req.Book = x.prices.Book()
	}
	d := g.limits.Admit(&l.req, &l.res)
	if d.Shadow != "" && x.rec.LimitShadow == "" {
		x.rec.LimitShadow = d.Shadow
	}
	if !d.Allowed() {
		return g.refuseAttempt(x, name, t.model, att, &d), false
	}
	l.admitted, l.d = true, d
	return attemptResult{}, true
}

// refuseAttempt skips an attempt a limit refused; its failure answers the
// request when no later attempt serves (x.fail writes it from x.lim).
func (g *Gateway) refuseAttempt(x *exchange, provider, model string, att *store.Attempt, d *limits.Decision) attemptResult {
	reason := skipRateLimited
	switch {
	case d.Source == limits.SourceProvider:
		reason = skipProviderRateLimit
	case d.Outcome == limits.BudgetExceeded:
		reason = skipBudgetExceeded
	}
	l := x.limitState()
	l.refusal, l.refusedBy = *d, provider
	f := failure{status: d.Outcome.Status(), typ: d.Outcome.Code(), code: d.Outcome.Code(),
		msg: limitMessage(x.c.account, provider, model, d), limit: true}
	if d.Outcome == limits.RateLimited {
		f.retryAfter = strconv.FormatInt(max(int64(d.RetryAfter/time.Second), 1), 10)
	} else if d.RetryAfter > 0 {
		f.retryAfter = strconv.FormatInt(int64(d.RetryAfter/time.Second), 10)
	}
	return skip(att, reason, f)
}

// settleAttempt settles the served attempt's reservation with its cost:
// the usage the provider reported, priced. An answer without usage keeps
// the reserved worst case charged (never free), and so does a stream cut
// mid-way (cut: it ended with an error code), unless what it reported
// before the cut already costs more: the provider bills what it generated,
// which the usage it sent before the cut does not say.
func (x *exchange) settleAttempt(cost *pricing.Cost, cut bool) {
	l := x.lim
	if l == nil || !l.res.Held() {
		return
	}
	if cost.IsZero() {
		l.res.Settle(limits.Actual{})
		return
	}
	a := limits.ActualOf(cost)
	if cut && (!a.Priced || a.Cost < l.res.Cost) {
		a = limits.Actual{}
	}
	l.res.Settle(a)
}

// maxTokenMembers are the members that bound a request's output.
var maxTokenMembers = [...]string{"max_completion_tokens", "max_tokens", "max_output_tokens"}

// failLimit answers a limit refusal (the last one, x.lim.refusal) in the
// door's format: 402 budget_exceeded or 429 rate_limit_exceeded, OpenAI's
// envelope with the limit's description for chat completions, embeddings
// and Responses, Anthropic's (billing_error, rate_limit_error) for
// Messages; Retry-After, the rate-limit headers of the limit that refused
// and X-Agent-Router-Limit-Source.
func (x *exchange) failLimit(f failure) {
	d := &x.lim.refusal
	h := x.w.Header()
	x.rec.Status, x.rec.ErrorCode = f.status, f.code
	x.rec.Limit = d.LimitID
	if d.Source == limits.SourceProvider {
		x.rec.Limit = "provider"
	}
	if f.retryAfter != "" {
		h["Retry-After"] = []string{f.retryAfter}
	}
	if !d.Requests.Set && !d.Tokens.Set {
		x.hdr.set(h, HeaderLimitSource, limitSourceNames[d.Source])
	}
	x.setRateHeaders(h, d, false) // with the rate state, and the source
	if x.ep.door.anthropicShape() {
		x.ep.door.writeError(x.w, f.status, f.typ, f.code, f.msg)
		return
	}
	h["Content-Type"] = []string{"application/json"}
	h.Del("Content-Length")
	x.w.WriteHeader(f.status)
	x.w.Write(limitErrorJSON(x.c.account, x.lim.refusedBy, f, d))
}

// anthropicShape reports whether the door answers in Anthropic's
// envelope (Messages and its token count).
func (d *door) anthropicShape() bool {
	return d.wire == providers.MessagesDoor || d.wire == providers.CountTokensDoor
}

// limitErrorJSON is OpenAI's error envelope for a limit refusal, with
// limit_source and the limit that refused: "budget" for a 402,
// "rate_limit" for a 429. It names the caller's own account and limits
// only, never a key.
func limitErrorJSON(account, provider string, f failure, d *limits.Decision) []byte {
	type limitObject struct {
		ID           string `json:"id,omitempty"`
		Kind         string `json:"kind"`
		Scope        string `json:"scope,omitempty"`
		Account      string `json:"account,omitempty"`
		Model        string `json:"model,omitempty"`
		Provider     string `json:"provider,omitempty"`
		Window       string `json:"window,omitempty"`
		RollingHours int    `json:"rolling_hours,omitempty"`
		AmountUSD    string `json:"amount_usd,omitempty"`
		Limit        int64  `json:"limit,omitempty"`
		ResetAt      string `json:"reset_at,omitempty"`
	}
	type limitError struct {
		Message     string       `json:"message"`
		Type        string       `json:"type"`
		Param       *string      `json:"param"`
		Code        string       `json:"code"`
		LimitSource string       `json:"limit_source"`
		Budget      *limitObject `json:"budget,omitempty"`
		RateLimit   *limitObject `json:"rate_limit,omitempty"`
	}
	o := &limitObject{ID: d.LimitID, Kind: d.Kind.String()}
	if d.Source == limits.SourceProvider {
		o.Provider = provider
	} else {
		o.Scope, o.Account, o.Model, o.Provider = string(d.Scope.Kind), account, d.Scope.Model, d.Scope.Provider
	}
	if !d.ResetAt.IsZero() {
		o.ResetAt = d.ResetAt.UTC().Format(time.RFC3339)
	}
	e := limitError{Message: f.msg, Type: f.typ, Code: f.code, LimitSource: d.Source.String()}
	if d.Outcome == limits.BudgetExceeded || d.Kind == limits.KindBudget || d.Kind == limits.KindSpillover {
		o.Window, o.RollingHours = string(d.Window), d.RollingHours
		if d.Amount > 0 || d.Kind == limits.KindBudget {
			o.AmountUSD = d.Amount.String()
		}
		e.Budget = o
	} else {
		switch d.Kind {
		case limits.KindRPM:
			o.Limit = d.Requests.Limit
		case limits.KindTPM:
			o.Limit = d.Tokens.Limit
		}
		e.RateLimit = o
	}
	b, _ := json.Marshal(struct {
		Error limitError `json:"error"`
	}{e})
	return append(b, '\n')
}

// limitMessage says which limit refused, in words: its scope, window and
// reset (or, for the BYOK key's provider limit, the provider and its
// reset). It names the caller's own account and limits only, never a key.
func limitMessage(account, provider, model string, d *limits.Decision) string {
	reset := ""
	if !d.ResetAt.IsZero() {
		reset = d.ResetAt.UTC().Format(time.RFC3339)
	}
	secs := max(int64(d.RetryAfter/time.Second), 1)
	switch {
	case d.Source == limits.SourceProvider:
		return fmt.Sprintf("the %s key this account registered with Agent Router (Bring Your Own Key) has reached its own rate limit at %s; the gateway sends it nothing until %s (retry after %d s)",
			provider, provider, reset, secs)
	case d.Transient:
		return fmt.Sprintf("the limit %s of account %s is briefly out of capacity on this gateway instance; retry after %d s", d.LimitID, account, secs)
	case d.Unpriced:
		return fmt.Sprintf("the model %s has no price and a dollar budget applies (the budget %s of account %s): the request cannot be counted, so it is refused", model, d.LimitID, account)
	case d.Kind == limits.KindSpillover:
		return fmt.Sprintf("the spillover allowance of account %s (%s USD a month that a fallback from the account's own keys to the platform's may spend) is spent; it resets at %s",
			account, d.Amount, reset)
	case d.Kind == limits.KindBudget:
		return fmt.Sprintf("the budget %s of account %s (%s USD %s, %s) is spent; it resets at %s",
			d.LimitID, account, d.Amount, windowWords(d), scopeWords(&d.Scope), reset)
	case d.Kind == limits.KindRPM:
		return fmt.Sprintf("the rate limit %s of account %s (%d requests a minute, %s) is reached; it resets at %s",
			d.LimitID, account, d.Requests.Limit, scopeWords(&d.Scope), reset)
	case d.Kind == limits.KindTPM:
		return fmt.Sprintf("the rate limit %s of account %s (%d tokens a minute, %s) is reached; it resets at %s",
			d.LimitID, account, d.Tokens.Limit, scopeWords(&d.Scope), reset)
	case d.Kind == limits.KindConcurrent:
		return fmt.Sprintf("the rate limit %s of account %s (%s) allows no more requests in flight at once; retry when one finishes",
			d.LimitID, account, scopeWords(&d.Scope))
	}
	return fmt.Sprintf("the limit %s of account %s refused the request; retry after %d s", d.LimitID, account, secs)
}

func windowWords(d *limits.Decision) string {
	switch d.Window {
	case limits.WindowDay:
		return "a day"
	case limits.WindowWeek:
		return "a week"
	case limits.WindowMonth:
		return "a month"
	case limits.WindowRolling:
		return fmt.Sprintf("per rolling %d hours", d.RollingHours)
	}
	return string(d.Window)
}

func scopeWords(s *limits.Scope) string {
	switch s.Kind {
	case limits.ScopeAPIKey:
		return "for this API key"
	case limits.ScopeAccountModel:
		return "for the model " + s.Model
	case limits.ScopeCredential:
		return "for the account's own " + s.Provider + " key"
	}
	return "for the whole account"
}

// Rate-limit header names: OpenAI's (chat, embeddings, Responses) and
// Anthropic's (Messages), for requests [0] and tokens [1]: limit,
// remaining, reset.
var rateHeaderNames = [2][2][3]string{
	{
		{"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"},
		{"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"},
	},
	{
		{"Anthropic-Ratelimit-Requests-Limit", "Anthropic-Ratelimit-Requests-Remaining", "Anthropic-Ratelimit-Requests-Reset"},
		{"Anthropic-Ratelimit-Tokens-Limit", "Anthropic-Ratelimit-Tokens-Remaining", "Anthropic-Ratelimit-Tokens-Reset"},
	},
}

// setsRateHeader reports whether setRateHeaders sets header k for d in
// the door's shape.
func setsRateHeader(d *limits.Decision, shape int, k string) bool {
	for i, info := range [2]*limits.RateInfo{&d.Requests, &d.Tokens} {
		if info.Set && (k == rateHeaderNames[shape][i][0] || k == rateHeaderNames[shape][i][1] || k == rateHeaderNames[shape][i][2]) {
			return true
		}
	}
	return false
}

// setRateHeaders writes the rate state d carries (the tightest requests
// and tokens limits that apply) as the door's rate-limit headers, in place
// of the ones relayed from the provider; on an allowed answer served with
// the platform key, every relayed rate-limit header goes (they describe
// the platform's account, not the limit the client's key is held to).
// The values live in the exchange (headerValues): no allocation.
func (x *exchange) setRateHeaders(h http.Header, d *limits.Decision, allowed bool) {
	if !d.Requests.Set && !d.Tokens.Set {
		return
	}
	shape := 0
	if x.ep.door.anthropicShape() {
		shape = 1
	}
	if allowed && x.cred.source == SourcePlatform {
		// A relayed header this answer is about to set anew stays: its
		// entry is overwritten below (a delete and a set cost twice).
		for k := range h {
			if (strings.HasPrefix(k, "X-Ratelimit-") || strings.HasPrefix(k, "Anthropic-Ratelimit-")) && !setsRateHeader(d, shape, k) {
				delete(h, k)
			}
		}
	}
	hv := &x.hdr
	var now time.Time
	if shape == 1 {
		now = time.Now() // Anthropic's resets are times; OpenAI's are durations
	}
	for i, info := range [2]*limits.RateInfo{&d.Requests, &d.Tokens} {
		if !info.Set {
			continue
		}
		names := &rateHeaderNames[shape][i]
		hv.put(h, names[0], strconv.AppendInt(hv.next(), info.Limit, 10))
		hv.put(h, names[1], strconv.AppendInt(hv.next(), max(info.Remaining, 0), 10))
		if shape == 1 {
			hv.put(h, names[2], now.Add(info.Reset).UTC().Truncate(time.Second).AppendFormat(hv.next(), time.RFC3339))
		} else {
			hv.put(h, names[2], appendDuration(hv.next(), info.Reset.Round(time.Millisecond)))
		}
	}
	x.hdr.set(h, HeaderLimitSource, limitSourceNames[d.Source])
}

// appendDuration appends d as time.Duration.String writes it ("1s",
// "6m0s", "20ms": OpenAI's format for x-ratelimit-reset-*), without the
// string String allocates.
func appendDuration(b []byte, d time.Duration) []byte {
	var buf [32]byte
	w := len(buf)
	u := uint64(d)
	neg := d < 0
	if neg {
		u = -u
	}
	if u < uint64(time.Second) {
		var prec int
		w--
		buf[w] = 's'
		w--
		switch {
		case u == 0:
			return append(b, "0s"...)
		case u < uint64(time.Microsecond):
			buf[w] = 'n'
		case u < uint64(time.Millisecond):
			prec = 3
			w-- // U+00B5 'µ' is 0xC2 0xB5
			copy(buf[w:], "µ")
		default:
			prec = 6
			buf[w] = 'm'
		}
		w, u = fmtFrac(buf[:w], u, prec)
		w = fmtInt(buf[:w], u)
	} else {
		w--
		buf[w] = 's'
		w, u = fmtFrac(buf[:w], u, 9)
		w = fmtInt(buf[:w], u%60)
		u /= 60
		if u > 0 {
			w--
			buf[w] = 'm'
			w = fmtInt(buf[:w], u%60)
			u /= 60
			if u > 0 {
				w--
				buf[w] = 'h'
				w = fmtInt(buf[:w], u)
			}
		}
	}
	if neg {
		w--
		buf[w] = '-'
	}
	return append(b, buf[w:]...)
}

// fmtFrac and fmtInt are time's own helpers for Duration.String.
func fmtFrac(buf []byte, v uint64, prec int) (nw int, nv uint64) {
	w := len(buf)
	print := false
	for i := 0; i < prec; i++ {
		digit := v % 10
		print = print || digit != 0
		if print {
			w--
			buf[w] = byte(digit) + '0'
		}
		v /= 10
	}
	if print {
		w--
		buf[w] = '.'
	}
	return w, v
}

func fmtInt(buf []byte, v uint64) int {
	w := len(buf)
	if v == 0 {
		w--
		buf[w] = '0'
	} else {
		for v > 0 {
			w--
			buf[w] = byte(v%10) + '0'
			v /= 10
		}
	}
	return w
}
