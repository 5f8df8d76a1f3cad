package ops

import (
	"encoding/base64"
	"sort"
	"time"
)

// MaxPageSize bounds Page.Limit.
const MaxPageSize = 1000

// Page asks for one page of a list: at most Limit items after the cursor
// After (a List's Next). The zero Page is the whole list, as the lists
// answer today.
//
// The lists are paged over the store's sorted answers (accounts by id,
// keys and users oldest first): the cursor names the last item shown, so a
// page starts right after it even when that item was deleted meanwhile,
// and no item shows twice (one created meanwhile shows on a later page
// when it sorts after the cursor, as new keys and users always do). The
// store still reads the whole list for each page; a paged store read can
// replace that under the same Page and List.
type Page struct {
	Limit int
	After string
}

// List is one page of a list: the items, and the cursor of the next page
// ("" after the last).
type List[T any] struct {
	Items []T
	Next  string
}

func (p Page) check() error {
	if p.Limit < 0 || p.Limit > MaxPageSize {
		return errorf(Invalid, "limit must be a number from 1 to %d", MaxPageSize)
	}
	return nil
}

// page cuts p out of items, which are sorted by pos (ascending, distinct).
func page[T any](items []T, p Page, pos func(T) string) (List[T], error) {
	if err := p.check(); err != nil {
		return List[T]{}, err
	}
	start := 0
	if p.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(p.After)
		if err != nil {
			return List[T]{}, errorf(Invalid, "bad page cursor")
		}
		after := string(b)
		start = sort.Search(len(items), func(i int) bool { return pos(items[i]) > after })
	}
	items = items[start:]
	if p.Limit == 0 || len(items) <= p.Limit {
		return List[T]{Items: items}, nil
	}
	items = items[:p.Limit]
	return List[T]{Items: items, Next: base64.RawURLEncoding.EncodeToString([]byte(pos(items[len(items)-1])))}, nil
}

// createdPos orders by creation time, then id: the store's order of keys
// and users.
func createdPos(t time.Time, id string) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000000") + "\x00" + id
}
