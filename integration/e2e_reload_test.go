package integration

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReloadKeepsDataAndServes reloads Caddy with a changed config while
// requests keep flowing: accounts, keys and credentials survive, the store
// stays open (shared across the overlap of the two configs), and no request
// fails.
func TestReloadKeepsDataAndServes(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.createAccount("acme")
	k := e.createKey("acme", "k")
	byok := "sk-proj-reload" + randomAlnum(48)
	e.putBYOK("acme", "openai", map[string]string{"api_key": byok})

	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		ok, fail atomic.Int64
		resets   atomic.Int64
		firstErr atomic.Value
	)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				tag := fmt.Sprintf("reload-%d-%d", w, n)
				r, err := e.tryChat(k.Key, "gpt-4o", tag, false)
				// The old server closes its idle keep-alive connections; a
				// request written onto one as it closes is reset before any
				// byte of it is read (Go's client retries only idempotent
				// requests). Clients retry such transport errors with a
				// backoff, and so does this one, up to three times: a retry
				// must succeed.
				for try := 1; err != nil && try <= 3; try++ {
					resets.Add(1)
					time.Sleep(time.Duration(try) * 20 * time.Millisecond)
					r, err = e.tryChat(k.Key, "gpt-4o", fmt.Sprintf("%s-retry%d", tag, try), false)
				}
				if err != nil || r.status != 200 || r.header.Get("X-Agent-Router-Credential") != "byok" {
					fail.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%v %d %s", err, r.status, r.body))
					continue
				}
				ok.Add(1)
			}
		}(w)
	}
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 3; i++ {
		e.options.maxBody = fmt.Sprintf("%dMiB", 2+i)
		e.options.extraModel = fmt.Sprintf("house-model-%d gpt-4o", i)
		e.load() // POST /load: a graceful reload with a different config
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if fail.Load() > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %v", fail.Load(), fail.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no request succeeded during the reloads")
	}

	// The data is all there, and the new config is live.
	var accts []map[string]any
	e.mustAdmin("GET", "/agent_router/accounts", nil, 200, &accts)
	if len(accts) != 1 || accts[0]["id"] != "acme" {
		t.Errorf("accounts after reload: %v", accts)
	}
	var st []map[string]any
	e.mustAdmin("GET", "/agent_router/accounts/acme/byok", nil, 200, &st)
	if st[0]["status"] != "active" || st[0]["version"] != float64(1) {
		t.Errorf("byok after reload: %v", st[0])
	}
	r := e.chat(k.Key, "house-model-2", "after-reload", false)
	if r.status != 200 || recordFor(t, e.openai, "after-reload").Credential != byok {
		t.Errorf("after reload: %d %s", r.status, r.body)
	}
	var rec map[string]any
	json.Unmarshal(r.body, &rec)
	if got := recordFor(t, e.openai, "after-reload").Model; got != "gpt-4o" {
		t.Errorf("declared model from the new config sent upstream as %q", got)
	}
	t.Logf("%d requests served across 3 reloads (%d connection resets retried)", ok.Load(), resets.Load())
}
