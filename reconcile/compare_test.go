package reconcile

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// The verdict rules, on inputs built by hand.

var testBook = pricing.MustCompile(pricing.Default())

func cmpInput(provider string, now time.Time) Input {
	return Input{Scope: Scope{account, provider}, Window: LastDays(day0, 1), Now: now,
		Matches:   []Match{{Credential: "fp_1", Status: Matched, KeyID: "key_1", Workspace: "ws_1"}},
		CostScope: map[string]CostScope{"openai": CostByKey, "anthropic": CostByWorkspace}[provider]}
}

func gwAt(hour int, t Tokens, cost int64) GatewayUsage {
	return GatewayUsage{Account: account, Provider: "openai", Credential: "fp_1", Model: "gpt-4o-mini",
		Hour: day0.Add(time.Duration(hour) * time.Hour), Requests: 1, Tokens: t, CostNanoUSD: cost}
}

func provAt(hour int, t Tokens) ProviderUsage {
	return ProviderUsage{Hour: day0.Add(time.Duration(hour) * time.Hour), KeyID: "key_1", Workspace: "ws_1", Model: "gpt-4o-mini", Tokens: t, Requests: 1}
}

func statusAt(rows []Row, kind Kind, hour int) Status {
	for _, r := range rows {
		if r.Kind == kind && r.Start.Equal(day0.Add(time.Duration(hour)*time.Hour)) {
			return r.Status
		}
	}
	return "none"
}

func TestTokenVerdicts(t *testing.T) {
	settled := day0.AddDate(0, 0, 2)
	req := Tokens{Input: 11, Output: 5}
	cases := []struct {
		name string
		now  time.Time
		tol  Tolerance
		gw   []GatewayUsage
		prov []ProviderUsage
		hour int
		want Status
	}{
		{"equal", settled, Tolerance{}, []GatewayUsage{gwAt(10, req, 0)}, []ProviderUsage{provAt(10, req)}, 10, StatusMatch},
		{"provider only on our key: out of band", settled, Tolerance{}, nil, []ProviderUsage{provAt(10, req)}, 10, StatusOutOfBand},
		{"beyond the tolerance", settled, Tolerance{OutOfBandTokens: 10}, nil, []ProviderUsage{provAt(10, req)}, 10, StatusOutOfBand},
		{"within the tolerance", settled, Tolerance{OutOfBandTokens: 16}, nil, []ProviderUsage{provAt(10, req)}, 10, StatusDrift},
		{"an hour boundary, settled: the excess", settled, Tolerance{}, []GatewayUsage{gwAt(10, req, 0)}, []ProviderUsage{provAt(11, req)}, 11, StatusDrift},
		{"an hour boundary, settled: the shortfall", settled, Tolerance{}, []GatewayUsage{gwAt(10, req, 0)}, []ProviderUsage{provAt(11, req)}, 10, StatusDrift},
		{"an hour boundary, not settled: flagged at once", day0.Add(12 * time.Hour), Tolerance{}, []GatewayUsage{gwAt(10, req, 0)}, []ProviderUsage{provAt(11, req)}, 11, StatusOutOfBand},
		{"below, not settled", day0.Add(12 * time.Hour), Tolerance{}, []GatewayUsage{gwAt(10, req, 0)}, nil, 10, StatusPending},
		{"below, settled", settled, Tolerance{}, []GatewayUsage{gwAt(10, req, 0)}, nil, 10, StatusDrift},
		{"the same total split otherwise", day0.Add(12 * time.Hour), Tolerance{}, []GatewayUsage{gwAt(10, req, 0)},
			[]ProviderUsage{provAt(10, Tokens{Input: 6, CacheRead: 5, Output: 5})}, 10, StatusDrift},
		{"an alias and its snapshot are one model", settled, Tolerance{}, []GatewayUsage{gwAt(10, req, 0)},
			[]ProviderUsage{func() ProviderUsage { p := provAt(10, req); p.Model = "gpt-4o-mini-2024-07-18"; return p }()}, 10, StatusMatch},
	}
	for _, c := range cases {
		in := cmpInput("openai", c.now)
		in.Gateway, in.Usage = c.gw, c.prov
		out := Compare(in, c.tol, testBook)
		if got := statusAt(out.Rows, KindTokens, c.hour); got != c.want {
			t.Errorf("%s: %s, want %s (%+v)", c.name, got, c.want, out.Rows)
		}
	}
}

