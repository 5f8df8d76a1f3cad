package providers

import (
	"bytes"
	"encoding/json"

	"github.com/tidwall/gjson"
)

// Small edits of a JSON object's top-level members, in place of decoding and
// re-encoding the client's body: the bytes that are not edited go upstream
// exactly as the client sent them.

// member locates a top-level member: the start of its key and the end of its
// value. ok is false when body is not an object or has no such member.
func member(body []byte, key string) (start, end int, value gjson.Result, ok bool) {
	// Offsets into invalid JSON mean nothing: edit valid objects only.
	root := gjson.ParseBytes(body)
	if !root.IsObject() || !ValidJSON(body) {
		return 0, 0, gjson.Result{}, false
	}
	root.ForEach(func(k, v gjson.Result) bool {
		if k.Str == key {
			start, end, value, ok = k.Index, v.Index+len(v.Raw), v, true
			return false
		}
		return true
	})
	if ok && (start <= 0 || end > len(body) || end <= start) {
		ok = false
	}
	return
}

// repeated reports whether the object body may have key more than once
// (JSON allows it; decoders take the last, gjson the first). Two byte scans
// clear almost every body: a second member needs a second literal "key" or
// a \u escape.
func repeated(body []byte, key string) bool {
	if bytes.Count(body, []byte(`"`+key+`"`)) < 2 && !bytes.Contains(body, []byte(`\u`)) {
		return false
	}
	n := 0
	gjson.ParseBytes(body).ForEach(func(k, _ gjson.Result) bool {
		if k.Str == key {
			n++
		}
		return n < 2
	})
	return n > 1
}

// dedupe removes all but one member named key, so that an edit of it is
// what every decoder reads (a client must not keep the provider reading a
// stream_options the gateway did not set).
func dedupe(body []byte, key string) []byte {
	for repeated(body, key) {
		next := deleteFirst(body, key)
		if len(next) == len(body) {
			break
		}
		body = next
	}
	return body
}

// SetField sets the top-level member key to the raw JSON value raw,
// replacing it (every copy of it) or inserting it first. body must be a
// JSON object.
func SetField(body []byte, key string, raw []byte) []byte {
	if !ValidJSON(body) {
		return body
	}
	body = dedupe(body, key)
	if _, _, v, ok := member(body, key); ok && v.Index > 0 {
		out := make([]byte, 0, len(body)-len(v.Raw)+len(raw))
		out = append(out, body[:v.Index]...)
		out = append(out, raw...)
		return append(out, body[v.Index+len(v.Raw):]...)
	}
	open := -1
	for i, c := range body {
		if c == '{' {
			open = i
			break
		}
	}
	if open < 0 {
		return body
	}
	k, _ := json.Marshal(key)
	out := make([]byte, 0, len(body)+len(k)+len(raw)+2)
	out = append(out, body[:open+1]...)
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, raw...)
	if j := open + 1 + firstNonSpace(body[open+1:]); j < len(body) && body[j] != '}' {
		out = append(out, ',') // the object has members: separate the new one
	}
	return append(out, body[open+1:]...)
}

// DeleteField removes the top-level member key (every copy of it), with
// its separating comma.
func DeleteField(body []byte, key string) []byte {
	return deleteFirst(dedupe(body, key), key)
}

// deleteFirst removes the first top-level member named key.
func deleteFirst(body []byte, key string) []byte {
	start, end, _, ok := member(body, key)
	if !ok {
		return body
	}
	// Take the comma after the member, or else the one before it.
	j := end
	for j < len(body) && isSpace(body[j]) {
		j++
	}
	if j < len(body) && body[j] == ',' {
		end = j + 1
	} else {
		i := start - 1
		for i >= 0 && isSpace(body[i]) {
			i--
		}
		if i >= 0 && body[i] == ',' {
			start = i
		}
	}
	out := make([]byte, 0, len(body)-(end-start))
	out = append(out, body[:start]...)
	return append(out, body[end:]...)
}

// RenameField moves the top-level member from to the name to, unless to is
// already present (then from is dropped).
func RenameField(body []byte, from, to string) []byte {
	_, _, v, ok := member(body, from)
	if !ok {
		return body
	}
	raw := []byte(v.Raw)
	body = DeleteField(body, from)
	if _, _, _, exists := member(body, to); exists {
		return body
	}
	return SetField(body, to, raw)
}

// firstNonSpace is the index of the first byte of b that is not JSON
// whitespace (len(b) if none).
func firstNonSpace(b []byte) int {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SetModel returns body with its top-level "model" string set to model. The
// body is returned as it is (not copied) when it already names model, so the
// common path costs nothing; otherwise only the model's bytes are replaced.
// A body without a top-level model string is returned unchanged (the gateway
// rejects those before it gets here).
func SetModel(body []byte, model string) []byte {
	r := gjson.GetBytes(body, "model")
	if r.Type != gjson.String || r.Str == model || r.Index <= 0 {
		return body
	}
	q, _ := json.Marshal(model)
	out := make([]byte, 0, len(body)-len(r.Raw)+len(q))
	out = append(out, body[:r.Index]...)
	out = append(out, q...)
	return append(out, body[r.Index+len(r.Raw):]...)
}
