package providertest

import (
	"bytes"
	"net/http"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// Reading the fake's own answers back into usage events, as a provider's
// billing does: from the bytes it sent, not from what it meant to send.
// The parse is the fake's own (not the gateway's usage readers), so a
// reader bug on either side shows as a mismatch instead of cancelling out.

// captureMax bounds what is kept of one answer: the fakes' usage sits in
// the first kilobytes of a JSON answer and in the last events of a stream,
// and answers above this (the 48 MiB event of the hardening tests) carry
// none.
const captureMax = 1 << 20

// captureWriter passes an answer through and keeps a copy of it.
type captureWriter struct {
	http.ResponseWriter
	status int
	buf    bytes.Buffer
	over   bool
}

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.buf.Len()+len(p) <= captureMax {
		c.buf.Write(p)
	} else {
		c.over = true
	}
	return c.ResponseWriter.Write(p)
}

// Flush keeps the wrapped fake's streams flushing event by event.
func (c *captureWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// recordServed turns a served 2xx answer that reported usage into an event.
func (a *AdminServer) recordServed(r *http.Request, reqBody []byte, at time.Time, c *captureWriter) {
	if c.status/100 != 2 || c.over {
		return
	}
	e, ok := a.parseAnswer(c.ResponseWriter.Header().Get("Content-Type"), c.buf.Bytes())
	if !ok {
		return
	}
	if e.Model == "" {
		e.Model = gjson.GetBytes(reqBody, "model").String()
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/"); ok && e.Model == "" {
		e.Model, _, _ = strings.Cut(rest, "/")
	}
	e.Time, e.Requests = at, 1
	e.Embeddings = strings.HasSuffix(r.URL.Path, "/embeddings")
	key := credentialOf(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	if k := a.byKey[key]; k != nil {
		e.KeyID, e.Project, e.Workspace = k.ID, k.Project, k.Workspace
	} else if a.Kind != "anthropic" {
		e.Project = "proj_default"
	}
	a.events = append(a.events, e)
}

func credentialOf(r *http.Request) string {
	if k := r.Header.Get("X-Api-Key"); k != "" {
		return k
	}
	if k := r.Header.Get("Api-Key"); k != "" {
		return k
	}
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// parseAnswer reads the usage and model out of an answer: a JSON body or
// an SSE stream, in the fake's own protocol.
func (a *AdminServer) parseAnswer(contentType string, body []byte) (UsageEvent, bool) {
	if !strings.HasPrefix(contentType, "text/event-stream") {
		v := gjson.ParseBytes(body)
		u := v.Get("usage")
		if !u.IsObject() {
			return UsageEvent{}, false
		}
		e := a.usageOf(u)
		e.Model = v.Get("model").String()
		return e, true
	}
	var e UsageEvent
	found := false
	for line := range strings.SplitSeq(string(body), "\n") {
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "data:")
		if !ok {
			continue
		}
		v := gjson.Parse(strings.TrimSpace(data))
		switch {
		case v.Get("type").String() == "message_start": // Anthropic: input and cache counts
			e = a.usageOf(v.Get("message.usage"))
			e.Model, found = v.Get("message.model").String(), true
		case v.Get("type").String() == "message_delta": // Anthropic: the final output count
			if o := v.Get("usage.output_tokens"); o.Exists() {
				e.Output = o.Int()
			}
		case v.Get("response.usage").IsObject(): // OpenAI Responses: response.completed
			e = a.usageOf(v.Get("response.usage"))
			e.Model, found = v.Get("response.model").String(), true
		case v.Get("usage").IsObject(): // OpenAI chat: the usage chunk
			e = a.usageOf(v.Get("usage"))
			e.Model, found = v.Get("model").String(), true
		}
	}
	return e, found
}

// usageOf reads one usage object into the event's non-overlapping classes.
func (a *AdminServer) usageOf(u gjson.Result) UsageEvent {
	if a.Kind == "anthropic" {
		e := UsageEvent{Input: u.Get("input_tokens").Int(), CacheRead: u.Get("cache_read_input_tokens").Int(),
			Output: u.Get("output_tokens").Int()}
		created := u.Get("cache_creation_input_tokens").Int()
		if cc := u.Get("cache_creation"); cc.IsObject() {
			e.CacheWrite5m, e.CacheWrite1h = cc.Get("ephemeral_5m_input_tokens").Int(), cc.Get("ephemeral_1h_input_tokens").Int()
			e.CacheWrite5m += max(created-e.CacheWrite5m-e.CacheWrite1h, 0)
		} else {
			e.CacheWrite5m = created
		}
		return e
	}
	prompt := u.Get("prompt_tokens").Int() + u.Get("input_tokens").Int()
	cached := u.Get("prompt_tokens_details.cached_tokens").Int() + u.Get("input_tokens_details.cached_tokens").Int()
	out := u.Get("completion_tokens").Int() + u.Get("output_tokens").Int()
	cached = min(cached, prompt)
	return UsageEvent{Input: prompt - cached, CacheRead: cached, Output: out}
}
