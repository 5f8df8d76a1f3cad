package console

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// Paged lists (API keys, members): a page of ops.DefaultPageSize rows, or
// ?limit= rows (1 to ops.MaxPageSize), after ?cursor=, with links to the
// first page and the next one, as the Request Logs page has. The BYOK page
// is not paged: it shows one card per provider, eight.

// firstPage is a list's first page, for the pages a form re-renders.
var firstPage = ops.Page{Limit: ops.DefaultPageSize}

// pager is a paged list's links.
type pager struct {
	// First: this is the first page (no "First page" link).
	First bool
	// FirstURL and Next are the links to the first page and the next one
	// (Next is empty on the last page).
	FirstURL, Next template.URL
}

// listPage reads a list's limit and cursor from the query; a bad limit is a
// message for a 400 page (a bad cursor is the operation's to refuse).
func listPage(q url.Values) (ops.Page, string) {
	p := ops.Page{Limit: ops.DefaultPageSize, Cursor: q.Get("cursor")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > ops.MaxPageSize {
			return p, fmt.Sprintf("The page size must be a number from 1 to %d.", ops.MaxPageSize)
		}
		p.Limit = n
	}
	return p, ""
}

// links makes the pager of the page p of the list at path, next the cursor
// of the page after it ("" on the last). A limit given in the query stays
// in the links.
func links(path string, q url.Values, p ops.Page, next string) pager {
	keep := url.Values{}
	if q.Get("limit") != "" {
		keep.Set("limit", strconv.Itoa(p.Limit))
	}
	pg := pager{First: p.Cursor == "", FirstURL: template.URL(Prefix + path)}
	if len(keep) > 0 {
		pg.FirstURL += template.URL("?" + keep.Encode())
	}
	if next != "" {
		keep.Set("cursor", next)
		pg.Next = template.URL(Prefix + path + "?" + keep.Encode())
	}
	return pg
}
