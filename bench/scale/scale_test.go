package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// These tests check the program's own parts (the echo upstream, the
// percentiles, the table); they never assert timings. The program itself
// runs against a real Caddy: go run ./bench/scale -accounts 3000 is a
// quick check of all of it (about 20 s per mode).

func TestEchoNamesTheKey(t *testing.T) {
	srv := httptest.NewServer(echo{})
	defer srv.Close()
	site := strings.TrimPrefix(srv.URL, "http://")
	for _, key := range []string{"sk-proj-one", "sk-proj-two"} {
		got, err := ask(site, key) // the fake reads the Bearer key as the gateway sends it
		if err != nil || got != fp(key) {
			t.Errorf("key %s: echoed %q (%v), want %q", key, got, err, fp(key))
		}
	}
	if fp("a") == fp("b") || len(fp("a")) != 16 {
		t.Errorf("fingerprints %q %q", fp("a"), fp("b"))
	}
	if _, err := ask(site+"/nope", "k"); err == nil {
		t.Error("a 404 was taken for an answer")
	}
}

func TestPercentiles(t *testing.T) {
	var s sample
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := s.pct(p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if s[0] != 100*time.Millisecond {
		t.Error("pct sorted the sample in place")
	}
	if (sample{}).pct(50) != 0 {
		t.Error("an empty sample")
	}
}

func TestTable(t *testing.T) {
	r := func(n int, instances int) *result {
		res := &result{accounts: n, apiKeys: 5 * n, loadCalls: sample{time.Second}, loadRecords: 7 * n, loadTime: time.Second, loadServed: time.Second,
			writes: sample{time.Millisecond, 2 * time.Millisecond}, writeRate: 600,
			rot:        rotations{put: sample{time.Millisecond}, writer: sample{time.Millisecond}, every: sample{3 * time.Millisecond}},
			startAdmin: time.Second, startServe: 2 * time.Second}
		for range instances {
			res.hot = append(res.hot, sample{time.Millisecond})
			res.anonLoaded = append(res.anonLoaded, 300e6)
			res.anonAfter = append(res.anonAfter, 200e6)
		}
		return res
	}
	c := config{perCall: 1400, loaders: 2, writeWorkers: 8, writes: 2, rotations: 1, requests: 1, conns: 16}
	single := table(c, "single", [2]*result{r(10, 1), r(100000, 1)})
	fleet := table(c, "fleet", [2]*result{r(10, 3), r(100000, 3)})
	for _, want := range []string{"single node", "| 10 accounts | 100000 accounts, 500000 API keys, 100000 BYOK keys |", "p99 ≤ 10 ms", "300 MB", "2.00 s"} {
		if !strings.Contains(single, want) {
			t.Errorf("single table lacks %q:\n%s", want, single)
		}
	}
	if strings.Contains(single, "every instance") || !strings.Contains(fleet, "every instance") || !strings.Contains(fleet, "300 / 300 / 300 MB") {
		t.Errorf("fleet rows:\n%s\n%s", single, fleet)
	}
	for _, tb := range []string{single, fleet} {
		for _, line := range strings.Split(strings.TrimSpace(tb), "\n")[2:] {
			if strings.Count(line, "|") != 5 {
				t.Errorf("row with %d cells: %s", strings.Count(line, "|")-1, line)
			}
		}
	}
}
