package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// relayStream sends a successful event stream to the client, event by event
// through the provider's translator, and reports the usage it carried and
// the code it ended with.
func (g *Gateway) relayStream(x *exchange, p *providers.Provider, resp *http.Response) relayed {
	h := x.w.Header()
	h["Content-Type"] = []string{"text/event-stream"}
	h["Cache-Control"] = []string{"no-cache"}
	h["X-Accel-Buffering"] = []string{"no"}
	h.Del("Content-Length")
	x.writeHeader(resp.StatusCode)
	tr := p.NewStream(&x.call)
	code := relayEvents(x.w, x.r.Context(), resp.Body, tr, &x.cred)
	if f, ok := tr.(providers.StreamFailer); ok && code == "" {
		// The provider's own failure event went to the client as sent;
		// its code is recorded in the shape of a code, as endWith does.
		if code = f.FailureCode(); code != "" && (!validErrorCode(code) || x.cred.scrub(code) != code) {
			code = "upstream_stream_error"
		}
	}
	g.rememberResponse(&x.call, p.Name, &x.cred, x.rec)
	return relayed{usage: tr.Usage(), code: code}
}

// maxPooledEventBuf is the largest event buffer returned to the pool.
const maxPooledEventBuf = 64 << 10

// errClientGone is what a streamRelay's Read returns once writing to the
// client has failed: the relay stops reading from the provider.
var errClientGone = errors.New("the client connection is gone")

// streamRelay is the state of one relayed stream, pooled: the translated
// events not yet written, and the upstream body it reads through.
//
// Flushing follows the upstream's own batching, as Caddy's reverse_proxy
// does by writing what one read returned: events translated from bytes
// already read are collected in out and written and flushed together, in
// one Write and one Flush, just before the relay would wait for the
// provider again (Read) — never later, so no event is held back while the
// gateway waits, and never per event when the provider sent several in one
// segment (each Write and Flush costs a deadline update and a syscall).
type streamRelay struct {
	body io.Reader
	w    http.ResponseWriter
	rc   *http.ResponseController
	out  []byte
	werr error
}

var streamRelays = sync.Pool{New: func() any { return &streamRelay{out: make([]byte, 0, 4<<10)} }}

// Read writes and flushes what is pending, then reads from the provider.
func (s *streamRelay) Read(p []byte) (int, error) {
	if len(s.out) > 0 && !s.send() {
		return 0, errClientGone
	}
	return s.body.Read(p)
}

// send writes and flushes the pending events; false when the client is
// gone.
func (s *streamRelay) send() bool {
	if s.werr != nil {
		return false
	}
	if len(s.out) > 0 {
		_, s.werr = s.w.Write(s.out)
		s.out = s.out[:0]
	}
	if s.werr == nil {
		s.werr = s.rc.Flush()
	}
	return s.werr == nil
}

// relayEvents reads the upstream event stream, translates each event and
// writes it (see streamRelay for when), and returns the error code the
// stream ended with ("" when it completed).
func relayEvents(w http.ResponseWriter, clientCtx context.Context, body io.Reader, tr providers.StreamTranslator, cred *credential) string {
	if k, ok := tr.(providers.Keepaliver); ok {
		kw := startKeepalive(w, k.KeepaliveEvent())
		defer kw.stop()
		w = kw
	}
	s := streamRelays.Get().(*streamRelay)
	s.body, s.w, s.rc, s.out, s.werr = body, w, http.NewResponseController(w), s.out[:0], nil
	sr := providers.AcquireSSEReader(s)
	defer func() {
		sr.Release()
		s.body, s.w, s.rc, s.werr = nil, nil, nil, nil
		// A buffer grown by one big event is left to the collector, not
		// kept for every later stream.
		if cap(s.out) <= maxPooledEventBuf {
			streamRelays.Put(s)
		}
	}()
	for {
		ev, err := sr.Next()
		if err != nil {
			if errors.Is(err, errClientGone) || clientCtx.Err() != nil {
				return codeClientGone
			}
			return s.end(err, tr, cred)
		}
		var serr error
		s.out, serr = tr.Event(s.out, ev)
		if serr != nil {
			var se *providers.StreamError
			if !errors.As(serr, &se) {
				se = &providers.StreamError{Code: "upstream_stream_error", Message: serr.Error()}
			}
			return s.endWith(tr, cred, se.Code, se.Message)
		}
	}
}

// end finishes a stream whose upstream read ended with err: the
// translator's last events after a whole stream (io.EOF), an error event
// otherwise.
func (s *streamRelay) end(err error, tr providers.StreamTranslator, cred *credential) string {
	if errors.Is(err, providers.ErrEventTooLarge) {
		return s.endWith(tr, cred, "upstream_event_too_large", fmt.Sprintf("the provider sent a stream event larger than %d bytes", providers.MaxSSEEvent))
	}
	if !errors.Is(err, io.EOF) {
		return s.endWith(tr, cred, "upstream_stream_error", "the connection to the provider broke during the stream")
	}
	var serr error
	s.out, serr = tr.End(s.out)
	var se *providers.StreamError
	if errors.As(serr, &se) {
		return s.endWith(tr, cred, se.Code, se.Message)
	}
	if !s.send() {
		return codeClientGone
	}
	return ""
}

// endWith ends a failed stream with an error event in the translator's
// dialect and returns its code. A translator's code may come from the
// provider (Anthropic's error.type): it is relayed only in the shape of a
// code.
func (s *streamRelay) endWith(tr providers.StreamTranslator, cred *credential, code, msg string) string {
	if !validErrorCode(code) || cred.scrub(code) != code {
		code = "upstream_stream_error"
	}
	if ee, ok := tr.(providers.ErrorEventer); ok {
		s.out = ee.ErrorEvent(s.out, code, cred.scrub(msg))
	} else {
		s.out = providers.ErrorEvent(s.out, typeAPI, code, cred.scrub(msg))
	}
	s.send()
	return code
}
