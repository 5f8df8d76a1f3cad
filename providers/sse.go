package providers

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// Event is one server-sent event. Name and Data alias the reader's buffers
// and are valid until the next call to Next.
type Event struct {
	Name []byte // the "event:" field; empty for unnamed events
	Data []byte // the "data:" lines joined by "\n"
}

// SSEReader reads server-sent events (the WHATWG event-stream format): lines
// end in LF, CRLF or CR (Gemini sends CRLF), a blank line ends an event,
// "data:" lines accumulate, ":" lines are comments. It allocates nothing per
// event once its buffers have grown.
type SSEReader struct {
	r        *bufio.Reader
	name     []byte
	data     []byte
	line     []byte
	hasData  bool
	pendingR bool // the previous line ended in a lone CR; skip a following LF
}

const (
	sseBufSize = 8 << 10
	// maxPooledSSE is the largest line or event buffer a pooled reader
	// keeps: one that grew past it for a big event goes to the collector.
	maxPooledSSE = 64 << 10
)

var sseReaders = sync.Pool{New: func() any { return &SSEReader{r: bufio.NewReaderSize(nil, sseBufSize)} }}

// AcquireSSEReader returns a reader of r's events from a pool: a relay
// reads thousands of streams a second, and a fresh read buffer for each is
// most of what a stream allocates. Call Release when done; events read
// before it must not be used after it.
func AcquireSSEReader(r io.Reader) *SSEReader {
	s := sseReaders.Get().(*SSEReader)
	s.r.Reset(r)
	return s
}

// Release returns a reader from AcquireSSEReader to the pool.
func (s *SSEReader) Release() {
	s.r.Reset(nil)
	if cap(s.line) > maxPooledSSE || cap(s.data) > maxPooledSSE || cap(s.name) > maxPooledSSE {
		return
	}
	s.name, s.data, s.line = s.name[:0], s.data[:0], s.line[:0]
	s.hasData, s.pendingR = false, false
	sseReaders.Put(s)
}

// MaxSSEEvent bounds one event of a stream: its data lines together, and so
// any one line. Beyond it Next returns ErrEventTooLarge: an upstream cannot
// make the gateway hold an unbounded event in memory.
const MaxSSEEvent = 8 << 20

// ErrEventTooLarge is returned by Next for an event (or a line) longer than
// MaxSSEEvent.
var ErrEventTooLarge = errors.New("event stream event larger than 8 MiB")

// Buffered reports how many bytes are read but not yet consumed, so a
// relay can batch its flushes when events arrive together.
func (s *SSEReader) Buffered() int { return s.r.Buffered() }

// readLine returns the next line without its terminator.
func (s *SSEReader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			if len(s.line) > 0 && errors.Is(err, io.EOF) {
				return s.line, nil
			}
			return nil, err
		}
		if s.pendingR {
			s.pendingR = false
			if b == '\n' {
				continue
			}
		}
		switch b {
		case '\n':
			return s.line, nil
		case '\r':
			s.pendingR = true
			return s.line, nil
		}
		// Copy the rest of the line in bulk from the buffer.
		s.line = append(s.line, b)
		for {
			buf, _ := s.r.Peek(s.r.Buffered())
			i := lineEnd(buf)
			if i < 0 {
				s.line = append(s.line, buf...)
				s.r.Discard(len(buf))
				if len(s.line) > MaxSSEEvent {
					return nil, ErrEventTooLarge
				}
				if _, err := s.r.Peek(1); err != nil {
					if errors.Is(err, io.EOF) {
						return s.line, nil
					}
					return nil, err
				}
				continue
			}
			s.line = append(s.line, buf[:i]...)
			s.r.Discard(i + 1)
			if buf[i] == '\r' {
				s.pendingR = true
			}
			if len(s.line) > MaxSSEEvent {
				return nil, ErrEventTooLarge
			}
			return s.line, nil
		}
	}
}

// lineEnd is bytes.IndexAny(buf, "\r\n") in two vectorised scans (IndexAny
// tests byte by byte): the first LF, or a CR before it.
func lineEnd(buf []byte) int {
	i := bytes.IndexByte(buf, '\n')
	before := buf
	if i >= 0 {
		before = buf[:i]
	}
	if j := bytes.IndexByte(before, '\r'); j >= 0 {
		return j
	}
	return i
}

// Next returns the next event with data, skipping comments and empty
// events. At the end of the stream it returns io.EOF; an event that was not
// closed by a blank line before the end is still returned first.
func (s *SSEReader) Next() (Event, error) {
	s.name, s.data, s.hasData = s.name[:0], s.data[:0], false
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && s.hasData {
				return Event{Name: s.name, Data: s.data}, nil
			}
			return Event{}, err
		}
		if len(line) == 0 {
			if s.hasData {
				return Event{Name: s.name, Data: s.data}, nil
			}
			s.name = s.name[:0]
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if len(s.data)+1+len(value) > MaxSSEEvent {
				return Event{}, ErrEventTooLarge
			}
			if s.hasData {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			s.hasData = true
		case "event":
			s.name = append(s.name[:0], value...)
		}
	}
}
