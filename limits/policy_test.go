package limits

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseUSD(t *testing.T) {
	good := map[string]USD{"0": 0, "25": 25e9, "0.50": 5e8, "2000": 2000e9, "0.000000001": 1, "1.2300000000": 123e7, "1000000000": maxUSD}
	for s, want := range good {
		if got, err := ParseUSD(s); err != nil || got != want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	bad := map[string]string{"": "empty", "-5": "negative", "-0.1": "negative", "1e3": "not a decimal", " 1": "not a decimal",
		"1.": "not a decimal", ".5": "not a decimal", "0.0000000001": "9 decimals", "1000000000.01": "1,000,000,000", "NaN": "not a decimal",
		"99999999999999999999999": "1,000,000,000", "+1": "not a decimal", "--1": "not a decimal"}
	for s, want := range bad {
		if _, err := ParseUSD(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseUSD(%q): %v, want %q", s, err, want)
		}
	}
	for _, s := range []string{"0.5", "2000", "0.000000001"} {
		b, _ := json.Marshal(MustUSD(s))
		if string(b) != `"`+s+`"` {
			t.Errorf("marshal %s: %s", s, b)
		}
	}
	var u USD
	if err := json.Unmarshal([]byte(`12.5`), &u); err != nil || u != 125e8 {
		t.Errorf("a bare JSON number: %d %v", u, err)
	}
	if err := json.Unmarshal([]byte(`1e2`), &u); err == nil {
		t.Error("an exponent was accepted")
	}
}

func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"0", "25.5", "-1", "1e3", "0.000000001", "1000000000", "9999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseUSD(s)
		if err != nil {
			return
		}
		if v < 0 || v > maxUSD {
			t.Fatalf("ParseUSD(%q) = %d out of range", s, v)
		}
		back, err := ParseUSD(v.String())
		if err != nil || back != v {
			t.Fatalf("round trip of %q: %s → %d %v", s, v, back, err)
		}
	})
}

