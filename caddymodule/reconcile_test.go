package caddymodule

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/egress"
)

func TestReconcileCaddyfile(t *testing.T) {
	good := map[string]*ReconcileConfig{
		"agent_router {\n reconcile off\n}": {Disabled: true},
		"agent_router {\n reconcile {\n interval 2h\n days 31\n admin_url openai http://127.0.0.1:9\n }\n}": {
			Interval: caddy.Duration(2 * time.Hour), Days: 31, AdminURLs: map[string]string{"openai": "http://127.0.0.1:9"}},
		"agent_router {\n reconcile {\n }\n}": {},
	}
	for in, want := range good {
		var a App
		if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(a.Reconcile, want) {
			t.Errorf("%q: got %+v, want %+v", in, a.Reconcile, want)
		}
	}
	bad := map[string]string{
		"reconcile on":                                 "reconcile off",
		"reconcile off now":                            "reconcile off",
		"reconcile {\n interval 0s\n }":                "invalid duration",
		"reconcile {\n interval\n }":                   "wrong argument count",
		"reconcile {\n days 0\n }":                     "1 to 31",
		"reconcile {\n lateness soon\n }":              "invalid duration",
		"reconcile {\n out_of_band_tokens -1\n }":      "0 or more",
		"reconcile {\n cost_tolerance_ppm lots\n }":    "0 or more",
		"reconcile {\n admin_url openai\n }":           "admin_url <provider> <url>",
		"reconcile {\n admin_url cohere https://x\n }": "no usage reader",
		"reconcile {\n every 1h\n }":                   "unrecognized option every",
		"reconcile off\n reconcile off":                "given twice",
	}
	for in, want := range bad {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("agent_router {\n " + in + "\n}"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// TestReconcileAdminURLFollowsTheEgressPolicy: an admin endpoint is where
// the admin keys go: it must pass the same check as a BYOK base URL
// (https, public) unless the operator allowed it.
func TestReconcileAdminURLFollowsTheEgressPolicy(t *testing.T) {
	strict, _ := egress.New(false, nil)
	loose, _ := egress.New(true, []string{"127.0.0.1"})
	repl := caddy.NewReplacer()
	for _, tc := range []struct {
		pol  *egress.Policy
		url  string
		want string
	}{
		{strict, "http://127.0.0.1:9", "https"},
		{strict, "https://127.0.0.1:9", "loopback"},
		{loose, "http://127.0.0.1:9", ""},
		{strict, "https://api.openai.com", ""},
	} {
		a := App{egress: tc.pol, logger: zap.NewNop(), Reconcile: &ReconcileConfig{AdminURLs: map[string]string{"openai": tc.url}}}
		err := a.provisionReconcile(repl)
		if tc.want == "" && (err != nil || a.reconciling == nil) || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v (want %q)", tc.url, err, tc.want)
		}
	}
	a := App{egress: strict, logger: zap.NewNop(), Reconcile: &ReconcileConfig{Disabled: true}}
	if err := a.provisionReconcile(repl); err != nil || a.reconciling != nil {
		t.Errorf("off: %v %v", err, a.reconciling)
	}
}
