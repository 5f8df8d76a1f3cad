package caddymodule

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// TestImportPrices: a LiteLLM price file becomes price blocks that parse
// back (Caddyfile) or decode back (JSON) to the same overrides, each of
// which changes the book; a malformed file is an error and prints nothing.
func TestImportPrices(t *testing.T) {
	data, err := os.ReadFile("../pricing/testdata/litellm_sample.json")
	if err != nil {
		t.Fatal(err)
	}
	want, err := pricing.ImportLiteLLM(data, pricing.Default())
	if err != nil {
		t.Fatal(err)
	}
	cf, notes, err := importPrices(data, "caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) == 0 {
		t.Error("the sample's bad entries left no notes")
	}
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("agent_router {\n" + cf + "}")); err != nil {
		t.Fatalf("the printed Caddyfile does not parse: %v\n%s", err, cf)
	}
	var js struct {
		Providers map[string]*ProviderConfig `json:"providers"`
	}
	out, _, err := importPrices(data, "json")
	if err != nil || json.Unmarshal([]byte(out), &js) != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	n := 0
	base := pricing.Default()
	for _, o := range want.Overrides {
		if !changesPrices(base, o) {
			continue // the book's own prices: not printed
		}
		n++
		o := o
		provider := o.Provider
		o.Provider = ""
		for name, got := range map[string]*ProviderConfig{"caddyfile": h.Providers[provider], "json": js.Providers[provider]} {
			if got == nil || !containsOverride(got.Prices, o) {
				t.Errorf("%s: %s/%s missing or different", name, provider, o.Model)
			}
		}
	}
	if n == 0 || n == len(want.Overrides) || strings.Count(cf, "\tprice ") != n {
		t.Errorf("%d overrides change the book, the Caddyfile has %d price blocks:\n%s", n, strings.Count(cf, "\tprice "), cf)
	}
	if _, _, err := importPrices([]byte(`[1,2,3]`), "caddyfile"); err == nil {
		t.Error("a file that is not LiteLLM's was imported")
	}
}

func containsOverride(list []pricing.Override, o pricing.Override) bool {
	for _, x := range list {
		if reflect.DeepEqual(x, o) {
			return true
		}
	}
	return false
}
