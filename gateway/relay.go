package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// chatUpstream is the upstream request of the endpoints with a body (chat
// completions, embeddings and the doors): the body goes through the target
// provider's adapter, passed through when the provider speaks the client's
// shape and translated otherwise, and so does the answer.
type chatUpstream struct{}

// build prepares the attempt's call (a fresh one: the adapter writes in it)
// and the provider's request.
func (chatUpstream) build(ctx context.Context, g *Gateway, x *exchange, t target) (*http.Request, error) {
	d := x.ep.door
	x.call = providers.Call{
		Op: x.ep.op, Endpoint: x.cred.endpoint, Key: x.cred.key, Model: t.model, Body: x.body,
		Stream: x.rec.Stream, IncludeUsage: x.includeUsage, DefaultMaxTokens: g.defaultMaxTokens,
		ID: d.idPrefix + x.rec.ID, Created: x.rec.Time.Unix(),
		Door: d.wire, Header: x.r.Header, Query: x.r.URL.RawQuery,
	}
	return t.provider.NewCallRequest(ctx, &x.call)
}

func (chatUpstream) native(x *exchange) bool { return x.call.Native }

// relay sends a successful answer: a stream event by event through the
// provider's translator (streaming.go), or a whole body translated once.
// What the translation left out of the request is said, never dropped
// silently (Codex's cache-only web_search on Claude).
func (chatUpstream) relay(g *Gateway, x *exchange, t target, resp *http.Response) relayed {
	if len(x.call.Omitted) > 0 {
		x.w.Header()[HeaderOmitted] = []string{strings.Join(x.call.Omitted, ", ")}
		x.rec.Omitted = x.call.Omitted
	}
	if isEventStream(resp.Header) {
		return g.relayStream(x, t.provider, resp)
	}
	return g.relayWhole(x, t.provider, resp)
}

// maxResponse bounds a non-streamed answer the gateway reads whole (to
// translate it or read its usage).
const maxResponse = 32 << 20

// relayWhole reads a whole answer, translates it once, prices it (its
// cost goes out as X-Agent-Router-Cost) and sends it.
func (g *Gateway) relayWhole(x *exchange, p *providers.Provider, resp *http.Response) relayed {
	rb := acquireAnswerBuf(resp.ContentLength)
	defer releaseAnswerBuf(rb)
	raw, err := readAnswer(rb, resp.Body)
	var out []byte
	var u providers.Usage
	if err == nil {
		out, u, err = p.TranslateResponse(&x.call, raw)
	}
	if err != nil {
		if x.r.Context().Err() != nil {
			x.rec.Status, x.rec.ErrorCode = 499, codeClientGone
			return relayed{}
		}
		x.fail(failure{status: http.StatusBadGateway, typ: typeAPI, code: CodeUpstreamError,
			msg: "the answer from " + p.Name + " could not be read: " + x.cred.scrub(err.Error())})
		return relayed{}
	}
	g.rememberResponse(&x.call, p.Name, &x.cred, x.rec)
	cost := g.priceAttempt(x, &u)
	x.setCostHeader(&cost)
	h := x.w.Header()
	h["Content-Type"] = []string{"application/json"}
	if len(out) >= autoContentLength {
		h["Content-Length"] = []string{strconv.Itoa(len(out))}
	}
	x.writeHeader(resp.StatusCode)
	x.w.Write(out)
	return relayed{usage: u, priced: true}
}

// autoContentLength is the answer size from which relay sets
// Content-Length itself. A smaller answer is written whole before the
// handler returns, into the server's response buffer (2 KiB in net/http
// for HTTP/1.1, 4 KiB for HTTP/2), and the server then sends the exact
// Content-Length on its own without a header-map entry: with the
// provider's rate-limit headers relayed, that one entry more made the
// response header map outgrow its table (and the copy net/http takes of
// it at WriteHeader double) on every small answer.
const autoContentLength = 2 << 10

// answerBufs pools the buffers whole answers are read into: a response
// read with io.ReadAll grows a fresh buffer (several copies) per request,
// which was the gateway's largest allocation on non-streamed requests.
var answerBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// maxPooledAnswerBuf is the largest answer buffer returned to the pool.
const maxPooledAnswerBuf = 256 << 10

// maxAnswerPresize bounds what an announced Content-Length reserves before
// the bytes arrive: a provider (or a tenant's base URL) claiming 30 MB
// and sending nothing must not cost 30 MB; a larger answer grows as read.
const maxAnswerPresize = 1 << 20

// acquireAnswerBuf returns a pooled buffer with room for an answer of
// size bytes (and one more, so reading it whole needs no growth to see
// EOF) when the provider announced it.
func acquireAnswerBuf(size int64) *[]byte {
	bp := answerBufs.Get().(*[]byte)
	if size > 0 && size < maxAnswerPresize && int64(cap(*bp)) <= size {
		*bp = make([]byte, 0, size+1)
	}
	return bp
}

func releaseAnswerBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledAnswerBuf {
		*bp = (*bp)[:0]
		answerBufs.Put(bp)
	}
}

// readAnswer reads body whole into *bp, at most maxResponse bytes.
func readAnswer(bp *[]byte, body io.Reader) ([]byte, error) {
	b, err := readAll((*bp)[:0], body, maxResponse)
	*bp = b
	if err == errTooLarge {
		return nil, fmt.Errorf("the answer is larger than %d bytes", maxResponse)
	}
	return b, err
}

var errTooLarge = errors.New("too large")

// readAll appends r to b until EOF, growing b only when it is full (a
// buffer sized for what was announced, plus one byte, sees EOF without
// growing), and fails with errTooLarge past max bytes (max < 0: r bounds
// itself). It returns b as far as it read, whatever the error.
func readAll(b []byte, r io.Reader, max int) ([]byte, error) {
	for {
		if max >= 0 && len(b) > max {
			return b, errTooLarge
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		end := cap(b)
		if max >= 0 {
			end = min(end, max+1)
		}
		n, err := r.Read(b[len(b):end])
		b = b[:len(b)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				return b, nil
			}
			return b, err
		}
	}
}
