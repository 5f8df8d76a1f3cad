package console

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// The details of an id the playground did not just produce are read from
// what is written: asking for unknown ids never forces the log writer (a
// write transaction each), only the playground's own request may, once.
func TestPlaygroundResultOfUnknownIDsForcesNoWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	f.user("globex", "owner@globex.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")
	before := f.s.ForcedLogSyncs()
	for i := 0; i < 100; i++ {
		if st, _ := c.get(fmt.Sprintf("/console/playground/result/%016x", i)); st != http.StatusNotFound {
			t.Fatalf("unknown id: %d", st)
		}
	}
	if n := f.s.ForcedLogSyncs() - before; n != 0 {
		t.Fatalf("100 unknown ids forced %d log writes", n)
	}

	// The playground's own request: its details come, with one write at most.
	req, _ := http.NewRequest("POST", f.srv.URL+"/console/playground/stream", strings.NewReader(url.Values{"model": {"gpt-4o"}, "message": {"hello"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", c.csrf)
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Agent-Router-Request-Id")
	// Another account asking for it first neither sees it nor forces a write.
	g := f.signedIn("owner@globex.test")
	before = f.s.ForcedLogSyncs()
	if st, _ := g.get("/console/playground/result/" + id); st != http.StatusNotFound {
		t.Fatalf("globex reads acme's result: %d", st)
	}
	if st, frag := c.get("/console/playground/result/" + id); st != 200 || !strings.Contains(frag, `id="r-provider"`) {
		t.Fatalf("the playground's result: %d %s", st, frag)
	}
	for i := 0; i < 10; i++ {
		c.get("/console/playground/result/" + id)
	}
	if n := f.s.ForcedLogSyncs() - before; n > 1 {
		t.Fatalf("the playground's own result forced %d log writes, at most 1", n)
	}
}