func TestCostVerdicts(t *testing.T) {
	gwCost := int64(1_000_000)
	cases := []struct {
		name string
		now  time.Time
		prov int64
		want Status
	}{
		{"within 1 %", day0.AddDate(0, 0, 2), 1_009_000, StatusMatch},
		{"1 % below", day0.AddDate(0, 0, 2), 990_000, StatusMatch},
		{"2 % above before the day settles: conclusive", day0.Add(20 * time.Hour), 1_020_000, StatusDrift},
		{"2 % below before the day settles", day0.Add(20 * time.Hour), 980_000, StatusPending},
		{"2 % below, settled", day0.AddDate(0, 0, 2), 980_000, StatusDrift},
	}
	for _, c := range cases {
		in := cmpInput("openai", c.now)
		in.Gateway = []GatewayUsage{gwAt(3, Tokens{Input: 1}, gwCost)}
		in.Usage = []ProviderUsage{provAt(3, Tokens{Input: 1})}
		in.Costs = []ProviderCost{{Day: day0, KeyID: "key_1", NanoUSD: c.prov}}
		out := Compare(in, Tolerance{}, testBook)
		if got := statusAt(out.Rows, KindCost, 0); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// Gateway rows of another account or provider, and rows outside the
// window, are not this scope's.
func TestCompareKeepsToItsScope(t *testing.T) {
	in := cmpInput("openai", day0.AddDate(0, 0, 2))
	other := gwAt(3, Tokens{Input: 5}, 10)
	other.Account = "acct_other"
	elsewhere := gwAt(3, Tokens{Input: 5}, 10)
	elsewhere.Provider = "anthropic"
	late := gwAt(30, Tokens{Input: 5}, 10)
	in.Gateway = []GatewayUsage{other, elsewhere, late}
	if out := Compare(in, Tolerance{}, testBook); len(out.Rows) != 0 {
		t.Errorf("rows from outside the scope: %+v", out.Rows)
	}
}

// An Anthropic workspace shared with a key that is not ours: the provider
// side is our keys' share of the bill, by list-price value.
func TestWorkspaceShare(t *testing.T) {
	in := cmpInput("anthropic", day0.AddDate(0, 0, 2))
	in.Matches[0].Workspace = "wrkspc_A"
	u := Tokens{Input: 1000, Output: 100}
	ours := ProviderUsage{Hour: day0.Add(3 * time.Hour), KeyID: "key_1", Workspace: "wrkspc_A", Model: "claude-haiku-4-5", Tokens: u, Requests: -1}
	theirs := ours
	theirs.KeyID = "key_9"
	g := GatewayUsage{Account: account, Provider: "anthropic", Credential: "fp_1", Model: "claude-haiku-4-5", Hour: ours.Hour, Requests: 1, Tokens: u, CostNanoUSD: 1_500_000}
	in.Gateway, in.Usage = []GatewayUsage{g}, []ProviderUsage{ours, theirs}
	in.Costs = []ProviderCost{{Day: day0, Workspace: "wrkspc_A", NanoUSD: 3_000_000, OtherNanoUSD: 7}}
	out := Compare(in, Tolerance{}, testBook)
	i := slices.IndexFunc(out.Rows, func(r Row) bool { return r.Kind == KindCost })
	r := out.Rows[i]
	if r.Status != StatusMatch || r.ProviderSide.SharePPM != 500_000 || r.ProviderSide.CostNanoUSD != 1_500_000 ||
		r.ProviderSide.WorkspaceNanoUSD != 3_000_000 || r.Workspace != "wrkspc_A" || r.Credential != "fp_1" {
		b, _ := json.Marshal(r)
		t.Errorf("workspace row: %s", b)
	}
}

// The same input gives the same rows, in the same order, every time.
func TestCompareIsDeterministic(t *testing.T) {
	in := cmpInput("openai", day0.AddDate(0, 0, 2))
	for h := range 24 {
		in.Gateway = append(in.Gateway, gwAt(h, Tokens{Input: int64(h)}, int64(h)))
		in.Usage = append(in.Usage, provAt(h, Tokens{Input: int64(h + h%2)}))
	}
	first, _ := json.Marshal(Compare(in, Tolerance{}, testBook))
	for range 20 {
		again, _ := json.Marshal(Compare(in, Tolerance{}, testBook))
		if string(again) != string(first) {
			t.Fatal("two comparisons of the same input differ")
		}
	}
}
