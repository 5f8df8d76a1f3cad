package gateway

import (
	"net/http"
	"sync"
	"time"
)

// keepaliveInterval is how long a translated door's stream may stay silent
// before the gateway writes a keepalive comment (tests shorten it).
var keepaliveInterval = 15 * time.Second

// keepaliveWriter serializes the relay's writes with a goroutine that
// writes a keepalive event (and flushes) whenever nothing was written for
// keepaliveInterval. The relay writes whole events, so a keepalive always
// falls between two of them. Only streams whose translator asks for it
// (providers.Keepaliver) get one: passthrough streams carry the provider's
// own pings and pay nothing.
type keepaliveWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	event []byte

	now func() time.Time // time.Now; tests pin it

	mu   sync.Mutex
	last time.Time
	done chan struct{}
	wg   sync.WaitGroup
}

func startKeepalive(w http.ResponseWriter, event []byte) *keepaliveWriter {
	k := &keepaliveWriter{ResponseWriter: w, rc: http.NewResponseController(w), event: event,
		now: time.Now, last: time.Now(), done: make(chan struct{})}
	k.wg.Add(1)
	go k.run()
	return k
}

func (k *keepaliveWriter) run() {
	defer k.wg.Done()
	t := time.NewTimer(keepaliveInterval)
	defer t.Stop()
	for {
		select {
		case <-k.done:
			return
		case <-t.C:
		}
		t.Reset(k.tick())
	}
}

// tick writes a keepalive when the stream has been silent for
// keepaliveInterval, and says how long to wait before looking again.
func (k *keepaliveWriter) tick() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	idle := k.now().Sub(k.last)
	if idle >= keepaliveInterval {
		if _, err := k.ResponseWriter.Write(k.event); err == nil {
			k.rc.Flush()
		}
		k.last, idle = k.now(), 0
	}
	return keepaliveInterval - idle
}

// stop ends the keepalives; nothing is written after it returns.
func (k *keepaliveWriter) stop() {
	close(k.done)
	k.wg.Wait()
}

func (k *keepaliveWriter) Write(b []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.last = k.now()
	return k.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController calls to flush.
func (k *keepaliveWriter) FlushError() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.rc.Flush()
}

// Unwrap gives http.ResponseController the writer underneath.
func (k *keepaliveWriter) Unwrap() http.ResponseWriter { return k.ResponseWriter }
