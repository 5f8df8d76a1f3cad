// Package peer is the fleet's peer protocol: in fleet mode each instance
// keeps its own request log and usage rollups, and the members read each
// other's over signed HTTP on a listener of their own (peer_listen), never
// on Caddy's admin endpoint, which can stay on localhost:
//
//	POST /agent_router/fleet/local/logs   a store.LogFilter → {"records", "next"}
//	POST /agent_router/fleet/local/usage  {"queries": [store.UsageQuery...]} → {"results": [...]}
//	POST /agent_router/fleet/local/credential_usage  a store.CredentialUsageQuery → {"rows": [...]}
//
// Handler answers those routes; Logs, Usage and CredentialUsage ask one member and check its
// answer before anyone uses it. Merging the members' answers (a fleet-wide
// log page, usage sums) is the operations' job (package ops).
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
// any key it knows, within clockSkew of its clock, and answers with
// X-Agent-Router-Peer-Signature: <key id>=<mac> over the request's MAC and
// the answer's hash. Anything else is 401, and the member that asked
// reports the other as not answering.
//
// It does not import Caddy.
package peer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

const (
	// Prefix is where the peer routes live on the peer listener.
	Prefix       = "/agent_router/fleet/local/"
	headerTime   = "X-Agent-Router-Peer-Time"
	headerAnswer = "X-Agent-Router-Peer-Signature"
	scheme       = "AgentRouter-Peer "
	// clockSkew is how far a request's timestamp may be from the
	// receiver's clock.
	clockSkew = 30 * time.Second
	// maxRequest bounds a peer request's body.
	maxRequest = 64 << 10
)

// clock is what signatures are made and checked with.
var clock = time.Now

func requestMAC(key []byte, method, path, ts string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "agent_router peer request v1\n%s\n%s\n%s\n%x", method, path, ts, sum)
	return m.Sum(nil)
}

func answerMAC(key, requestMAC, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "agent_router peer answer v1\n%x\n%x", requestMAC, sum)
	return m.Sum(nil)
}

var b64 = base64.RawURLEncoding

// signRequest signs req (whose body is body) with every key; it returns
// the MAC made with each key id, to check the answer with.
func signRequest(req *http.Request, body []byte, keys []store.PeerKey) map[string][]byte {
	ts := strconv.FormatInt(clock().Unix(), 10)
	macs := make(map[string][]byte, len(keys))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if _, dup := macs[k.ID]; dup {
			continue
		}
		mac := requestMAC(k.Key, req.Method, req.URL.Path, ts, body)
		macs[k.ID] = mac
		parts = append(parts, k.ID+"="+b64.EncodeToString(mac))
	}
	req.Header.Set(headerTime, ts)
	req.Header.Set("Authorization", scheme+strings.Join(parts, ","))
	return macs
}

// errAuth is a request without a valid signature.
var errAuth = errors.New("not signed by a member of this fleet")

// verifyRequest checks r's signature and returns the key that made it and
// its MAC.
func verifyRequest(r *http.Request, body []byte, keys []store.PeerKey) (store.PeerKey, []byte, error) {
	ts := r.Header.Get(headerTime)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return store.PeerKey{}, nil, fmt.Errorf("%w: no %s", errAuth, headerTime)
	}
	if d := clock().Sub(time.Unix(sec, 0)); d > clockSkew || d < -clockSkew {
		return store.PeerKey{}, nil, fmt.Errorf("%w: its timestamp is %v off this member's clock", errAuth, d.Round(time.Second))
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), scheme)
	if !ok {
		return store.PeerKey{}, nil, fmt.Errorf("%w: no %s signature", errAuth, strings.TrimSpace(scheme))
	}
	pairs := strings.Split(auth, ",")
	if len(pairs) > 8 {
		return store.PeerKey{}, nil, fmt.Errorf("%w: too many signatures", errAuth)
	}
	for _, p := range pairs {
		id, enc, _ := strings.Cut(strings.TrimSpace(p), "=")
		mac, err := b64.DecodeString(enc)
		if err != nil {
			continue
		}
		for _, k := range keys {
			if k.ID == id && hmac.Equal(mac, requestMAC(k.Key, r.Method, r.URL.Path, ts, body)) {
				return k, mac, nil
			}
		}
	}
	return store.PeerKey{}, nil, fmt.Errorf("%w: no signature under a master key this member knows", errAuth)
}

// checkAnswer checks an answer's signature against the request's MACs.
func checkAnswer(resp *http.Response, body []byte, keys []store.PeerKey, macs map[string][]byte) error {
	id, enc, _ := strings.Cut(resp.Header.Get(headerAnswer), "=")
	mac, err := b64.DecodeString(enc)
	if err != nil || macs[id] == nil {
		return errors.New("its answer is not signed by a member of this fleet")
	}
	for _, k := range keys {
		if k.ID == id && hmac.Equal(mac, answerMAC(k.Key, macs[id], body)) {
			return nil
		}
	}
	return errors.New("its answer's signature does not match")
}
