package caddymodule

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

func TestHandlerUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Handler
	}{
		{
			name:  "bare directive keeps every default (zero values, filled in at provision)",
			input: `agent_router`,
			want:  Handler{},
		},
		{
			name:  "empty block",
			input: "agent_router {\n}",
			want:  Handler{},
		},
		{
			name:  "console, bare",
			input: "agent_router {\n console\n}",
			want:  Handler{Console: &ConsoleConfig{}},
		},
		{
			name: "console with options",
			input: `agent_router {
				console {
					session_idle 30m
					session_max  24h
					invite_ttl   1h
				}
			}`,
			want: Handler{Console: &ConsoleConfig{SessionIdle: caddy.Duration(30 * time.Minute), SessionMax: caddy.Duration(24 * time.Hour), InviteTTL: caddy.Duration(time.Hour)}},
		},
		{
			name: "provider without a block",
			input: `agent_router {
				provider anthropic
			}`,
			want: Handler{Providers: map[string]*ProviderConfig{"anthropic": {}}},
		},
		{
			name: "env placeholder is kept verbatim",
			input: `agent_router {
				provider openai {
					api_key {env.OPENAI_API_KEY}
				}
			}`,
			want: Handler{Providers: map[string]*ProviderConfig{
				"openai": {APIKey: "{env.OPENAI_API_KEY}"},
			}},
		},
		{
			name: "every option",
			input: `agent_router {
				provider openai {
					api_key      {env.OPENAI_API_KEY}
					base_url     https://api.openai.com/v1
					organization {env.OPENAI_ORG}
					project      proj_123
					model        gpt-4o
					model        gpt-4o-mini gpt-4o-mini
					model        fast gpt-4o-mini
				}
				provider azure {
					api_key     {env.AZURE_OPENAI_API_KEY}
					base_url    https://myres.openai.azure.com
					api_version 2024-10-21
					model       gpt-4o prod-gpt4o
				}
				max_body                4MiB
				dial_timeout            3s
				response_header_timeout 2m
			}`,
			want: Handler{
				Providers: map[string]*ProviderConfig{
					"openai": {
						APIKey:       "{env.OPENAI_API_KEY}",
						BaseURL:      "https://api.openai.com/v1",
						Organization: "{env.OPENAI_ORG}",
						Project:      "proj_123",
						Models: map[string]string{
							"gpt-4o":      "",
							"gpt-4o-mini": "",
							"fast":        "gpt-4o-mini",
						},
					},
					"azure": {
						APIKey:     "{env.AZURE_OPENAI_API_KEY}",
						BaseURL:    "https://myres.openai.azure.com",
						APIVersion: "2024-10-21",
						Models:     map[string]string{"gpt-4o": "prod-gpt4o"},
					},
				},
				MaxBody:               4 << 20,
				DialTimeout:           caddy.Duration(3 * time.Second),
				ResponseHeaderTimeout: caddy.Duration(2 * time.Minute),
			},
		},
		{
			name: "quoted values",
			input: `agent_router {
				provider openai {
					api_key "{env.OPENAI_API_KEY}"
					project "my project"
				}
			}`,
			want: Handler{Providers: map[string]*ProviderConfig{
				"openai": {APIKey: "{env.OPENAI_API_KEY}", Project: "my project"},
			}},
		},
		{
			name:  "max_body in decimal kilobytes",
			input: "agent_router {\n max_body 512KB\n}",
			want:  Handler{MaxBody: 512000},
		},
		{
			name:  "max_body in plain bytes",
			input: "agent_router {\n max_body 1048576\n}",
			want:  Handler{MaxBody: 1 << 20},
		},
		{
			name:  "caddy duration with days",
			input: "agent_router {\n response_header_timeout 1d\n dial_timeout 500ms\n}",
			want: Handler{
				DialTimeout:           caddy.Duration(500 * time.Millisecond),
				ResponseHeaderTimeout: caddy.Duration(24 * time.Hour),
			},
		},
		{
			name: "every supported provider parses",
			input: "agent_router {\n" +
				func() string {
					var b strings.Builder
					for _, n := range providers.Names {
						b.WriteString("provider " + n + "\n")
					}
					return b.String()
				}() + "}",
			want: Handler{Providers: func() map[string]*ProviderConfig {
				m := make(map[string]*ProviderConfig)
				for _, n := range providers.Names {
					m[n] = &ProviderConfig{}
				}
				return m
			}()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Handler
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", mustJSON(t, got), mustJSON(t, tt.want))
			}
		})
	}
}

func TestHandlerUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		// every string must appear in the error message
		want []string
	}{
		{
			name:  "console twice",
			input: "agent_router {\n console\n console\n}",
			want:  []string{"console is configured twice"},
		},
		{
			name:  "console unknown option",
			input: "agent_router {\n console {\n sessions 1h\n }\n}",
			want:  []string{"console: unrecognized option sessions"},
		},
		{
			name:  "console bad duration",
			input: "agent_router {\n console {\n session_idle soon\n }\n}",
			want:  []string{`console session_idle: invalid duration "soon"`},
		},
		{
			name:  "argument on the directive",
			input: `agent_router extra`,
			want:  []string{"wrong argument count", "'extra'"},
		},
		{
			name: "unknown provider lists the supported ones",
			input: `agent_router {
				provider openia {
					api_key x
				}
			}`,
			want: append([]string{`unknown provider "openia"`}, providers.Names...),
		},
		{
			name: "provider given twice",
			input: `agent_router {
				provider openai {
					api_key a
				}
				provider openai {
					api_key b
				}
			}`,
			want: []string{"provider openai is configured twice", "Testfile:5"},
		},
		{
			name: "model declared twice",
			input: `agent_router {
				provider openai {
					model gpt-4o
					model gpt-4o other
				}
			}`,
			want: []string{"model gpt-4o is declared twice"},
		},
		{
			name:  "unknown option in the handler block",
			input: "agent_router {\n bogus 1\n}",
			want:  []string{"unrecognized agent_router option: bogus", "Testfile:2"},
		},
		{
			name:  "unknown option in the provider block",
			input: "agent_router {\n provider openai {\n  api_kee x\n }\n}",
			want:  []string{"unrecognized provider option: api_kee", "Testfile:3"},
		},
		{
			name:  "provider without a name",
			input: "agent_router {\n provider\n}",
			want:  []string{"wrong argument count", "'provider'"},
		},
		{
			name:  "provider with two names",
			input: "agent_router {\n provider openai anthropic\n}",
			want:  []string{"wrong argument count", "'anthropic'"},
		},
		{
			name:  "api_key missing",
			input: "agent_router {\n provider openai {\n  api_key\n }\n}",
			want:  []string{"wrong argument count", "'api_key'"},
		},
		{
			name:  "api_key too many",
			input: "agent_router {\n provider openai {\n  api_key a b\n }\n}",
			want:  []string{"wrong argument count", "'b'"},
		},
		{
			name:  "base_url missing",
			input: "agent_router {\n provider azure {\n  base_url\n }\n}",
			want:  []string{"wrong argument count", "'base_url'"},
		},
		{
			name:  "api_version too many",
			input: "agent_router {\n provider azure {\n  api_version 2024-10-21 v1\n }\n}",
			want:  []string{"wrong argument count", "'v1'"},
		},
		{
			name:  "organization missing",
			input: "agent_router {\n provider openai {\n  organization\n }\n}",
			want:  []string{"wrong argument count", "'organization'"},
		},
		{
			name:  "project too many",
			input: "agent_router {\n provider openai {\n  project p q\n }\n}",
			want:  []string{"wrong argument count", "'q'"},
		},
		{
			name:  "model missing",
			input: "agent_router {\n provider openai {\n  model\n }\n}",
			want:  []string{"wrong argument count", "'model'"},
		},
		{
			name:  "model too many",
			input: "agent_router {\n provider openai {\n  model a b c\n }\n}",
			want:  []string{"wrong argument count", "'c'"},
		},
		{
			name:  "max_body missing",
			input: "agent_router {\n max_body\n}",
			want:  []string{"wrong argument count", "'max_body'"},
		},
		{
			name:  "max_body too many",
			input: "agent_router {\n max_body 4MiB 8MiB\n}",
			want:  []string{"wrong argument count", "'8MiB'"},
		},
		{
			name:  "max_body bad size",
			input: "agent_router {\n max_body lots\n}",
			want:  []string{"max_body: invalid size", `"lots"`},
		},
		{
			name:  "max_body zero",
			input: "agent_router {\n max_body 0\n}",
			want:  []string{"max_body: invalid size", `"0"`},
		},
		{
			name:  "max_body negative",
			input: "agent_router {\n max_body -1\n}",
			want:  []string{"max_body: invalid size", `"-1"`},
		},
		{
			name:  "max_body beyond int64",
			input: "agent_router {\n max_body 9EiB\n}",
			want:  []string{"max_body: invalid size", `"9EiB"`},
		},
		{
			name:  "dial_timeout missing",
			input: "agent_router {\n dial_timeout\n}",
			want:  []string{"wrong argument count", "'dial_timeout'"},
		},
		{
			name:  "dial_timeout bad duration",
			input: "agent_router {\n dial_timeout soon\n}",
			want:  []string{"dial_timeout: invalid duration", `"soon"`},
		},
		{
			name:  "dial_timeout zero",
			input: "agent_router {\n dial_timeout 0s\n}",
			want:  []string{"dial_timeout: invalid duration", `"0s"`},
		},
		{
			name:  "response_header_timeout negative",
			input: "agent_router {\n response_header_timeout -5s\n}",
			want:  []string{"response_header_timeout: invalid duration", `"-5s"`},
		},
		{
			name:  "response_header_timeout unitless",
			input: "agent_router {\n response_header_timeout 30\n}",
			want:  []string{"response_header_timeout: invalid duration", `"30"`},
		},
		{
			name:  "response_header_timeout too many",
			input: "agent_router {\n response_header_timeout 1m 2m\n}",
			want:  []string{"wrong argument count", "'2m'"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("no error; parsed %s", mustJSON(t, h))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestAppUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  App
	}{
		{
			name:  "bare option keeps every default",
			input: `agent_router`,
			want:  App{},
		},
		{
			name:  "empty block",
			input: "agent_router {\n}",
			want:  App{},
		},
		{
			name: "every option, placeholders kept verbatim",
			input: `agent_router {
				store           {env.AR_DATA}/agent_router.db
				master_key      {env.AGENT_ROUTER_MASTER_KEY}
				log_max_records 5000
				log_max_age     7d
			}`,
			want: App{
				Store:         "{env.AR_DATA}/agent_router.db",
				MasterKey:     "{env.AGENT_ROUTER_MASTER_KEY}",
				LogMaxRecords: 5000,
				LogMaxAge:     caddy.Duration(7 * 24 * time.Hour),
			},
		},
		{
			name: "byok egress allowances",
			input: `agent_router {
				byok_allow_hosts 10.0.0.0/8 azure.internal.example
				byok_allow_hosts {env.AR_ALLOW}
				byok_allow_http
			}`,
			want: App{BYOKAllowHosts: []string{"10.0.0.0/8", "azure.internal.example", "{env.AR_ALLOW}"}, BYOKAllowHTTP: true},
		},
		{
			name:  "go duration",
			input: "agent_router {\n log_max_age 36h30m\n}",
			want:  App{LogMaxAge: caddy.Duration(36*time.Hour + 30*time.Minute)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got App
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", mustJSON(t, got), mustJSON(t, tt.want))
			}

			// parseGlobal wraps the same thing as the app's JSON.
			v, err := parseGlobal(caddyfile.NewTestDispenser(tt.input), nil)
			if err != nil {
				t.Fatalf("parseGlobal: %v", err)
			}
			app, ok := v.(httpcaddyfile.App)
			if !ok {
				t.Fatalf("parseGlobal returned %T, want httpcaddyfile.App", v)
			}
			if app.Name != "agent_router" {
				t.Errorf("app name = %q, want agent_router", app.Name)
			}
			var decoded App
			if err := json.Unmarshal(app.Value, &decoded); err != nil {
				t.Fatalf("decoding %s: %v", app.Value, err)
			}
			if !reflect.DeepEqual(decoded, tt.want) {
				t.Errorf("parseGlobal JSON %s, want %s", app.Value, mustJSON(t, tt.want))
			}
		})
	}
}

