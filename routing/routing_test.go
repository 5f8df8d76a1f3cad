package routing

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// resolvable accepts models of the form "p/x" or a known bare name.
func resolvable(m string) error {
	if strings.Contains(m, "/") || m == "gpt-4o" || m == "claude-x" {
		return nil
	}
	return fmt.Errorf("no provider serves model %q", m)
}

func TestPlans(t *testing.T) {
	tab, err := Compile(Config{
		Aliases: map[string]string{"fast": "anthropic/claude-haiku", "quick": "fast", "best": "chain"},
		Routes: map[string]*Route{
			"chain": {Targets: []Target{{Model: "gpt-4o", Credential: PinBYOK}, {Model: "gpt-4o", Credential: PinPlatform}, {Model: "quick"}}, MaxAttempts: 2, Timeout: time.Second},
			"outer": {Targets: []Target{{Model: "chain", Credential: PinPlatform}, {Model: "claude-x"}}, RetryOn: []string{"auth"}},
		},
	}, resolvable)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		model string
		want  []Attempt
		route string
	}{
		{"fast", []Attempt{{"anthropic/claude-haiku", PinAuto}}, ""},
		{"quick", []Attempt{{"anthropic/claude-haiku", PinAuto}}, ""},
		{"chain", []Attempt{{"gpt-4o", PinBYOK}, {"gpt-4o", PinPlatform}}, "chain"}, // max_attempts 2
		{"best", []Attempt{{"gpt-4o", PinBYOK}, {"gpt-4o", PinPlatform}}, "chain"},
		// nested: inner pins win unless auto, which takes the outer pin
		{"outer", []Attempt{{"gpt-4o", PinBYOK}, {"gpt-4o", PinPlatform}, {"anthropic/claude-haiku", PinPlatform}, {"claude-x", PinAuto}}, "outer"},
	}
	for _, c := range cases {
		p, ok := tab.Plan(c.model, rand.Float64)
		if !ok || !reflect.DeepEqual(p.Attempts, c.want) || p.Route != c.route {
			t.Errorf("%s: %v %+v, want %+v route %q", c.model, ok, p, c.want, c.route)
		}
	}
	if _, ok := tab.Plan("gpt-4o", rand.Float64); ok {
		t.Error("a plain model got a plan")
	}
	p, _ := tab.Plan("chain", rand.Float64)
	if p.Deadline != time.Second || !p.Retryable("rate_limit") || p.Retryable("auth") || p.Retryable("bad_request") {
		t.Errorf("chain policy: %+v", p)
	}
	if p, _ := tab.Plan("outer", rand.Float64); !p.Retryable("auth") || p.Retryable("rate_limit") {
		t.Errorf("outer retry_on: %+v", p.RetryOn)
	}
	if got := tab.Names(); !reflect.DeepEqual(got, []string{"best", "chain", "fast", "outer", "quick"}) {
		t.Errorf("Names = %v", got)
	}
}

