package admin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// walk reads the list at path a page of limit at a time, following
// next_cursor, and returns every page's items; each answer must be the
// paged shape, {"items": [...]} with "next_cursor" on all but the last.
func (h *harness) walk(path string, limit int) (items []json.RawMessage, pages int) {
	h.t.Helper()
	cursor := ""
	for pages = 1; pages < 100; pages++ {
		q := url.Values{"limit": {fmt.Sprint(limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var raw map[string]json.RawMessage
		h.ok("GET", path+"?"+q.Encode(), "", http.StatusOK, &raw)
		var page []json.RawMessage
		if err := json.Unmarshal(raw["items"], &page); err != nil || raw["items"] == nil {
			h.t.Fatalf("GET %s: items %s: %v", path, raw["items"], err)
		}
		if len(page) > limit {
			h.t.Fatalf("GET %s?limit=%d: %d items", path, limit, len(page))
		}
		items = append(items, page...)
		next, more := raw["next_cursor"]
		if len(raw) != map[bool]int{false: 1, true: 2}[more] {
			h.t.Fatalf("GET %s: answer fields %v, want items and next_cursor only", path, keysOf(raw))
		}
		if !more {
			return items, pages
		}
		if err := json.Unmarshal(next, &cursor); err != nil || cursor == "" {
			h.t.Fatalf("GET %s: next_cursor %s", path, next)
		}
		if len(page) != limit {
			h.t.Fatalf("GET %s?limit=%d: a page of %d before the last", path, limit, len(page))
		}
	}
	h.t.Fatalf("GET %s: the list never ended", path)
	return nil, 0
}

func keysOf(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestListsPage: every admin list pages with limit and cursor — the pages,
// joined, are exactly the unpaged answer (a bare array, as before paging)
// in its order; a cursor of another list, a garbage cursor and a limit out
// of range are a 400 in Caddy's error shape; paging a missing account's
// list is its 404.
func TestListsPage(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"acme", "b1", "b2", "b3", "b4", "b5", "b6"} {
		h.createAccount(id)
	}
	for i := range 7 {
		h.ok("POST", "/agent_router/accounts/acme/keys", fmt.Sprintf(`{"name":"k%d"}`, i), http.StatusCreated, nil)
	}
	for i := range 5 {
		h.ok("POST", "/agent_router/accounts/acme/users", fmt.Sprintf(`{"email":"u%d@acme.test","role":"member"}`, i), http.StatusCreated, nil)
	}
	h.ok("PUT", "/agent_router/accounts/acme/byok/openai", keyBody(h.secret("sk-proj-"+randAlnum(t, 40))), http.StatusOK, nil)
	h.ok("PUT", "/agent_router/accounts/acme/byok/mistral", keyBody(h.secret(randAlnum(t, 32))), http.StatusOK, nil)

	lists := map[string]int{ // path → how many items it holds
		"/agent_router/accounts":            7,
		"/agent_router/accounts/acme/keys":  7,
		"/agent_router/accounts/acme/users": 5,
		"/agent_router/accounts/acme/byok":  len(providers.Names),
	}
	cursors := map[string]string{} // path → a cursor it issued
	for path, n := range lists {
		var whole []json.RawMessage
		h.ok("GET", path, "", http.StatusOK, &whole)
		if len(whole) != n {
			t.Fatalf("GET %s: %d items, want %d", path, len(whole), n)
		}
		for _, limit := range []int{1, 2, 3, n, 1000} {
			items, pages := h.walk(path, limit)
			if want := max(1, (n+limit-1)/limit); pages != want {
				t.Errorf("GET %s by %d: %d pages, want %d", path, limit, pages, want)
			}
			if !bytes.Equal(joinJSON(items), joinJSON(whole)) {
				t.Errorf("GET %s by %d: the pages joined are\n%s\nthe whole list is\n%s", path, limit, joinJSON(items), joinJSON(whole))
			}
		}
		// A cursor alone pages with the default size (100): all of it.
		var first struct {
			Items []json.RawMessage `json:"items"`
			Next  *string           `json:"next_cursor"`
		}
		h.ok("GET", path+"?cursor=", "", http.StatusOK, &first)
		if len(first.Items) != n || first.Next != nil {
			t.Errorf("GET %s?cursor=: %d items, next %v; want all %d, no next", path, len(first.Items), first.Next, n)
		}
		h.ok("GET", path+"?limit=2", "", http.StatusOK, &first)
		cursors[path] = *first.Next
	}
	for path := range lists {
		for other, c := range cursors {
			if other != path {
				h.fail("GET", path+"?cursor="+url.QueryEscape(c), "", http.StatusBadRequest, "cursor is not valid for this list")
			}
		}
		h.fail("GET", path+"?cursor=%25%25%25", "", http.StatusBadRequest, "cursor is not valid for this list")
		for _, l := range []string{"0", "-1", "1001", "ten"} {
			h.fail("GET", path+"?limit="+l, "", http.StatusBadRequest, "limit must be a number from 1 to 1000")
		}
	}
	// Another account's cursor of the same list is not refused, it is a
	// position: acme's keys cursor on b1 (no keys) is an empty last page.
	var other struct {
		Items []json.RawMessage `json:"items"`
		Next  *string           `json:"next_cursor"`
	}
	h.ok("GET", "/agent_router/accounts/b1/keys?cursor="+url.QueryEscape(cursors["/agent_router/accounts/acme/keys"]), "", http.StatusOK, &other)
	if len(other.Items) != 0 || other.Next != nil {
		t.Errorf("b1's keys after acme's cursor: %d items, next %v", len(other.Items), other.Next)
	}
	for _, sub := range []string{"keys", "users", "byok"} {
		h.fail("GET", "/agent_router/accounts/nope/"+sub+"?limit=2", "", http.StatusNotFound, "nope")
	}
}

func joinJSON(items []json.RawMessage) []byte {
	return []byte("[" + strings.Join(func() []string {
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = string(it)
		}
		return out
	}(), ",") + "]")
}
