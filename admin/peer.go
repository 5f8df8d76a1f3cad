package admin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// The fleet's peer routes. In fleet mode every member answers the other
// members' reads of its request log and usage (FleetLogs, FleetUsage) on a
// listener of its own (peer_listen), never on Caddy's admin endpoint, which
// can stay on localhost:
//
//	POST /agent_router/fleet/local/logs   a store.LogFilter → {"records", "next"}
//	POST /agent_router/fleet/local/usage  {"queries": [store.UsageQuery...]} → {"results": [...]}
//
// Every request is signed, and every answer too, with a key derived from
// the fleet's shared master key (store.PeerKey; HKDF, one purpose): an
// HMAC-SHA256 over the method, path, a timestamp and the body's hash, sent
// as
//
//	X-Agent-Router-Peer-Time: <unix seconds>
//	Authorization: AgentRouter-Peer <key id>=<mac>[,<key id>=<mac>...]
//
// one MAC per master key the sender knows (during a master-key rotation
// members hold different current keys); the receiver accepts a MAC under
// any key it knows, within peerClockSkew of its clock, and answers with
// X-Agent-Router-Peer-Signature: <key id>=<mac> over the request's MAC and
// the answer's hash. Anything else is 401, and the member that asked
// reports the other as not answering.

const (
	peerPrefix       = Prefix + "fleet/local/"
	headerPeerTime   = "X-Agent-Router-Peer-Time"
	headerPeerAnswer = "X-Agent-Router-Peer-Signature"
	peerScheme       = "AgentRouter-Peer "
	// peerClockSkew is how far a request's timestamp may be from the
	// receiver's clock.
	peerClockSkew = 30 * time.Second
	// maxPeerRequest bounds a peer request's body.
	maxPeerRequest = 64 << 10
	// maxUsageQueries bounds the queries of one usage request.
	maxUsageQueries = 8
)

// peerTime is the clock signatures are made and checked with.
var peerTime = time.Now

func peerRequestMAC(key []byte, method, path, ts string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "agent_router peer request v1\n%s\n%s\n%s\n%x", method, path, ts, sum)
	return m.Sum(nil)
}

func peerAnswerMAC(key, requestMAC, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "agent_router peer answer v1\n%x\n%x", requestMAC, sum)
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// signPeerRequest signs req (whose body is body) with every key; it
// returns the MAC made with each key id, to check the answer with.
func signPeerRequest(req *http.Request, body []byte, keys []store.PeerKey) map[string][]byte {
	ts := strconv.FormatInt(peerTime().Unix(), 10)
	macs := make(map[string][]byte, len(keys))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, dup := macs[k.ID]; dup {
			continue
		}
		mac := peerRequestMAC(k.Key, req.Method, req.URL.Path, ts, body)
		macs[k.ID] = mac
		parts = append(parts, k.ID+"="+b64.EncodeToString(mac))
	}
	req.Header.Set(headerPeerTime, ts)
	req.Header.Set("Authorization", peerScheme+strings.Join(parts, ","))
	return macs
}

// errPeerAuth is a request without a valid signature.
var errPeerAuth = errors.New("not signed by a member of this fleet")

// verifyPeerRequest checks r's signature and returns the key that made it
// and its MAC.
func verifyPeerRequest(r *http.Request, body []byte, keys []store.PeerKey) (store.PeerKey, []byte, error) {
	ts := r.Header.Get(headerPeerTime)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return store.PeerKey{}, nil, fmt.Errorf("%w: no %s", errPeerAuth, headerPeerTime)
	}
	if d := peerTime().Sub(time.Unix(sec, 0)); d > peerClockSkew || d < -peerClockSkew {
		return store.PeerKey{}, nil, fmt.Errorf("%w: its timestamp is %v off this member's clock", errPeerAuth, d.Round(time.Second))
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), peerScheme)
	if !ok {
		return store.PeerKey{}, nil, fmt.Errorf("%w: no %s signature", errPeerAuth, strings.TrimSpace(peerScheme))
	}
	pairs := strings.Split(auth, ",")
	if len(pairs) > 8 {
		return store.PeerKey{}, nil, fmt.Errorf("%w: too many signatures", errPeerAuth)
	}
	for _, p := range pairs {
		id, enc, _ := strings.Cut(strings.TrimSpace(p), "=")
		mac, err := b64.DecodeString(enc)
		if err != nil {
			continue
		}
		for _, k := range keys {
			if k.ID == id && hmac.Equal(mac, peerRequestMAC(k.Key, r.Method, r.URL.Path, ts, body)) {
				return k, mac, nil
			}
		}
	}
	return store.PeerKey{}, nil, fmt.Errorf("%w: no signature under a master key this member knows", errPeerAuth)
}

