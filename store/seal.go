package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeySize is the size of the master key in bytes (AES-256).
const MasterKeySize = 32

// sealer encrypts and decrypts BYOK credentials with AES-256-GCM. It knows
// every master key it was given by key id, so records sealed under an older
// key stay readable while they are re-sealed under the current one.
type sealer struct {
	current string // key id used for new seals
	aeads   map[string]cipher.AEAD
	// peer are the fleet peer keys derived from each master key, the
	// current one first (PeerKeys).
	peer []PeerKey
}

// PeerKey authenticates fleet members to each other (their reads of each
// other's request logs and usage): derived with HKDF-SHA256 from a master
// key, which every member of a fleet shares, for this one purpose. ID is
// the master key's id (KeyID), so a member that knows several master keys
// (during a rotation) can tell which one a signature used.
type PeerKey struct {
	ID  string
	Key []byte
}

// peerKeyInfo is HKDF's context for the peer keys: another purpose derives
// another key.
const peerKeyInfo = "agent_router fleet peer requests v1"

// KeyID returns the public identifier of a master key: the first 8 bytes of
// SHA-256 over a domain label and the key, hex encoded. It identifies the key
// without revealing it.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("agent_router master key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func newSealer(current []byte, older ...[]byte) (*sealer, error) {
	s := &sealer{aeads: make(map[string]cipher.AEAD)}
	for i, k := range append([][]byte{current}, older...) {
		if len(k) != MasterKeySize {
			return nil, fmt.Errorf("master key must be %d bytes, got %d", MasterKeySize, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		id := KeyID(k)
		s.aeads[id] = aead
		if i == 0 {
			s.current = id
		}
		pk, err := hkdf.Key(sha256.New, k, nil, peerKeyInfo, 32)
		if err != nil {
			return nil, err
		}
		s.peer = append(s.peer, PeerKey{ID: id, Key: pk})
	}
	return s, nil
}

// aad binds a sealed credential to its account and provider, so a blob copied
// to another record does not open.
func aad(account, provider string) []byte {
	return []byte("agent_router byok v1\x00" + account + "\x00" + provider)
}

func (s *sealer) seal(account, provider string, plaintext []byte) (kid string, nonce, ct []byte, err error) {
	aead := s.aeads[s.current]
	nonce = make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, nil, err
	}
	return s.current, nonce, aead.Seal(nil, nonce, plaintext, aad(account, provider)), nil
}

var errUnknownMasterKey = errors.New("credential was sealed under a master key that is not configured")

func (s *sealer) open(kid, account, provider string, nonce, ct []byte) ([]byte, error) {
	aead, ok := s.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("%w (key id %s)", errUnknownMasterKey, kid)
	}
	pt, err := aead.Open(nil, nonce, ct, aad(account, provider))
	if err != nil {
		return nil, fmt.Errorf("opening credential for account %q provider %q: authentication failed", account, provider)
	}
	return pt, nil
}

// ParseMasterKey decodes a base64 (standard or URL, padded or not) or 64-char
// hex master key and checks that it is 32 bytes.
func ParseMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("master key is empty")
	}
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != MasterKeySize {
				return nil, fmt.Errorf("master key must decode to %d bytes, got %d", MasterKeySize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("master key is neither base64 nor hex")
}

// LoadOrCreateMasterKey reads the master key stored at path, or generates a
// new random one and writes it there with mode 0600. created reports whether
// a new key was generated.
func LoadOrCreateMasterKey(path string) (key []byte, created bool, err error) {
	b, err := readPrivateFile(path)
	if err == nil {
		key, err := ParseMasterKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("reading master key file %s: %v", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("reading master key file: %v", err)
	}
	key = make([]byte, MasterKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("creating master key directory: %v", err)
	}
	// Write a temporary file and link it into place, so another process
	// never reads a half-written key, and the first of two racing
	// processes wins.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".master.key-*")
	if err != nil {
		return nil, false, fmt.Errorf("creating master key file: %v", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("creating master key file: %v", err)
	}
	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, false, fmt.Errorf("writing master key file: %v", werr)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) { // lost a race with another process: use its key
			return LoadOrCreateMasterKey(path)
		}
		return nil, false, fmt.Errorf("creating master key file: %v", err)
	}
	// The new name is durable only once its directory is: a crash after
	// credentials were sealed must not lose the key that opens them.
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, false, fmt.Errorf("creating master key file: %v", err)
	}
	return key, true, nil
}

// readPrivateFile reads a secret file, refusing one that others can read
// or write (as ssh does with private keys): a master key that leaked
// through its file mode opens every sealed credential.
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading master key file: %v", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s is accessible by other users (mode %04o): run chmod 600 %s, or set master_key", path, perm, path)
	}
	return io.ReadAll(io.LimitReader(f, 4<<10))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
