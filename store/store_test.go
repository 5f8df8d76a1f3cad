package store

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestAccounts(t *testing.T) {
	clk := setClock(t, time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	s, path := newStore(t)

	a, err := s.CreateAccount("zeta", "Zeta Corp")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "zeta" || a.Name != "Zeta Corp" || !a.CreatedAt.Equal(clk.Now()) {
		t.Errorf("CreateAccount = %+v", a)
	}
	clk.Advance(time.Minute)
	mustAccount(t, s, "alpha")
	mustAccount(t, s, "mid.dle_1-x")

	if _, err := s.CreateAccount("zeta", "again"); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate CreateAccount: %v, want ErrExists", err)
	}
	got, err := s.Account("zeta")
	if err != nil || got.Name != "Zeta Corp" || !got.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("Account(zeta) = %+v, %v; the duplicate must not overwrite it", got, err)
	}
	if _, err := s.Account("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Account(nobody): %v, want ErrNotFound", err)
	}

	list, err := s.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	if ids := accountIDs(list); ids != "alpha,mid.dle_1-x,zeta" {
		t.Errorf("Accounts() = %s, want ordered by id", ids)
	}

	if err := s.DeleteAccount("alpha"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount("alpha"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteAccount: %v, want ErrNotFound", err)
	}
	if _, err := s.Account("alpha"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Account after delete: %v, want ErrNotFound", err)
	}

	// Persisted.
	s.Close()
	s2 := openStore(t, path, masterKey(1), Options{})
	list, _ = s2.Accounts()
	if ids := accountIDs(list); ids != "mid.dle_1-x,zeta" {
		t.Errorf("Accounts() after reopen = %s", ids)
	}
}

func accountIDs(list []Account) string {
	var ids []string
	for _, a := range list {
		ids = append(ids, a.ID)
	}
	return strings.Join(ids, ",")
}

