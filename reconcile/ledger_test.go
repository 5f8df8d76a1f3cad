package reconcile

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The row's JSON is what the store keeps and the admin API returns: its
// field names are pinned here, and it reads back to the same row.
func TestRowJSON(t *testing.T) {
	in := cmpInput("openai", day0.AddDate(0, 0, 2))
	in.Gateway = []GatewayUsage{gwAt(13, Tokens{Input: 33, Output: 15}, 0)}
	in.Usage = []ProviderUsage{provAt(13, Tokens{Input: 33, Output: 15})}
	rows := Compare(in, Tolerance{}, testBook).Rows
	var tok Row
	for _, r := range rows {
		if r.Kind == KindTokens {
			tok = r
		}
	}
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"tokens","account":"acct_bu1","provider":"openai","credential":"fp_1","provider_key_id":"key_1","model":"gpt-4o-mini",` +
		`"start":"2026-11-02T13:00:00Z","end":"2026-11-02T14:00:00Z",` +
		`"gateway":{"requests":1,"tokens":{"input":33,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":15}},` +
		`"provider_side":{"requests":1,"tokens":{"input":33,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":15}},` +
		`"delta":{"tokens":{"input":0,"cache_read":0,"cache_write_5m":0,"cache_write_1h":0,"output":0}},"status":"match","settled":true}`
	if string(b) != want {
		t.Errorf("row JSON:\n%s\nwant\n%s", b, want)
	}
	var back Row
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, tok) {
		t.Errorf("read back: %v\n%+v\n%+v", err, back, tok)
	}
}

// Replace drops exactly the scope's rows that start in the window.
func TestMemoryLedgerReplace(t *testing.T) {
	l := &MemoryLedger{}
	s, other := Scope{account, "openai"}, Scope{account, "anthropic"}
	row := func(d int) Row { return Row{Kind: KindCost, Start: day0.AddDate(0, 0, d), Status: StatusMatch} }
	ctx := context.Background()
	all := Window{From: day0, To: day0.AddDate(0, 0, 5)}
	l.Replace(ctx, s, all, []Row{row(0), row(1), row(2), row(3), row(4)})
	l.Replace(ctx, other, all, []Row{row(1)})
	l.Replace(ctx, s, Window{From: day0.AddDate(0, 0, 1), To: day0.AddDate(0, 0, 3)}, []Row{row(2)})
	got, _ := l.Rows(ctx, s, all)
	var days []int
	for _, r := range got {
		days = append(days, int(r.Start.Sub(day0)/(24*time.Hour)))
	}
	if !reflect.DeepEqual(days, []int{0, 2, 3, 4}) {
		t.Errorf("days after replacing 1–2 with 2: %v", days)
	}
	if o, _ := l.Rows(ctx, other, all); len(o) != 1 {
		t.Errorf("another scope's rows: %d", len(o))
	}
}
