package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"
)

// tenants are the accounts loaded so far: tenant i is account t%06d, with 5
// (-keys) API keys and an openai BYOK key. The program keeps the first API
// key's plaintext and the current BYOK key of each.
type tenants struct {
	mu     sync.Mutex
	apiKey []string
	byok   []string
}

func (t *tenants) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.apiKey)
}

// pick is a random loaded tenant.
func (t *tenants) pick() (i int, apiKey, byok string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i = randInt(len(t.apiKey))
	return i, t.apiKey[i], t.byok[i]
}

func (t *tenants) setBYOK(i int, key string) {
	t.mu.Lock()
	t.byok[i] = key
	t.mu.Unlock()
}

func accountID(i int) string { return fmt.Sprintf("t%06d", i) }

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randInt(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}

// providerKey is a fresh OpenAI-shaped key.
func providerKey() string {
	b := make([]byte, 40)
	rand.Read(b)
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	return "sk-proj-" + string(b)
}

type bulkAnswer struct {
	Tenants []struct {
		Account struct {
			ID string `json:"id"`
		} `json:"account"`
		Keys []struct {
			Key string `json:"key"`
		} `json:"keys"`
	} `json:"tenants"`
}

// bulk creates tenants [from, from+n) through POST /agent_router/tenants,
// perCall a call, loaders calls at a time spread over the instances; it
// returns each call's latency.
func bulk(gws []*gateway, t *tenants, from, n, keys, perCall, loaders int) (calls sample, err error) {
	t.mu.Lock()
	t.apiKey = append(t.apiKey, make([]string, n)...)
	t.byok = append(t.byok, make([]string, n)...)
	t.mu.Unlock()
	type chunk struct{ from, n int }
	work := make(chan chunk)
	errs := make(chan error, loaders)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := 0
	for range loaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				start := time.Now()
				err := bulkCall(gws[(c.from/perCall)%len(gws)], t, c.from, c.n, keys)
				mu.Lock()
				calls = append(calls, time.Since(start))
				mu.Unlock()
				if err != nil {
					errs <- err
					for range work { // drain
					}
					return
				}
			}
		}()
	}
	for i := from; i < from+n; i += perCall {
		work <- chunk{i, min(perCall, from+n-i)}
		if sent++; sent%10 == 0 {
			logf("  %d tenants sent", i+perCall-from)
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	return calls, <-errs
}

func bulkCall(g *gateway, t *tenants, from, n, keys int) error {
	byok := make([]string, n)
	var b strings.Builder
	b.WriteString(`{"tenants":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		byok[i] = providerKey()
		fmt.Fprintf(&b, `{"id":%q,"keys":[`, accountID(from+i))
		for k := range keys {
			if k > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":"k%d"}`, k)
		}
		fmt.Fprintf(&b, `],"byok":[{"provider":"openai","api_key":%q}]}`, byok[i])
	}
	b.WriteString(`]}`)
	st, body, err := adminDo(http.MethodPost, g.adminURL("tenants"), b.String())
	if err != nil {
		return fmt.Errorf("bulk call at %d on %s: %v", from, g.name, err)
	}
	if st != http.StatusCreated {
		return fmt.Errorf("bulk call at %d on %s: %d %s", from, g.name, st, clip(body))
	}
	var a bulkAnswer
	if err := json.Unmarshal(body, &a); err != nil || len(a.Tenants) != n {
		return fmt.Errorf("bulk call at %d: %d tenants in the answer (%v)", from, len(a.Tenants), err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, tn := range a.Tenants {
		if tn.Account.ID != accountID(from+i) || len(tn.Keys) != keys {
			return fmt.Errorf("bulk call at %d: tenant %d is %s with %d keys", from, i, tn.Account.ID, len(tn.Keys))
		}
		if keys > 0 {
			t.apiKey[from+i] = tn.Keys[0].Key
		}
		t.byok[from+i] = byok[i]
	}
	return nil
}

// servedEverywhere waits until every instance serves tenant i with its key.
func servedEverywhere(gws []*gateway, t *tenants, i int, timeout time.Duration) error {
	t.mu.Lock()
	apiKey, want := t.apiKey[i], fp(t.byok[i])
	t.mu.Unlock()
	for _, g := range gws {
		deadline := time.Now().Add(timeout)
		for {
			got, err := ask(g.site, apiKey)
			if err == nil && got == want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s does not serve %s after %s: %q %v", g.name, accountID(i), timeout, got, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}
