package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// The fake upstream is an OpenAI-shaped /v1/chat/completions that answers
// with the fingerprint of the key it received as the message's content, so
// the program sees which BYOK key served each request (the key itself
// never travels back).

// fp is the fingerprint the fake echoes for a provider key.
func fp(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:8])
}

type echo struct{}

func (echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body) // read the body first (performance.md's pitfall)
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"chatcmpl-scale","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini",`+
		`"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],`+
		`"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}`, fp(key))
}

// startFake serves the fake on a free loopback port and returns its URL.
func startFake() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go (&http.Server{Handler: echo{}}).Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

var chatBody = []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)

// ask sends one chat completion with apiKey to a site and returns the
// fingerprint of the provider key that served it.
func ask(site, apiKey string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+site+"/v1/chat/completions", bytes.NewReader(chatBody))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := dataClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%d %s", resp.StatusCode, clip(b))
	}
	return gjson.GetBytes(b, "choices.0.message.content").String(), nil
}

func readAll(r io.Reader) ([]byte, error) { return io.ReadAll(io.LimitReader(r, 64<<20)) }

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
