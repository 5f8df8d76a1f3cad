// Command smoke is the end-to-end smoke test CI runs against the binary that
// xcaddy.sh built: a fake OpenAI on loopback, the real ./caddy process, the
// admin API over HTTP, a plain and a streamed chat with the platform key and
// then with a BYOK key, a `caddy reload`, a second process on the same store
// (which must fail with a clear "locked" error), the console's sign-in page,
// `caddy agent-router add-user` (pointed to the admin API while Caddy runs, a
// setup link once it is stopped), and a search for the canary keys in
// everything the process wrote.
//
//	go run ./integration/smoke -caddy ./caddy
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

const (
	adminAddr = "127.0.0.1:12019"
	siteAddr  = "127.0.0.1:19080"
)

var (
	passed, failed int
	seen           bytes.Buffer // every response body
)

func check(ok bool, format string, args ...any) {
	if ok {
		passed++
		fmt.Printf("  ok    %s\n", fmt.Sprintf(format, args...))
		return
	}
	failed++
	fmt.Printf("  FAIL  %s\n", fmt.Sprintf(format, args...))
}

func fatal(format string, args ...any) {
	fmt.Printf("  FAIL  %s\n", fmt.Sprintf(format, args...))
	fmt.Printf("%d passed, %d failed\n", passed, failed+1)
	os.Exit(1)
}

