// Package storetest opens real stores for the tests of other packages: a
// bbolt file in the test's temporary directory, a fresh master key, closed
// when the test ends. Store's own tests keep their in-package helpers (a
// package store test cannot import this one, which imports store).
package storetest

import (
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// MasterKey returns a fresh random master key.
func MasterKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, store.MasterKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// Path returns the path of a new bbolt file ("ar.db" in a new temporary
// directory of the test).
func Path(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "ar.db")
}

// Open opens a store over a new bbolt file with a fresh master key.
func Open(t testing.TB) *store.Store {
	t.Helper()
	return OpenWith(t, Path(t), MasterKey(t), store.Options{})
}

// OpenWith opens the store at path with key and opts. The store is closed
// when the test ends (Close is safe twice, so a test may close it earlier).
func OpenWith(t testing.TB, path string, key []byte, opts store.Options) *store.Store {
	t.Helper()
	s, err := store.Open(path, key, opts)
	if err != nil {
		t.Fatalf("opening the store %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// OpenFleet opens a fleet-mode store (a new bbolt file for its per-instance
// data, fleet.Client for the shared records) with key and opts, closed
// when the test ends.
func OpenFleet(t testing.TB, key []byte, opts store.Options, fleet store.FleetOptions) *store.Store {
	t.Helper()
	s, err := store.OpenFleet(Path(t), key, opts, fleet)
	if err != nil {
		t.Fatalf("opening the fleet store %s: %v", fleet.InstanceID, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
