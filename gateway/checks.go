package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// forward serves a request whose body goes through the routing plan's
// attempts: chat completions, embeddings, Messages (and count_tokens) and
// Responses creates. The body is read and checked once, here; the attempts
// pass it through or translate it.
func (g *Gateway) forward(x *exchange) {
	body, model, ok := g.readRequest(x)
	if !ok {
		return
	}
	x.body = body
	x.refs = findRefs(x.ep.door, x.ep.op, body)
	g.serveAttempts(x, model)
}

// readRequest reads the body once, bounded, and checks it: a JSON object of
// valid UTF-8 nested at most providers.MaxJSONDepth deep, no repeat of a
// member the gateway reads, a model name of bounded length. It records the
// model, whether a stream was asked for (and its usage chunk), and the
// request's own output bound (budgets reserve by it, limits.go), all read
// in one pass over the body's members (readMembersOf). A refusal is
// answered here (in the door's envelope) and ok is false.
func (g *Gateway) readRequest(x *exchange) (body []byte, model string, ok bool) {
	body, err := readBody(x.r, g.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			x.refuse(http.StatusRequestEntityTooLarge, CodeRequestTooLarge, fmt.Sprintf("request body is larger than the limit of %d bytes", g.maxBody))
			return nil, "", false
		}
		x.refuse(http.StatusBadRequest, CodeInvalidJSON, "could not read the request body")
		return nil, "", false
	}
	if len(body) == 0 || body[firstNonSpace(body)] != '{' {
		x.refuse(http.StatusBadRequest, CodeInvalidJSON, "request body must be a JSON object")
		return nil, "", false
	}
	if err := providers.CheckRequestJSON(body); err != nil {
		x.refuse(http.StatusBadRequest, CodeInvalidJSON, err.Error())
		return nil, "", false
	}
	if name := repeatedMember(body); name != "" {
		// Providers' decoders take the last one; routing, metering and the
		// log would see the first.
		x.refuse(http.StatusBadRequest, CodeInvalidJSON, `request body names "`+name+`" more than once`)
		return nil, "", false
	}
	m := readMembersOf(body)
	mr := m.model
	if mr.Type != gjson.String || mr.Str == "" {
		x.refuse(http.StatusBadRequest, CodeMissingModel, "request body must name a model: {\"model\": \"...\"}")
		return nil, "", false
	}
	if len(mr.Str) > maxModelLen {
		// The name is client data kept in every request-log record and
		// quoted in errors: never store, echo or forward it in full.
		x.rec.Model = strings.Clone(truncate(mr.Str, maxModelLen))
		x.refuse(http.StatusNotFound, CodeModelNotFound,
			fmt.Sprintf("the model name is too long (%d bytes; model names are at most %d)", len(mr.Str), maxModelLen))
		return nil, "", false
	}
	// The name is kept (the record, the plan) past the body: a copy.
	model = strings.Clone(mr.Str)
	x.rec.Model = model
	x.rec.Stream = m.stream.Bool()
	x.includeUsage = m.streamOptions.Get("include_usage").Bool()
	x.maxTokens = m.maxTokens()
	return body, model, true
}

// members are the body's top-level members the gateway reads, as views of
// the body (gjson.Results over an unsafe string): only what is copied out
// of them outlives it.
type members struct {
	model, stream, streamOptions gjson.Result
	max                          [len(maxTokenMembers)]gjson.Result
}

// readMembersOf reads the members of the JSON object body the gateway
// reads, in one pass (a gjson.Get per member walked the body once each).
// A member named twice is read at its first copy, as gjson.Get reads it;
// repeatedMember refuses such a body first.
func readMembersOf(body []byte) members {
	var m members
	first := func(dst *gjson.Result, v gjson.Result) {
		if !dst.Exists() {
			*dst = v
		}
	}
	gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body))).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			first(&m.model, v)
		case "stream":
			first(&m.stream, v)
		case "stream_options":
			first(&m.streamOptions, v)
		case maxTokenMembers[0]:
			first(&m.max[0], v)
		case maxTokenMembers[1]:
			first(&m.max[1], v)
		case maxTokenMembers[2]:
			first(&m.max[2], v)
		}
		return true
	})
	return m
}

// maxTokens is the request's own output bound: the largest of max_tokens
// (chat, Messages), max_completion_tokens (chat) and max_output_tokens
// (Responses) it names, as whichever a provider reads is at most that; 0
// when it names none (the reservation then assumes the model's maximum).
func (m *members) maxTokens() int64 {
	var n int64
	for _, r := range m.max {
		if r.Type == gjson.Number && r.Num > 0 {
			n = max(n, r.Int())
		}
	}
	return n
}

// maxModelLen bounds the model names the gateway accepts. Real names (Hugging
// Face repository ids, Azure deployments, fine-tune ids) are far shorter.
const maxModelLen = 256

// readMembers are the top-level members the gateway itself reads: routing
// by "model", metering by "stream" and "stream_options" (a stream that
// asked for no usage chunk is made to ask for one), budgets by the output
// bounds (a reservation assumes the request's own, limits.go).
var readMembers = [...]string{"model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "max_output_tokens"}

// repeatedMember returns a member of readMembers that the JSON object body
// names more than once (counting escaped spellings, as a provider's decoder
// does), or "". Providers read the last copy and gjson the first, so a
// repeat would let a client route, log or meter one request as another.
// A few byte scans clear almost every body: a repeat needs a second literal
// "model", "stream… or "max_… key, or a \u00 escape.
func repeatedMember(body []byte) string {
	if !bytes.Contains(body, []byte(`\u00`)) && bytes.Count(body, []byte(`"model"`)) < 2 && bytes.Count(body, []byte(`"stream`)) < 2 &&
		bytes.Count(body, []byte(`"max_`)) < 2 {
		return ""
	}
	var n [len(readMembers)]int
	repeated := ""
	gjson.GetBytes(body, "@keys").ForEach(func(_, k gjson.Result) bool {
		for i, m := range readMembers {
			if k.String() == m {
				if n[i]++; n[i] > 1 {
					repeated = m
					return false
				}
			}
		}
		return true
	})
	return repeated
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func bearer(h string) (string, bool) {
	const p = "Bearer "
	if len(h) <= len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	t := strings.TrimSpace(h[len(p):])
	return t, t != ""
}

func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, &http.MaxBytesError{Limit: max}
	}
	n := r.ContentLength
	if n < 0 {
		n = 512
	}
	// Into a buffer of the announced size and one more byte, to see EOF
	// without growing it (bytes.Buffer.ReadFrom grows any buffer with less
	// than 512 bytes free before each read: a second allocation on every
	// small request). The MaxBytesReader bounds it.
	return readAll(make([]byte, 0, n+1), http.MaxBytesReader(nil, r.Body, max), -1)
}

func firstNonSpace(b []byte) int {
	for i, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return i
		}
	}
	return 0
}