// Bad input gets an error naming the object and the field, and what is
// wrong with it.
func TestValidation(t *testing.T) {
	b := func(mod func(*Budget)) Set {
		x := Budget{ID: "b1", Scope: Scope{Kind: ScopeAccount, Account: "acme"}, Amount: usd("10"), Window: WindowMonth}
		mod(&x)
		return Set{Budgets: []Budget{x}}
	}
	r := func(mod func(*RateLimit)) Set {
		x := RateLimit{ID: "r1", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k1"}, RPM: 10}
		mod(&x)
		return Set{RateLimits: []RateLimit{x}}
	}
	cases := []struct {
		name string
		set  Set
		want string
	}{
		{"negative amount", b(func(x *Budget) { x.Amount = -1 }), `budget "b1": amount_usd: negative`},
		{"unknown scope", b(func(x *Budget) { x.Kind = "team" }), `budget "b1": scope "team" is not one of account, api_key, account_model, byok_credential`},
		{"no scope", b(func(x *Budget) { x.Kind = "" }), `scope is missing`},
		{"no account", b(func(x *Budget) { x.Account = "" }), `account is missing`},
		{"key scope without key", b(func(x *Budget) { x.Kind = ScopeAPIKey }), `api_key is missing (scope api_key names one)`},
		{"model on account scope", b(func(x *Budget) { x.Model = "gpt-4o" }), `model is not part of scope account`},
		{"slash in a name", b(func(x *Budget) { x.Account = "a/b" }), `not allowed`},
		{"window of 0", b(func(x *Budget) { x.Window = WindowRolling }), `rolling_hours must be between 1 and 8760 for a rolling window, got 0`},
		{"rolling hours on a calendar window", b(func(x *Budget) { x.RollingHours = 5 }), `rolling_hours is only for a rolling window`},
		{"no window", b(func(x *Budget) { x.Window = "" }), `window is missing`},
		{"unknown window", b(func(x *Budget) { x.Window = "year" }), `window "year" is not one of`},
		{"unknown payer", b(func(x *Budget) { x.Payer = "me" }), `payer "me" is not one of platform, byok, all`},
		{"platform payer on a credential", b(func(x *Budget) { x.Kind, x.Provider, x.Payer = ScopeCredential, "openai", PayerPlatform }), `payer platform on a byok_credential budget`},
		{"unknown mode", b(func(x *Budget) { x.Mode = "loud" }), `mode "loud" is not one of hard, soft, shadow`},
		{"alert 0", b(func(x *Budget) { x.Alerts = []int{0} }), `alerts: 0 is not a percentage`},
		{"alert twice", b(func(x *Budget) { x.Alerts = []int{80, 80} }), `listed twice`},
		{"bad id", b(func(x *Budget) { x.ID = "a b" }), `may hold only letters`},
		{"no id", b(func(x *Budget) { x.ID = "" }), `budget: id is missing`},
		{"same id twice", Set{Budgets: append(b(func(*Budget) {}).Budgets, b(func(*Budget) {}).Budgets...)}, `budget "b1" of account "acme": the id is used twice`},
		{"rate limit of nothing", r(func(x *RateLimit) { x.RPM = 0 }), `rate limit "r1": sets no limit`},
		{"negative rpm", r(func(x *RateLimit) { x.RPM = -5 }), `rate limit "r1": rpm is negative (-5)`},
		{"rate limit on a credential", r(func(x *RateLimit) { x.Kind, x.APIKey, x.Provider = ScopeCredential, "", "openai" }), `scope "byok_credential" is not one of account, api_key, account_model`},
		{"negative spillover", Set{Spillover: []Spillover{{Account: "acme", Amount: -1}}}, `spillover of account "acme": amount_usd: negative`},
		{"spillover twice", Set{Spillover: []Spillover{{Account: "acme"}, {Account: "acme"}}}, `given twice`},
		{"owner budget on platform money", b(func(x *Budget) { x.SetBy = SetByOwner }), `the operator's`},
		{"unknown set_by", b(func(x *Budget) { x.SetBy = "me" }), `set_by "me"`},
	}
	for _, c := range cases {
		err := c.set.Normalize()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// A budget of 0 is valid: it refuses every request it counts.
	if zero := b(func(x *Budget) { x.Amount = 0 }); zero.Normalize() != nil {
		err := zero.Normalize()
		t.Errorf("a zero budget: %v", err)
	}
}

// JSON is the form the admin API stores and serves: defaults filled,
// unknown fields refused, a round trip changes nothing.
func TestSetJSON(t *testing.T) {
	in := `{
	 "budgets": [
	  {"id":"acme-month","scope":"account","account":"acme","amount_usd":"2000","window":"month"},
	  {"id":"ci-key","scope":"api_key","account":"acme","api_key":"key_1","amount_usd":24,"window":"rolling","rolling_hours":6,"payer":"all","mode":"shadow","alerts":[90,50],"set_by":"owner"},
	  {"id":"own-openai","scope":"byok_credential","account":"acme","provider":"openai","amount_usd":"500.25","window":"week","alerts":[]}
	 ],
	 "rate_limits": [{"id":"ci-rate","scope":"api_key","account":"acme","api_key":"key_1","rpm":100,"tpm":200000,"concurrent":4,"set_by":"owner"}],
	 "spillover": [{"account":"acme","amount_usd":"0"}],
	 "caps": [{"account":"acme","budget_usd":"3000","budget_window":"month","rpm":600,"concurrent":10}]
	}`
	s, err := ParseSet([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	b0, b1, b2 := s.Budgets[0], s.Budgets[1], s.Budgets[2]
	if b0.Payer != PayerPlatform || b0.Mode != ModeHard || !equalInts(b0.Alerts, DefaultAlerts) || b0.SetBy != SetByOperator {
		t.Errorf("defaults: %+v", b0)
	}
	if b1.Amount != usd("24") || !equalInts(b1.Alerts, []int{50, 90}) || b2.Payer != PayerBYOK || len(b2.Alerts) != 0 || b2.Amount != usd("500.25") {
		t.Errorf("parsed: %+v %+v", b1, b2)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"amount_usd":"500.25"`) || !strings.Contains(string(out), `"alerts":[]`) {
		t.Errorf("marshalled: %s", out)
	}
	again, err := ParseSet(out)
	if err != nil {
		t.Fatal(err)
	}
	out2, _ := json.Marshal(again)
	if string(out) != string(out2) {
		t.Errorf("round trip changed it:\n%s\n%s", out, out2)
	}
	for _, bad := range []string{
		`{"budgets":[{"id":"x","scope":"account","account":"a","amount_usd":"1","window":"day","colour":"red"}]}`,
		`{"budgets":[{"id":"x","scope":"account","account":"a","amount_usd":"-1","window":"day"}]}`,
		`{"budgets":[{"id":"x","scope":"account","account":"a","amount_usd":1.5e3,"window":"day"}]}`,
		`{"budgets":[]} {}`,
	} {
		if _, err := ParseSet([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		} else {
			t.Logf("%s → %v", bad, err)
		}
	}
}

// An owner's limits may never exceed the operator's caps; budgets compare
// as hourly rates (a month is 31 days).
func TestCaps(t *testing.T) {
	capAmt := usd("3000")
	caps := &Caps{Account: "acme", BudgetAmount: &capAmt, BudgetWindow: WindowMonth, RPM: 600, TPM: 100_000}
	ok := []Budget{
		{ID: "m", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k"}, Amount: usd("3000"), Window: WindowMonth},
		{ID: "d", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k"}, Amount: usd("96.77"), Window: WindowDay}, // 96.77×31 ≤ 3000
		{ID: "r", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k"}, Amount: usd("4"), Window: WindowRolling, RollingHours: 1},
	}
	for _, b := range ok {
		if err := caps.CheckBudget(&b); err != nil {
			t.Errorf("%s: %v", b.ID, err)
		}
	}
	over := []Budget{
		{ID: "m", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k"}, Amount: usd("3000.01"), Window: WindowMonth},
		{ID: "d", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k"}, Amount: usd("96.78"), Window: WindowDay},
		{ID: "w", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k"}, Amount: usd("700"), Window: WindowWeek},
	}
	for _, b := range over {
		err := caps.CheckBudget(&b)
		if err == nil || !strings.Contains(err.Error(), "above the operator's cap of 3000 USD a month") {
			t.Errorf("%s: %v", b.ID, err)
		}
	}
	if err := caps.CheckRateLimit(&RateLimit{ID: "r", RPM: 601}); err == nil || !strings.Contains(err.Error(), "rpm 601 is above the operator's cap of 600") {
		t.Errorf("rpm over the cap: %v", err)
	}
	if err := caps.CheckRateLimit(&RateLimit{ID: "r", RPM: 600, Concurrent: 50}); err != nil {
		t.Errorf("within caps (concurrency not capped): %v", err)
	}
	// Through a Set: an owner's limit above the cap is refused.
	set := Set{Caps: []Caps{*caps}, RateLimits: []RateLimit{{ID: "mine", Scope: Scope{Kind: ScopeAPIKey, Account: "acme", APIKey: "k"}, TPM: 200_000, SetBy: SetByOwner}}}
	if err := set.Normalize(); err == nil || !strings.Contains(err.Error(), "tpm 200000 is above") {
		t.Errorf("owner over the cap in a set: %v", err)
	}
	set.RateLimits[0].SetBy = SetByOperator // the operator is not held to its own caps
	if err := set.Normalize(); err != nil {
		t.Errorf("operator: %v", err)
	}
	for _, b := range []Budget{
		{ID: "k", Scope: Scope{Kind: ScopeAPIKey, Account: "a", APIKey: "k"}, Payer: PayerPlatform},
		{ID: "c", Scope: Scope{Kind: ScopeCredential, Account: "a", Provider: "openai"}, Payer: PayerBYOK},
		{ID: "a", Scope: Scope{Kind: ScopeAccount, Account: "a"}, Payer: PayerBYOK},
	} {
		if err := OwnerMaySet(&b); err != nil {
			t.Errorf("owner may set %s: %v", b.ID, err)
		}
	}
}

func TestWindows(t *testing.T) {
	slot := func(k WindowKind, h int, at string) (time.Time, time.Time) {
		w, err := compileWindow(k, h)
		if err != nil {
			t.Fatal(err)
		}
		cur := w.slot(date(at))
		return w.start(w.first(cur)), w.reset(cur, cur)
	}
	cases := []struct {
		kind              WindowKind
		hours             int
		at, start, resets string
	}{
		{WindowDay, 0, "2026-12-10T23:59:59Z", "2026-12-10T00:00:00Z", "2026-12-11T00:00:00Z"},
		{WindowDay, 0, "2026-12-11T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-12T00:00:00Z"},
		{WindowWeek, 0, "2026-12-10T12:00:00Z", "2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"}, // a Thursday; weeks start on Monday
		{WindowWeek, 0, "2026-12-13T23:59:59Z", "2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"}, // Sunday night
		{WindowWeek, 0, "2026-12-14T00:00:00Z", "2026-12-14T00:00:00Z", "2026-12-21T00:00:00Z"},
		{WindowMonth, 0, "2026-12-31T23:59:59Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{WindowMonth, 0, "2028-02-29T12:00:00Z", "2028-02-01T00:00:00Z", "2028-03-01T00:00:00Z"},
		{WindowMonth, 0, "2026-01-31T12:00:00+05:00", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"}, // UTC, not the caller's zone
		{WindowRolling, 24, "2026-12-10T10:30:00Z", "2026-12-09T10:00:00Z", "2026-12-11T11:00:00Z"},
		{WindowRolling, 6, "2026-12-10T10:20:00Z", "2026-12-10T04:15:00Z", "2026-12-10T16:30:00Z"},
	}
	for _, c := range cases {
		start, reset := slot(c.kind, c.hours, c.at)
		if !start.Equal(date(c.start)) || !reset.Equal(date(c.resets)) {
			t.Errorf("%s %d at %s: window from %v, resets %v; want %s, %s", c.kind, c.hours, c.at, start, reset, c.start, c.resets)
		}
	}
	if minute := windowMinute.slot(date("2026-12-10T10:20:59Z")); !windowMinute.start(minute + 1).Equal(date("2026-12-10T10:21:00Z")) {
		t.Error("minute window")
	}
}
