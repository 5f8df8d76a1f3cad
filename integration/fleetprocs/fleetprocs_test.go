// Package fleetprocs runs fleet mode with three real Caddy processes (the
// dev build of cmd/caddy, built by the test) on one real 3-member etcd
// cluster (store/etcdtest, in-process), in front of a fake provider that
// answers with the tag of the key it saw. Separate from integration/,
// whose caddytest Caddy owns fixed ports.
package fleetprocs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/internal/testfix"
	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildCaddy builds cmd/caddy once per test binary.
func buildCaddy(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "agentrouter-fleetprocs-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "caddy")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-tags", "nobadger,nomysql,nopgx", "-o", builtBin, "./cmd/caddy")
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building cmd/caddy: %v\n%s", err, out)
			return
		}
		t.Logf("built cmd/caddy in %v", time.Since(start).Round(time.Second))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

type instance struct {
	name              string
	site, admin, peer string
	cmd               *exec.Cmd
	log               *bytes.Buffer
}

func start(t *testing.T, bin, name string, endpoints []string, fake string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{name: name, site: testfix.FreeAddr(t), admin: testfix.FreeAddr(t), peer: testfix.FreeAddr(t), log: new(bytes.Buffer)}
	cfg := fmt.Sprintf(`{
	admin %[1]s
	persist_config off
	auto_https off
	agent_router {
		store %[2]s/ar.db
		master_key {env.AR_FLEET_MASTER_KEY}
		byok_allow_http
		byok_allow_hosts 127.0.0.1
		store etcd {
			endpoints %[3]s
			instance_id %[4]s
			peer_listen %[7]s
		}
	}
}

http://%[5]s {
	agent_router {
		provider openai {
			base_url %[6]s
		}
	}
}
`, in.admin, dir, strings.Join(endpoints, " "), name, in.site, fake, in.peer)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	in.cmd = exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	in.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"AR_FLEET_MASTER_KEY=ZmxlZXQgcHJvY2VzcyB0ZXN0IG1hc3RlciBrZXkgMzI=")
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { in.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			in.cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + in.admin + "/agent_router/fleet")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return in
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %v\n%s", name, err, in.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (in *instance) adminCall(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, "http://"+in.admin+"/agent_router"+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, in.name, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		json.Unmarshal(raw, out)
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s on %s: %d %s", method, path, in.name, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

var client = &http.Client{Timeout: 10 * time.Second}

func (in *instance) ask(apiKey string) (string, error) {
	req, _ := http.NewRequest("POST", "http://"+in.site+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) == 0 {
		return "", fmt.Errorf("bad answer %s", b)
	}
	return out.Choices[0].Message.Content, nil
}

