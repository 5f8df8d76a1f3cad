// Package routing turns a requested model name into an ordered plan of
// upstream attempts: model-name aliases, fallback chains and weighted
// splits, each target with a credential pin (auto, byok or platform). It is
// pure: no I/O, no Caddy; the gateway resolves each attempt's model to a
// provider and picks the credential.
package routing

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Pin restricts which credential may serve a target.
type Pin string

// Credential pins.
const (
	// PinAuto uses the account's BYOK key for the provider if it has one,
	// else the platform key. The default.
	PinAuto Pin = "auto"
	// PinBYOK uses only the account's key; the target is skipped when the
	// account has none.
	PinBYOK Pin = "byok"
	// PinPlatform uses only the platform key.
	PinPlatform Pin = "platform"
)

// Strategies of a route.
const (
	StrategyFallback = "fallback"
	StrategySplit    = "split"
)

// DefaultRetryOn are the error classes that move a request to the next
// target by default: the failures where another credential or provider can
// help. auth and bad_request are not among them: a bad request fails the same
// everywhere, and a rejected key is reported, not hidden.
var DefaultRetryOn = []string{"rate_limit", "quota", "overloaded", "server", "timeout", "connect"}

// Target is one entry of a route.
type Target struct {
	// Model is a model name, "provider/model", an alias or another route.
	Model string `json:"model"`
	// Credential pins the credential: auto (default), byok or platform.
	Credential Pin `json:"credential,omitempty"`
	// Weight is the target's share in a split (any non-negative numbers;
	// they need not sum to 100).
	Weight float64 `json:"weight,omitempty"`
}

// Route is a logical model served by an ordered list of targets.
type Route struct {
	// Strategy is fallback (try targets in order; the default) or split
	// (pick one by weight, then fall back through the rest by weight).
	Strategy string `json:"strategy,omitempty"`
	// Targets are tried as the strategy says.
	Targets []Target `json:"targets"`
	// RetryOn lists the error classes that move on to the next target.
	// Default: rate_limit, quota, overloaded, server, timeout, connect.
	RetryOn []string `json:"retry_on,omitempty"`
	// MaxAttempts caps the attempts of one request. Default: all targets.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Timeout bounds the wait for an answer across the attempts of one
	// request (until response headers arrive); a stream that has begun is
	// not cut. Default: none beyond the handler's own timeouts.
	Timeout time.Duration `json:"-"`
}

// Config is the routing configuration of a handler.
type Config struct {
	// Aliases map a logical name to a model, "provider/model", another
	// alias or a route.
	Aliases map[string]string
	// Routes map a logical name to a route.
	Routes map[string]*Route
}

// Overlay returns base with over's aliases and routes laid on top: a name
// over defines replaces base's alias or route of that name (whichever kind
// it was). Neither input is modified. A routing profile is compiled as
// Overlay(site, profile), so its names resolve first and the site's still
// resolve after them.
func Overlay(base, over Config) Config {
	out := Config{Aliases: make(map[string]string, len(base.Aliases)+len(over.Aliases)),
		Routes: make(map[string]*Route, len(base.Routes)+len(over.Routes))}
	for n, to := range base.Aliases {
		out.Aliases[n] = to
	}
	for n, r := range base.Routes {
		out.Routes[n] = r
	}
	for n, to := range over.Aliases {
		delete(out.Routes, n)
		out.Aliases[n] = to
	}
	for n, r := range over.Routes {
		delete(out.Aliases, n)
		out.Routes[n] = r
	}
	return out
}

// Attempt is one upstream try: a concrete model (never an alias or a
// route) and the credential pin.
type Attempt struct {
	Model string
	Pin   Pin
}

// Plan is what the gateway does with one request.
type Plan struct {
	// Attempts in order. Always at least one.
	Attempts []Attempt
	// RetryOn holds the classes that move to the next attempt.
	RetryOn map[string]bool
	// Deadline bounds the wait for an answer across all attempts (not the
	// length of a stream); zero means none.
	Deadline time.Duration
	// Route names the route that made the plan ("" for a plain model).
	Route string
}

// Retryable reports whether a failure of class moves to the next attempt.
func (p *Plan) Retryable(class string) bool { return p.RetryOn[class] }

// Table is a compiled routing configuration. It is immutable and safe for
// concurrent use.
type Table struct {
	aliases map[string]string
	routes  map[string]*compiled
	plain   map[string]*Plan // cached plans of aliases that end at a model
}

