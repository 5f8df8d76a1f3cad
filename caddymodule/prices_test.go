package caddymodule

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

func TestPriceAndContractCaddyfile(t *testing.T) {
	input := `agent_router {
		provider anthropic {
			price claude-sonnet-4-5 {
				input 2.70
				cache_read 0.27
				cache_write_5m 3.375
				cache_write_1h 5.40
				output 13.50
				batch {
					input 1.35
					output 6.75
				}
				long_context 200000 {
					input 5.40
					output 20.25
					batch {
						input 2.70
					}
				}
				source "https://www.anthropic.com/pricing"
				note "2026 list"
			}
			price my-finetune {
				input 4
				output 16
				fees_not_priced "hosting"
			}
			contract {
				discount 10%
			}
			contract 2027-01-01 {
				discount 15
				rate claude-haiku-4-5 {
					input 0.80
					output 4
				}
				note "2027 MSA"
			}
		}
	}`
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	want := &ProviderConfig{
		Prices: []pricing.Override{
			{Model: "claude-sonnet-4-5", Source: "https://www.anthropic.com/pricing", Note: "2026 list",
				Standard: pricing.PriceSet{Input: "2.70", CacheRead: "0.27", CacheWrite5m: "3.375", CacheWrite1h: "5.40", Output: "13.50"},
				Batch:    &pricing.PriceSet{Input: "1.35", Output: "6.75"},
				LongContext: &pricing.LongContext{Above: 200000, Standard: pricing.PriceSet{Input: "5.40", Output: "20.25"},
					Batch: &pricing.PriceSet{Input: "2.70"}}},
			{Model: "my-finetune", FeesNotPriced: "hosting", Standard: pricing.PriceSet{Input: "4", Output: "16"}},
		},
		Contract: []pricing.ContractTerm{
			{DiscountPercent: "10"},
			{EffectiveFrom: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), DiscountPercent: "15", Note: "2027 MSA",
				Rates: []pricing.ContractRate{{Model: "claude-haiku-4-5", Prices: pricing.PriceSet{Input: "0.80", Output: "4"}}}},
		},
	}
	if got := h.Providers["anthropic"]; !reflect.DeepEqual(got, want) {
		t.Errorf("got  %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
}

func TestPriceAndContractCaddyfileErrors(t *testing.T) {
	for _, tt := range []struct{ name, input, want string }{
		{"per-token price typed as per 1M", "price gpt-4o {\n input 0.0000025\n }", "gpt-4o standard.input"},
		{"negative price", "price gpt-4o {\n input -1\n }", `input "-1"`},
		{"not a number", "price gpt-4o {\n output ten\n }", `output "ten"`},
		{"unknown price class", "price gpt-4o {\n cached_input 1\n }", "unrecognized option cached_input"},
		{"no model", "price {\n input 1\n }", "want 'price <model>"},
		{"new model without input", "price my-model {\n output 1\n }", "needs at least an input price"},
		{"a price given twice", "price gpt-4o {\n input 2\n }\n price gpt-4o {\n input 3\n }", "price gpt-4o is given twice"},
		{"absurd price", "price gpt-4o {\n input 2.5\n output 2500000\n }", "gpt-4o"},
		{"long context without threshold", "price gpt-4o {\n long_context {\n input 5\n }\n }", "long_context"},
		{"negative discount", "contract {\n discount -5\n }", "negative"},
		{"discount over 100", "contract {\n discount 120\n }", "over 100"},
		{"empty contract", "contract {\n }", "a term needs a discount_percent, rates, or both"},
		{"bad date", "contract soon {\n discount 5\n }", `effective_from "soon"`},
		{"bad rate", "contract {\n rate gpt-4o {\n input -2\n }\n }", `input "-2"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("agent_router {\n provider openai {\n " + tt.input + "\n }\n}"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one that mentions %q", err, tt.want)
			}
		})
	}
}

// TestPriceOverridesMerge: the price blocks of a config's handlers make one
// book; the same model priced differently by two handlers is refused and
// changes nothing.
func TestPriceOverridesMerge(t *testing.T) {
	var p priceOverrides
	a := []pricing.Override{{Provider: "openai", Model: "gpt-4o", Standard: pricing.PriceSet{Input: "2"}}}
	if err := p.add(a); err != nil {
		t.Fatal(err)
	}
	if err := p.add(a); err != nil {
		t.Fatalf("the same price twice: %v", err)
	}
	if err := p.add([]pricing.Override{{Provider: "openai", Model: "gpt-4o", Standard: pricing.PriceSet{Input: "3"}}}); err == nil ||
		!strings.Contains(err.Error(), "set differently by two agent_router handlers") {
		t.Fatalf("a conflicting price: %v", err)
	}
	if err := p.add([]pricing.Override{{Provider: "openai", Model: "no-such-model", Standard: pricing.PriceSet{Output: "3"}}}); err == nil {
		t.Fatal("an override the book refuses was merged")
	}
	tb, err := p.table()
	if err != nil {
		t.Fatal(err)
	}
	book := pricing.MustCompile(tb)
	if c := book.Cost("openai", "gpt-4o", pricing.Usage{Input: 1_000_000}); c.USD() != "2" {
		t.Errorf("gpt-4o input costs %s per 1M, want the override's 2", c.USD())
	}
	if !book.Has("openai", "gpt-4o-mini") || book.Has("openai", "no-such-model") {
		t.Error("the merged book lost a default row or kept a refused one")
	}
}