func TestThreeCaddyProcessesRotation(t *testing.T) {
	bin := buildCaddy(t)
	c := etcdtest.Start(t, 3)
	fake := testfix.KeyTagProvider(t)
	var ins []*instance
	for i := 0; i < 3; i++ {
		ins = append(ins, start(t, bin, fmt.Sprintf("caddy-%d", i), c.Endpoints(), fake.URL))
	}
	if st := ins[0].adminCall(t, "POST", "/accounts", map[string]string{"id": "acme"}, nil); st != 201 {
		t.Fatalf("create account: %d", st)
	}
	var k struct{ Key string }
	if st := ins[1].adminCall(t, "POST", "/accounts/acme/keys", map[string]string{"name": "ci"}, &k); st != 201 {
		t.Fatalf("create key: %d", st)
	}
	var lat []time.Duration
	for v := 0; v < 50; v++ {
		w := ins[v%3]
		key := fmt.Sprintf("sk-fleet-v%d-%032d", v, v)
		if st := w.adminCall(t, "PUT", "/accounts/acme/byok/openai", map[string]string{"api_key": key}, nil); st != 200 {
			t.Fatalf("rotation %d on %s: %d", v, w.name, st)
		}
		done := time.Now()
		want := fmt.Sprintf("v%d", v)
		if got, err := w.ask(k.Key); err != nil || got != want {
			t.Fatalf("%s serves %q (%v) right after its own rotation to %s", w.name, got, err, want)
		}
		var worst time.Duration
		for _, in := range ins {
			for {
				got, err := in.ask(k.Key)
				if err == nil && got == want {
					break
				}
				if time.Since(done) > 5*time.Second {
					t.Fatalf("%s still serves %q (%v), want %s", in.name, got, err, want)
				}
				time.Sleep(200 * time.Microsecond)
			}
			worst = max(worst, time.Since(done))
		}
		lat = append(lat, worst)
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(float64(len(lat)-1)*q)] }
	t.Logf("three Caddy processes, 50 rotations through their admin APIs: every instance served the new key after p50 %v, p99 %v, max %v (including one request through each)",
		p(0.5), p(0.99), p(1))
	if p(1) >= time.Second {
		t.Errorf("max propagation %v, goal < 1s", p(1))
	}
	// Fleet-wide logs on one process include the others' requests.
	var page struct {
		Records []struct{ Instance string } `json:"records"`
		Missing []struct{ Member string }   `json:"missing"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ins[2].adminCall(t, "GET", "/logs?account=acme&limit=1000", nil, &page)
		seen := map[string]bool{}
		for _, r := range page.Records {
			seen[r.Instance] = true
		}
		if len(seen) == 3 && len(page.Missing) == 0 {
			t.Logf("fleet-wide logs read on caddy-2: %d records from %d instances", len(page.Records), len(seen))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet-wide logs: instances %v, missing %v", seen, page.Missing)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestThreeCaddyProcessesLeaderLoss: bounded load through three Caddy
// processes (3 × 50 req/s for 20 s); the etcd leader is killed at 5 s, a
// key rotated at 8 s, the member restarted at 15 s. No data-plane request
// may fail, and the rotation must reach every process.
func TestThreeCaddyProcessesLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s of load")
	}
	bin := buildCaddy(t)
	c := etcdtest.Start(t, 3)
	fake := testfix.KeyTagProvider(t)
	var ins []*instance
	for i := 0; i < 3; i++ {
		ins = append(ins, start(t, bin, fmt.Sprintf("caddy-%d", i), c.Endpoints(), fake.URL))
	}
	ins[0].adminCall(t, "POST", "/accounts", map[string]string{"id": "acme"}, nil)
	var k struct{ Key string }
	if st := ins[0].adminCall(t, "POST", "/accounts/acme/keys", map[string]string{"name": "ci"}, &k); st != 201 {
		t.Fatalf("create key: %d", st)
	}
	if st := ins[0].adminCall(t, "PUT", "/accounts/acme/byok/openai", map[string]string{"api_key": "sk-fleet-v0-" + strings.Repeat("0", 32)}, nil); st != 200 {
		t.Fatalf("first key: %d", st)
	}
	time.Sleep(100 * time.Millisecond)

	const rate, dur = 50, 20 * time.Second
	var sent, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	begin := time.Now()
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Go(func() {
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			for time.Since(begin) < dur {
				<-tick.C
				sent.Add(1)
				if _, err := in.ask(k.Key); err != nil {
					failed.Add(1)
					msg := in.name + ": " + err.Error()
					firstErr.CompareAndSwap(nil, &msg)
				}
			}
		})
	}
	time.Sleep(time.Until(begin.Add(5 * time.Second)))
	leader := c.Leader()
	c.Kill(leader)
	t.Logf("killed the etcd leader (member %d) at %v", leader, time.Since(begin).Round(time.Millisecond))
	time.Sleep(time.Until(begin.Add(8 * time.Second)))
	rot := time.Now()
	tries := 0
	for {
		tries++
		if st := ins[1].adminCall(t, "PUT", "/accounts/acme/byok/openai", map[string]string{"api_key": "sk-fleet-v1-" + strings.Repeat("1", 32)}, nil); st == 200 {
			break
		} else if st != 503 || time.Since(rot) > 15*time.Second {
			t.Fatalf("admin write after the leader loss: %d", st)
		}
	}
	t.Logf("rotation accepted %v after the first attempt (%d attempts)", time.Since(rot).Round(time.Millisecond), tries)
	written := time.Now()
	for _, in := range ins {
		for {
			if got, err := in.ask(k.Key); err == nil && got == "v1" {
				break
			}
			if time.Since(written) > 5*time.Second {
				t.Fatalf("%s does not serve the rotated key", in.name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("the rotation reached every process %v after it was accepted", time.Since(written).Round(time.Millisecond))
	time.Sleep(time.Until(begin.Add(15 * time.Second)))
	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if st := ins[2].adminCall(t, "PUT", "/accounts/acme/byok/openai", map[string]string{"api_key": "sk-fleet-v2-" + strings.Repeat("2", 32)}, nil); st != 200 {
		t.Fatalf("admin write after the restart: %d", st)
	}
	t.Logf("load: %d requests through 3 Caddy processes over %v, %d failed", sent.Load(), dur, failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d data-plane requests failed; first: %s", failed.Load(), *firstErr.Load())
	}
}