type compiled struct {
	name     string
	split    bool
	targets  []Attempt   // expanded (nested routes flattened) for fallback
	weights  []float64   // per target, split only
	byWeight [][]Attempt // split: for each pick, the full order
	total    float64
	retryOn  map[string]bool
	max      int
	deadline time.Duration
}

// ValidPin reports whether p names a pin ("" means auto).
func ValidPin(p Pin) bool { return p == "" || p == PinAuto || p == PinBYOK || p == PinPlatform }

// Compile checks cfg and prepares it for Plan. resolvable reports whether a
// concrete model name resolves to a provider; every alias and target must
// end at one. Errors name the alias or route at fault.
func Compile(cfg Config, resolvable func(model string) error) (*Table, error) {
	t := &Table{aliases: make(map[string]string), routes: make(map[string]*compiled), plain: make(map[string]*Plan)}
	for name, to := range cfg.Aliases {
		if name == "" || to == "" {
			return nil, cfgErr("alias", name, "alias %q: needs a name and a model", name)
		}
		if _, dup := cfg.Routes[name]; dup {
			return nil, cfgErr("alias", name, "%q is both an alias and a route", name)
		}
		t.aliases[name] = to
	}
	names := make([]string, 0, len(cfg.Routes))
	for name := range cfg.Routes {
		names = append(names, name)
	}
	sort.Strings(names)
	// Check every route's own shape first, then expand with cycle checks.
	for _, name := range names {
		r := cfg.Routes[name]
		if r == nil || len(r.Targets) == 0 {
			return nil, cfgErr("route", name, "route %q: has no targets", name)
		}
		switch r.Strategy {
		case "", StrategyFallback, StrategySplit:
		default:
			return nil, cfgErr("route", name, "route %q: unknown strategy %q (use fallback or split)", name, r.Strategy)
		}
		total := 0.0
		for i, tg := range r.Targets {
			if tg.Model == "" {
				return nil, cfgErr("route", name, "route %q: target %d has no model", name, i+1)
			}
			if !ValidPin(tg.Credential) {
				return nil, cfgErr("route", name, "route %q: target %s: unknown credential %q (use auto, byok or platform)", name, tg.Model, tg.Credential)
			}
			if tg.Weight < 0 {
				return nil, cfgErr("route", name, "route %q: target %s: negative weight %v", name, tg.Model, tg.Weight)
			}
			total += tg.Weight
		}
		if r.Strategy == StrategySplit && total <= 0 {
			return nil, cfgErr("route", name, "route %q: a split needs at least one positive weight", name)
		}
		if r.MaxAttempts < 0 {
			return nil, cfgErr("route", name, "route %q: max_attempts must not be negative", name)
		}
		if r.Timeout < 0 {
			return nil, cfgErr("route", name, "route %q: timeout must not be negative", name)
		}
		for _, c := range r.RetryOn {
			if !knownClass(c) {
				return nil, cfgErr("route", name, "route %q: retry_on: unknown error class %q (known: %s)", name, c, strings.Join(Classes, ", "))
			}
		}
	}
	for _, name := range names {
		c, err := t.compileRoute(cfg, name, nil)
		if err != nil {
			return nil, err
		}
		t.routes[name] = c
	}
	// Aliases must end at a route or a resolvable model, without cycles.
	for name := range cfg.Aliases {
		end, err := t.follow(name, nil)
		if err != nil {
			return nil, cfgErr("alias", name, "%v", err)
		}
		if _, isRoute := t.routes[end]; !isRoute {
			if err := resolvable(end); err != nil {
				return nil, cfgErr("alias", name, "alias %q: %v", name, err)
			}
			t.plain[name] = &Plan{Attempts: []Attempt{{Model: end, Pin: PinAuto}}}
		}
	}
	for _, name := range names {
		for _, a := range t.routes[name].targets {
			if err := resolvable(a.Model); err != nil {
				return nil, cfgErr("route", name, "route %q: target %s: %v", name, a.Model, err)
			}
		}
	}
	return t, nil
}

// Classes are the error classes a route may retry on.
var Classes = []string{"auth", "rate_limit", "quota", "overloaded", "server", "bad_request", "timeout", "connect"}

func knownClass(c string) bool {
	for _, k := range Classes {
		if k == c {
			return true
		}
	}
	return false
}

// follow walks aliases from name to the first name that is not an alias.
func (t *Table) follow(name string, seen []string) (string, error) {
	for {
		to, ok := t.aliases[name]
		if !ok {
			return name, nil
		}
		for _, s := range seen {
			if s == name {
				return "", fmt.Errorf("alias cycle: %s -> %s", strings.Join(seen, " -> "), name)
			}
		}
		seen = append(seen, name)
		name = to
	}
}

