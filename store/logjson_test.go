package store

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// fillAll sets every field of the struct v points to (recursively, slices
// with two elements) to a non-zero value derived from seed, so a field
// added to LogRecord or Attempt but not to appendJSON makes the
// comparison fail.
func fillAll(t *testing.T, v reflect.Value, seed string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(seed + ` <&> "q" \ ` + "\u2028\t\x01é\xff")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(len(seed)) * 1000003)
	case reflect.Uint64:
		v.SetUint(uint64(len(seed)) * 7)
	case reflect.Float64:
		v.SetFloat(float64(len(seed)) * 1.25e-7)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(pricing.Cost{}) {
			v.Set(reflect.ValueOf(testCost(seed)))
			return
		}
		if v.Type() == reflect.TypeOf(pricing.Shadow{}) {
			v.Set(reflect.ValueOf(testCost(seed).Shadow()))
			return
		}
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 5, 21, 30, 0, 123456789, time.UTC)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			fillAll(t, v.Field(i), seed+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage(nil)) {
			v.SetBytes([]byte("{ \"input_tokens\" : 12,\n \"s\": \"<a&b>\u2028\\\"x\" , \"n\":[1, 2.5e-7] }"))
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fillAll(t, s.Index(i), seed+string(rune('a'+i)))
		}
		v.Set(s)
	default:
		t.Fatalf("fillAll: field kind %s not handled: teach the test (and appendJSON) about it", v.Kind())
	}
}

// testCost is a cost with every field set (a price in every class, a
// contract term with a discount, a model name that needs escaping).
func testCost(seed string) pricing.Cost {
	book := pricing.MustCompile(pricing.Default())
	u := pricing.Usage{Input: 1200, CacheRead: 300, CacheWrite5m: 40, CacheWrite1h: 7, Output: 900, Reasoning: 100,
		ReasoningApart: true, PromptTokens: 1547, LongContext: true}
	contract, err := pricing.NewContract([]pricing.ContractTerm{{EffectiveFrom: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		DiscountPercent: "12.5", Rates: []pricing.ContractRate{{Model: "m", Prices: pricing.PriceSet{Input: "1", CacheRead: "0.1",
			CacheWrite5m: "1.25", CacheWrite1h: "2", Output: "4", Reasoning: "5"}}}}})
	if err != nil {
		panic(err)
	}
	c := book.CostAt("openai", "m", u, contract, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	c.Model, c.Version, c.PaidBy, c.Partial = seed+` <&> "q" \ `+"\u2028\xff", "3-abcdef012345", "byok", true
	c.Tokens.Tier = pricing.PriorityTier
	c.Tier = pricing.PriorityTier
	return c
}

func TestLogRecordJSONMatchesEncodingJSON(t *testing.T) {
	var full LogRecord
	fillAll(t, reflect.ValueOf(&full).Elem(), "x")
	records := []LogRecord{
		{},
		full,
		{ID: "r1", Time: time.Unix(1700000000, 0).UTC(), AccountID: "acme", Status: 200, LatencyMS: 12.5, Stream: true,
			Attempts: []Attempt{{Provider: "openai", Model: "gpt-4o-mini", DurationMS: 0}}},
		{LatencyMS: 1e21, TTFBMS: 1e-7, PromptTokens: -3},
		{LatencyMS: 123456789.125, TTFBMS: 0.000001},
		{Cost: pricing.Unpriced("azure", "my-deployment", pricing.NoModel)},
		{Cost: pricing.MustCompile(pricing.Default()).Cost("anthropic", "claude-sonnet-4-5", pricing.Usage{Input: 10, CacheWrite5m: 5, Output: 3})},
	}
	for i, r := range records {
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("record %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzLogRecordJSON(f *testing.F) {
	f.Add("id", "acme", "gpt-4o\xff<", 12.5, int64(7), []byte(`{"a": 1}`), "openai")
	f.Add("", "", "\u2028", 1e-9, int64(0), []byte(`[`), "")
	f.Fuzz(func(t *testing.T, id, account, model string, latency float64, tokens int64, raw []byte, provider string) {
		r := LogRecord{ID: id, AccountID: account, Model: model, LatencyMS: latency, TTFBMS: latency / 3,
			PromptTokens: tokens, UsageRaw: raw, Provider: provider, Time: time.Unix(tokens%1e10, tokens%1e9).UTC(),
			Attempts: []Attempt{{Provider: provider, Model: model, DurationMS: latency, Skipped: id}}}
		got := r.appendJSON(nil)
		if bytes.Count(raw, []byte{'['})+bytes.Count(raw, []byte{'{'}) > maxRawBrackets {
			// Written as null by design (see appendCompactJSON).
			r.UsageRaw = json.RawMessage("null")
		}
		want, err := json.Marshal(&r)
		if err != nil {
			// encoding/json refuses NaN, infinities and invalid raw JSON;
			// appendJSON writes 0 or null instead, and still valid JSON.
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// TestLogRecordCostRoundTrips: a record's cost, written by the log writer
// and read back by a log query, is the cost the gateway computed.
func TestLogRecordCostRoundTrips(t *testing.T) {
	priced := testCost("x")
	priced.Model = `gpt-4o <&> "q"` // valid UTF-8: invalid bytes come back as U+FFFD
	for _, c := range []pricing.Cost{priced, pricing.Unpriced("azure", "dep", pricing.NoUsage)} {
		r := LogRecord{ID: "r", Cost: c, ShadowCost: c.Shadow()}
		var back LogRecord
		if err := json.Unmarshal(r.appendJSON(nil), &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back.Cost, c) || back.ShadowCost != c.Shadow() {
			t.Errorf("cost did not round-trip:\n got %+v %+v\nwant %+v", back.Cost, back.ShadowCost, c)
		}
	}
}
