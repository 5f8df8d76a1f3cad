package pricing

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Importing LiteLLM's model_prices_and_context_window.json (BerriAI/litellm),
// the price file most gateways share: USD per token, one object per model
// key. Its numbers are read as json.Number strings and converted to the
// book's unit by a change of decimal scale, so 3.75e-06 per token is
// exactly 3.75 per 1M tokens: no float ever touches a price.

// litellmProviders maps LiteLLM's litellm_provider to ours; the key of a
// non-OpenAI model carries the LiteLLM provider as a prefix
// ("gemini/gemini-2.5-pro", "together_ai/openai/gpt-oss-120b").
var litellmProviders = map[string]string{
	"openai": "openai", "anthropic": "anthropic", "gemini": "gemini", "azure": "azure",
	"mistral": "mistral", "together_ai": "together", "perplexity": "perplexity",
	"cohere": "cohere", "cohere_chat": "cohere",
}

// litellmBase maps a LiteLLM cost key (without tier or long-context suffix)
// to a class.
var litellmBase = map[string]Class{
	"input_cost_per_token":                      Input,
	"cache_read_input_token_cost":               CacheRead,
	"cache_creation_input_token_cost":           CacheWrite5m,
	"cache_creation_input_token_cost_above_1hr": CacheWrite1h,
	"output_cost_per_token":                     Output,
	"output_cost_per_reasoning_token":           Reasoning,
}

var litellmTiers = map[string]Tier{"batches": Batch, "flex": Flex, "priority": PriorityTier}

// Import is what ImportLiteLLM found: overrides for the models the table
// prices, and a note for each price it left out and why.
type Import struct {
	Overrides []Override
	Skipped   []string
}

// ImportLiteLLM reads a LiteLLM-format price file into overrides for the
// models t prices (matched by provider and model name or alias); other
// entries are ignored. A price that is malformed, too precise or outside
// the sanity bounds is left out with a note, and so is an override that
// would not apply to t; every override returned applies to t. The file is
// refused only when it is not a JSON object of objects.
func ImportLiteLLM(data []byte, t *Table) (*Import, error) {
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, fmt.Errorf("litellm price file: %w", err)
	}
	imp := &Import{}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	byRow := map[rowKey]*Override{}
	picked := map[rowKey]string{} // the LiteLLM key each override came from
	for _, key := range keys {
		var fields map[string]any
		dec := json.NewDecoder(bytes.NewReader(entries[key]))
		dec.UseNumber()
		if dec.Decode(&fields) != nil || fields == nil {
			continue // sample_spec's strings, or anything that is not an object
		}
		lp, _ := fields["litellm_provider"].(string)
		provider, ok := litellmProviders[lp]
		if !ok {
			continue
		}
		model := strings.TrimPrefix(key, lp+"/")
		i, _ := t.find(provider, model)
		if i < 0 {
			continue
		}
		row := &t.Models[i]
		rk := rowKey{row.Provider, row.Model}
		// Several keys may name one row (a dated snapshot and its alias):
		// the key that is the row's own name wins, else the first.
		if prev, dup := picked[rk]; dup && (prev == row.Model || model != row.Model) {
			imp.Skipped = append(imp.Skipped, fmt.Sprintf("%s: %s/%s is already imported from %q", key, row.Provider, row.Model, prev))
			continue
		}
		o, notes := litellmOverride(key, row, fields)
		imp.Skipped = append(imp.Skipped, notes...)
		if o == nil {
			continue
		}
		byRow[rk], picked[rk] = o, model
	}
	for rk, o := range byRow {
		if _, err := Apply(t, []Override{*o}); err != nil {
			imp.Skipped = append(imp.Skipped, fmt.Sprintf("%s: %v", picked[rk], err))
			continue
		}
		imp.Overrides = append(imp.Overrides, *o)
	}
	slices.SortFunc(imp.Overrides, func(a, b Override) int {
		return cmp.Or(cmp.Compare(a.Provider, b.Provider), cmp.Compare(a.Model, b.Model))
	})
	return imp, nil
}

// litellmOverride turns one LiteLLM entry into an override of row.
func litellmOverride(key string, row *Row, fields map[string]any) (*Override, []string) {
	o := &Override{Provider: row.Provider, Model: row.Model, Source: "litellm import: " + key}
	var notes []string
	var above int64
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		class, tier, threshold, ok := litellmKey(name)
		if !ok {
			continue
		}
		num, isNum := fields[name].(json.Number)
		if !isNum {
			notes = append(notes, fmt.Sprintf("%s: %s is not a number", key, name))
			continue
		}
		p, err := parsePerToken(num.String())
		if err == nil {
			err = checkBounds(p, 0)
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %s = %s: %v", key, name, num, err))
			continue
		}
		var set *PriceSet
		if threshold > 0 {
			if above == 0 || threshold < above {
				above = threshold
			}
			if threshold != above {
				notes = append(notes, fmt.Sprintf("%s: %s: only one long-context threshold is kept (%d tokens)", key, name, above))
				continue
			}
			if o.LongContext == nil {
				o.LongContext = &LongContext{}
			}
			o.LongContext.Above = above
			set = ensureTier(&o.LongContext.Standard, &o.LongContext.Batch, &o.LongContext.Flex, &o.LongContext.Priority, tier)
		} else {
			set = ensureTier(&o.Standard, &o.Batch, &o.Flex, &o.Priority, tier)
		}
		*set.field(class) = p.String()
	}
	// LiteLLM restates the output price as the reasoning price for models
	// that bill reasoning as output (Gemini): the book says that by having
	// no reasoning price, which its long-context tier need not repeat.
	for _, s := range []*PriceSet{&o.Standard, o.Batch, o.Flex, o.Priority} {
		if s != nil && s.Reasoning != "" && s.Reasoning == s.Output {
			s.Reasoning = ""
		}
	}
	if o.Standard == (PriceSet{}) && o.Batch == nil && o.Flex == nil && o.Priority == nil && o.LongContext == nil {
		return nil, notes
	}
	return o, notes
}

func ensureTier(std *PriceSet, batch, flex, priority **PriceSet, t Tier) *PriceSet {
	var p **PriceSet
	switch t {
	case Standard:
		return std
	case Batch:
		p = batch
	case Flex:
		p = flex
	default:
		p = priority
	}
	if *p == nil {
		*p = &PriceSet{}
	}
	return *p
}

// litellmKey splits a LiteLLM cost key into its class, tier and
// long-context threshold: base["_above_<N>k_tokens"]["_batches"|"_flex"|"_priority"].
func litellmKey(name string) (Class, Tier, int64, bool) {
	tier := Standard
	for suffix, t := range litellmTiers {
		if rest, ok := strings.CutSuffix(name, "_"+suffix); ok {
			name, tier = rest, t
			break
		}
	}
	var threshold int64
	if rest, ok := strings.CutSuffix(name, "k_tokens"); ok {
		i := strings.LastIndex(rest, "_above_")
		if i < 0 {
			return 0, 0, 0, false
		}
		n, err := strconv.ParseInt(rest[i+len("_above_"):], 10, 64)
		if err != nil || n <= 0 || n > 100_000 {
			return 0, 0, 0, false
		}
		name, threshold = rest[:i], n*1000
	}
	class, ok := litellmBase[name]
	return class, tier, threshold, ok
}
