package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

func decode(r *http.Request, v any) error { return decodeBody(r, v, false) }

// decodeBody decodes one JSON object; with optional, an empty body leaves v
// as it is.
func decodeBody(r *http.Request, v any, optional bool) error {
	return decodeMax(r, v, optional, maxBody)
}

// decodeMax is decodeBody for a body of at most limit bytes.
func decodeMax(r *http.Request, v any, optional bool, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		// One JSON object, nothing after it but whitespace.
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = terr
			if err == nil {
				err = errTrailing
			}
		}
	}
	if err != nil {
		var me *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF) && optional:
			return nil
		case errors.Is(err, io.EOF):
			return errorf(http.StatusBadRequest, "request body is empty; send a JSON object")
		case errors.As(err, &me):
			return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d KiB", limit>>10)
		}
		// json errors quote field names and types, never values.
		return errorf(http.StatusBadRequest, "invalid JSON body: %v", jsonErr(err))
	}
	return nil
}

var errTrailing = errors.New("unexpected data after the JSON object")

// jsonErr keeps decoder messages free of the values the client sent (a
// syntax error can otherwise quote part of a key).
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te) && te.Field == "":
		return "the body must be a JSON object"
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be %s", te.Field, te.Type)
	case errors.Is(err, errTrailing):
		return err.Error()
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "malformed JSON"
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- query parameters ---

// pageParams reads a list's paging parameters: limit (1 to
// ops.MaxPageSize, default ops.DefaultPageSize) and cursor (the
// next_cursor of the page before). paged reports whether either was given:
// only then is the answer a page ({"items": [...], "next_cursor": "..."});
// without them it is the whole list as a bare array, as it was before the
// lists paged, so existing clients keep working.
func pageParams(q url.Values) (p ops.Page, paged bool, err error) {
	if !q.Has("limit") && !q.Has("cursor") {
		return ops.Page{}, false, nil
	}
	msg := fmt.Sprintf("limit must be a number from 1 to %d", ops.MaxPageSize)
	if p.Limit, err = intParam(q, "limit", 1, msg); err != nil {
		return p, true, err
	}
	if p.Limit == 0 {
		p.Limit = ops.DefaultPageSize
	}
	p.Cursor = q.Get("cursor")
	return p, true, nil
}

// listRoute serves a list route: the page pageParams asks for, from list.
func listRoute[T any](w http.ResponseWriter, r *http.Request, list func(ops.Page) (ops.List[T], error)) error {
	p, paged, err := pageParams(r.URL.Query())
	if err != nil {
		return err
	}
	l, err := list(p)
	if err != nil {
		return err
	}
	if !paged {
		return writeJSON(w, http.StatusOK, l.Items)
	}
	return writeJSON(w, http.StatusOK, l)
}

// intParam reads the query parameter name as a number from lo up; msg is
// the error for anything else. Missing, it is 0.
func intParam(q url.Values, name string, lo int, msg string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo {
		return 0, errorf(http.StatusBadRequest, "%s", msg)
	}
	return n, nil
}

// timeRange reads the from and to query parameters: RFC 3339 timestamps,
// or dates (UTC midnight). Either may be missing (zero).
func timeRange(q url.Values) (from, to time.Time, err error) {
	if from, err = parseTime(q, "from"); err == nil {
		to, err = parseTime(q, "to")
	}
	return from, to, err
}

func parseTime(q url.Values, name string) (time.Time, error) {
	v := strings.TrimSpace(q.Get(name))
	if v == "" {
		return time.Time{}, nil
	}
	// An unescaped "+" of a UTC offset arrives as a space.
	v = strings.ReplaceAll(v, " ", "+")
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, errorf(http.StatusBadRequest, "%s must be an RFC 3339 timestamp (2026-01-02T15:04:05Z) or a date (2026-01-02)", name)
}
