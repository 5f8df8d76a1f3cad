package store

import (
	"errors"
	"testing"
	"time"
)

func TestAPIKeyProfiles(t *testing.T) {
	s, path := newStore(t)
	mustAccount(t, s, "acme")
	mustAccount(t, s, "other")
	plain, bound, err := s.CreateAPIKeyWithProfile("acme", "team key", "team")
	if err != nil {
		t.Fatal(err)
	}
	if bound.Profile != "team" {
		t.Errorf("created key profile %q", bound.Profile)
	}
	_, unbound, err := s.CreateAPIKey("acme", "plain")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"with space", "-lead", "x/y", string(make([]byte, 65))} {
		if _, _, err := s.CreateAPIKeyWithProfile("acme", "k", bad); !errors.Is(err, ErrInvalidProfile) {
			t.Errorf("profile %q: %v", bad, err)
		}
	}

	// The snapshot carries the profile, by hash and by id.
	e, ok := s.Snapshot().LookupKey(HashAPIKey(plain))
	if !ok || e.Profile != "team" || e.KeyID != bound.ID {
		t.Fatalf("snapshot entry %+v", e)
	}
	if e2, ok := s.Snapshot().KeyByID(bound.ID); !ok || e2 != e {
		t.Errorf("KeyByID: %v %v", e2, ok)
	}
	if _, ok := s.Snapshot().KeyByID("key_nonesuch"); ok {
		t.Error("KeyByID found an unknown id")
	}
	if !s.Snapshot().HasAccount("acme") || s.Snapshot().HasAccount("nobody") {
		t.Error("HasAccount")
	}

	// Rebind and unbind; listings say so.
	if k, err := s.SetAPIKeyProfile("acme", unbound.ID, "ops"); err != nil || k.Profile != "ops" || k.Name != "plain" {
		t.Fatalf("SetAPIKeyProfile: %+v %v", k, err)
	}
	if _, err := s.SetAPIKeyProfile("acme", bound.ID, ""); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Snapshot().LookupKey(HashAPIKey(plain)); e.Profile != "" {
		t.Errorf("unbound key still has profile %q in the snapshot", e.Profile)
	}
	keys, err := s.APIKeys("acme")
	if err != nil || len(keys) != 2 {
		t.Fatalf("APIKeys: %v %v", keys, err)
	}
	got := map[string]string{keys[0].ID: keys[0].Profile, keys[1].ID: keys[1].Profile}
	if got[bound.ID] != "" || got[unbound.ID] != "ops" {
		t.Errorf("listed profiles %v", got)
	}

	// Another account's key is not found, and not changed.
	if _, err := s.SetAPIKeyProfile("other", unbound.ID, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("other account: %v", err)
	}
	if _, err := s.SetAPIKeyProfile("acme", "key_nonesuch", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown key: %v", err)
	}

	// Persisted across a reopen.
	s.Close()
	s = openStore(t, path, masterKey(1), Options{})
	if e, _ := s.Snapshot().KeyByID(unbound.ID); e == nil || e.Profile != "ops" {
		t.Errorf("after reopen: %+v", e)
	}
}

func TestLogSourceFilter(t *testing.T) {
	s, _ := newStore(t)
	base := time.Now().UTC()
	for i, src := range []string{"", "console", "", "console", "other"} {
		s.Record(&LogRecord{ID: reqID(i), Time: base.Add(time.Duration(i) * time.Millisecond),
			AccountID: "acme", Source: src, Status: 200})
	}
	s.FlushLog()
	for src, want := range map[string]int{"": 5, "api": 2, "console": 2, "other": 1, "nonesuch": 0} {
		recs, _, err := s.Logs(LogFilter{Source: src})
		if err != nil || len(recs) != want {
			t.Errorf("source %q: %d records (%v), want %d", src, len(recs), err, want)
		}
		for _, r := range recs {
			if src == "api" && r.Source != "" || src != "" && src != "api" && r.Source != src {
				t.Errorf("source %q matched a record of source %q", src, r.Source)
			}
		}
	}
}
