package main

import (
	"bytes"
	"context"
	"expvar"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The fake upstream: a minimal, fast OpenAI-shaped /v1/chat/completions.
// It runs in a child process of the bench program (the same binary, started
// as `bench fake-upstream -addr ...`), so that the load generator's garbage
// collector and goroutines do not stall it and its CPU time can be read on
// its own.
//
// It always reads the request body fully before answering (see the pitfall
// in reference/performance.md). A non-streamed request gets a fixed
// chat.completion JSON of 578 bytes with OpenAI's usual response headers. A
// request with "stream":true gets 20 chat.completion.chunk events, a finish
// chunk and "data: [DONE]", each flushed on its own. Every chunk carries the
// wall-clock time at which the fake wrote it (in system_fingerprint, as
// "fp_" + 19 digits of Unix nanoseconds), so the client can measure how long
// each event took to reach it.
//
// The "user" field of the request selects the pacing of a stream:
//
//	(absent)          all events at once
//	"bench-paced"     one event every -pace (5 ms)
//	"bench-slow"      -slow-events events, one every -slow-interval (500 ms)

const (
	markerPaced = `"user":"bench-paced"`
	markerSlow  = `"user":"bench-slow"`
)

// completionJSON is padded to completionSize bytes in init.
const completionSize = 578

var completionJSON = []byte(`{"id":"chatcmpl-BENCH0fixed0answer0000000000","object":"chat.completion","created":1764241200,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! This is the fixed answer.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":9,"total_tokens":28,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"system_fingerprint":"fp_bench"}`)

func init() {
	// pad the JSON with trailing spaces (then a newline) to the fixed size
	for len(completionJSON) < completionSize-1 {
		completionJSON = append(completionJSON, ' ')
	}
	completionJSON = append(completionJSON, '\n')
	clJSON = []string{strconv.Itoa(len(completionJSON))}
}

// chunk parts: prefix + 19-digit timestamp + suffix.
const (
	chunkPrefix   = `data: {"id":"chatcmpl-BENCH0fixed0answer0000000000","object":"chat.completion.chunk","created":1764241200,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_`
	contentSuffix = `","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}` + "\n\n"
	finishSuffix  = `","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}` + "\n\n"
	doneEvent     = "data: [DONE]\n\n"
	stampMarker   = `"system_fingerprint":"fp_`
	streamEvents  = 20 // content chunks of a normal or paced stream
)

// upstream headers of a real OpenAI answer (besides the content type).
var fakeHeaders = map[string][]string{
	"X-Request-Id":                   {"req_0123456789abcdef0123456789abcdef"},
	"Openai-Processing-Ms":           {"210"},
	"Openai-Version":                 {"2020-10-01"},
	"X-Ratelimit-Limit-Requests":     {"10000"},
	"X-Ratelimit-Limit-Tokens":       {"30000000"},
	"X-Ratelimit-Remaining-Requests": {"9999"},
	"X-Ratelimit-Remaining-Tokens":   {"29999980"},
	"X-Ratelimit-Reset-Requests":     {"6ms"},
	"X-Ratelimit-Reset-Tokens":       {"0s"},
}

type fake struct {
	pace, slowInterval time.Duration
	slowEvents         int
	vars               http.Handler
}

var (
	ctJSON    = []string{"application/json"}
	ctSSE     = []string{"text/event-stream; charset=utf-8"}
	noCache   = []string{"no-cache"}
	clJSON    []string // set in init
	bodyBufs  = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 1024)) }}
	chunkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

