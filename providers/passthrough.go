package providers

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"

	"github.com/tidwall/gjson"
)

// passthroughStream relays an OpenAI-shaped stream event by event. It reads
// usage from whichever chunk carries it, drops the usage-only chunk the
// gateway asked for on its own behalf (when the client did not), turns an
// in-stream error into a StreamError, and always ends with [DONE] (some
// providers, such as Perplexity, omit it).
//
// Through a front door, each chunk goes to the door's stream as a value
// (decodeChunk), and no [DONE] follows.
type passthroughStream struct {
	dropUsageChunk bool
	sink           chunkSink
	usage          Usage
	done, finished bool
}

func newPassthroughStream(c *Call) StreamTranslator {
	return &passthroughStream{dropUsageChunk: !c.IncludeUsage, sink: c.sink}
}

func (p *passthroughStream) Event(dst []byte, ev Event) ([]byte, error) {
	d := ev.Data
	if bytes.Equal(bytes.TrimSpace(d), []byte("[DONE]")) {
		p.done = true
		return dst, nil
	}
	// Cheap byte checks first: most chunks carry neither usage, nor an
	// error, nor a finish reason, and are relayed without a JSON scan.
	// The needles start after the quote: '"' is on every other byte of
	// JSON, and bytes.Index falls back to comparing at every position when
	// the first byte keeps matching; a letter lets it skip ahead.
	if string(ev.Name) == "error" || bytes.Contains(d, []byte(`error"`)) && gjson.GetBytes(d, "error").IsObject() {
		msg := ErrorMessage(d)
		if msg == "" {
			msg = "the provider reported an error in the stream"
		}
		return dst, &StreamError{Class: ClassServer, Code: "upstream_stream_error", Message: msg}
	}
	if bytes.Contains(d, []byte(`usage"`)) {
		if u := gjson.GetBytes(d, "usage"); u.IsObject() {
			p.usage = openAIUsage(u)
			p.usage.ServiceTier = gjson.GetBytes(d, "service_tier").Str
			if p.dropUsageChunk {
				if ch := gjson.GetBytes(d, "choices"); ch.IsArray() && isEmptyArray(ch.Raw) {
					return dst, nil
				}
				// Mistral and Perplexity put usage on the finish chunk
				// unasked: the client did not ask, so it does not get it.
				d = DeleteField(d, "usage")
			}
		}
	}
	if !p.finished && finishReasonSet(d) {
		if fr := gjson.GetBytes(d, "choices.0.finish_reason"); fr.Type == gjson.String && fr.Str != "" {
			p.finished = true
		}
	}
	if p.sink != nil {
		model, delta, finish := decodeChunk(d)
		return p.sink.chunk(dst, model, &delta, finish), nil
	}
	return appendData(dst, d), nil
}

// finishReasonSet reports whether d may carry a finish_reason string (not
// null): a byte check before the JSON look-up.
func finishReasonSet(d []byte) bool {
	for {
		i := bytes.Index(d, []byte(`finish_reason"`))
		if i < 0 {
			return false
		}
		d = d[i+len(`finish_reason"`):]
		j := 0
		for j < len(d) && (d[j] == ' ' || d[j] == ':' || d[j] == '\t' || d[j] == '\n' || d[j] == '\r') {
			j++
		}
		if j < len(d) && d[j] == '"' {
			return true
		}
	}
}

// appendData frames d as one SSE event. A payload of several lines (the
// reader joins multi-line data with "\n") keeps one "data:" line per line,
// so the client reads back the same payload.
func appendData(dst, d []byte) []byte {
	for {
		dst = append(dst, "data: "...)
		i := bytes.IndexByte(d, '\n')
		if i < 0 {
			dst = append(dst, d...)
			return append(dst, "\n\n"...)
		}
		dst = append(dst, d[:i]...)
		dst = append(dst, '\n')
		d = d[i+1:]
	}
}

func isEmptyArray(raw string) bool {
	for i := 1; i < len(raw)-1; i++ {
		if c := raw[i]; c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return len(raw) >= 2
}

func (p *passthroughStream) End(dst []byte) ([]byte, error) {
	if !p.done && !p.finished {
		return dst, errIncomplete("answer")
	}
	if p.sink != nil {
		return dst, nil
	}
	return append(dst, doneEvent...), nil
}

func (p *passthroughStream) Usage() Usage { return p.usage }

// passthroughResponse reads usage from an OpenAI-shaped answer, which is
// relayed unchanged.
func passthroughResponse(_ *Call, body []byte) ([]byte, Usage, error) {
	if !ValidJSON(body) {
		return nil, Usage{}, fmt.Errorf("the provider answered with invalid JSON")
	}
	// One pass over the answer's members, on a view of its bytes: usage
	// and service_tier are copied out of it (openAIUsage, serviceTier),
	// not the whole answer (gjson.GetBytes copies every result it
	// returns, and GetManyBytes walks the answer once per path).
	var usage, tier gjson.Result
	gjson.Parse(unsafe.String(unsafe.SliceData(body), len(body))).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "usage":
			if !usage.Exists() {
				usage = v
			}
		case "service_tier":
			if !tier.Exists() {
				tier = v
			}
		}
		return true
	})
	u := openAIUsage(usage)
	u.ServiceTier = serviceTier(tier.Str)
	return body, u, nil
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
