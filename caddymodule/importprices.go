package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// maxPriceFile bounds the price file import-prices reads (LiteLLM's is
// about 1.6 MB).
const maxPriceFile = 64 << 20

// cmdImportPrices reads a LiteLLM price file (model_prices_and_context_window.json,
// or "-" for stdin; never fetched) and prints, for the models the embedded
// price book has, the prices that differ from the book as price blocks: the
// Caddyfile's provider blocks (default) or their JSON twin. What it leaves
// out (a malformed or implausible price, a model the book does not know)
// goes to stderr.
func cmdImportPrices(fl caddycmd.Flags) (int, error) {
	args := fl.Args()
	if len(args) != 1 {
		return caddy.ExitCodeFailedStartup, errors.New("usage: caddy agent-router import-prices [--format caddyfile|json] <model_prices_and_context_window.json | ->")
	}
	format := fl.String("format")
	if format != "caddyfile" && format != "json" {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--format must be caddyfile or json, not %q", format)
	}
	data, err := readPriceFile(args[0])
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	out, notes, err := importPrices(data, format)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	for _, n := range notes {
		fmt.Fprintln(os.Stderr, "left out:", n)
	}
	fmt.Print(out)
	return caddy.ExitCodeSuccess, nil
}

func readPriceFile(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxPriceFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPriceFile {
		return nil, fmt.Errorf("%s is larger than %d MiB: not a price file", path, maxPriceFile>>20)
	}
	return data, nil
}

// importPrices turns a LiteLLM price file into price blocks in format,
// keeping only the overrides that change the embedded book, and returns
// the import's notes.
func importPrices(data []byte, format string) (string, []string, error) {
	base := pricing.Default()
	imp, err := pricing.ImportLiteLLM(data, base)
	if err != nil {
		return "", nil, err
	}
	var keep []pricing.Override
	for _, o := range imp.Overrides {
		if changesPrices(base, o) {
			keep = append(keep, o)
		}
	}
	if format == "json" {
		b, err := json.MarshalIndent(priceConfigJSON(keep), "", "\t")
		return string(b) + "\n", imp.Skipped, err
	}
	return priceCaddyfile(keep), imp.Skipped, nil
}

// changesPrices reports whether o changes a price of base (not only its
// source or note), comparing canonical tables ("2.50" is "2.5").
func changesPrices(base *pricing.Table, o pricing.Override) bool {
	t, err := pricing.Apply(base, []pricing.Override{o})
	if err != nil {
		return false
	}
	from, err := pricing.Compile(base)
	if err != nil {
		return false
	}
	to, err := pricing.Compile(t)
	if err != nil {
		return false
	}
	for _, c := range pricing.Diff(from.Table(), to.Table()) {
		switch c.Field {
		case "source", "note", "aliases", "fees_not_priced":
		default:
			return true
		}
	}
	return false
}

// priceConfigJSON is the handler's "providers" object holding the
// overrides (each without its provider: its block names it).
func priceConfigJSON(overrides []pricing.Override) map[string]any {
	byProvider := map[string]*ProviderConfig{}
	for _, o := range overrides {
		pc := byProvider[o.Provider]
		if pc == nil {
			pc = &ProviderConfig{}
			byProvider[o.Provider] = pc
		}
		o.Provider = ""
		pc.Prices = append(pc.Prices, o)
	}
	return map[string]any{"providers": byProvider}
}

// priceCaddyfile writes the overrides as provider blocks of price blocks,
// to merge into an agent_router block.
func priceCaddyfile(overrides []pricing.Override) string {
	var b strings.Builder
	provider := ""
	for _, o := range overrides {
		if o.Provider != provider {
			if provider != "" {
				b.WriteString("}\n")
			}
			provider = o.Provider
			fmt.Fprintf(&b, "provider %s {\n", provider)
		}
		fmt.Fprintf(&b, "\tprice %s {\n", caddyfileToken(o.Model))
		writePriceSet(&b, "\t\t", &o.Standard)
		for _, tier := range []struct {
			name string
			ps   *pricing.PriceSet
		}{{"batch", o.Batch}, {"flex", o.Flex}, {"priority", o.Priority}} {
			if tier.ps != nil {
				fmt.Fprintf(&b, "\t\t%s {\n", tier.name)
				writePriceSet(&b, "\t\t\t", tier.ps)
				b.WriteString("\t\t}\n")
			}
		}
		if lc := o.LongContext; lc != nil {
			fmt.Fprintf(&b, "\t\tlong_context %d {\n", lc.Above)
			writePriceSet(&b, "\t\t\t", &lc.Standard)
			for _, tier := range []struct {
				name string
				ps   *pricing.PriceSet
			}{{"batch", lc.Batch}, {"flex", lc.Flex}, {"priority", lc.Priority}} {
				if tier.ps != nil {
					fmt.Fprintf(&b, "\t\t\t%s {\n", tier.name)
					writePriceSet(&b, "\t\t\t\t", tier.ps)
					b.WriteString("\t\t\t}\n")
				}
			}
			b.WriteString("\t\t}\n")
		}
		for _, kv := range [][2]string{{"source", o.Source}, {"note", o.Note}, {"fees_not_priced", o.FeesNotPriced}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, "\t\t%s %s\n", kv[0], caddyfileToken(kv[1]))
			}
		}
		b.WriteString("\t}\n")
	}
	if provider != "" {
		b.WriteString("}\n")
	}
	return b.String()
}

func writePriceSet(b *strings.Builder, indent string, ps *pricing.PriceSet) {
	for _, kv := range [][2]string{{"input", ps.Input}, {"cache_read", ps.CacheRead}, {"cache_write_5m", ps.CacheWrite5m},
		{"cache_write_1h", ps.CacheWrite1h}, {"output", ps.Output}, {"reasoning", ps.Reasoning}} {
		if kv[1] != "" {
			fmt.Fprintf(b, "%s%s %s\n", indent, kv[0], kv[1])
		}
	}
}

// caddyfileToken quotes a value when the Caddyfile would not read it as one
// token as it is.
func caddyfileToken(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\r\n\"'`{}#\\") && !slices.Contains([]string{"{", "}"}, s) {
		return s
	}
	return strconv.Quote(s)
}