func TestSplitShares(t *testing.T) {
	tab, err := Compile(Config{Routes: map[string]*Route{
		"s": {Strategy: StrategySplit, Targets: []Target{
			{Model: "a/x", Credential: PinBYOK, Weight: 7}, {Model: "b/y", Weight: 2}, {Model: "c/z", Weight: 1}, {Model: "d/never", Weight: 0},
		}},
	}}, resolvable)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	const n = 100000
	for i := 0; i < n; i++ {
		p, _ := tab.Plan("s", r.Float64)
		counts[p.Attempts[0].Model]++
		if len(p.Attempts) != 4 {
			t.Fatalf("a split plan falls back through every target: %+v", p.Attempts)
		}
		// The rest follow by weight, heaviest first.
		if p.Attempts[0].Model == "c/z" && (p.Attempts[1].Model != "a/x" || p.Attempts[2].Model != "b/y" || p.Attempts[3].Model != "d/never") {
			t.Fatalf("fallback order after c/z: %+v", p.Attempts)
		}
	}
	for model, want := range map[string]float64{"a/x": 0.7, "b/y": 0.2, "c/z": 0.1, "d/never": 0} {
		if got := float64(counts[model]) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("%s picked %.3f of the time, want %.2f", model, got, want)
		}
	}
	// Edge values of the random source never pick a zero weight.
	for _, x := range []float64{0, 0.9999999999} {
		p, _ := tab.Plan("s", func() float64 { return x })
		if p.Attempts[0].Model == "d/never" {
			t.Errorf("rnd %v picked a zero-weight target", x)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		kind string
		msg  string
	}{
		{"empty route", Config{Routes: map[string]*Route{"r": {}}}, "route", `route "r": has no targets`},
		{"negative weight", Config{Routes: map[string]*Route{"r": {Targets: []Target{{Model: "a/b", Weight: -1}}}}}, "route", "negative weight"},
		{"split without weight", Config{Routes: map[string]*Route{"r": {Strategy: "split", Targets: []Target{{Model: "a/b"}}}}}, "route", "positive weight"},
		{"bad strategy", Config{Routes: map[string]*Route{"r": {Strategy: "random", Targets: []Target{{Model: "a/b"}}}}}, "route", `unknown strategy "random"`},
		{"bad pin", Config{Routes: map[string]*Route{"r": {Targets: []Target{{Model: "a/b", Credential: "mine"}}}}}, "route", `unknown credential "mine"`},
		{"bad class", Config{Routes: map[string]*Route{"r": {Targets: []Target{{Model: "a/b"}}, RetryOn: []string{"teapot"}}}}, "route", `unknown error class "teapot"`},
		{"alias cycle", Config{Aliases: map[string]string{"a": "b", "b": "a"}}, "alias", "alias cycle"},
		{"route cycle", Config{Routes: map[string]*Route{"r": {Targets: []Target{{Model: "s"}}}, "s": {Targets: []Target{{Model: "r"}}}}}, "route", "route cycle"},
		{"route cycle via alias", Config{Aliases: map[string]string{"x": "r"}, Routes: map[string]*Route{"r": {Targets: []Target{{Model: "x"}}}}}, "route", "route cycle"},
		{"alias and route", Config{Aliases: map[string]string{"r": "a/b"}, Routes: map[string]*Route{"r": {Targets: []Target{{Model: "a/b"}}}}}, "alias", "both an alias and a route"},
		{"unknown model in route", Config{Routes: map[string]*Route{"r": {Targets: []Target{{Model: "nonesuch"}}}}}, "route", `no provider serves model "nonesuch"`},
		{"unknown model in alias", Config{Aliases: map[string]string{"a": "nonesuch"}}, "alias", `no provider serves model "nonesuch"`},
	}
	for _, c := range cases {
		_, err := Compile(c.cfg, resolvable)
		var ce *ConfigError
		if err == nil || !errors.As(err, &ce) || ce.Kind != c.kind || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v (%+v), want a %s error with %q", c.name, err, ce, c.kind, c.msg)
		}
	}
}

func TestOverlay(t *testing.T) {
	site := Config{
		Aliases: map[string]string{"fast": "gpt-4o-mini", "a": "gpt-4o"},
		Routes:  map[string]*Route{"smart": {Targets: []Target{{Model: "gpt-4o"}}}, "r": {Targets: []Target{{Model: "fast"}}}},
	}
	prof := Config{
		Aliases: map[string]string{"smart": "claude-sonnet-4-5"},                                   // an alias replaces a route
		Routes:  map[string]*Route{"a": {Targets: []Target{{Model: "fast", Credential: PinBYOK}}}}, // a route replaces an alias
	}
	o := Overlay(site, prof)
	if len(site.Aliases) != 2 || len(site.Routes) != 2 || site.Aliases["a"] != "gpt-4o" {
		t.Fatalf("Overlay modified its input: %+v", site)
	}
	if o.Aliases["smart"] != "claude-sonnet-4-5" || o.Routes["smart"] != nil || o.Aliases["a"] != "" || o.Routes["a"] == nil ||
		o.Aliases["fast"] != "gpt-4o-mini" || o.Routes["r"] == nil {
		t.Fatalf("overlay %+v", o)
	}
	tbl, err := Compile(o, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := tbl.Plan("a", nil); !ok || len(p.Attempts) != 1 || p.Attempts[0] != (Attempt{Model: "gpt-4o-mini", Pin: PinBYOK}) {
		t.Errorf("plan a = %+v", p)
	}
	if p, ok := tbl.Plan("smart", nil); !ok || p.Attempts[0].Model != "claude-sonnet-4-5" {
		t.Errorf("plan smart = %+v", p)
	}
}
