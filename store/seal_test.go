package store

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestSealerRoundTripAndBinding(t *testing.T) {
	sl, err := newSealer(masterKey(1))
	if err != nil {
		t.Fatal(err)
	}
	kid, nonce, ct, err := sl.seal("acctA", "openai", []byte(canaryKey))
	if err != nil {
		t.Fatal(err)
	}
	if kid != KeyID(masterKey(1)) {
		t.Errorf("seal kid = %q, want KeyID of the current key %q", kid, KeyID(masterKey(1)))
	}
	if len(nonce) != 12 {
		t.Errorf("nonce is %d bytes, want GCM's 12", len(nonce))
	}
	if bytes.Contains(ct, []byte(canaryFragment)) {
		t.Fatal("ciphertext contains the plaintext")
	}
	pt, err := sl.open(kid, "acctA", "openai", nonce, ct)
	if err != nil || string(pt) != canaryKey {
		t.Fatalf("open = %q, %v; want the sealed key", pt, err)
	}

	// Two seals of the same key differ (fresh nonce), so equal keys are not
	// visible as equal ciphertexts.
	_, nonce2, ct2, _ := sl.seal("acctA", "openai", []byte(canaryKey))
	if bytes.Equal(nonce, nonce2) || bytes.Equal(ct, ct2) {
		t.Error("two seals of the same plaintext produced the same nonce or ciphertext")
	}

	other, _ := newSealer(masterKey(2))
	for _, tc := range []struct {
		name              string
		sl                *sealer
		kid, acct, prov   string
		nonce, ciphertext []byte
	}{
		{"other account", sl, kid, "acctB", "openai", nonce, ct},
		{"other provider", sl, kid, "acctA", "mistral", nonce, ct},
		{"account/provider boundary", sl, kid, "acct", "Aopenai", nonce, ct},
		{"tampered ciphertext", sl, kid, "acctA", "openai", nonce, flipLast(ct)},
		{"tampered nonce", sl, kid, "acctA", "openai", flipLast(nonce), ct},
		{"unknown key id", other, kid, "acctA", "openai", nonce, ct},
		{"other key, same id claimed", other, KeyID(masterKey(2)), "acctA", "openai", nonce, ct},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := tc.sl.open(tc.kid, tc.acct, tc.prov, tc.nonce, tc.ciphertext)
			if err == nil {
				t.Fatalf("open succeeded (%q), want an error", pt)
			}
			if strings.Contains(err.Error(), canaryFragment) {
				t.Fatalf("error leaks the key: %v", err)
			}
		})
	}
}

func flipLast(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[len(c)-1] ^= 1
	return c
}

func TestNewSealerRejectsBadKeySizes(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := newSealer(make([]byte, n)); err == nil {
			t.Errorf("newSealer with a %d-byte key succeeded", n)
		}
		if _, err := newSealer(masterKey(1), make([]byte, n)); err == nil {
			t.Errorf("newSealer with a %d-byte old key succeeded", n)
		}
	}
	if _, err := Open(dbPath(t), make([]byte, 16), Options{}); err == nil {
		t.Error("Open with a 16-byte master key succeeded")
	}
}

func TestKeyID(t *testing.T) {
	a, b := KeyID(masterKey(1)), KeyID(masterKey(2))
	if a == b {
		t.Fatal("different keys share a key id")
	}
	if a != KeyID(masterKey(1)) {
		t.Fatal("KeyID is not deterministic")
	}
	if len(a) != 16 {
		t.Errorf("KeyID = %q, want 16 hex digits", a)
	}
	if _, err := hex.DecodeString(a); err != nil {
		t.Errorf("KeyID = %q is not hex", a)
	}
	if strings.Contains(hex.EncodeToString(masterKey(1)), a) {
		t.Error("KeyID reveals the key bytes")
	}
}

