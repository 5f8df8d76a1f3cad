package peer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// Handler serves the other members' reads of this instance's request log
// and usage (the routes in the package doc), on the listener caddymodule
// opens at peer_listen. It refuses (401) any request not signed with a key
// of this fleet, and signs every answer.
type Handler struct {
	// Store returns the open store, or nil when none is.
	Store func() *store.Store
	// Refused, when set, is told about each refused request (for the
	// log): the remote address and why.
	Refused func(remote, why string)
}

// ServeHTTP answers one peer request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.Store()
	if s == nil {
		fail(w, http.StatusServiceUnavailable, "agent_router is not running")
		return
	}
	route, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok || route != "logs" && route != "usage" && route != "credential_usage" {
		fail(w, http.StatusNotFound, "no such route")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fail(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
	if err != nil {
		fail(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	key, mac, err := verifyRequest(r, body, s.PeerKeys())
	if err != nil {
		if h.Refused != nil {
			h.Refused(r.RemoteAddr, err.Error())
		}
		fail(w, http.StatusUnauthorized, err.Error())
		return
	}
	out, err := answer(s, route, body)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		fail(w, http.StatusInternalServerError, err.Error())
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(headerAnswer, key.ID+"="+b64.EncodeToString(answerMAC(key.Key, mac, b)))
	w.Write(b)
}

// answer reads this instance's own log or usage for a verified request.
func answer(s *store.Store, route string, body []byte) (any, error) {
	switch route {
	case "credential_usage":
		return answerCredentialUsage(s, body)
	case "logs":
		var f store.LogFilter
		if err := strictJSON(body, &f); err != nil {
			return nil, err
		}
		if f.Limit <= 0 || f.Limit > MaxLogs {
			f.Limit = 100
		}
		recs, next, err := s.Logs(f)
		if err != nil {
			return nil, err
		}
		return LogPage{recs, next}, nil
	default: // usage
		var in usageBatch
		if err := strictJSON(body, &in); err != nil {
			return nil, err
		}
		if len(in.Queries) == 0 || len(in.Queries) > MaxUsageQueries {
			return nil, fmt.Errorf("send 1 to %d queries", MaxUsageQueries)
		}
		res := usageAnswers{Results: make([]store.UsageResult, len(in.Queries))}
		for i, q := range in.Queries {
			var err error
			if res.Results[i], err = s.Usage(q); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(append(b, '\n'))
}

var errTrailing = errors.New("unexpected data after the JSON object")

// strictJSON decodes one JSON object with no unknown members.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid request: %v", err)
	}
	if dec.More() {
		return errTrailing
	}
	return nil
}
