package pricing

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// TestDefaultCoversCatalog fails when a model the providers' catalog names
// has no row in the default table: a catalog model must never cost an
// unnoticed $0.
func TestDefaultCoversCatalog(t *testing.T) {
	b := defaultBook(t)
	n := 0
	for provider, models := range providers.CatalogModels() {
		for _, m := range models {
			n++
			if !b.Has(provider, m) {
				t.Errorf("the catalog names %s/%s, and the default price table has no row for it", provider, m)
			}
		}
	}
	if n < 30 {
		t.Fatalf("the catalog names only %d models: did CatalogModels change?", n)
	}
}

// TestDefaultRowsAgreeWithCatalog: each row's provider is the one the
// catalog routes its model (and aliases) to, so a price is never filed
// under a provider that does not serve the name.
func TestDefaultRowsAgreeWithCatalog(t *testing.T) {
	for _, r := range Default().Models {
		for _, m := range append([]string{r.Model}, r.Aliases...) {
			if p, ok := providers.CatalogProvider(m); !ok || p != r.Provider {
				t.Errorf("row %s/%s: the catalog routes %q to %q", r.Provider, r.Model, m, p)
			}
		}
		if !strings.HasPrefix(r.Source, "https://") {
			t.Errorf("row %s/%s names no source page: %q", r.Provider, r.Model, r.Source)
		}
	}
}

func TestProvidersMatchProvidersPackage(t *testing.T) {
	if !slices.Equal(Providers, providers.Names) {
		t.Errorf("pricing.Providers = %v, providers.Names = %v", Providers, providers.Names)
	}
}

func TestDefaultTableIsDated(t *testing.T) {
	d := Default()
	if _, err := time.Parse(time.DateOnly, d.AsOf); err != nil || d.Version == "" {
		t.Errorf("version %q as_of %q", d.Version, d.AsOf)
	}
}

// TestBoundsAtLoad: a price outside the sanity bounds is refused when the
// table loads, with the model and field named (litellm#20615: a per-1M
// price typed as per-token blocked every user; money.md §1).
func TestBoundsAtLoad(t *testing.T) {
	for _, tc := range []struct {
		name, field, value, want string
	}{
		{"per-token typed as per-1M", "input", `"0.0000025"`, "per-token"},
		{"1,000,000 × the list price", "input", `"2500000"`, "sanity bound"},
		{"1,000 × the input price", "output", `"2500"`, "times the input price"},
		{"negative", "output", `"-10"`, "negative"},
		{"NaN", "output", `"NaN"`, "not a decimal"},
		{"Inf", "cache_read", `"+Inf"`, "not a decimal"},
		{"exponent", "output", `"1e1"`, "not a decimal"},
		{"comma", "output", `"10,5"`, "not a decimal"},
		{"too precise", "output", `"10.0000000001"`, "more precise"},
		{"number, not string", "output", `10`, "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl := Default()
			i, _ := tbl.find("openai", "gpt-4o")
			*tbl.Models[i].Standard.field(classByName(tc.field)) = "SENTINEL"
			raw, err := json.Marshal(tbl)
			if err != nil {
				t.Fatal(err)
			}
			data := strings.Replace(string(raw), `"SENTINEL"`, tc.value, 1)
			_, err = ParseTable([]byte(data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if tc.want != "cannot unmarshal" && !strings.Contains(err.Error(), "openai/gpt-4o standard."+tc.field) {
				t.Errorf("error %q does not name the model and field", err)
			}
		})
	}
}

func TestCheckRowRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		row  Row
		want string
	}{
		{"no input", Row{Provider: "openai", Model: "m", Standard: PriceSet{Output: "1"}}, "standard.input: missing"},
		{"unknown provider", Row{Provider: "acme", Model: "m", Standard: PriceSet{Input: "1"}}, `unknown provider "acme"`},
		{"no threshold", Row{Provider: "openai", Model: "m", Standard: PriceSet{Input: "1"},
			LongContext: &LongContext{Standard: PriceSet{Input: "2"}}}, "long_context.above"},
		{"long tier short of a class", Row{Provider: "openai", Model: "m", Standard: PriceSet{Input: "1", Output: "2"},
			LongContext: &LongContext{Above: 10, Standard: PriceSet{Input: "2"}}}, "long_context.standard.output: missing"},
		{"long tier without base tier", Row{Provider: "openai", Model: "m", Standard: PriceSet{Input: "1"},
			LongContext: &LongContext{Above: 10, Standard: PriceSet{Input: "2"}, Flex: &PriceSet{Input: "1"}}}, "no flex prices below"},
		{"tier without input", Row{Provider: "openai", Model: "m", Standard: PriceSet{Input: "1"}, Batch: &PriceSet{Output: "1"}}, "batch.input: missing"},
	} {
		tbl := &Table{Version: "t", AsOf: "2026-12-07", Models: []Row{tc.row}}
		if err := tbl.Check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	dup := &Table{Version: "t", AsOf: "2026-12-07", Models: []Row{
		{Provider: "openai", Model: "a", Standard: PriceSet{Input: "1"}},
		{Provider: "openai", Model: "b", Aliases: []string{"a"}, Standard: PriceSet{Input: "1"}},
	}}
	if err := dup.Check(); err == nil || !strings.Contains(err.Error(), "already priced") {
		t.Errorf("duplicate name: %v", err)
	}
	if err := (&Table{Version: "t", AsOf: "07/12/2026"}).Check(); err == nil {
		t.Error("a malformed as_of was accepted")
	}
}