func main() {
	caddyBin := flag.String("caddy", "./caddy", "the built Caddy binary")
	flag.Parse()
	bin, err := filepath.Abs(*caddyBin)
	if err != nil {
		fatal("%v", err)
	}
	dir, err := os.MkdirTemp("", "agent-router-smoke-")
	if err != nil {
		fatal("%v", err)
	}
	defer os.RemoveAll(dir)

	fake := providertest.NewOpenAI()
	defer fake.Close()
	platform := "sk-proj-SMOKEplatform" + random(20)
	byok := "sk-proj-SMOKEbyok" + random(20)
	env := append(os.Environ(),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"SMOKE_OPENAI_KEY="+platform)

	writeConfig := func(maxBody string) string {
		path := filepath.Join(dir, "Caddyfile")
		cfg := fmt.Sprintf(`{
	admin %s
	default_bind 127.0.0.1
	grace_period 5s
	agent_router {
		store %s/ar.db
	}
}
http://%s {
	agent_router {
		provider openai {
			api_key {env.SMOKE_OPENAI_KEY}
			base_url %s
		}
		max_body %s
		console
	}
}
`, adminAddr, dir, siteAddr, fake.BaseURL(), maxBody)
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			fatal("%v", err)
		}
		return path
	}
	cfgPath := writeConfig("4MiB")

	fmt.Println("starting", bin)
	logFile, _ := os.Create(filepath.Join(dir, "caddy.log"))
	var exited chan error
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
		if err := cmd.Start(); err != nil {
			fatal("starting caddy: %v", err)
		}
		exited = make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		return cmd
	}
	cmd := start()
	defer func() { cmd.Process.Kill() }()
	waitUp := func() {
		for i := 0; i < 100; i++ {
			if resp, err := http.Get("http://" + adminAddr + "/config/"); err == nil {
				resp.Body.Close()
				return
			}
			select {
			case err := <-exited:
				out, _ := os.ReadFile(filepath.Join(dir, "caddy.log"))
				fatal("caddy exited: %v\n%s", err, out)
			case <-time.After(100 * time.Millisecond):
			}
		}
		fatal("caddy did not start")
	}
	waitUp()

	call := func(method, url, auth, body string) (int, http.Header, []byte) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fatal("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		seen.Write(b)
		return resp.StatusCode, resp.Header, b
	}
	admin := "http://" + adminAddr + "/agent_router"
	chatURL := "http://" + siteAddr + "/v1/chat/completions"

	fmt.Println("admin API")
	code, _, b := call("POST", admin+"/accounts", "", `{"id":"acme","name":"Acme"}`)
	check(code == 201, "create account: %d %s", code, b)
	code, _, b = call("POST", admin+"/accounts/acme/keys", "", `{"name":"smoke"}`)
	var key struct{ Key string }
	json.Unmarshal(b, &key)
	check(code == 201 && strings.HasPrefix(key.Key, "ar_"), "create API key: %d", code)
	code, _, b = call("GET", admin+"/providers", "", "")
	check(code == 200 && bytes.Contains(b, []byte(`"name":"openai","implemented":true,"platform_key":true`)), "providers: %d %s", code, b)

	chat := func(label, wantKey, wantSource string) {
		code, h, b := call("POST", chatURL, key.Key, `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`)
		last, _ := fake.Last()
		check(code == 200 && h.Get("X-Agent-Router-Credential") == wantSource && last.Credential == wantKey && bytes.Contains(b, []byte("chat.completion")),
			"%s plain chat: %d, credential %s, the fake got the %s key: %v", label, code, h.Get("X-Agent-Router-Credential"), wantSource, last.Credential == wantKey)
		code, h, b = call("POST", chatURL, key.Key, `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		events := bytes.Count(b, []byte("data: "))
		last, _ = fake.Last()
		check(code == 200 && strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") && events == 8 && bytes.HasSuffix(bytes.TrimSpace(b), []byte("data: [DONE]")) && last.Credential == wantKey,
			"%s streamed chat: %d, %d events ending in [DONE], the fake got the %s key: %v", label, code, events, wantSource, last.Credential == wantKey)
	}
	fmt.Println("data plane")
	chat("platform", platform, "platform")
	code, _, b = call("PUT", admin+"/accounts/acme/byok/openai", "", `{"api_key":"`+byok+`"}`)
	check(code == 200 && bytes.Contains(b, []byte(`"status":"active"`)), "register BYOK key: %d %s", code, b)
	chat("byok", byok, "byok")

	fmt.Println("reload")
	cfgPath = writeConfig("2MiB")
	out, err := exec.Command(bin, "reload", "--config", cfgPath, "--adapter", "caddyfile", "--address", adminAddr).CombinedOutput()
	check(err == nil, "caddy reload: %v %s", err, out)
	chat("after reload", byok, "byok")
	code, _, b = call("GET", admin+"/accounts/acme/byok/openai", "", "")
	check(code == 200 && bytes.Contains(b, []byte(`"version":1`)), "credential kept across reload: %s", b)

	fmt.Println("second process on the same store")
	second := strings.NewReplacer(adminAddr, "127.0.0.1:12020", siteAddr, "127.0.0.1:19081").Replace(mustRead(cfgPath))
	secondPath := filepath.Join(dir, "Caddyfile.second")
	os.WriteFile(secondPath, []byte(second), 0o600)
	c2 := exec.Command(bin, "run", "--config", secondPath, "--adapter", "caddyfile")
	c2.Env = env
	done := make(chan []byte, 1)
	go func() { out, _ := c2.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		check(bytes.Contains(out, []byte("locked")) && c2.ProcessState.ExitCode() != 0, "second process refused with a clear error: %s", lastLine(out))
	case <-time.After(20 * time.Second):
		c2.Process.Kill()
		check(false, "second process did not fail within 20s")
	}

	fmt.Println("console and add-user while running")
	code, hdr, b := call("GET", "http://"+siteAddr+"/console/signin", "", "")
	check(code == 200 && bytes.Contains(b, []byte("<h1>Sign in</h1>")) && strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'self'"),
		"the console's sign-in page is served with its CSP: %d", code)
	addUser := func(email string) ([]byte, int) {
		c := exec.Command(bin, "agent-router", "add-user", "--store", filepath.Join(dir, "ar.db"), "--account", "acme", "--email", email, "--role", "owner",
			"--site", "http://"+siteAddr)
		c.Env = env
		out, _ := c.CombinedOutput()
		return out, c.ProcessState.ExitCode()
	}
	out, exit := addUser("locked@acme.test")
	check(exit != 0 && bytes.Contains(out, []byte("running Caddy")) && bytes.Contains(out, []byte("/agent_router/accounts/acme/users")),
		"add-user on a running store points to the admin API: %s", lastLine(out))

	fmt.Println("request log and secrets")
	time.Sleep(500 * time.Millisecond)
	code, _, b = call("GET", admin+"/logs?account=acme", "", "")
	var page struct {
		Records []struct {
			CredentialSource string `json:"credential_source"`
			Attempts         []any  `json:"attempts"`
		} `json:"records"`
	}
	json.Unmarshal(b, &page)
	sources := map[string]int{}
	for _, r := range page.Records {
		sources[r.CredentialSource] += len(r.Attempts)
	}
	check(code == 200 && len(page.Records) == 6 && sources["byok"] == 4 && sources["platform"] == 2,
		"request log has 4 byok and 2 platform records, one attempt each: %v", sources)
	stop := func() {
		out, err := exec.Command(bin, "stop", "--address", adminAddr).CombinedOutput()
		check(err == nil, "caddy stop: %v %s", err, out)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			check(false, "caddy did not exit after stop")
		}
	}
	usage := func() (byok, platform, tokens int64) {
		_, _, b := call("GET", admin+"/usage?account=acme&bucket=day&group_by=credential_source", "", "")
		var res struct {
			Totals []struct {
				Key         map[string]string `json:"key"`
				Requests    int64             `json:"requests"`
				TotalTokens int64             `json:"total_tokens"`
			} `json:"totals"`
		}
		json.Unmarshal(b, &res)
		for _, t := range res.Totals {
			tokens += t.TotalTokens
			switch t.Key["credential_source"] {
			case "byok":
				byok = t.Requests
			case "platform":
				platform = t.Requests
			}
		}
		return
	}
	b1, p1, t1 := usage()
	check(b1 == 4 && p1 == 2 && t1 == 6*16, "usage before the restart: %d byok and %d platform requests, %d tokens", b1, p1, t1)
	_, _, b = call("GET", "http://"+adminAddr+"/metrics", "", "")
	check(bytes.Contains(b, []byte(`caddy_agent_router_requests_total{api="chat",credential_source="byok",model="gpt-4o",provider="openai",status_class="2xx"} 4`)),
		"/metrics counts the 4 byok requests")
	stop()

	fmt.Println("restart: the usage flushed at the clean stop is all there")
	cmd = start()
	waitUp()
	b2, p2, t2 := usage()
	check(b2 == b1 && p2 == p1 && t2 == t1, "usage after the restart: %d byok, %d platform, %d tokens", b2, p2, t2)
	stop()
	out, exit = addUser("owner@acme.test")
	check(exit == 0 && bytes.Contains(out, []byte("http://"+siteAddr+"/console/setup#")), "add-user on the stopped store prints a setup link: %s", lastLine(out))
	places := map[string][]byte{"responses": seen.Bytes()}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			places[strings.TrimPrefix(p, dir)] = b
		}
		return nil
	})
	for where, b := range places {
		for _, c := range []string{platform, byok} {
			check(!bytes.Contains(b, []byte(c)) && !bytes.Contains(b, []byte(c[8:len(c)-4])), "no canary key in %s", where)
		}
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		out, _ := os.ReadFile(filepath.Join(dir, "caddy.log"))
		fmt.Printf("--- caddy.log\n%s\n", out)
		os.Exit(1)
	}
}

func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.NewReplacer("-", "x", "_", "y").Replace(base64.RawURLEncoding.EncodeToString(b))[:n] + hex.EncodeToString(b[:2])
}

func mustRead(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		fatal("%v", err)
	}
	return string(b)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	l := lines[len(lines)-1]
	if len(l) > 300 {
		l = l[:300]
	}
	return l
}
