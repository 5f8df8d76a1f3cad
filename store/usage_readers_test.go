package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// adminCanary is a distinctive admin key: it must show up nowhere in the
// store file or a description.
const adminCanary = "sk-admin-ADM1NcanaryQz7Xw9PlmTq2VbN8rK3sJ5hD1fG6yU0eW4oI"

func TestUsageReadersSealedMaskedAndScoped(t *testing.T) {
	s, path := newStore(t)
	mustAccount(t, s, "acct")
	if _, err := s.PutUsageReader("nobody", "openai", adminCanary, "sk-admin-…oI"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reader of a missing account: %v", err)
	}
	r, err := s.PutUsageReader("acct", "openai", adminCanary, "sk-admin-…e4oI")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || r.Fingerprint != Fingerprint(adminCanary) || r.Masked != "sk-admin-…e4oI" {
		t.Fatalf("reader: %+v", r)
	}
	r2, err := s.PutUsageReader("acct", "openai", adminCanary+"2", "sk-admin-…oI2")
	if err != nil || r2.Version != 2 || !r2.CreatedAt.Equal(r.CreatedAt) {
		t.Fatalf("rotation: %+v %v", r2, err)
	}
	if _, err := s.PutUsageReader("", "anthropic", "sk-ant-admin01-PLATFORMcanary0123456789", "sk-ant-admin01-…6789"); err != nil {
		t.Fatal(err)
	}
	_, key, err := s.OpenUsageReader("acct", "openai")
	if err != nil || key != adminCanary+"2" {
		t.Fatalf("open: %v", err)
	}
	if _, key, err := s.OpenUsageReader("", "anthropic"); err != nil || !strings.HasPrefix(key, "sk-ant-admin01-PLATFORM") {
		t.Fatalf("open platform: %v", err)
	}
	all, err := s.AllUsageReaders()
	if err != nil || len(all) != 2 || all[0].AccountID != "" || all[1].AccountID != "acct" {
		t.Fatalf("all: %+v %v", all, err)
	}
	mine, err := s.UsageReaders("acct")
	if err != nil || len(mine) != 1 || mine["openai"].Version != 2 {
		t.Fatalf("account's: %+v %v", mine, err)
	}
	// Described and listed values never carry the key.
	for _, v := range []any{r, r2, all, mine} {
		b, _ := json.Marshal(v)
		if bytes.Contains(b, []byte("canary")) || strings.Contains(fmt.Sprintf("%+v %#v", v, v), "canary") {
			t.Fatalf("a description shows the key: %s", b)
		}
	}
	s.Close()
	for _, needle := range []string{"ADM1Ncanary", "PLATFORMcanary"} {
		if rawContains(t, path, needle) {
			t.Fatalf("the store file holds %s in plaintext", needle)
		}
	}
}