// TestCompileNormalises: the same prices typed differently are the same
// book, with the same hash; a changed price is a different hash.
func TestCompileNormalises(t *testing.T) {
	a := &Table{Version: "t", AsOf: "2026-12-07", Models: []Row{{Provider: "openai", Model: "m", Standard: PriceSet{Input: "3.50", Output: "015"}}}}
	b := &Table{Version: "t", AsOf: "2026-12-07", Models: []Row{{Provider: "openai", Model: "m", Standard: PriceSet{Input: "3.5", Output: "15.000"}}}}
	ba, bb := MustCompile(a), MustCompile(b)
	if ba.Hash() != bb.Hash() {
		t.Errorf("same prices, different hashes")
	}
	if got := ba.Table().Models[0].Standard; got.Input != "3.5" || got.Output != "15" {
		t.Errorf("canonical prices %+v", got)
	}
	b.Models[0].Standard.Input = "3.51"
	if MustCompile(b).Hash() == ba.Hash() {
		t.Error("different prices, same hash")
	}
	if a.Models[0].Standard.Input != "3.50" {
		t.Error("Compile changed its input table")
	}
}

func TestTableJSONRoundTrip(t *testing.T) {
	b := defaultBook(t)
	data, err := json.Marshal(b.Table())
	if err != nil {
		t.Fatal(err)
	}
	t2, err := ParseTable(data)
	if err != nil {
		t.Fatal(err)
	}
	if MustCompile(t2).Hash() != b.Hash() {
		t.Error("a table read back from its JSON is a different book")
	}
	if _, err := ParseTable(append(data, []byte(`{}`)...)); err == nil {
		t.Error("trailing data accepted")
	}
	if _, err := ParseTable([]byte(`{"version":"x","as_of":"2026-12-07","models":[],"extra":1}`)); err == nil {
		t.Error("unknown field accepted")
	}
}

// TestNoCaddyNoHTTP: the package stays below the gateway: it imports
// neither Caddy nor net/http (nor the providers package, which does).
func TestNoCaddyNoHTTP(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/tidwall/gjson") {
		t.Fatalf("go list -deps did not list gjson: %v", deps)
	}
	for _, dep := range deps {
		if strings.Contains(dep, "caddyserver") || dep == "net/http" || strings.HasSuffix(dep, "/providers") {
			t.Errorf("pricing depends on %s", dep)
		}
	}
}

func classByName(name string) Class {
	for c := range nClass {
		if c.String() == name {
			return c
		}
	}
	panic(name)
}
