package console

import (
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// walkPages reads the console list at path from its first page, following
// the "Next →" link (id next), and returns the rows' ids (attr) page by
// page.
func walkPages(t *testing.T, c *client, path, attr, next string) [][]string {
	t.Helper()
	row := regexp.MustCompile(attr + `="([^"]+)"`)
	link := regexp.MustCompile(`<a href="([^"]+)" id="` + next + `">`)
	var out [][]string
	for range 50 {
		st, body := c.get(path)
		if st != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, st, body)
		}
		var ids []string
		for _, m := range row.FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		out = append(out, ids)
		first := strings.Contains(body, `-first">← First page</a>`)
		if first != (len(out) > 1) {
			t.Errorf("GET %s (page %d): a First page link %v", path, len(out), first)
		}
		m := link.FindStringSubmatch(body)
		if m == nil {
			return out
		}
		path = html.UnescapeString(m[1])
	}
	t.Fatalf("%s: the pages never ended", path)
	return nil
}

// TestConsoleListsPage: the API Keys and Members pages show a page of rows
// with "Next →" and "← First page" links; the pages, joined, are the whole
// list in the store's order (oldest first); a bad page size, a garbage
// cursor and a cursor of the other list are a 400 page.
func TestConsoleListsPage(t *testing.T) {
	f := newFixture(t, nil)
	owner := f.user("acme", "owner@acme.test", store.RoleOwner)
	for range 7 {
		if _, _, err := f.s.CreateAPIKey("acme", "k"); err != nil {
			t.Fatal(err)
		}
	}
	for _, email := range []string{"m1@acme.test", "m2@acme.test", "m3@acme.test", "m4@acme.test"} {
		if _, err := f.s.CreateUser("acme", email, store.RoleMember); err != nil {
			t.Fatal(err)
		}
	}
	f.user("globex", "other@globex.test", store.RoleOwner) // never on acme's pages
	keys, err := f.s.APIKeys("acme")
	if err != nil {
		t.Fatal(err)
	}
	users, err := f.s.Users("acme")
	if err != nil {
		t.Fatal(err)
	}
	var wantKeys, wantUsers []string
	for _, k := range keys {
		wantKeys = append(wantKeys, k.ID)
	}
	for _, u := range users {
		wantUsers = append(wantUsers, u.ID)
	}
	if len(wantKeys) != 7 || len(wantUsers) != 5 || users[0].ID != owner.ID {
		t.Fatalf("fixture: %d keys, %d users", len(wantKeys), len(wantUsers))
	}
	c := f.signedIn("owner@acme.test")
	for _, l := range []struct {
		path, attr, next string
		want             []string
	}{
		{"/console/keys", "data-key", "keys-next", wantKeys},
		{"/console/members", "data-user", "members-next", wantUsers},
	} {
		for _, limit := range []string{"1", "2", "3", "1000"} {
			pages := walkPages(t, c, l.path+"?limit="+limit, l.attr, l.next)
			var joined []string
			for _, p := range pages {
				joined = append(joined, p...)
			}
			if strings.Join(joined, ",") != strings.Join(l.want, ",") {
				t.Errorf("%s by %s: pages %v, want %v", l.path, limit, pages, l.want)
			}
		}
		if pages := walkPages(t, c, l.path, l.attr, l.next); len(pages) != 1 || len(pages[0]) != len(l.want) {
			t.Errorf("%s: %v, want one page of all %d (100 by default)", l.path, pages, len(l.want))
		}
		for _, q := range []string{"limit=0", "limit=1001", "limit=x", "cursor=%25%25"} {
			if st, body := c.get(l.path + "?" + q); st != http.StatusBadRequest {
				t.Errorf("%s?%s: %d, want 400: %s", l.path, q, st, body)
			}
		}
	}
	// A cursor of the other list is refused.
	next := regexp.MustCompile(`<a href="([^"]+)" id="(keys|members)-next">`)
	_, kb := c.get("/console/keys?limit=2")
	_, mb := c.get("/console/members?limit=2")
	kc, mc := next.FindStringSubmatch(kb), next.FindStringSubmatch(mb)
	if kc == nil || mc == nil {
		t.Fatal("no Next links")
	}
	cursorOf := func(link string) string { return strings.SplitN(html.UnescapeString(link), "cursor=", 2)[1] }
	for path, cur := range map[string]string{"/console/keys": cursorOf(mc[1]), "/console/members": cursorOf(kc[1])} {
		st, body := c.get(path + "?cursor=" + cur)
		if st != http.StatusBadRequest || !strings.Contains(body, "cursor is not valid for this list") {
			t.Errorf("%s with the other list's cursor: %d %s", path, st, body)
		}
	}
}