// sealedRecordOf reads the raw sealed record of (account, provider) from a
// closed store file.
func sealedRecordOf(t *testing.T, path, account, provider string) sealedRecord {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var r sealedRecord
	err = db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBYOK.name).Get([]byte(account + "\x00" + provider))
		if v == nil {
			return errors.New("no sealed record")
		}
		return json.Unmarshal(v, &r)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealedCredentialOnDisk(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), Options{})
	mustAccount(t, s, "acctA")
	if _, err := s.PutCredential("acctA", "openai", canaryKey, "sk-proj-…BkFJ", Extras{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rawContains(t, path, canaryFragment) {
		t.Fatal("the provider key is in the store file in plaintext")
	}
	// Not base64 or hex of the plaintext either (what a careless encoder
	// would write).
	for _, enc := range []string{base64.StdEncoding.EncodeToString([]byte(canaryKey)), hex.EncodeToString([]byte(canaryKey))} {
		if rawContains(t, path, enc[4:24]) {
			t.Fatal("an encoding of the provider key is in the store file")
		}
	}
	r := sealedRecordOf(t, path, "acctA", "openai")
	if r.MasterKeyID != KeyID(masterKey(1)) {
		t.Errorf("record kid = %q, want %q", r.MasterKeyID, KeyID(masterKey(1)))
	}
	if len(r.Nonce) == 0 || len(r.Ciphertext) <= len(canaryKey) {
		t.Errorf("record has nonce %d bytes, ciphertext %d bytes: not a GCM seal", len(r.Nonce), len(r.Ciphertext))
	}
}

// A sealed blob copied to another (account, provider) must not open: the
// additional data binds it to where it was written.
func TestCopiedCiphertextDoesNotOpen(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), Options{})
	mustAccount(t, s, "acctA")
	mustAccount(t, s, "acctB")
	if _, err := s.PutCredential("acctA", "openai", canaryKey, "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("byok"))
		v := b.Get([]byte("acctA\x00openai"))
		if v == nil {
			return errors.New(`no record at "acctA\x00openai"`)
		}
		return b.Put([]byte("acctB\x00openai"), append([]byte(nil), v...))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s2, err := Open(path, masterKey(1), Options{})
	if err == nil {
		defer s2.Close()
		if sec := s2.Snapshot().Credential("acctB", "openai"); sec != nil && sec.Key() == canaryKey {
			t.Fatal("a ciphertext copied to acctB opened as acctB's key")
		}
		t.Fatal("Open succeeded with a credential that cannot be authenticated")
	}
	msg := err.Error()
	if !strings.Contains(msg, `"acctB"`) || !strings.Contains(msg, "authentication failed") {
		t.Errorf("error %q does not say which credential failed and why", msg)
	}
	if strings.Contains(msg, canaryFragment) {
		t.Errorf("error leaks the key: %q", msg)
	}
}

func TestWrongMasterKeyOnReopen(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), Options{})
	mustAccount(t, s, "acctA")
	if _, err := s.PutCredential("acctA", "openai", canaryKey, "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2, err := Open(path, masterKey(2), Options{})
	if err == nil {
		s2.Close()
		t.Fatal("Open with the wrong master key succeeded")
	}
	if !strings.Contains(err.Error(), "master key") || !strings.Contains(err.Error(), KeyID(masterKey(1))) {
		t.Errorf("error %q should say the credential needs another master key, and which", err)
	}
	if strings.Contains(err.Error(), canaryFragment) {
		t.Errorf("error leaks the key: %q", err)
	}
	// The right key still opens it: a failed open changed nothing.
	s3 := openStore(t, path, masterKey(1), Options{})
	if sec := s3.Snapshot().Credential("acctA", "openai"); sec == nil || sec.Key() != canaryKey {
		t.Fatal("the right master key no longer opens the credential")
	}
}

