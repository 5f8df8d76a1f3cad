package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/store"
)

var (
	inviteSection = regexp.MustCompile(`(?s)<section class="card created".*?</section>`)
	linkToken     = regexp.MustCompile(`/console/setup#([A-Za-z0-9_-]+)`)
)

// An owner inviting an address learns nothing about it: an address used in
// another account, or with a password, gets the same answer as a new one,
// and blocks nothing there. The person accepts with their own password and
// then switches between the two accounts.
func TestInviteSameAnswerAndAccountSwitcher(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	f.user("acme", "owner@acme.test", store.RoleOwner)
	f.user("globex", "boss@globex.test", store.RoleOwner)
	c := f.signedIn("owner@acme.test")

	stKnown, known := c.post("/console/members", url.Values{"email": {"boss@globex.test"}, "role": {"member"}})
	stFresh, fresh := c.post("/console/members", url.Values{"email": {"new@acme.test"}, "role": {"member"}})
	norm := func(page, email string) string {
		s := inviteSection.FindString(page)
		s = linkToken.ReplaceAllString(s, "/console/setup#TOKEN")
		return strings.ReplaceAll(s, email, "EMAIL")
	}
	if stKnown != stFresh || norm(known, "boss@globex.test") != norm(fresh, "new@acme.test") || norm(known, "boss@globex.test") == "" {
		t.Fatalf("the answers differ:\n%d %s\n%d %s", stKnown, norm(known, "boss@globex.test"), stFresh, norm(fresh, "new@acme.test"))
	}
	if n := strings.Count(fresh, `data-status="invited"`); n != 2 {
		t.Fatalf("%d invited rows, want 2", n)
	}
	tok := linkToken.FindStringSubmatch(known)[1]

	// The link for globex's boss does not set a password: it checks it.
	a := f.client()
	_, page := a.get("/console/setup")
	pre := csrfField.FindStringSubmatch(page)[1]
	st, body := a.post("/console/setup", url.Values{"csrf": {pre}, "token": {tok}, "password": {"the inviter's guess"}, "password2": {"the inviter's guess"}})
	if st != http.StatusBadRequest || !strings.Contains(body, "already has a password") {
		t.Fatalf("the link with another password: %d", st)
	}
	if st, _ := f.client().signin("boss@globex.test", "the inviter's guess"); st != http.StatusUnauthorized {
		t.Fatalf("the link changed the password: %d", st)
	}
	st, body = a.post("/console/setup", url.Values{"csrf": {pre}, "token": {tok}, "password": {testPassword}, "password2": {testPassword}})
	if st != 200 || !strings.Contains(body, "Invitation accepted") {
		t.Fatalf("accepting: %d %s", st, body)
	}

	// One sign-in, two accounts: globex first (the oldest), then acme.
	b := f.signedIn("boss@globex.test")
	_, page = b.get("/console/keys")
	if !strings.Contains(page, `id="account-switcher"`) || !strings.Contains(page, `<option value="globex" selected>`) || !strings.Contains(page, `<option value="acme">`) {
		t.Fatalf("no switcher with both accounts:\n%s", page)
	}
	if st, body := b.post("/console/account", url.Values{"account": {"acme"}}); st != 200 || !strings.Contains(body, `<option value="acme" selected>`) {
		t.Fatalf("switching to acme: %d", st)
	}
	// In acme they are a member: owner-only changes are refused, and
	// acme's members are listed.
	if st, _ := b.post("/console/keys", url.Values{"name": {"x"}}); st != http.StatusForbidden {
		t.Fatalf("a member of acme creating a key: %d", st)
	}
	if _, page := b.get("/console/members"); !strings.Contains(page, "owner@acme.test") || !strings.Contains(page, "boss@globex.test (you)") {
		t.Fatalf("acme's members page:\n%s", page)
	}
	mustAccount(t, f, "initech")
	if st, _ := b.post("/console/account", url.Values{"account": {"initech"}}); st != http.StatusNotFound {
		t.Fatalf("switching to an account they are not in: %d", st)
	}
	if st, _ := b.post("/console/account", url.Values{"account": {"globex"}}); st != 200 {
		t.Fatalf("switching back: %d", st)
	}
	// The new person chooses a password with their link.
	tok = linkToken.FindStringSubmatch(fresh)[1]
	st, body = a.post("/console/setup", url.Values{"csrf": {pre}, "token": {tok}, "password": {testPassword}, "password2": {testPassword}})
	if st != 200 || !strings.Contains(body, "Your password is set") {
		t.Fatalf("the new person's link: %d", st)
	}
	f.signedIn("new@acme.test")
}

func mustAccount(t *testing.T, f *fixture, id string) {
	t.Helper()
	if _, err := f.s.CreateAccount(id, id); err != nil {
		t.Fatal(err)
	}
}
