package pricing

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func newRegistry(t *testing.T) *Registry {
	t.Helper()
	r := NewRegistry()
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r.now = func() time.Time { clock = clock.Add(time.Minute); return clock }
	if _, _, err := r.Publish(Default()); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistryVersions(t *testing.T) {
	r := newRegistry(t)
	v1 := r.Current()
	if v1.Seq != 1 || !strings.HasPrefix(v1.ID, "1-") || v1.ID[2:] != v1.Hash()[:12] || v1.Parent != "" {
		t.Fatalf("first version %+v", v1)
	}
	// Publishing the same prices (differently typed) is not a new version.
	same := Default()
	i, _ := same.find("openai", "gpt-4o")
	same.Models[i].Standard.Input = "2.5000"
	if v, changed, err := r.Publish(same); err != nil || changed || v != v1 {
		t.Fatalf("same prices: %v %v %v", v.ID, changed, err)
	}
	eff, err := Apply(Default(), []Override{{Model: "gpt-4o", Standard: PriceSet{Input: "2.25"}, Batch: &PriceSet{Output: "4.5"}}})
	if err != nil {
		t.Fatal(err)
	}
	v2, changed, err := r.Publish(eff)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	if v2.Seq != 2 || v2.Parent != v1.ID || !v2.Created.After(v1.Created) || r.Current() != v2 {
		t.Errorf("second version %+v", v2)
	}
	want := []Change{
		{Provider: "openai", Model: "gpt-4o", Field: "standard.input", Old: "2.5", New: "2.25"},
		{Provider: "openai", Model: "gpt-4o", Field: "batch.output", Old: "5", New: "4.5"},
	}
	if len(v2.Changes) != len(want) {
		t.Fatalf("changes %+v", v2.Changes)
	}
	for i := range want {
		if v2.Changes[i] != want[i] {
			t.Errorf("change %d = %+v, want %+v", i, v2.Changes[i], want[i])
		}
	}
	if got, ok := r.Get(v1.ID); !ok || got != v1 {
		t.Error("the first version is gone")
	}
	if n := len(r.Versions()); n != 2 {
		t.Errorf("%d versions", n)
	}
	// A bad table changes nothing.
	bad := Default()
	bad.Models[0].Standard.Input = "-1"
	if _, _, err := r.Publish(bad); err == nil || r.Current() != v2 {
		t.Error("a bad table was published")
	}
}

// TestPriceChangeMidStream: a request is priced with the version it
// started under, even when the book changes before its usage arrives.
func TestPriceChangeMidStream(t *testing.T) {
	r := newRegistry(t)
	started := r.Current() // the gateway takes this when the request starts
	eff, _ := Apply(Default(), []Override{{Model: "claude-haiku-4-5", Standard: PriceSet{Output: "6"}}})
	if _, _, err := r.Publish(eff); err != nil {
		t.Fatal(err)
	}
	u := Usage{Output: 1000000} // usage arrives at the end of the stream
	start := time.Now()
	old := started.Cost("anthropic", "claude-haiku-4-5", u, nil, start)
	cur := r.Current().Cost("anthropic", "claude-haiku-4-5", u, nil, start)
	if old.USD() != "5" || old.Version != started.ID {
		t.Errorf("started under %s: %s under %s", started.ID, old.USD(), old.Version)
	}
	if cur.USD() != "6" || cur.Version == started.ID {
		t.Errorf("new requests: %s under %s", cur.USD(), cur.Version)
	}
}

func TestRegistryRecordsRoundTrip(t *testing.T) {
	r := newRegistry(t)
	eff, _ := Apply(Default(), []Override{{Provider: "azure", Model: "dep", Standard: PriceSet{Input: "3", Output: "12"}}})
	if _, _, err := r.Publish(eff); err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for _, v := range r.Versions() {
		recs = append(recs, v.Record())
	}
	data, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	var back []Record
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	r2 := NewRegistry()
	if err := r2.Restore(back); err != nil {
		t.Fatal(err)
	}
	if r2.Current().ID != r.Current().ID || len(r2.Versions()) != 2 {
		t.Fatalf("restored %s, want %s", r2.Current().ID, r.Current().ID)
	}
	if c := r2.Current().Cost("azure", "dep", Usage{Input: 1000000}, nil, time.Time{}); c.USD() != "3" {
		t.Errorf("restored book prices dep at %s", c.USD())
	}
	if err := r2.Restore(back); err == nil {
		t.Error("restore into a registry with versions")
	}
	// A stored table altered after the fact does not match its hash.
	var tampered []Record
	_ = json.Unmarshal(data, &tampered)
	tampered[1].Table.Models[0].Standard.Input = "1.01"
	if err := NewRegistry().Restore(tampered); err == nil || !strings.Contains(err.Error(), "does not match its hash") {
		t.Errorf("tampered record: %v", err)
	}
	// Out of order.
	if err := NewRegistry().Restore([]Record{back[1], back[0]}); err == nil {
		t.Error("out-of-order records restored")
	}
}

func TestDiffRows(t *testing.T) {
	a := MustCompile(Default()).Table()
	b := a.Clone()
	b.Models = b.Models[1:]
	b.Models = append(b.Models, Row{Provider: "azure", Model: "x", Standard: PriceSet{Input: "1"}})
	d := Diff(a, b)
	if len(d) != 2 || d[0].Field != "row" || d[0].New != "added" || d[1].Old != "removed" || d[1].Model != a.Models[0].Model {
		t.Errorf("diff %+v", d)
	}
}

// TestFollow: a registry follows versions another publisher stored, in
// order; an out-of-order or altered record changes nothing.
func TestFollow(t *testing.T) {
	src := newRegistry(t)
	eff, err := Apply(Default(), []Override{{Model: "gpt-4o", Standard: PriceSet{Input: "2.25"}}})
	if err != nil {
		t.Fatal(err)
	}
	v2, _, err := src.Publish(eff)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := src.Get(v2.Parent)
	next, changed, err := NextVersion(v2, Default(), time.Now())
	if err != nil || !changed || next.Seq != 3 || next.Parent != v2.ID {
		t.Fatalf("NextVersion: %+v %v %v", next, changed, err)
	}
	if same, changed, _ := NextVersion(v2, eff, time.Now()); changed || same != v2 {
		t.Fatal("NextVersion with the same prices is a new version")
	}
	if src.Current() != v2 {
		t.Fatal("NextVersion changed the registry")
	}

	dst := NewRegistry()
	if _, err := dst.Follow(v2.Record()); err != nil {
		t.Fatalf("an empty registry takes any first version: %v", err)
	}
	dst = NewRegistry()
	for _, v := range []*Version{v1, v2, v2} { // the repeat is a no-op
		if _, err := dst.Follow(v.Record()); err != nil {
			t.Fatal(err)
		}
	}
	if dst.Current().ID != v2.ID || len(dst.Versions()) != 2 {
		t.Fatalf("current %s, %d versions", dst.Current().ID, len(dst.Versions()))
	}
	sibling, _ := Apply(Default(), []Override{{Model: "gpt-4o", Standard: PriceSet{Input: "2.75"}}})
	other, _, _ := NextVersion(v1, sibling, time.Now()) // a sibling of v2 (not its child)
	if _, err := dst.Follow(other.Record()); err == nil {
		t.Error("a version that does not follow the current one was taken")
	}
	bad := next.Record()
	bad.Table.Models[0].Standard.Input = "9"
	if _, err := dst.Follow(bad); err == nil || dst.Current().ID != v2.ID {
		t.Errorf("an altered record was taken: %v", err)
	}
	if v, err := dst.Follow(next.Record()); err != nil || dst.Current() != v {
		t.Fatal(err)
	}
}