// compileRoute expands a route, flattening targets that name other routes
// (an inner target's pin wins unless it is auto).
func (t *Table) compileRoute(cfg Config, name string, stack []string) (*compiled, error) {
	if c, ok := t.routes[name]; ok {
		return c, nil
	}
	for _, s := range stack {
		if s == name {
			return nil, cfgErr("route", name, "route cycle: %s -> %s", strings.Join(stack, " -> "), name)
		}
	}
	stack = append(stack, name)
	r := cfg.Routes[name]
	c := &compiled{name: name, split: r.Strategy == StrategySplit, max: r.MaxAttempts, deadline: r.Timeout, retryOn: make(map[string]bool)}
	retry := r.RetryOn
	if len(retry) == 0 {
		retry = DefaultRetryOn
	}
	for _, cl := range retry {
		c.retryOn[cl] = true
	}
	expand := func(tg Target) ([]Attempt, error) {
		end, err := t.follow(tg.Model, nil)
		if err != nil {
			return nil, cfgErr("route", name, "route %q: target %s: %v", name, tg.Model, err)
		}
		pin := tg.Credential
		if pin == "" {
			pin = PinAuto
		}
		if _, isRoute := cfg.Routes[end]; !isRoute {
			return []Attempt{{Model: end, Pin: pin}}, nil
		}
		inner, err := t.compileRoute(cfg, end, stack)
		if err != nil {
			return nil, err
		}
		out := make([]Attempt, len(inner.targets))
		for i, a := range inner.targets {
			if a.Pin == PinAuto {
				a.Pin = pin
			}
			out[i] = a
		}
		return out, nil
	}
	groups := make([][]Attempt, len(r.Targets))
	for i, tg := range r.Targets {
		g, err := expand(tg)
		if err != nil {
			return nil, err
		}
		groups[i] = g
		c.targets = append(c.targets, g...)
	}
	if c.split {
		// For each possible pick: the pick first, then the others by
		// weight (heaviest first, config order breaking ties).
		order := make([]int, len(r.Targets))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return r.Targets[order[a]].Weight > r.Targets[order[b]].Weight })
		for i, tg := range r.Targets {
			c.weights = append(c.weights, tg.Weight)
			c.total += tg.Weight
			seq := append([]Attempt(nil), groups[i]...)
			for _, j := range order {
				if j != i {
					seq = append(seq, groups[j]...)
				}
			}
			c.byWeight = append(c.byWeight, seq)
		}
	}
	t.routes[name] = c
	return c, nil
}

// Plan returns the attempts for a requested model. rnd returns a number in
// [0, 1) and is used only by splits. ok is false when model names no alias
// or route: the caller then treats it as a plain model.
func (t *Table) Plan(model string, rnd func() float64) (Plan, bool) {
	if t == nil {
		return Plan{}, false
	}
	if p, ok := t.plain[model]; ok {
		return *p, true
	}
	end, err := t.follow(model, nil)
	if err != nil {
		return Plan{}, false
	}
	c, ok := t.routes[end]
	if !ok {
		return Plan{}, false
	}
	attempts := c.targets
	if c.split {
		x := rnd() * c.total
		pick := len(c.weights) - 1
		for i, w := range c.weights {
			if x < w {
				pick = i
				break
			}
			x -= w
		}
		for pick > 0 && c.weights[pick] == 0 { // never pick a zero weight
			pick--
		}
		attempts = c.byWeight[pick]
	}
	if c.max > 0 && len(attempts) > c.max {
		attempts = attempts[:c.max]
	}
	return Plan{Attempts: attempts, RetryOn: c.retryOn, Deadline: c.deadline, Route: c.name}, true
}

// Names lists the aliases and routes, sorted.
func (t *Table) Names() []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.aliases)+len(t.routes))
	for n := range t.aliases {
		out = append(out, n)
	}
	for n := range t.routes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ConfigError is a routing configuration error, with the alias or route it
// is about, so a Caddyfile adapter can point at that line.
type ConfigError struct {
	Kind string // "alias" or "route"
	Name string
	Msg  string
}

func (e *ConfigError) Error() string { return e.Msg }

func cfgErr(kind, name, format string, args ...any) error {
	return &ConfigError{Kind: kind, Name: name, Msg: fmt.Sprintf(format, args...)}
}
