package argon2id

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

// The same keys as x/crypto/argon2.IDKey, whatever the parameters, and
// again when the blocks come back from the pool (reused, so zeroed).
func TestSameAsXCrypto(t *testing.T) {
	for _, c := range []struct {
		time, memory uint32
		threads      uint8
		keyLen       uint32
	}{
		{1, 64, 1, 32}, {2, 19 * 1024, 1, 32}, {3, 256, 2, 16}, {1, 1000, 4, 64}, {2, 8, 1, 100}, {1, 33, 3, 32},
	} {
		for _, pw := range []string{"", "password", "a much longer password than most, with ünïcödé"} {
			salt := []byte(fmt.Sprintf("salt-%d-%d", c.time, c.memory))
			want := argon2.IDKey([]byte(pw), salt, c.time, c.memory, c.threads, c.keyLen)
			for round := 0; round < 2; round++ {
				if got := IDKey([]byte(pw), salt, c.time, c.memory, c.threads, c.keyLen); !bytes.Equal(got, want) {
					t.Fatalf("%+v %q round %d: %x, want %x", c, pw, round, got, want)
				}
			}
		}
	}
}

// Concurrent derivations share the pool without mixing their blocks.
func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Go(func() {
			pw := []byte(fmt.Sprint("pw", i))
			want := argon2.IDKey(pw, []byte("saltsaltsalt"), 1, 2048, 1, 32)
			for j := 0; j < 3; j++ {
				if got := IDKey(pw, []byte("saltsaltsalt"), 1, 2048, 1, 32); !bytes.Equal(got, want) {
					t.Errorf("derivation %d/%d differs", i, j)
				}
			}
		})
	}
	wg.Wait()
}

// A derivation at the store's parameters allocates nothing the size of
// its memory once the pool holds blocks.
func TestNoGarbagePerDerivation(t *testing.T) {
	IDKey([]byte("warm"), []byte("saltsaltsalt"), 2, 19*1024, 1, 32)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	IDKey([]byte("pw"), []byte("saltsaltsalt"), 2, 19*1024, 1, 32)
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("a derivation allocated %d bytes; the 19 MiB should come from the pool", d)
	}
}

func BenchmarkIDKey(b *testing.B) {
	for _, impl := range []struct {
		name string
		f    func(p, s []byte, t, m uint32, th uint8, k uint32) []byte
	}{{"pooled", IDKey}, {"x-crypto", argon2.IDKey}} {
		b.Run(impl.name, func(b *testing.B) {
			for b.Loop() {
				impl.f([]byte("password"), []byte("saltsaltsaltsalt"), 2, 19*1024, 1, 32)
			}
		})
	}
}