func TestAccountIDValidation(t *testing.T) {
	s, _ := newStore(t)
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"7", true},
		{"acct_1.x-y", true},
		{"ACME", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"-abc", false},
		{"_abc", false},
		{".abc", false},
		{"a b", false},
		{"a/b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"ünïcode", false},
		{"a:b", false},
	} {
		err := ValidateAccountID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateAccountID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		_, err = s.CreateAccount(tc.id, "n")
		if (err == nil) != tc.ok {
			t.Errorf("CreateAccount(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	clk := setClock(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s, path := newStore(t)
	mustAccount(t, s, "acctA")
	mustAccount(t, s, "acctB")

	if _, _, err := s.CreateAPIKey("nobody", "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("CreateAPIKey for a missing account: %v, want ErrNotFound", err)
	}

	seen := map[string]bool{}
	var plains []string
	var keys []APIKey
	for i := 0; i < 3; i++ {
		clk.Advance(time.Second)
		plain, k, err := s.CreateAPIKey("acctA", fmt.Sprintf("key %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(plain, APIKeyPrefix) {
			t.Fatalf("key %q does not start with %q", plain, APIKeyPrefix)
		}
		body := strings.TrimPrefix(plain, APIKeyPrefix)
		raw, err := base64.RawURLEncoding.DecodeString(body)
		if len(body) != 43 || err != nil || len(raw) != 32 {
			t.Fatalf("key body %q: %d chars, decodes to %d bytes (%v); want 43 base64url chars of 256 bits", body, len(body), len(raw), err)
		}
		if seen[plain] || seen[k.ID] {
			t.Fatal("a key or key id repeated")
		}
		seen[plain], seen[k.ID] = true, true
		if k.AccountID != "acctA" || k.Name != fmt.Sprintf("key %d", i) || k.Prefix != plain[:9] || !k.CreatedAt.Equal(clk.Now()) || k.LastUsedAt != nil {
			t.Errorf("CreateAPIKey description = %+v", k)
		}
		// Usable as soon as CreateAPIKey returns.
		e, ok := s.Snapshot().LookupKey(HashAPIKey(plain))
		if !ok || e.KeyID != k.ID || e.AccountID != "acctA" {
			t.Fatalf("LookupKey right after CreateAPIKey = %+v, %v", e, ok)
		}
		plains, keys = append(plains, plain), append(keys, k)
	}
	plainB, keyB, err := s.CreateAPIKey("acctB", "b")
	if err != nil {
		t.Fatal(err)
	}

	if _, ok := s.Snapshot().LookupKey(HashAPIKey(plains[0] + "x")); ok {
		t.Error("a wrong key authenticated")
	}
	if _, ok := s.Snapshot().LookupKey(HashAPIKey(strings.TrimPrefix(plains[0], APIKeyPrefix))); ok {
		t.Error("a key without its prefix authenticated")
	}

	list, err := s.APIKeys("acctA")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != keys[0].ID || list[1].ID != keys[1].ID || list[2].ID != keys[2].ID {
		t.Fatalf("APIKeys(acctA) = %+v, want the three keys oldest first", list)
	}
	if _, err := s.APIKeys("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("APIKeys(nobody): %v, want ErrNotFound", err)
	}
	js, _ := json.Marshal(list)
	for _, p := range plains {
		if strings.Contains(string(js), p[9:]) {
			t.Fatal("APIKeys output contains a key beyond its display prefix")
		}
	}

	// Revocation: another account's id is not found, and changes nothing.
	if err := s.RevokeAPIKey("acctB", keys[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking acctA's key as acctB: %v, want ErrNotFound", err)
	}
	if _, ok := s.Snapshot().LookupKey(HashAPIKey(plains[0])); !ok {
		t.Fatal("a failed cross-account revoke removed the key")
	}
	if err := s.RevokeAPIKey("acctA", "key_doesnotexist"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking an unknown id: %v, want ErrNotFound", err)
	}
	snapBefore := s.Snapshot()
	if err := s.RevokeAPIKey("acctA", keys[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Snapshot().LookupKey(HashAPIKey(plains[0])); ok {
		t.Fatal("revoked key still authenticates")
	}
	if _, ok := snapBefore.LookupKey(HashAPIKey(plains[0])); !ok {
		t.Error("a snapshot taken before the revoke changed (snapshots must be immutable)")
	}
	for _, p := range append(plains[1:], plainB) {
		if _, ok := s.Snapshot().LookupKey(HashAPIKey(p)); !ok {
			t.Error("revoking one key removed another")
		}
	}
	if err := s.RevokeAPIKey("acctA", keys[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke: %v, want ErrNotFound", err)
	}
	if list, _ := s.APIKeys("acctA"); len(list) != 2 {
		t.Errorf("APIKeys after revoke lists %d keys, want 2", len(list))
	}

	s.Close()
	// Only hashes are stored: no key's secret part is in the file.
	for _, p := range append(plains, plainB) {
		if rawContains(t, path, p) || rawContains(t, path, p[9:]) {
			t.Fatal("an API key is stored in plaintext")
		}
	}
	s2 := openStore(t, path, masterKey(1), Options{})
	if _, ok := s2.Snapshot().LookupKey(HashAPIKey(plains[0])); ok {
		t.Error("revoked key authenticates after reopen")
	}
	if e, ok := s2.Snapshot().LookupKey(HashAPIKey(plainB)); !ok || e.KeyID != keyB.ID || e.AccountID != "acctB" {
		t.Errorf("key lost across reopen: %+v %v", e, ok)
	}
}

func TestDeleteAccountCascades(t *testing.T) {
	s, path := newStore(t)
	mustAccount(t, s, "acctA")
	mustAccount(t, s, "acctA2") // shares a prefix with acctA: must survive
	mustAccount(t, s, "acctB")
	plainA, _, _ := s.CreateAPIKey("acctA", "a")
	plainA2, _, _ := s.CreateAPIKey("acctA2", "a2")
	plainB, _, _ := s.CreateAPIKey("acctB", "b")
	for _, acct := range []string{"acctA", "acctA2", "acctB"} {
		for _, prov := range []string{"openai", "mistral"} {
			if _, err := s.PutCredential(acct, prov, "key-"+acct+"-"+prov+"-0123456789", "m", Extras{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.PutCredential("acctA", "openai", "key-acctA-openai-rotated", "m", Extras{}); err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteAccount("acctA"); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		sn := s.Snapshot()
		if _, ok := sn.LookupKey(HashAPIKey(plainA)); ok {
			t.Error("deleted account's key still authenticates")
		}
		for _, prov := range []string{"openai", "mistral"} {
			if sn.Credential("acctA", prov) != nil {
				t.Errorf("deleted account still has a %s credential", prov)
			}
			for _, acct := range []string{"acctA2", "acctB"} {
				if c := sn.Credential(acct, prov); c == nil || c.Key() != "key-"+acct+"-"+prov+"-0123456789" {
					t.Errorf("%s lost its %s credential", acct, prov)
				}
			}
		}
		for _, p := range []string{plainA2, plainB} {
			if _, ok := sn.LookupKey(HashAPIKey(p)); !ok {
				t.Error("another account's key was deleted")
			}
		}
		if _, err := s.APIKeys("acctA"); !errors.Is(err, ErrNotFound) {
			t.Errorf("APIKeys(deleted): %v", err)
		}
		if _, err := s.Credentials("acctA"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Credentials(deleted): %v", err)
		}
		for _, acct := range []string{"acctA2", "acctB"} {
			if keys, _ := s.APIKeys(acct); len(keys) != 1 {
				t.Errorf("%s has %d keys, want 1", acct, len(keys))
			}
			if creds, _ := s.Credentials(acct); len(creds) != 2 {
				t.Errorf("%s has %d credentials, want 2", acct, len(creds))
			}
		}
	}
	check(s)
	s.Close()
	s2 := openStore(t, path, masterKey(1), Options{})
	check(s2)

	// A new account under the same id starts empty, and its credential
	// versions continue past the deleted account's (a version never names two
	// different keys).
	mustAccount(t, s2, "acctA")
	if keys, _ := s2.APIKeys("acctA"); len(keys) != 0 {
		t.Errorf("recreated account inherited %d keys", len(keys))
	}
	if creds, _ := s2.Credentials("acctA"); len(creds) != 0 {
		t.Errorf("recreated account inherited %d credentials", len(creds))
	}
	c, err := s2.PutCredential("acctA", "openai", "key-new-owner-0123456789", "m", Extras{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Version <= 2 {
		t.Errorf("credential version after delete and recreate = %d, want > 2", c.Version)
	}
}

func TestCredentials(t *testing.T) {
	clk := setClock(t, time.Date(2030, 5, 1, 0, 0, 0, 0, time.UTC))
	s, path := newStore(t)
	mustAccount(t, s, "acctA")
	mustAccount(t, s, "acctB")

	if _, err := s.PutCredential("nobody", "openai", canaryKey, "m", Extras{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("PutCredential for a missing account: %v, want ErrNotFound", err)
	} else if strings.Contains(err.Error(), canaryFragment) {
		t.Errorf("error leaks the key: %v", err)
	}
	if s.Snapshot().Credential("acctA", "openai") != nil {
		t.Fatal("credential present before any Put")
	}

	extras := Extras{BaseURL: "https://eu.api.openai.com/v1", Organization: "org-1", Project: "proj-1"}
	c1, err := s.PutCredential("acctA", "openai", canaryKey, "sk-proj-…BkFJ", extras)
	if err != nil {
		t.Fatal(err)
	}
	created := clk.Now()
	if c1.Version != 1 || c1.Masked != "sk-proj-…BkFJ" || c1.Fingerprint != Fingerprint(canaryKey) || c1.Extras != extras ||
		!c1.CreatedAt.Equal(created) || !c1.UpdatedAt.Equal(created) || c1.LastUsedAt != nil || c1.AccountID != "acctA" || c1.Provider != "openai" {
		t.Errorf("PutCredential = %+v", c1)
	}
	if !strings.HasPrefix(c1.Fingerprint, "fp_") || len(c1.Fingerprint) != 15 || strings.Contains(canaryKey, c1.Fingerprint[3:]) {
		t.Errorf("fingerprint %q: want fp_ and 12 hex digits not taken from the key", c1.Fingerprint)
	}
	sec := s.Snapshot().Credential("acctA", "openai")
	if sec == nil || sec.Key() != canaryKey || sec.Version != 1 || sec.Extras != extras || sec.Fingerprint != c1.Fingerprint {
		t.Fatalf("Snapshot().Credential after Put = %v", sec)
	}
	if s.Snapshot().Credential("acctB", "openai") != nil || s.Snapshot().Credential("acctA", "mistral") != nil {
		t.Fatal("a credential is visible for another account or provider")
	}

	// Rotation: new key and version, visible at once; the old snapshot keeps
	// the old key (in-flight requests finish with the key they started with).
	old := s.Snapshot()
	clk.Advance(time.Hour)
	rotated := canaryKey[:len(canaryKey)-4] + "ROT2"
	c2, err := s.PutCredential("acctA", "openai", rotated, "sk-proj-…ROT2", Extras{})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Version != 2 || !c2.CreatedAt.Equal(created) || !c2.UpdatedAt.Equal(clk.Now()) || c2.Fingerprint == c1.Fingerprint || c2.Extras != (Extras{}) {
		t.Errorf("rotated credential = %+v", c2)
	}
	if sec := s.Snapshot().Credential("acctA", "openai"); sec == nil || sec.Key() != rotated || sec.Version != 2 {
		t.Fatalf("snapshot after rotation = %v", sec)
	}
	if sec := old.Credential("acctA", "openai"); sec.Key() != canaryKey || sec.Version != 1 {
		t.Error("an earlier snapshot changed under rotation")
	}

	if _, err := s.PutCredential("acctA", "mistral", "mistralkey0123456789abcdefghijkl", "…ijkl", Extras{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCredential("acctB", "openai", "sk-acctB-0123456789abcdef", "sk-…cdef", Extras{}); err != nil {
		t.Fatal(err)
	}
	creds, err := s.Credentials("acctA")
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2 || creds["openai"].Version != 2 || creds["openai"].Masked != "sk-proj-…ROT2" || creds["mistral"].Version != 1 {
		t.Errorf("Credentials(acctA) = %+v", creds)
	}
	js, _ := json.Marshal(creds)
	if strings.Contains(string(js), canaryFragment) || strings.Contains(string(js), "mistralkey0123") || strings.Contains(string(js), "ciphertext") {
		t.Fatalf("Credentials JSON carries secret material: %s", js)
	}
	if _, err := s.Credentials("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Credentials(nobody): %v", err)
	}

	// Delete reverts to no credential; versions never repeat afterwards.
	if err := s.DeleteCredential("acctA", "openai"); err != nil {
		t.Fatal(err)
	}
	if s.Snapshot().Credential("acctA", "openai") != nil {
		t.Fatal("deleted credential still in the snapshot")
	}
	if s.Snapshot().Credential("acctA", "mistral") == nil || s.Snapshot().Credential("acctB", "openai") == nil {
		t.Fatal("deleting one credential removed another")
	}
	if err := s.DeleteCredential("acctA", "openai"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteCredential: %v, want ErrNotFound", err)
	}
	if err := s.DeleteCredential("nobody", "openai"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteCredential(nobody): %v, want ErrNotFound", err)
	}
	c3, err := s.PutCredential("acctA", "openai", canaryKey, "m", Extras{})
	if err != nil {
		t.Fatal(err)
	}
	if c3.Version != 3 {
		t.Errorf("version after delete and put = %d, want 3", c3.Version)
	}
	if !c3.CreatedAt.Equal(clk.Now()) {
		t.Errorf("a credential put after delete keeps the old CreatedAt %v", c3.CreatedAt)
	}

	s.Close()
	// The masked form ("sk-proj-…ROT2") is stored in the clear by design, and
	// bbolt does not zero freed pages, so its last four characters may linger;
	// the key itself — any run longer than the masked suffix — must not.
	if rawContains(t, path, canaryFragment) || rawContains(t, path, "mistralkey0123") || rawContains(t, path, rotated[len(rotated)-12:]) {
		t.Fatal("a provider key is in the store file in plaintext")
	}
	s2 := openStore(t, path, masterKey(1), Options{})
	if sec := s2.Snapshot().Credential("acctA", "openai"); sec == nil || sec.Key() != canaryKey || sec.Version != 3 {
		t.Fatalf("after reopen: %v", sec)
	}
	c4, _ := s2.PutCredential("acctA", "openai", rotated, "m", Extras{})
	if c4.Version != 4 {
		t.Errorf("version after reopen = %d, want 4", c4.Version)
	}
}

// A Secret must not print or encode its key, however it is formatted, by
// pointer or by value.
func TestSecretRedaction(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acctA")
	if _, err := s.PutCredential("acctA", "openai", canaryKey, "m", Extras{Organization: "org-1"}); err != nil {
		t.Fatal(err)
	}
	sec := s.Snapshot().Credential("acctA", "openai")
	if sec.Key() != canaryKey {
		t.Fatal("Key() does not return the key")
	}
	type wrapper struct {
		Name   string
		Secret *Secret
		Value  Secret
	}
	w := wrapper{"w", sec, *sec}
	outs := map[string]string{
		"String":            sec.String(),
		"GoString":          sec.GoString(),
		"%v ptr":            fmt.Sprintf("%v", sec),
		"%+v ptr":           fmt.Sprintf("%+v", sec),
		"%#v ptr":           fmt.Sprintf("%#v", sec),
		"%s ptr":            fmt.Sprintf("%s", sec),
		"%q ptr":            fmt.Sprintf("%q", sec),
		"%v value":          fmt.Sprintf("%v", *sec),
		"%+v value":         fmt.Sprintf("%+v", *sec),
		"%#v value":         fmt.Sprintf("%#v", *sec),
		"%v slice":          fmt.Sprintf("%v", []*Secret{sec}),
		"%+v struct":        fmt.Sprintf("%+v", w),
		"%#v struct":        fmt.Sprintf("%#v", w),
		"%+v snapshot":      fmt.Sprintf("%+v", *s.Snapshot()),
		"%#v snapshot":      fmt.Sprintf("%#v", s.Snapshot()),
		"Sprint":            fmt.Sprint(sec, *sec),
		"Errorf %v wrapped": fmt.Errorf("using %v: %w", sec, errors.New("boom")).Error(),
	}
	for name, v := range []any{sec, *sec, w} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs[fmt.Sprintf("json %d", name)] = string(b)
	}
	for name, out := range outs {
		if strings.Contains(out, canaryFragment) || strings.Contains(out, canaryKey[len(canaryKey)-12:]) {
			t.Errorf("%s leaks the key: %s", name, out)
		}
	}
	if !strings.Contains(sec.String(), sec.Fingerprint) || !strings.Contains(sec.String(), "acctA/openai") || !strings.Contains(sec.String(), "v1") {
		t.Errorf("String() = %q, want account/provider, version and fingerprint", sec.String())
	}
}

// Readers racing many rotations always see a key and version that belong
// together, and versions never go backwards.
func TestConcurrentRotationConsistency(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acctA")
	keyFor := func(v uint64) string { return fmt.Sprintf("sk-rotation-%08d-abcdefghijklmnop", v) }
	if _, err := s.PutCredential("acctA", "openai", keyFor(1), "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	const rotations = 60
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	var reads atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for !stop.Load() {
				sec := s.Snapshot().Credential("acctA", "openai")
				if sec == nil {
					errs <- errors.New("credential vanished during rotation")
					return
				}
				n, err := strconv.ParseUint(strings.Split(sec.Key(), "-")[2], 10, 64)
				if err != nil || n != sec.Version {
					errs <- fmt.Errorf("snapshot paired key of v%d with version %d", n, sec.Version)
					return
				}
				if sec.Version < last {
					errs <- fmt.Errorf("version went back from %d to %d", last, sec.Version)
					return
				}
				if sec.Fingerprint != Fingerprint(sec.Key()) {
					errs <- fmt.Errorf("v%d: fingerprint does not match the key", sec.Version)
					return
				}
				last = sec.Version
				reads.Add(1)
			}
		}()
	}
	for i := 0; i < rotations; i++ {
		want := uint64(i + 2)
		c, err := s.PutCredential("acctA", "openai", keyFor(want), "m", Extras{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Version != want {
			t.Fatalf("rotation %d got version %d, want %d", i, c.Version, want)
		}
		if sec := s.Snapshot().Credential("acctA", "openai"); sec.Version != want || sec.Key() != keyFor(want) {
			t.Fatalf("right after Put: snapshot has v%d, want v%d", sec.Version, want)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if reads.Load() == 0 {
		t.Error("readers never ran")
	}
}

func TestLastUsed(t *testing.T) {
	s, path := newStore(t)
	mustAccount(t, s, "acctA")
	plain, k, _ := s.CreateAPIKey("acctA", "k")
	_, unused, _ := s.CreateAPIKey("acctA", "unused")
	if _, err := s.PutCredential("acctA", "openai", canaryKey, "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCredential("acctA", "mistral", "mistralkey0123456789abcdefghijkl", "m", Extras{}); err != nil {
		t.Fatal(err)
	}

	t1 := time.Date(2030, 6, 1, 12, 0, 0, 123456789, time.UTC)
	t2 := t1.Add(90 * time.Second)
	e, _ := s.Snapshot().LookupKey(HashAPIKey(plain))
	e.Touch(t2.UnixNano())
	e.Touch(t1.UnixNano()) // an older touch never moves the clock back
	s.Snapshot().Credential("acctA", "openai").Touch(t1.UnixNano())

	checkUsed := func(s *Store, when string, credUsed time.Time) {
		t.Helper()
		keys, _ := s.APIKeys("acctA")
		byID := map[string]APIKey{}
		for _, a := range keys {
			byID[a.ID] = a
		}
		if lu := byID[k.ID].LastUsedAt; lu == nil || !lu.Equal(t2) {
			t.Errorf("%s: key last_used_at = %v, want %v", when, lu, t2)
		}
		if lu := byID[unused.ID].LastUsedAt; lu != nil {
			t.Errorf("%s: unused key has last_used_at %v", when, lu)
		}
		creds, _ := s.Credentials("acctA")
		if lu := creds["openai"].LastUsedAt; lu == nil || !lu.Equal(credUsed) {
			t.Errorf("%s: credential last_used_at = %v, want %v", when, lu, credUsed)
		}
		if lu := creds["mistral"].LastUsedAt; lu != nil {
			t.Errorf("%s: unused credential has last_used_at %v", when, lu)
		}
		js, _ := json.Marshal(keys)
		if !strings.Contains(string(js), `"last_used_at":"2030-06-01T12:01:30.123456789Z"`) || !strings.Contains(string(js), `"last_used_at":null`) {
			t.Errorf("%s: APIKeys JSON = %s", when, js)
		}
	}
	checkUsed(s, "before close", t1)

	// A rotation keeps the slot's clock; the new snapshot's entry moves it.
	if _, err := s.PutCredential("acctA", "openai", canaryKey+"2", "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	checkUsed(s, "after rotation", t1)
	s.Snapshot().Credential("acctA", "openai").Touch(t2.UnixNano())
	checkUsed(s, "after touching the rotated credential", t2)

	s.Close()
	s2 := openStore(t, path, masterKey(1), Options{})
	checkUsed(s2, "after reopen", t2)

	// FlushLog persists clocks too (no Close needed).
	t3 := t2.Add(time.Hour)
	e2, _ := s2.Snapshot().LookupKey(HashAPIKey(plain))
	e2.Touch(t3.UnixNano())
	s2.FlushLog()
	if got := persistedClock(t, s2, keyClockID(k.ID)); got != t3.UnixNano() {
		t.Errorf("after FlushLog the stored clock is %d, want %d", got, t3.UnixNano())
	}
}

func persistedClock(t *testing.T, s *Store, id string) int64 {
	t.Helper()
	var v int64
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketLastUsed.name).Get([]byte(id)); len(b) == 8 {
			v = int64(binary.BigEndian.Uint64(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestWrongMasterKeyRefusedWithoutCredentials(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ar.db")
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	s, err := Open(path, k1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(path, k2, Options{}); !errors.Is(err, ErrWrongMasterKey) || !strings.Contains(err.Error(), KeyID(k1)) {
		t.Fatalf("opening with another master key: %v", err)
	}
	// With the old key listed, it opens and moves to the new key.
	s, err = Open(path, k2, Options{OldMasterKeys: [][]byte{k1}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(path, k2, Options{}); err != nil {
		t.Fatalf("after rotation the new key alone should open: %v", err)
	}
	s.Close()
}

func TestDeletedCredentialDoesNotInheritLastUsed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "ar.db"), bytes.Repeat([]byte{1}, 32), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateAccount("acme", ""); err != nil {
		t.Fatal(err)
	}
	key := "sk-proj-" + strings.Repeat("a", 40)
	if _, err := s.PutCredential("acme", "openai", key, "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	s.Snapshot().Credential("acme", "openai").Touch(time.Now().UnixNano())
	s.FlushLog()
	if err := s.DeleteCredential("acme", "openai"); err != nil {
		t.Fatal(err)
	}
	c, err := s.PutCredential("acme", "openai", key, "m", Extras{})
	if err != nil {
		t.Fatal(err)
	}
	if c.LastUsedAt != nil {
		t.Fatalf("a re-created credential inherited last_used_at %v", c.LastUsedAt)
	}
	_, k, _ := s.CreateAPIKey("acme", "k")
	_ = k
	if err := s.DeleteAccount("acme"); err != nil {
		t.Fatal(err)
	}
	s.clocks.mu.Lock()
	n := len(s.clocks.byID)
	s.clocks.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d clocks survive the account's deletion", n)
	}
}

// TestMarkInvalidPersistsOncePerMinute: a rejected key that keeps being
// tried is marked in memory every time, but written at most once a minute.
func TestMarkInvalidPersistsOncePerMinute(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ar.db")
	key := bytes.Repeat([]byte{3}, 32)
	s, err := Open(path, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.CreateAccount("acme", "")
	s.PutCredential("acme", "openai", "sk-proj-"+strings.Repeat("h", 40), "m", Extras{})
	c := s.Snapshot().Credential("acme", "openai")
	first := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	s.MarkInvalid(c, first, "openai answered 401 (auth)")
	time.Sleep(100 * time.Millisecond) // the first mark is written in the background
	s.MarkInvalid(c, first.Add(10*time.Second), "openai answered 401 (auth)")
	if since, _, invalid := c.Invalid(); !invalid || !since.Equal(first.Add(10*time.Second).UTC()) {
		t.Fatalf("in memory: %v %v", since, invalid)
	}
	time.Sleep(100 * time.Millisecond)
	s.Close()
	s, err = Open(path, key, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	since, reason, invalid := s.CredentialHealth("acme", "openai")
	if !invalid || !since.Equal(first.UTC()) || reason != "openai answered 401 (auth)" {
		t.Fatalf("persisted: %v %q %v (want the first mark, %v)", since, reason, invalid, first.UTC())
	}
}

// TestHealthMarksPersistInOrder: marks made on many goroutines, in any
// order, leave the store holding the last state: a key that recovered never
// reloads as invalid, one that was last rejected never reloads as healthy.
func TestHealthMarksPersistInOrder(t *testing.T) {
	for _, endInvalid := range []bool{false, true} {
		path := dbPath(t)
		s, err := Open(path, masterKey(2), Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustAccount(t, s, "acme")
		if _, err := s.PutCredential("acme", "openai", canaryKey, "m", Extras{}); err != nil {
			t.Fatal(err)
		}
		c := s.Snapshot().Credential("acme", "openai")
		at := time.Now().Add(-time.Hour)
		for i := 0; i < 200; i++ {
			// Each mark an hour after the previous one, so every
			// invalid mark is persisted (not rate-limited).
			s.MarkInvalid(c, at.Add(time.Duration(i)*time.Hour), "openai answered 401 (auth)")
			s.MarkValid(c)
		}
		if endInvalid {
			s.MarkInvalid(c, at.Add(500*time.Hour), "openai answered 403 (auth)")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, path, masterKey(2), Options{})
		_, reason, invalid := s.CredentialHealth("acme", "openai")
		if invalid != endInvalid || (endInvalid && reason != "openai answered 403 (auth)") {
			t.Errorf("after %d marks ending invalid=%v, reloaded invalid=%v reason %q", 401, endInvalid, invalid, reason)
		}
	}
}

// TestHealthMarkOfRotatedKeyIsDropped: a rejection that arrives for a key
// version already rotated away does not persist over the new version.
func TestHealthMarkOfRotatedKeyIsDropped(t *testing.T) {
	s, path := newStore(t)
	mustAccount(t, s, "acme")
	s.PutCredential("acme", "openai", canaryKey, "m", Extras{})
	old := s.Snapshot().Credential("acme", "openai")
	s.PutCredential("acme", "openai", canaryKey+"2", "m2", Extras{})
	s.MarkInvalid(old, time.Now(), "openai answered 401 (auth)")
	s.Close()
	s = openStore(t, path, masterKey(1), Options{})
	if _, _, invalid := s.CredentialHealth("acme", "openai"); invalid {
		t.Error("the rotated-away key's rejection marked the new key invalid")
	}
}

// TestPersistClocksAfterForget: a clock the persister read before its
// credential was deleted is not written back after the deletion.
func TestPersistClocksAfterForget(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acme")
	s.PutCredential("acme", "openai", canaryKey, "m", Extras{})
	s.Snapshot().Credential("acme", "openai").Touch(time.Now().UnixNano())
	id := credClockID("acme", "openai")

	// A write transaction that, once released, forgets the clock (as
	// DeleteCredential does); it holds bbolt's writer lock until then.
	release, forgotten := make(chan struct{}), make(chan error, 1)
	started := make(chan struct{})
	go func() {
		forgotten <- s.db.Update(func(tx *bolt.Tx) error {
			close(started)
			<-release
			return s.forgetClocks(boltTx{tx: tx}, id)
		})
	}()
	<-started
	// The persister reads the dirty clock now, then waits for the lock.
	persisted := make(chan struct{})
	go func() { s.persistClocks(); close(persisted) }()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if err := <-forgotten; err != nil {
		t.Fatal(err)
	}
	<-persisted
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketLastUsed.name).Get([]byte(id)); v != nil {
			t.Errorf("the deleted credential's clock was written back")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestClaimProbe: a healthy key always goes; a rejected one goes once per
// interval after its last rejection, and of many concurrent callers after
// the interval exactly one wins.
func TestClaimProbe(t *testing.T) {
	s, err := Open(dbPath(t), masterKey(4), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustAccount(t, s, "acme")
	if _, err := s.PutCredential("acme", "openai", canaryKey, "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	c := s.Snapshot().Credential("acme", "openai")
	t0 := time.Now()
	const every = time.Minute
	if !c.ClaimProbe(t0, every) || !c.ClaimProbe(t0, every) {
		t.Fatal("a healthy key was held back")
	}
	s.MarkInvalid(c, t0, "openai answered 401 (auth)")
	for _, d := range []time.Duration{0, time.Second, every - time.Nanosecond} {
		if c.ClaimProbe(t0.Add(d), every) {
			t.Fatalf("probe allowed %v after the rejection", d)
		}
	}
	var wg sync.WaitGroup
	var won atomic.Int32
	for range 64 {
		wg.Go(func() {
			if c.ClaimProbe(t0.Add(every), every) {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d concurrent probes won, want 1", won.Load())
	}
	// The next probe waits a full interval after the last one.
	if c.ClaimProbe(t0.Add(every+every/2), every) || !c.ClaimProbe(t0.Add(2*every), every) {
		t.Fatal("the second probe is not one interval after the first")
	}
	// A new rejection restarts the wait; a success lets everything through.
	s.MarkInvalid(c, t0.Add(3*every), "openai answered 401 (auth)")
	if c.ClaimProbe(t0.Add(3*every+time.Second), every) {
		t.Fatal("probe allowed right after a new rejection")
	}
	s.MarkValid(c)
	if !c.ClaimProbe(t0.Add(3*every+time.Second), every) {
		t.Fatal("a key that worked again was held back")
	}
}
