package ops_test

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
	"github.com/agentrouter/caddy-agentrouter/store/storetest"
)

// pages walks a list a page of limit at a time and returns every page's
// items, joined by "|" between pages.
func pages[T any](t *testing.T, limit int, list func(ops.Page) (ops.List[T], error), name func(T) string) string {
	t.Helper()
	var out []string
	p := ops.Page{Limit: limit}
	for range 100 {
		l, err := list(p)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, it := range l.Items {
			names = append(names, name(it))
		}
		out = append(out, strings.Join(names, ","))
		if l.Next == "" {
			return strings.Join(out, "|")
		}
		p.Cursor = l.Next
	}
	t.Fatal("the list never ended")
	return ""
}

// TestListPages: the lists come a page at a time in the store's order
// (accounts by id, keys and users oldest first; BYOK slots in provider
// order), every item once; a page starts after the last item shown even
// when that item is gone; the zero Page is the whole list; bad limits,
// bad cursors and a cursor of another list are Invalid.
func TestListPages(t *testing.T) {
	t.Parallel()
	s := storetest.Open(t)
	o := &ops.Ops{Store: s}
	for _, id := range []string{"e", "a", "d", "c", "b"} {
		if _, err := o.CreateAccount(id, ""); err != nil {
			t.Fatal(err)
		}
	}
	acct := func(a store.Account) string { return a.ID }
	if got := pages(t, 2, o.Accounts, acct); got != "a,b|c,d|e" {
		t.Errorf("accounts by 2: %s", got)
	}
	if got := pages(t, 5, o.Accounts, acct); got != "a,b,c,d,e" {
		t.Errorf("accounts by 5: %s", got)
	}
	if got := pages(t, 0, o.Accounts, acct); got != "a,b,c,d,e" {
		t.Errorf("all accounts: %s", got)
	}
	// The item a cursor names is deleted before the next page: the page
	// starts after where it stood.
	first, _ := o.Accounts(ops.Page{Limit: 2})
	if err := o.DeleteAccount("b"); err != nil {
		t.Fatal(err)
	}
	if next, _ := o.Accounts(ops.Page{Limit: 2, Cursor: first.Next}); len(next.Items) != 2 || next.Items[0].ID != "c" {
		t.Errorf("after a deleted cursor: %+v", next)
	}

	for i := range 5 {
		if _, err := o.CreateKey("a", "k"+strconv.Itoa(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, email := range []string{"u0@a.test", "u1@a.test", "u2@a.test"} {
		if _, err := o.InviteUser("a", email, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Keys and users: the pages, joined, are the store's list (oldest
	// first; ties by id).
	keys := func(p ops.Page) (ops.List[store.APIKey], error) { return o.Keys("a", p) }
	keyName := func(k store.APIKey) string { return k.Name }
	all := pages(t, 0, keys, keyName)
	if got := pages(t, 2, keys, keyName); strings.Count(got, "|") != 2 || strings.ReplaceAll(got, "|", ",") != all || strings.Count(all, "k") != 5 {
		t.Errorf("keys by 2: %s, all: %s", got, all)
	}
	users := func(p ops.Page) (ops.List[store.User], error) { return o.Users("a", p) }
	email := func(u store.User) string { return u.Email + "/" + u.Role }
	all = pages(t, 0, users, email)
	if got := pages(t, 2, users, email); strings.Count(got, "|") != 1 || strings.ReplaceAll(got, "|", ",") != all || strings.Count(all, "/member") != 3 {
		t.Errorf("users by 2: %s, all: %s", got, all)
	}

	slots := func(p ops.Page) (ops.List[ops.BYOKStatus], error) { return o.BYOKList("a", p) }
	provider := func(st ops.BYOKStatus) string { return st.Provider }
	all = pages(t, 0, slots, provider)
	if got := pages(t, 3, slots, provider); strings.ReplaceAll(got, "|", ",") != all || all != strings.Join(providers.Names, ",") {
		t.Errorf("BYOK slots by 3: %s, all: %s", got, all)
	}

	keyPage, _ := o.Keys("a", ops.Page{Limit: 2})
	slotPage, _ := o.BYOKList("a", ops.Page{Limit: 2})
	userPage, _ := o.Users("a", ops.Page{Limit: 2})
	bad := []ops.Page{{Limit: -1}, {Limit: ops.MaxPageSize + 1}, {Limit: 2, Cursor: "%%%"},
		{Cursor: keyPage.Next}, {Cursor: slotPage.Next}, {Cursor: userPage.Next}}
	for _, p := range bad {
		if _, err := o.Accounts(p); ops.KindOf(err) != ops.Invalid {
			t.Errorf("accounts page %+v: %v, want an Invalid error", p, err)
		}
	}
	for _, c := range []string{first.Next, keyPage.Next, userPage.Next, "%%%"} {
		if _, err := o.BYOKList("a", ops.Page{Cursor: c}); ops.KindOf(err) != ops.Invalid || !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("BYOK page with cursor %q: %v, want the invalid cursor", c, err)
		}
		if _, err := o.Keys("a", ops.Page{Cursor: c}); c != keyPage.Next && ops.KindOf(err) != ops.Invalid {
			t.Errorf("keys page with cursor %q: %v, want an Invalid error", c, err)
		}
	}
}

// TestKindOf: an operation's refusal keeps its kind; the store's sentinels
// map to theirs, wrapped or not; anything else is Internal.
func TestKindOf(t *testing.T) {
	t.Parallel()
	s := storetest.Open(t)
	o := &ops.Ops{Store: s}
	_, err := o.CreateAccount("", "")
	if ops.KindOf(err) != ops.Invalid || !strings.Contains(err.Error(), "account id is required") {
		t.Errorf("no id: %v", err)
	}
	o.CreateAccount("acme", "")
	if _, err := o.CreateAccount("acme", ""); ops.KindOf(err) != ops.Conflict {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := o.Account("nope"); ops.KindOf(err) != ops.NotFound {
		t.Errorf("missing: %v", err)
	}
	if _, err := o.BYOK("acme", "openia"); ops.KindOf(err) != ops.NotFound || !strings.Contains(err.Error(), "unknown provider") {
		t.Errorf("unknown provider: %v", err)
	}
	if _, err := o.TestBYOK(t.Context(), "acme", "openai", ops.TestInput{}); ops.KindOf(err) != ops.Unavailable {
		t.Errorf("no gateway: %v", err)
	}
	for err, want := range map[error]ops.Kind{
		fmt.Errorf("x: %w", store.ErrInvalidInput): ops.Invalid,
		fmt.Errorf("x: %w", store.ErrLastOwner):    ops.Conflict,
		fmt.Errorf("x: %w", store.ErrUnavailable):  ops.Unavailable,
		fmt.Errorf("x: %w", store.ErrInvalidQuery): ops.Invalid,
		errors.New("disk on fire"):                 ops.Internal,
	} {
		if got := ops.KindOf(err); got != want {
			t.Errorf("KindOf(%v) = %v, want %v", err, got, want)
		}
	}
}

// TestNoHTTPNoCaddy: the operations speak neither HTTP nor Caddy (the
// doors do); a regression here is a handler creeping into ops.
func TestNoHTTPNoCaddy(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("*.go")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "net/http") || strings.HasPrefix(p, "github.com/caddyserver/") ||
				strings.HasSuffix(p, "/admin") || strings.HasSuffix(p, "/console") || strings.HasSuffix(p, "/caddymodule") {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
	if n < 5 {
		t.Fatalf("read %d files", n)
	}
}