// checkPeerAnswer checks an answer's signature against the request's MACs.
func checkPeerAnswer(resp *http.Response, body []byte, keys []store.PeerKey, macs map[string][]byte) error {
	id, enc, _ := strings.Cut(resp.Header.Get(headerPeerAnswer), "=")
	mac, err := b64.DecodeString(enc)
	if err != nil || macs[id] == nil {
		return errors.New("its answer is not signed by a member of this fleet")
	}
	for _, k := range keys {
		if k.ID == id && hmac.Equal(mac, peerAnswerMAC(k.Key, macs[id], body)) {
			return nil
		}
	}
	return errors.New("its answer's signature does not match")
}

// PeerHandler serves the other members' reads of this instance's request
// log and usage (the routes above), on the listener caddymodule opens at
// peer_listen. It refuses (401) any request not signed with a key of this
// fleet.
type PeerHandler struct {
	// Store returns the open store, or nil when none is.
	Store func() *store.Store
	// Refused, when set, is told about each refused request (for the
	// log): the remote address and why.
	Refused func(remote, why string)
}

type usageBatch struct {
	Queries []store.UsageQuery `json:"queries"`
}

type usageAnswers struct {
	Results []store.UsageResult `json:"results"`
}

// ServeHTTP answers one peer request.
func (h *PeerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		b, _ := json.Marshal(map[string]string{"error": msg})
		w.Write(append(b, '\n'))
	}
	s := h.Store()
	if s == nil {
		fail(http.StatusServiceUnavailable, "agent_router is not running")
		return
	}
	route, ok := strings.CutPrefix(r.URL.Path, peerPrefix)
	if !ok || route != "logs" && route != "usage" {
		fail(http.StatusNotFound, "no such route")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fail(http.StatusMethodNotAllowed, "use POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPeerRequest))
	if err != nil {
		fail(http.StatusRequestEntityTooLarge, "request body too large")
		return
	}
	key, mac, err := verifyPeerRequest(r, body, s.PeerKeys())
	if err != nil {
		if h.Refused != nil {
			h.Refused(r.RemoteAddr, err.Error())
		}
		fail(http.StatusUnauthorized, err.Error())
		return
	}
	var out any
	switch route {
	case "logs":
		var f store.LogFilter
		if err := strictJSON(body, &f); err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		if f.Limit <= 0 || f.Limit > maxPeerLogs {
			f.Limit = 100
		}
		recs, next, err := s.Logs(f)
		if err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		out = localLogs{recs, next}
	case "usage":
		var in usageBatch
		if err := strictJSON(body, &in); err != nil {
			fail(http.StatusBadRequest, err.Error())
			return
		}
		if len(in.Queries) == 0 || len(in.Queries) > maxUsageQueries {
			fail(http.StatusBadRequest, fmt.Sprintf("send 1 to %d queries", maxUsageQueries))
			return
		}
		res := usageAnswers{Results: make([]store.UsageResult, len(in.Queries))}
		for i, q := range in.Queries {
			if res.Results[i], err = s.Usage(q); err != nil {
				fail(http.StatusBadRequest, err.Error())
				return
			}
		}
		out = res
	}
	b, err := json.Marshal(out)
	if err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(headerPeerAnswer, key.ID+"="+b64.EncodeToString(peerAnswerMAC(key.Key, mac, b)))
	w.Write(b)
}

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
