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
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/store/etcdtest"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// buildCaddy builds cmd/caddy into a temp dir.
func buildCaddy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-tags", "nobadger,nomysql,nopgx", "-o", bin, "./cmd/caddy")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/caddy: %v\n%s", err, out)
	}
	t.Logf("built cmd/caddy in %v", time.Since(start).Round(time.Second))
	return bin
}

type instance struct {
	name        string
	site, admin string
	cmd         *exec.Cmd
	log         *bytes.Buffer
}

func tagFake(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		tag := "unknown"
		if rest, ok := strings.CutPrefix(key, "sk-fleet-"); ok {
			tag, _, _ = strings.Cut(rest, "-")
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`, tag)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func start(t *testing.T, bin, name string, endpoints []string, fake string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{name: name, site: fmt.Sprintf("127.0.0.1:%d", freePort(t)), admin: fmt.Sprintf("127.0.0.1:%d", freePort(t)), log: new(bytes.Buffer)}
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
			admin_address %[1]s
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
`, in.admin, dir, strings.Join(endpoints, " "), name, in.site, fake)
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
	fake := tagFake(t)
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
