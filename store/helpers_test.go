package store

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// canaryKey is a distinctive provider key: if it shows up anywhere it must
// not (the raw file, an error, a printed value), the test that looks fails.
const canaryKey = "sk-proj-C4NARYzq7Xw9PlmTq2VbN8rK3sJ5hD1fG6yU0eW4oIxT3BlbkFJ"

// canaryFragment is a piece of canaryKey long and odd enough that it cannot
// appear by chance.
const canaryFragment = "C4NARYzq7Xw9"

// masterKey returns a deterministic 32-byte master key; different seeds give
// different keys.
func masterKey(seed byte) []byte {
	k := make([]byte, MasterKeySize)
	for i := range k {
		k[i] = seed + byte(i)*7
	}
	return k
}

func dbPath(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "agent_router.db")
}

// openStore opens path and closes it when the test ends (Close is safe to
// call twice, so tests may close earlier).
func openStore(t *testing.T, path string, key []byte, opts Options) *Store {
	t.Helper()
	s, err := Open(path, key, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	p := dbPath(t)
	return openStore(t, p, masterKey(1), Options{}), p
}

func mustAccount(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.CreateAccount(id, "Account "+id); err != nil {
		t.Fatalf("CreateAccount(%q): %v", id, err)
	}
}

// rawContains reports whether the bytes of the file at path contain needle.
func rawContains(t *testing.T, path, needle string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(needle))
}

// fakeClock replaces the package clock until the test ends. Call it before
// opening a store, so the clock is restored only after the store (and its
// log writer, which reads the clock) is closed.
type fakeClock struct {
	mu  sync.Mutex
	cur time.Time
}

func setClock(t *testing.T, start time.Time) *fakeClock {
	t.Helper()
	c := &fakeClock{cur: start}
	old := now
	now = c.Now
	t.Cleanup(func() { now = old })
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.cur = c.cur.Add(d)
	c.mu.Unlock()
}
