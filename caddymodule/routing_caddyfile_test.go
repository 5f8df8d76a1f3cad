package caddymodule

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/agentrouter/caddy-agentrouter/routing"
)

func TestRoutingCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`agent_router {
		provider openai {
			model house gpt-4o
		}
		alias fast anthropic/claude-haiku-4-5
		alias cheap house
		route smart {
			to gpt-4o byok
			to gpt-4o platform
			retry_on rate_limit server
			max_attempts 2
			timeout 30s
		}
		route shared {
			strategy split
			to gpt-4o-mini byok weight 70
			to gpt-4o-mini platform weight 30.5
			to fast
		}
		default_max_tokens 1024
		byok_cooldown 2m
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.Aliases, map[string]string{"fast": "anthropic/claude-haiku-4-5", "cheap": "house"}) {
		t.Errorf("aliases = %v", h.Aliases)
	}
	want := map[string]*RouteConfig{
		"smart": {Targets: []routing.Target{{Model: "gpt-4o", Credential: "byok"}, {Model: "gpt-4o", Credential: "platform"}},
			RetryOn: []string{"rate_limit", "server"}, MaxAttempts: 2, Timeout: caddy.Duration(30 * time.Second)},
		"shared": {Strategy: "split", Targets: []routing.Target{{Model: "gpt-4o-mini", Credential: "byok", Weight: 70},
			{Model: "gpt-4o-mini", Credential: "platform", Weight: 30.5}, {Model: "fast"}}},
	}
	if !reflect.DeepEqual(h.Routes, want) {
		t.Errorf("routes = %+v", h.Routes)
	}
	if h.DefaultMaxTokens != 1024 || h.BYOKCooldown != caddy.Duration(2*time.Minute) {
		t.Errorf("default_max_tokens %d, byok_cooldown %v", h.DefaultMaxTokens, h.BYOKCooldown)
	}
}

func TestRoutingCaddyfileErrors(t *testing.T) {
	cases := []struct {
		name, input, msg string
		line             int
	}{
		{"unknown provider", "agent_router {\n\troute r {\n\t\tto openia/gpt-4o\n\t}\n}", `unknown provider "openia"`, 2},
		{"unknown model", "agent_router {\n\talias a nonesuch-model\n}", `no provider serves model "nonesuch-model"`, 2},
		{"empty route", "agent_router {\n\troute r {\n\t}\n}", "has no targets", 3},
		{"alias cycle", "agent_router {\n\talias a b\n\talias b a\n}", "alias cycle", 0},
		{"route cycle", "agent_router {\n\troute r {\n\t\tto s\n\t}\n\troute s {\n\t\tto r\n\t}\n}", "route cycle", 0},
		{"negative weight", "agent_router {\n\troute r {\n\t\tstrategy split\n\t\tto gpt-4o weight -3\n\t}\n}", "negative weight", 4},
		{"bad pin", "agent_router {\n\troute r {\n\t\tto gpt-4o mine\n\t}\n}", `unexpected "mine"`, 3},
		{"bad class", "agent_router {\n\troute r {\n\t\tto gpt-4o\n\t\tretry_on teapot\n\t}\n}", `unknown error class "teapot"`, 2},
		{"split without weights", "agent_router {\n\troute r {\n\t\tstrategy split\n\t\tto gpt-4o\n\t}\n}", "positive weight", 2},
		{"defined twice", "agent_router {\n\talias a gpt-4o\n\troute a {\n\t\tto gpt-4o\n\t}\n}", "already defined", 3},
		{"bad strategy", "agent_router {\n\troute r {\n\t\tstrategy random\n\t}\n}", `unknown strategy "random"`, 3},
	}
	for _, c := range cases {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.msg)
			continue
		}
		if c.line > 0 && !strings.Contains(err.Error(), ":"+strconv.Itoa(c.line)) {
			t.Errorf("%s: %q does not name line %d", c.name, err, c.line)
		}
		if c.line == 0 && !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%s: %q names no line", c.name, err)
		}
	}
}

func TestUsageGlobalOptions(t *testing.T) {
	var a App
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("agent_router {\n\tusage_flush_interval 30s\n\tusage_retention 720h\n}")); err != nil {
		t.Fatal(err)
	}
	if a.UsageFlushInterval != caddy.Duration(30*time.Second) || a.UsageRetention != caddy.Duration(720*time.Hour) {
		t.Errorf("got %v %v", a.UsageFlushInterval, a.UsageRetention)
	}
	var b App
	if err := b.UnmarshalCaddyfile(caddyfile.NewTestDispenser("agent_router {\n\tusage_retention forever\n}")); err == nil || !strings.Contains(err.Error(), "usage_retention") {
		t.Errorf("bad duration: %v", err)
	}
}
