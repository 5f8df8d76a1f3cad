package gateway

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

func TestTransportsPerHostAndEviction(t *testing.T) {
	ts := newTransports(0, 0, nil)
	a, _ := url.Parse("https://a.example/v1/chat/completions")
	a2, _ := url.Parse("https://a.example/v1/embeddings")
	b, _ := url.Parse("https://b.example/v1")
	if ts.forURL(a, false) != ts.forURL(a2, false) || ts.forURL(a, false) == ts.forURL(b, false) {
		t.Fatal("one transport per host, shared across paths")
	}
	if ts.forURL(a, true) == ts.forURL(a, false) {
		t.Fatal("a tenant's URL shares the operator's transport for the same host")
	}
	delete(ts.byHost, hostKey{a.Scheme, a.Host, true})
	// Fill past the cap with hosts last used long ago: the next new host
	// evicts them, but not a recently used one.
	old := time.Now().Add(-2 * transportIdle).Unix()
	for i := len(ts.byHost); i < maxTransports; i++ {
		u, _ := url.Parse(fmt.Sprintf("https://h%d.example/", i))
		ts.forURL(u, false)
		ts.byHost[hostKey{"https", u.Host, false}].used.Store(old)
	}
	ts.forURL(a, false) // recent
	n, _ := url.Parse("https://new.example/")
	ts.forURL(n, false)
	if len(ts.byHost) != 3 {
		t.Fatalf("%d transports after eviction, want a.example, b.example and new.example", len(ts.byHost))
	}
	if allocs := testing.AllocsPerRun(100, func() { ts.forURL(a, false) }); allocs != 0 {
		t.Errorf("a lookup allocates %v times", allocs)
	}
}