// Master key rotation: records sealed under an old key open when it is listed
// in OldMasterKeys, are re-sealed under the current key, and then no longer
// need the old one.
func TestOldMasterKeys(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), Options{})
	if s.MasterKeyID() != KeyID(masterKey(1)) {
		t.Fatalf("MasterKeyID = %q, want %q", s.MasterKeyID(), KeyID(masterKey(1)))
	}
	mustAccount(t, s, "acctA")
	c1, err := s.PutCredential("acctA", "openai", canaryKey, "m", Extras{BaseURL: "https://eu.api.openai.com/v1"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	// Without the old key: refused.
	if s2, err := Open(path, masterKey(2), Options{}); err == nil {
		s2.Close()
		t.Fatal("opened records of key 1 with key 2 only")
	}

	s3 := openStore(t, path, masterKey(2), Options{OldMasterKeys: [][]byte{masterKey(9), masterKey(1)}})
	if s3.MasterKeyID() != KeyID(masterKey(2)) {
		t.Errorf("MasterKeyID = %q, want the current key's %q", s3.MasterKeyID(), KeyID(masterKey(2)))
	}
	sec := s3.Snapshot().Credential("acctA", "openai")
	if sec == nil || sec.Key() != canaryKey {
		t.Fatal("credential sealed under the old key does not open with OldMasterKeys")
	}
	if sec.Version != c1.Version || sec.Extras.BaseURL != "https://eu.api.openai.com/v1" {
		t.Errorf("re-opened credential = v%d %+v, want v%d with its extras", sec.Version, sec.Extras, c1.Version)
	}
	mustAccount(t, s3, "acctB")
	if _, err := s3.PutCredential("acctB", "openai", canaryKey+"B", "m", Extras{}); err != nil {
		t.Fatal(err)
	}
	s3.Close()
	if r := sealedRecordOf(t, path, "acctB", "openai"); r.MasterKeyID != KeyID(masterKey(2)) {
		t.Errorf("new seal used kid %q, want the current key's %q", r.MasterKeyID, KeyID(masterKey(2)))
	}
	if r := sealedRecordOf(t, path, "acctA", "openai"); r.MasterKeyID != KeyID(masterKey(2)) {
		t.Errorf("old record still sealed under kid %q after opening with the new key, want %q", r.MasterKeyID, KeyID(masterKey(2)))
	}

	// The old key can now be retired.
	s4 := openStore(t, path, masterKey(2), Options{})
	for _, acct := range []string{"acctA", "acctB"} {
		if sec := s4.Snapshot().Credential(acct, "openai"); sec == nil || !strings.HasPrefix(sec.Key(), canaryKey) {
			t.Errorf("%s: credential does not open with the current key alone", acct)
		}
	}
	if creds, _ := s4.Credentials("acctA"); creds["openai"].Version != c1.Version {
		t.Errorf("re-sealing changed the version: %d, want %d", creds["openai"].Version, c1.Version)
	}
	s4.Close()
	if rawContains(t, path, canaryFragment) {
		t.Fatal("re-sealing left the key in plaintext in the file")
	}
}

func TestParseMasterKey(t *testing.T) {
	key := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:32] // encodes with + and / (std) vs - and _ (url)
	std := base64.StdEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test key %q does not exercise the std alphabet and padding", std)
	}
	short := base64.StdEncoding.EncodeToString(key[:16])
	long := base64.StdEncoding.EncodeToString(append(key, 1))
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"base64 std", std, true},
		{"base64 std raw", base64.RawStdEncoding.EncodeToString(key), true},
		{"base64 url", base64.URLEncoding.EncodeToString(key), true},
		{"base64 url raw", base64.RawURLEncoding.EncodeToString(key), true},
		{"base64 with newline", std + "\n", true},
		{"base64 surrounded by spaces", "  " + std + " \t", true},
		{"hex lower", hex.EncodeToString(key), true},
		{"hex upper", strings.ToUpper(hex.EncodeToString(key)), true},
		{"hex with newline", hex.EncodeToString(key) + "\r\n", true},
		{"empty", "", false},
		{"whitespace", " \n\t", false},
		{"base64 of 16 bytes", short, false},
		{"base64 of 33 bytes", long, false},
		{"hex of 31 bytes", hex.EncodeToString(key[:31]), false},
		{"hex of 33 bytes", hex.EncodeToString(append(key, 1)), false},
		{"garbage", "this is not a key!!", false},
		{"raw 32 bytes", string(key), false},
		{"64 chars not hex", strings.Repeat("zz", 32), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMasterKey(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParseMasterKey accepted %q as %x", tc.in, got)
				}
				if tc.in != "" && strings.TrimSpace(tc.in) != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
					t.Errorf("error echoes the input: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMasterKey(%q): %v", tc.in, err)
			}
			if !bytes.Equal(got, key) {
				t.Fatalf("ParseMasterKey(%q) = %x, want %x", tc.in, got, key)
			}
		})
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secrets", "master.key")

	k1, created, err := LoadOrCreateMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created || len(k1) != MasterKeySize {
		t.Fatalf("first call: created=%v, %d bytes; want a new %d-byte key", created, len(k1), MasterKeySize)
	}
	if bytes.Equal(k1, make([]byte, MasterKeySize)) {
		t.Fatal("generated master key is all zeros")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("master key file mode = %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm()&0o077 != 0 {
		t.Errorf("master key directory mode = %v, want no group/other access", di.Mode().Perm())
	}
	// The file holds the key in a form ParseMasterKey reads.
	b, _ := os.ReadFile(path)
	if parsed, err := ParseMasterKey(string(b)); err != nil || !bytes.Equal(parsed, k1) {
		t.Fatalf("file content does not parse back to the key: %v", err)
	}

	k2, created, err := LoadOrCreateMasterKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if created || !bytes.Equal(k1, k2) {
		t.Fatalf("second call: created=%v, same key=%v; want the stored key reused", created, bytes.Equal(k1, k2))
	}

	// Another path gets another key.
	k3, created, err := LoadOrCreateMasterKey(filepath.Join(dir, "other.key"))
	if err != nil || !created || bytes.Equal(k1, k3) {
		t.Fatalf("a second file: created=%v err=%v, same key=%v", created, err, bytes.Equal(k1, k3))
	}

	// An operator-written hex key is read as such.
	hexPath := filepath.Join(dir, "hex.key")
	if err := os.WriteFile(hexPath, []byte(hex.EncodeToString(masterKey(5))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, created, err := LoadOrCreateMasterKey(hexPath); err != nil || created || !bytes.Equal(k, masterKey(5)) {
		t.Fatalf("hex key file: %x created=%v err=%v", k, created, err)
	}

	// A corrupt file is an error, never silently replaced (that would make
	// every sealed credential unreadable).
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("garbage\n"), 0o600)
	if _, _, err := LoadOrCreateMasterKey(bad); err == nil {
		t.Fatal("a corrupt master key file was accepted")
	}
	if b, _ := os.ReadFile(bad); string(b) != "garbage\n" {
		t.Fatal("a corrupt master key file was overwritten")
	}

	// A key file others can read (or write) is refused, with the fix.
	for _, mode := range []os.FileMode{0o644, 0o640, 0o602} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateMasterKey(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), string(b)) {
			t.Errorf("mode %04o: %v, want a refusal that says chmod 600", mode, err)
		}
	}
	os.Chmod(path, 0o400) // read-only for the owner is fine
	if k, _, err := LoadOrCreateMasterKey(path); err != nil || !bytes.Equal(k, k1) {
		t.Errorf("mode 0400: %v", err)
	}
	// A directory in its place is not a key file.
	if _, _, err := LoadOrCreateMasterKey(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory as the key file: %v", err)
	}
}

func TestStoreFileMode(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("new store file mode = %v, want 0600", fi.Mode().Perm())
	}
	s.Close()

	// A file that was left readable is tightened on open.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	openStore(t, path, masterKey(1), Options{})
	fi, _ = os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("reopened store file mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenLockedFails(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path, masterKey(1), Options{})
	s2, err := Open(path, masterKey(1), Options{OpenTimeout: 50 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("opened a store file that is already open")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("error %v does not wrap ErrLocked", err)
	}
	if !strings.Contains(err.Error(), "held by another process") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should name the file and say it is held by another process", err)
	}
	// After the holder closes, it opens.
	s.Close()
	openStore(t, path, masterKey(1), Options{OpenTimeout: time.Second})
}
