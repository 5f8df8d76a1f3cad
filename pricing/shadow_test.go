package pricing

import (
	"encoding/json"
	"strconv"
	"testing"
)

// TestShadowJSON: a shadow cost is written as its total (or why there is
// none), reads back the same, and a record stored with a whole cost object
// as its shadow (before it was kept compact) reads back as its total.
func TestShadowJSON(t *testing.T) {
	b := MustCompile(Default())
	priced := b.Cost("openai", "gpt-4o", Usage{Input: 1000, Output: 100})
	unpriced := Unpriced("openai", "gpt-9", NoModel)
	for _, c := range []struct {
		s    Shadow
		want string
	}{
		{priced.Shadow(), `{"total_usd":"` + priced.NanoUSD.String() + `","total_nano_usd":` + strconv.FormatInt(int64(priced.NanoUSD), 10) + `}`},
		{unpriced.Shadow(), `{"unpriced":true,"unpriced_reason":"no_price_for_model"}`},
	} {
		got, err := json.Marshal(c.s)
		if err != nil {
			t.Fatal(err)
		}
		var back Shadow
		if err := json.Unmarshal(got, &back); err != nil || back != c.s || !back.Set {
			t.Errorf("%s read back as %+v (%v), want %+v", got, back, err, c.s)
		}
		if string(got) != c.want {
			t.Errorf("got %s, want %s", got, c.want)
		}
	}
	if s := priced.Shadow(); s.USD() != priced.USD() || !s.Priced() || s.IsZero() {
		t.Errorf("shadow of a priced cost: %+v (USD %q)", s, s.USD())
	}
	if s := (Cost{}).Shadow(); !s.IsZero() || s.Priced() || s.USD() != "" {
		t.Errorf("shadow of no cost: %+v", s)
	}
	whole, err := json.Marshal(priced)
	if err != nil {
		t.Fatal(err)
	}
	var old Shadow
	if err := json.Unmarshal(whole, &old); err != nil || old != priced.Shadow() {
		t.Errorf("a whole cost object read as a shadow: %+v (%v), want %+v", old, err, priced.Shadow())
	}
}