func runFake(args []string) {
	fs := flag.NewFlagSet("fake-upstream", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:17301", "listen address")
	pace := fs.Duration("pace", 5*time.Millisecond, "delay between events of a paced stream")
	slowInterval := fs.Duration("slow-interval", 500*time.Millisecond, "delay between events of a slow stream")
	slowEvents := fs.Int("slow-events", 8, "content events of a slow stream")
	fs.Parse(args)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake upstream:", err)
		os.Exit(1)
	}
	f := &fake{pace: *pace, slowInterval: *slowInterval, slowEvents: *slowEvents, vars: expvar.Handler()}
	var accepted atomic.Int64
	expvar.Publish("accepted_conns", expvar.Func(func() any { return accepted.Load() }))
	srv := &http.Server{
		Handler: f,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted.Add(1)
			}
		},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	fmt.Fprintln(os.Stderr, "fake upstream listening on", ln.Addr())
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "fake upstream:", err)
		os.Exit(1)
	}
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/chat/completions":
	case "/v1/messages":
		f.serveMessages(w, r)
		return
	case "/debug/vars":
		f.vars.ServeHTTP(w, r)
		return
	case "/healthz":
		w.Write([]byte("ok\n"))
		return
	default:
		http.NotFound(w, r)
		return
	}

	// Read the whole body before answering.
	b := bodyBufs.Get().(*bytes.Buffer)
	b.Reset()
	_, err := b.ReadFrom(r.Body)
	body := b.Bytes()
	stream := bytes.Contains(body, []byte(`"stream":true`))
	paced := stream && bytes.Contains(body, []byte(markerPaced))
	slow := stream && bytes.Contains(body, []byte(markerSlow))
	bodyBufs.Put(b)
	if err != nil {
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}

	h := w.Header()
	for k, v := range fakeHeaders {
		h[k] = v
	}
	if !stream {
		h["Content-Type"] = ctJSON
		h["Content-Length"] = clJSON
		w.Write(completionJSON)
		return
	}

	h["Content-Type"] = ctSSE
	h["Cache-Control"] = noCache
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	n, interval := streamEvents, time.Duration(0)
	switch {
	case paced:
		interval = f.pace
	case slow:
		n, interval = f.slowEvents, f.slowInterval
	}
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	send := func(suffix string) bool {
		buf := append((*bp)[:0], chunkPrefix...)
		buf = appendStamp(buf, time.Now().UnixNano())
		buf = append(buf, suffix...)
		*bp = buf
		if _, err := w.Write(buf); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	for i := 0; i < n; i++ {
		if i > 0 && interval > 0 && !sleepCtx(r.Context(), interval) {
			return
		}
		if !send(contentSuffix) {
			return
		}
	}
	if paced && !sleepCtx(r.Context(), interval) {
		return
	}
	if !send(finishSuffix) {
		return
	}
	w.Write([]byte(doneEvent))
	if fl != nil {
		fl.Flush()
	}
}

// appendStamp appends ns as exactly 19 decimal digits.
func appendStamp(b []byte, ns int64) []byte {
	var d [19]byte
	for i := 18; i >= 0; i-- {
		d[i] = byte('0' + ns%10)
		ns /= 10
	}
	return append(b, d[:]...)
}

// parseStamp finds the fake's timestamp in an event's JSON; 0 if none.
func parseStamp(payload []byte) int64 {
	i := bytes.Index(payload, []byte(stampMarker))
	if i < 0 || len(payload) < i+len(stampMarker)+19 {
		return 0
	}
	var ns int64
	for _, c := range payload[i+len(stampMarker) : i+len(stampMarker)+19] {
		if c < '0' || c > '9' {
			return 0
		}
		ns = ns*10 + int64(c-'0')
	}
	return ns
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Anthropic's Messages stream, for phase (m): message_start, one text
// block of streamEvents text_delta events (each stamped like the chat
// chunks, in the message id's place), message_delta and message_stop; every
// event is "event:" + "data:" and flushed on its own, as Anthropic sends.
const (
	msgStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_BENCH0fixed0answer00000000\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":19,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
	msgDeltaPrefix = `event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"system_fingerprint":"fp_`
	msgDeltaSuffix = `","delta":{"type":"text_delta","text":" token"}}` + "\n\n"
	msgEnd         = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	// msgStopPayload is how a client knows a Messages stream is complete.
	msgStopPayload = `{"type":"message_stop"}`
)

func (f *fake) serveMessages(w http.ResponseWriter, r *http.Request) {
	b := bodyBufs.Get().(*bytes.Buffer)
	b.Reset()
	_, err := b.ReadFrom(r.Body)
	bodyBufs.Put(b)
	if err != nil {
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	h := w.Header()
	h["Content-Type"] = ctSSE
	h["Cache-Control"] = noCache
	h["Request-Id"] = []string{"req_0123456789abcdef01234567"}
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	w.Write([]byte(msgStart))
	flush()
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	for i := 0; i < streamEvents; i++ {
		buf := append((*bp)[:0], msgDeltaPrefix...)
		buf = appendStamp(buf, time.Now().UnixNano())
		buf = append(buf, msgDeltaSuffix...)
		*bp = buf
		if _, err := w.Write(buf); err != nil {
			return
		}
		flush()
	}
	w.Write([]byte(msgEnd))
	flush()
}
