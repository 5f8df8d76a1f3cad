package providers

import "github.com/tidwall/gjson"

// A translated front door's stream. The provider's translator hands each
// chunk of its answer to the door as a value: the translating adapters
// through appendChunk, an OpenAI-shaped host's own chunks through
// decodeChunk, the one decoder of chat chunks. The door's events render
// them in the door's dialect, so no chat-completions chunk is written only
// to be parsed again.

// A chunkSink takes a translated stream's chunks as values (Call.sink).
type chunkSink interface {
	// chunk appends what the client receives for one chunk of the answer:
	// the model that wrote it ("" when not given), a choice's delta and
	// its finish reason ("" none yet).
	chunk(dst []byte, model string, d *ChunkDelta, finish string) []byte
}

// doorEvents renders a translated answer in a door's event dialect.
type doorEvents interface {
	chunkSink
	// end appends the events that close a complete answer, whose usage
	// is u.
	end(dst []byte, u Usage) []byte
	// errorEvent appends the events that end a failed stream.
	errorEvent(dst []byte, code, msg string) []byte
}

// doorStream is a translated door's StreamTranslator: the provider's
// translator (inner) reads the upstream events and writes its chunks into
// the door's events; End closes the answer in the door's dialect once the
// upstream stream is complete. Nothing follows the end.
type doorStream struct {
	inner  StreamTranslator
	events doorEvents
	ended  bool
}

// newDoorStream makes c's stream through a door: the call's chunks go to
// events, and inner (the provider's translator, made for c) feeds them.
func newDoorStream(c *Call, events doorEvents, inner func(*Call) StreamTranslator) *doorStream {
	s := &doorStream{events: events}
	c.sink = s
	s.inner = inner(c)
	return s
}

func (s *doorStream) chunk(dst []byte, model string, d *ChunkDelta, finish string) []byte {
	if s.ended {
		return dst
	}
	return s.events.chunk(dst, model, d, finish)
}

func (s *doorStream) Event(dst []byte, ev Event) ([]byte, error) { return s.inner.Event(dst, ev) }

func (s *doorStream) End(dst []byte) ([]byte, error) {
	dst, err := s.inner.End(dst)
	if err != nil || s.ended {
		return dst, err
	}
	s.ended = true
	return s.events.end(dst, s.inner.Usage()), nil
}

func (s *doorStream) Usage() Usage { return s.inner.Usage() }

// KeepaliveEvent implements Keepaliver: the provider's model may think for
// long before its first token.
func (s *doorStream) KeepaliveEvent() []byte { return keepaliveComment }

// ErrorEvent implements ErrorEventer.
func (s *doorStream) ErrorEvent(dst []byte, code, msg string) []byte {
	return s.events.errorEvent(dst, code, msg)
}

// decodeChunk reads what a door renders from an OpenAI chat.completion.chunk
// (d, the event's data): the model, the first choice's text and tool calls,
// and its finish reason. Text and finish reason count only as strings; a
// tool call's index, id and name are read leniently, its arguments only as
// a string.
func decodeChunk(d []byte) (model string, delta ChunkDelta, finish string) {
	res := gjson.GetManyBytes(d, "model", "choices.0.delta.content", "choices.0.delta.tool_calls", "choices.0.finish_reason")
	model = res[0].Str
	if res[1].Type == gjson.String {
		delta.Content = &res[1].Str
	}
	for _, tc := range res[2].Array() { // a lone object counts as one call
		i := int(tc.Get("index").Int())
		delta.ToolCalls = append(delta.ToolCalls, ToolCall{Index: &i, ID: tc.Get("id").String(),
			Function: FunctionCall{Name: tc.Get("function.name").String(), Arguments: tc.Get("function.arguments").Str}})
	}
	if res[3].Type == gjson.String {
		finish = res[3].Str
	}
	return model, delta, finish
}
