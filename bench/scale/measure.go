package main

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// sample is a set of latencies.
type sample []time.Duration

func (s sample) pct(p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	c := slices.Clone(s)
	slices.Sort(c)
	i := int(p/100*float64(len(c))+0.5) - 1
	return c[max(0, min(i, len(c)-1))]
}

// createKeys creates n API keys one after the other on random tenants
// through g's admin API: the latency of one durable admin write.
func createKeys(g *gateway, t *tenants, n int) (sample, error) {
	out := make(sample, 0, n)
	for range n {
		i, _, _ := t.pick()
		start := time.Now()
		st, body, err := adminDo(http.MethodPost, g.adminURL("accounts/"+accountID(i)+"/keys"), `{"name":"write"}`)
		if err != nil || st != http.StatusCreated {
			return out, fmt.Errorf("key creation: %d %s %v", st, clip(body), err)
		}
		out = append(out, time.Since(start))
	}
	return out, nil
}

// writeRate creates keys with workers at a time for d: admin writes a
// second.
func writeRate(g *gateway, t *tenants, workers int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var first error
	var mu sync.Mutex
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				i, _, _ := t.pick()
				st, body, err := adminDo(http.MethodPost, g.adminURL("accounts/"+accountID(i)+"/keys"), `{"name":"rate"}`)
				if err != nil || st != http.StatusCreated {
					mu.Lock()
					first = fmt.Errorf("key creation: %d %s %v", st, clip(body), err)
					mu.Unlock()
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds(), first
}

// rotations is what a series of BYOK rotations measured.
type rotations struct {
	put sample // the PUT's latency
	// writer: from the PUT's start until the writing instance's first
	// request after it returned came back served with the new key.
	writer sample
	// every: until every instance served the new key (fleet mode).
	every sample
	// stale counts requests to the writer, sent after the PUT returned,
	// that were served with the old key (must be 0).
	stale int
}

// rotate rotates the openai key of n random tenants through gws[0] and
// watches every instance's data plane for the new key.
func rotate(gws []*gateway, t *tenants, n int) (rotations, error) {
	var r rotations
	for range n {
		i, apiKey, _ := t.pick()
		key := providerKey()
		want := fp(key)
		t0 := time.Now()
		var wg sync.WaitGroup
		seen := make([]time.Duration, len(gws))
		errs := make([]error, len(gws))
		// The other instances learn it through etcd's watch: watch them
		// from the start (a request every half millisecond).
		for j := 1; j < len(gws); j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				seen[j], errs[j] = watchFor(gws[j].site, apiKey, want, t0, 500*time.Microsecond)
			}()
		}
		st, body, err := adminDo(http.MethodPut, gws[0].adminURL("accounts/"+accountID(i)+"/byok/openai"), `{"api_key":"`+key+`"}`)
		if err != nil || st != http.StatusOK {
			wg.Wait()
			return r, fmt.Errorf("rotation: %d %s %v", st, clip(body), err)
		}
		r.put = append(r.put, time.Since(t0))
		// The writer: the next request must see it.
		got, err := ask(gws[0].site, apiKey)
		if err != nil {
			wg.Wait()
			return r, err
		}
		if got != want {
			r.stale++
			seen[0], errs[0] = watchFor(gws[0].site, apiKey, want, t0, 0)
		} else {
			seen[0] = time.Since(t0)
		}
		wg.Wait()
		for _, e := range errs {
			if e != nil {
				return r, e
			}
		}
		t.setBYOK(i, key)
		r.writer = append(r.writer, seen[0])
		r.every = append(r.every, slices.Max(seen))
	}
	return r, nil
}

// watchFor asks site with apiKey until the answer is served by the key
// whose fingerprint is want; it returns the time since t0.
func watchFor(site, apiKey, want string, t0 time.Time, pause time.Duration) (time.Duration, error) {
	for {
		got, err := ask(site, apiKey)
		if err != nil {
			return 0, err
		}
		if got == want {
			return time.Since(t0), nil
		}
		if time.Since(t0) > 10*time.Second {
			return 0, fmt.Errorf("%s still serves the old key 10 s after a rotation", site)
		}
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

// hotPath sends n requests one after the other to g with random tenants'
// keys, each checked to be served by the tenant's own key.
func hotPath(g *gateway, t *tenants, n int) (sample, error) {
	out := make(sample, 0, n)
	for range n {
		_, apiKey, byok := t.pick()
		start := time.Now()
		got, err := ask(g.site, apiKey)
		if err != nil {
			return out, err
		}
		out = append(out, time.Since(start))
		if got != fp(byok) {
			return out, fmt.Errorf("%s served a request with another key than the account's", g.name)
		}
	}
	return out, nil
}

// throughput is requests a second from conns connections in a closed loop
// for d, on random tenants.
func throughput(g *gateway, t *tenants, conns int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var failed atomic.Value
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				_, apiKey, _ := t.pick()
				if _, err := ask(g.site, apiKey); err != nil {
					failed.Store(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return 0, err
	}
	return float64(n.Load()) / d.Seconds(), nil
}

// restart stops g and starts it again: how long until its admin endpoint
// answers, and until its data plane serves tenant i (the last loaded one)
// with its key.
func restart(g *gateway, t *tenants, i int) (admin, serve time.Duration, err error) {
	g.stop()
	t.mu.Lock()
	apiKey, want := t.apiKey[i], fp(t.byok[i])
	t.mu.Unlock()
	t0 := time.Now()
	if err := g.start(); err != nil {
		return 0, 0, err
	}
	if err := waitHTTP(g.proc, "http://"+g.admin+"/config/", 120*time.Second); err != nil {
		return 0, 0, err
	}
	admin = time.Since(t0)
	for {
		got, err := ask(g.site, apiKey)
		if err == nil && got == want {
			return admin, time.Since(t0), nil
		}
		if g.exited() || time.Since(t0) > 120*time.Second {
			return admin, 0, fmt.Errorf("%s does not serve %s after a restart: %v\n%s", g.name, accountID(i), err, g.tail(20))
		}
		time.Sleep(2 * time.Millisecond)
	}
}
