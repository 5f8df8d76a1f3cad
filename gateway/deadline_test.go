package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/agentrouter/caddy-agentrouter/routing"
)

// TestRouteTimeout: a route's timeout bounds the wait for an answer across
// its attempts, but never cuts a stream that has begun.
func TestRouteTimeout(t *testing.T) {
	e := newEnv(t, options{routing: routing.Config{Routes: map[string]*routing.Route{
		"quick": {Targets: []routing.Target{{Model: "gpt-4o"}, {Model: "gpt-4o-mini"}}, Timeout: 300 * time.Millisecond},
	}}})
	keys, _ := e.account(t, "acme", 1)
	e.openai.SetResponder(func(rec providertest.Record) providertest.Response {
		if rec.Stream {
			// Ten events 100 ms apart: the stream outlives the timeout.
			pieces := strings.Split("a b c d e f g h i j", " ")
			return providertest.Response{Events: providertest.StreamEvents(rec.Model, pieces), EventDelay: 100 * time.Millisecond}
		}
		return providertest.Response{Delay: 3 * time.Second, Body: providertest.ChatCompletion(rec.Model, "late")}
	})
	defer e.openai.SetResponder(nil)

	start := time.Now()
	r := e.chat(t, keys[0], "quick")
	if r.status != 504 || !strings.Contains(string(r.body), gateway.CodeUpstreamTimeout) {
		t.Fatalf("a slow provider under a 300 ms route timeout: %d %s", r.status, r.body)
	}
	if took := time.Since(start); took > 2500*time.Millisecond {
		t.Errorf("the route timeout did not cut the wait (took %v)", took)
	}

	r = e.post(t, "/v1/chat/completions", keys[0], `{"model":"quick","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	if r.status != 200 || !strings.Contains(string(r.body), `"j"`) || !strings.HasSuffix(strings.TrimSpace(string(r.body)), "data: [DONE]") {
		t.Fatalf("a stream longer than the route timeout was cut: %d %s", r.status, r.body)
	}
}
