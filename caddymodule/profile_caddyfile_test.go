package caddymodule

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/agentrouter/caddy-agentrouter/routing"
)

func TestProfileCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`agent_router {
		provider openai {
			model house gpt-4o
		}
		alias fast gpt-4o-mini
		route smart {
			to gpt-4o
		}
		profile team {
			alias fast anthropic/claude-haiku-4-5
			alias cheap house
			route smart {
				to fast byok
				to smart-site platform
				retry_on server
			}
		}
		profile empty {
		}
		alias smart-site gpt-4o
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := map[string]*ProfileConfig{
		"team": {
			Aliases: map[string]string{"fast": "anthropic/claude-haiku-4-5", "cheap": "house"},
			Routes: map[string]*RouteConfig{"smart": {Targets: []routing.Target{{Model: "fast", Credential: "byok"}, {Model: "smart-site", Credential: "platform"}},
				RetryOn: []string{"server"}}},
		},
		"empty": {},
	}
	if !reflect.DeepEqual(h.Profiles, want) {
		t.Errorf("profiles = %+v", h.Profiles)
	}
	if h.Aliases["fast"] != "gpt-4o-mini" || h.Routes["smart"] == nil {
		t.Errorf("the handler's own routing changed: %v %v", h.Aliases, h.Routes)
	}

	// The JSON twin: "profiles": {"team": {"aliases": ..., "routes": ...}}.
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var back Handler
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Profiles, want) {
		t.Errorf("JSON round trip: %s", b)
	}
	var raw struct {
		Profiles map[string]map[string]json.RawMessage `json:"profiles"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw.Profiles["team"]["aliases"]) != `{"cheap":"house","fast":"anthropic/claude-haiku-4-5"}` {
		t.Errorf("JSON shape: %s", b)
	}
}

func TestProfileCaddyfileErrors(t *testing.T) {
	cases := []struct {
		name, input, msg string
		line             int
	}{
		{"no name", "agent_router {\n\tprofile {\n\t}\n}", "want 'profile <name>", 2},
		{"bad name", "agent_router {\n\tprofile a/b {\n\t}\n}", `profile "a/b"`, 2},
		{"twice", "agent_router {\n\tprofile p {\n\t}\n\tprofile p {\n\t}\n}", "defined twice", 4},
		{"unknown option", "agent_router {\n\tprofile p {\n\t\tprovider openai\n\t}\n}", "use alias or route", 3},
		{"unknown model", "agent_router {\n\tprofile p {\n\t\talias x nonesuch-model\n\t}\n}", `profile p: alias "x": no provider serves model "nonesuch-model"`, 3},
		{"dup in profile", "agent_router {\n\tprofile p {\n\t\talias x gpt-4o\n\t\talias x gpt-4o-mini\n\t}\n}", "already defined", 4},
		{"cycle through the site", "agent_router {\n\talias a c\n\talias c gpt-4o\n\tprofile p {\n\t\talias c a\n\t}\n}", "alias cycle", 0},
		{"empty route", "agent_router {\n\tprofile p {\n\t\troute r {\n\t\t}\n\t}\n}", "has no targets", 4},
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
	}
}