func TestUsageReaderSlotIsNotABYOKSlot(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acct")
	if _, err := s.PutCredential("acct", "openai", canaryKey, "sk-proj-…IxT3", Extras{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutUsageReader("acct", "openai", adminCanary, "m"); err != nil {
		t.Fatal(err)
	}
	// Swap the BYOK blob into the reader slot: it must not open there.
	err := s.update(func(tx kvTx) error {
		var byok sealedRecord
		if err := json.Unmarshal(tx.Bucket(bucketBYOK).Get([]byte("acct\x00openai")), &byok); err != nil {
			return err
		}
		var r readerRecord
		if err := json.Unmarshal(tx.Bucket(bucketUsageReaders).Get(readerID("acct", "openai")), &r); err != nil {
			return err
		}
		r.MasterKeyID, r.Nonce, r.Ciphertext = byok.MasterKeyID, byok.Nonce, byok.Ciphertext
		return putJSON(tx.Bucket(bucketUsageReaders), readerID("acct", "openai"), r)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := s.OpenUsageReader("acct", "openai")
	if err == nil || key != "" {
		t.Fatal("a BYOK blob opened as a usage reader")
	}
	if strings.Contains(err.Error(), "usage_reader") || strings.Contains(err.Error(), "\x00") {
		t.Fatalf("error shows the additional data: %q", err)
	}
}

func TestUsageReadersGoWithTheAccountAndResealOnRotation(t *testing.T) {
	p := dbPath(t)
	s := openStore(t, p, masterKey(1), Options{})
	mustAccount(t, s, "acct")
	mustAccount(t, s, "other")
	for _, a := range []string{"acct", "other"} {
		if _, err := s.PutUsageReader(a, "openai", adminCanary, "m"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.UpdateKeyNote("acct", "openai", "fp_1", func(n *KeyNote) error { n.ChosenKeyID = "key_1"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount("acct"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccount("acct", "again"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.OpenUsageReader("acct", "openai"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a re-created account inherits the old admin key: %v", err)
	}
	if notes, _ := s.KeyNotes("acct", "openai"); len(notes) != 0 {
		t.Fatalf("key notes survive the account: %+v", notes)
	}
	s.Close()
	// Rotate the master key: the reader is re-sealed at open, and opens
	// afterwards without the old key.
	s2 := openStore(t, p, masterKey(2), Options{OldMasterKeys: [][]byte{masterKey(1)}})
	s2.Close()
	s3 := openStore(t, p, masterKey(2), Options{})
	if _, key, err := s3.OpenUsageReader("other", "openai"); err != nil || key != adminCanary {
		t.Fatalf("after rotation: %v", err)
	}
	if err := s3.DeleteUsageReader("other", "openai"); err != nil {
		t.Fatal(err)
	}
	if err := s3.DeleteUsageReader("other", "openai"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestLedgerDaysReplaceAllOrNothing(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acct")
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	rows := func(tag string) []byte { return []byte(`[{"tag":"` + tag + `"}]`) }
	if err := s.ReplaceLedgerDays("acct", "openai", day(1), day(4), map[time.Time][]byte{day(1): rows("a1"), day(2): rows("a2"), day(3): rows("a3")}); err != nil {
		t.Fatal(err)
	}
	// A second run over days 2–3 that has nothing on day 3.
	if err := s.ReplaceLedgerDays("acct", "openai", day(2), day(4), map[time.Time][]byte{day(2): rows("b2")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.LedgerDays("acct", "openai", day(1), day(5))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0]) != string(rows("a1")) || string(got[1]) != string(rows("b2")) {
		t.Fatalf("ledger: %q", got)
	}
	// A day outside the window is refused, and nothing changes.
	if err := s.ReplaceLedgerDays("acct", "openai", day(1), day(2), map[time.Time][]byte{day(1): rows("x"), day(3): rows("x")}); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("a day outside the window: %v", err)
	}
	if err := s.ReplaceLedgerDays("acct", "openai", day(1), day(1), nil); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("an empty window: %v", err)
	}
	if again, _ := s.LedgerDays("acct", "openai", day(1), day(5)); len(again) != 2 || string(again[0]) != string(rows("a1")) {
		t.Fatalf("a refused write changed the ledger: %q", again)
	}
	// Other scopes are apart.
	if other, _ := s.LedgerDays("acct", "anthropic", day(1), day(5)); len(other) != 0 {
		t.Fatalf("another provider's ledger: %q", other)
	}
	// Pruning: days before the cutoff, and days of deleted accounts.
	if n, err := s.PruneLedger(day(2), 100); err != nil || n != 1 {
		t.Fatalf("prune: %d %v", n, err)
	}
	if err := s.DeleteAccount("acct"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneLedger(day(1), 100); err != nil || n != 1 {
		t.Fatalf("prune of a deleted account: %d %v", n, err)
	}
}

func TestKeyNotesRunsAndAcceptedProposals(t *testing.T) {
	s, _ := newStore(t)
	mustAccount(t, s, "acct")
	n, err := s.UpdateKeyNote("acct", "openai", "fp_a", func(n *KeyNote) error { n.Masked = "sk-proj-…abcd"; return nil })
	if err != nil || n.Masked != "sk-proj-…abcd" {
		t.Fatalf("note: %+v %v", n, err)
	}
	if _, err := s.UpdateKeyNote("acct", "openai", "fp_a", func(n *KeyNote) error { n.ChosenKeyID = "key_x"; return nil }); err != nil {
		t.Fatal(err)
	}
	notes, err := s.KeyNotes("acct", "openai")
	if err != nil || notes["fp_a"].ChosenKeyID != "key_x" || notes["fp_a"].Masked != "sk-proj-…abcd" {
		t.Fatalf("notes: %+v %v", notes, err)
	}
	// Emptied, the note goes.
	if _, err := s.UpdateKeyNote("acct", "openai", "fp_a", func(n *KeyNote) error { *n = KeyNote{}; return nil }); err != nil {
		t.Fatal(err)
	}
	if notes, _ := s.KeyNotes("acct", "openai"); len(notes) != 0 {
		t.Fatalf("an empty note stays: %+v", notes)
	}
	if err := s.PutReconcileRun("acct", "openai", []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutReconcileRun("", "openai", []byte(`{"ok":false}`)); err != nil {
		t.Fatal(err)
	}
	runs, err := s.ReconcileRuns("acct")
	if err != nil || string(runs["openai"]) != `{"ok":true}` || len(runs) != 1 {
		t.Fatalf("runs: %q %v", runs, err)
	}
	if err := s.PutAcceptedProposal("acct", "openai", "p1", []byte(`{"id":"p1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAcceptedProposal("acct", "openai", "p1", []byte(`{"id":"p1"}`)); !errors.Is(err, ErrExists) {
		t.Fatalf("accepted twice: %v", err)
	}
	if acc, err := s.AcceptedProposals("acct", "openai"); err != nil || len(acc) != 1 {
		t.Fatalf("accepted: %q %v", acc, err)
	}
}
