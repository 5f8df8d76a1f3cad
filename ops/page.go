package ops

import (
	"encoding/base64"
	"slices"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// Page sizes.
const (
	// DefaultPageSize is a page's size when a paged call gives no limit.
	DefaultPageSize = store.DefaultPageLimit
	// MaxPageSize bounds Page.Limit.
	MaxPageSize = store.MaxPageLimit
)

// Page asks for one page of a list: at most Limit items (DefaultPageSize
// when 0) after Cursor (the Next of the page before; "" for the first
// page). The zero Page is the whole list, as the lists answered before they
// paged (the admin API's unpaged answer).
//
// Accounts, API keys and members are paged by the store, which reads only
// the page (store.AccountsPage, APIKeysPage, UsersPage): a cursor names the
// position of the last item shown, so a page starts right after it even
// when that item was deleted meanwhile, and no item shows twice. Cursors
// are opaque and tagged with their list: a cursor of one list is refused
// by another (Invalid, store.ErrInvalidCursor).
type Page struct {
	Limit  int
	Cursor string
}

// List is one page of a list: the items, and the cursor of the next page
// ("" after the last). Its JSON is the admin API's paged answer.
type List[T any] struct {
	Items []T `json:"items"`
	// Next is the cursor of the next page; absent on the last page.
	Next string `json:"next_cursor,omitempty"`
}

// whole reports whether p asks for the whole list.
func (p Page) whole() bool { return p.Limit == 0 && p.Cursor == "" }

// request is p as the store's page request.
func (p Page) request() (store.PageRequest, error) {
	if p.Limit < 0 || p.Limit > MaxPageSize {
		return store.PageRequest{}, errorf(Invalid, "limit must be a number from 1 to %d", MaxPageSize)
	}
	if p.Limit == 0 {
		p.Limit = DefaultPageSize
	}
	return store.PageRequest{Limit: p.Limit, Cursor: p.Cursor}, nil
}

// paged answers p: the whole list from all, else a page from one.
func paged[T any](p Page, all func() ([]T, error), one func(store.PageRequest) (store.Page[T], error)) (List[T], error) {
	if p.whole() {
		items, err := all()
		return List[T]{Items: items}, err
	}
	req, err := p.request()
	if err != nil {
		return List[T]{}, err
	}
	pg, err := one(req)
	return List[T]{Items: pg.Items, Next: pg.Next}, err
}

// slotCursor is the cursor tag of the BYOK slots, one per provider in
// providers.Names order and at most len(providers.Names) of them, paged in
// memory. It differs from the store's tags, so no cursor of another list
// passes for one of these.
const slotCursor = 'p'

// pageSlots cuts p out of the providers, in providers.Names order.
func pageSlots(p Page) (names []string, next string, err error) {
	if p.whole() {
		return providers.Names, "", nil
	}
	req, err := p.request()
	if err != nil {
		return nil, "", err
	}
	start := 0
	if p.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		i := -1
		if err == nil && len(b) > 1 && b[0] == slotCursor {
			i = slices.Index(providers.Names, string(b[1:]))
		}
		if i < 0 {
			return nil, "", &Error{Kind: Invalid, Err: store.ErrInvalidCursor}
		}
		start = i + 1
	}
	end := min(len(providers.Names), start+req.Limit)
	names = providers.Names[start:end]
	if end < len(providers.Names) {
		next = base64.RawURLEncoding.EncodeToString(append([]byte{slotCursor}, names[len(names)-1]...))
	}
	return names, next, nil
}