func TestParseGlobalJSONKeepsPlaceholders(t *testing.T) {
	v, err := parseGlobal(caddyfile.NewTestDispenser(`agent_router {
		master_key {env.AGENT_ROUTER_MASTER_KEY}
		log_max_age 720h
	}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := string(v.(httpcaddyfile.App).Value)
	want := `{"master_key":"{env.AGENT_ROUTER_MASTER_KEY}","log_max_age":2592000000000000}`
	if got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}

func TestAppUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{
			name:  "argument on the option",
			input: `agent_router extra`,
			want:  []string{"wrong argument count", "'extra'"},
		},
		{
			name:  "byok_allow_hosts without a host",
			input: "agent_router {\n byok_allow_hosts\n}",
			want:  []string{"wrong argument count", "byok_allow_hosts"},
		},
		{
			name:  "byok_allow_http with a value",
			input: "agent_router {\n byok_allow_http yes\n}",
			want:  []string{"wrong argument count", "'yes'"},
		},
		{
			name:  "unknown option with a value",
			input: "agent_router {\n bogus 1\n}",
			want:  []string{"unrecognized agent_router global option: bogus", "Testfile:2"},
		},
		{
			name:  "unknown option without a value",
			input: "agent_router {\n bogus\n}",
			want:  []string{"unrecognized agent_router global option: bogus"},
		},
		{
			name:  "store missing",
			input: "agent_router {\n store\n}",
			want:  []string{"wrong argument count", "'store'"},
		},
		{
			name:  "store too many",
			input: "agent_router {\n store a.db b.db\n}",
			want:  []string{"wrong argument count", "'b.db'"},
		},
		{
			name:  "master_key missing",
			input: "agent_router {\n master_key\n}",
			want:  []string{"wrong argument count", "'master_key'"},
		},
		{
			name:  "master_key too many",
			input: "agent_router {\n master_key k1 k2\n}",
			want:  []string{"wrong argument count", "'k2'"},
		},
		{
			name:  "log_max_records missing",
			input: "agent_router {\n log_max_records\n}",
			want:  []string{"wrong argument count", "'log_max_records'"},
		},
		{
			name:  "log_max_records zero",
			input: "agent_router {\n log_max_records 0\n}",
			want:  []string{"log_max_records: must be a positive number", `"0"`},
		},
		{
			name:  "log_max_records negative",
			input: "agent_router {\n log_max_records -10\n}",
			want:  []string{"log_max_records: must be a positive number", `"-10"`},
		},
		{
			name:  "log_max_records not a number",
			input: "agent_router {\n log_max_records many\n}",
			want:  []string{"log_max_records: must be a positive number", `"many"`},
		},
		{
			name:  "log_max_age bad duration",
			input: "agent_router {\n log_max_age forever\n}",
			want:  []string{"log_max_age: invalid duration", `"forever"`},
		},
		{
			name:  "log_max_age zero",
			input: "agent_router {\n log_max_age 0s\n}",
			want:  []string{"log_max_age: invalid duration", `"0s"`},
		},
		{
			name:  "log_max_age too many",
			input: "agent_router {\n log_max_age 1h 2h\n}",
			want:  []string{"wrong argument count", "'2h'"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a App
			err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("no error; parsed %s", mustJSON(t, a))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			// parseGlobal reports the same error.
			_, gerr := parseGlobal(caddyfile.NewTestDispenser(tt.input), nil)
			if gerr == nil || gerr.Error() != err.Error() {
				t.Errorf("parseGlobal error = %v, want %v", gerr, err)
			}
		})
	}
}

func TestParseGlobalGivenTwice(t *testing.T) {
	first, err := parseGlobal(caddyfile.NewTestDispenser("agent_router {\n store a.db\n}"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseGlobal(caddyfile.NewTestDispenser("\n\nagent_router {\n store b.db\n}"), first)
	if err == nil {
		t.Fatal("second agent_router global option accepted")
	}
	if !strings.Contains(err.Error(), "agent_router global option is given twice") {
		t.Errorf("error %q does not say the option is given twice", err)
	}
	if !strings.Contains(err.Error(), "Testfile:3") {
		t.Errorf("error %q does not point at the second agent_router (Testfile:3)", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
