package admin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store"
)

func TestUsersAPI(t *testing.T) {
	h := newHarness(t)
	h.createAccount("acme")
	h.createAccount("globex")

	var u struct {
		ID        string    `json:"id"`
		Email     string    `json:"email"`
		Role      string    `json:"role"`
		SetupPath string    `json:"setup_path"`
		Expires   time.Time `json:"setup_expires_at"`
	}
	h.ok("POST", "/agent_router/accounts/acme/users", `{"email":"Owner@Acme.test","role":"owner"}`, 201, &u)
	if u.Email != "owner@acme.test" || u.Role != "owner" || !strings.HasPrefix(u.SetupPath, "/console/setup#") || u.Expires.Before(time.Now().Add(71*time.Hour)) {
		t.Fatalf("created user %+v", u)
	}
	tok := h.apiKey(strings.TrimPrefix(u.SetupPath, "/console/setup#"))
	// The token is shown once, here, and only its hash is stored (the
	// harness checks the file); the setup page redeems it.
	if _, err := h.s.RedeemSetupToken(tok, "a long enough password"); err != nil {
		t.Fatal(err)
	}

	h.fail("POST", "/agent_router/accounts/acme/users", `{"email":"owner@acme.test","role":"owner"}`, 409, "already exists")
	h.fail("POST", "/agent_router/accounts/acme/users", `{"email":"nope","role":"owner"}`, 400, "email address is not valid")
	h.fail("POST", "/agent_router/accounts/acme/users", `{"email":"x@acme.test","role":"root"}`, 400, "role must be owner or member")
	h.fail("POST", "/agent_router/accounts/acme/users", `{"role":"owner"}`, 400, "email is required")
	h.fail("POST", "/agent_router/accounts/nope/users", `{"email":"y@acme.test"}`, 404, "not found")

	var m struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	}
	h.ok("POST", "/agent_router/accounts/acme/users", `{"email":"dev@acme.test"}`, 201, &m)
	if m.Role != store.RoleMember {
		t.Fatalf("default role %q", m.Role)
	}
	var list []store.User
	h.ok("GET", "/agent_router/accounts/acme/users", "", 200, &list)
	if len(list) != 2 {
		t.Fatalf("users %+v", list)
	}
	var reset struct {
		SetupPath string `json:"setup_path"`
	}
	h.ok("POST", "/agent_router/accounts/acme/users/"+m.ID+"/setup", "", 200, &reset)
	h.apiKey(strings.TrimPrefix(reset.SetupPath, "/console/setup#"))
	// Another account's user id is not found there.
	h.fail("DELETE", "/agent_router/accounts/globex/users/"+m.ID, "", 404, "not found")
	h.fail("DELETE", "/agent_router/accounts/acme/users/"+u.ID, "", 409, "at least one owner")
	h.ok("DELETE", "/agent_router/accounts/acme/users/"+m.ID, "", 204, nil)
	h.fail("GET", "/agent_router/accounts/acme/users/"+m.ID, "", 405)

	// An address in use in another account is invited like a new one (the
	// same answer), and its link accepts with the person's own password.
	type invited struct {
		Status      string `json:"status"`
		HasPassword bool   `json:"has_password"`
		Role        string `json:"role"`
		SetupPath   string `json:"setup_path"`
	}
	var known, fresh invited
	h.ok("POST", "/agent_router/accounts/globex/users", `{"email":"owner@acme.test","role":"owner"}`, 201, &known)
	h.ok("POST", "/agent_router/accounts/globex/users", `{"email":"new@globex.test","role":"owner"}`, 201, &fresh)
	if known.Status != store.StatusInvited || known.Status != fresh.Status || known.HasPassword != fresh.HasPassword || known.Role != fresh.Role {
		t.Fatalf("answers differ: %+v / %+v", known, fresh)
	}
	ktok := h.apiKey(strings.TrimPrefix(known.SetupPath, "/console/setup#"))
	if _, err := h.s.RedeemSetupToken(ktok, "the inviter's guess!"); err == nil {
		t.Fatal("the link set the password of a person who has one")
	}
	if g, err := h.s.RedeemSetupToken(ktok, "a long enough password"); err != nil || g.AccountID != "globex" || g.Status != store.StatusActive {
		t.Fatalf("accepting with the person's password: %+v %v", g, err)
	}
}
