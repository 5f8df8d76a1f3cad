// Command console-demo runs the Agent Router Console's whole BYOK journey
// offline: fake providers for all eight providers on loopback (the
// project's own providers/providertest, speaking each native protocol),
// Caddy with the gateway and the console in front of them, an account, an
// API key and its first owner, whose one-time setup link it prints. Nothing
// to edit: open the link, set a password, save a BYOK key, and the
// playground answers with the BYOK badge; the request log and the usage
// chart follow.
//
//	./xcaddy.sh demo                 # builds ./caddy, then runs this
//	go run ./examples/console-demo -caddy ./caddy [-http-port 8080] [-admin-port 2019] [-dir DIR]
//
// Ports default to free ones. The store lives in a temporary directory
// removed on exit, or in -dir, kept (a second run signs in with the
// password set the first time). Ctrl-C stops everything it started.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

//go:embed Caddyfile
var caddyfile []byte

// fakes are the eight providers and the kind of fake that speaks each one's
// protocol (Mistral, Together and Perplexity speak OpenAI's).
var fakes = []struct{ provider, kind, title string }{
	{"openai", "openai", "OpenAI"}, {"anthropic", "anthropic", "Anthropic"}, {"gemini", "gemini", "Google Gemini"},
	{"azure", "azure", "Azure OpenAI"}, {"mistral", "openai", "Mistral"}, {"together", "openai", "Together"},
	{"perplexity", "openai", "Perplexity"}, {"cohere", "cohere", "Cohere"},
}

// platformKey is the platform-managed key of every provider in the demo.
const platformKey = "sk-demo-platform-key-0000000000000000"

func main() {
	log.SetFlags(0)
	log.SetPrefix("console-demo: ")
	caddyBin := flag.String("caddy", "./caddy", "the Caddy binary with Agent Router (./xcaddy.sh builds it)")
	httpPort := flag.Int("http-port", 0, "port of the site and its console (default: a free port)")
	adminPort := flag.Int("admin-port", 0, "port of Caddy's admin API (default: a free port)")
	dir := flag.String("dir", "", "keep the store and the logs in this directory (default: a temporary one, removed on exit)")
	account := flag.String("account", "acme", "the account to create")
	email := flag.String("email", "owner@acme.example", "the owner to create")
	flag.Parse()
	if err := run(*caddyBin, *httpPort, *adminPort, *dir, *account, *email); err != nil {
		log.Fatal(err)
	}
}

type demo struct {
	dir, site, admin string
	caddy            *exec.Cmd
	exited           chan error
	servers          []*http.Server
	client           *http.Client
}

func run(caddyBin string, httpPort, adminPort int, dir, account, email string) error {
	bin, err := filepath.Abs(caddyBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("no Caddy binary at %s: build it with ./xcaddy.sh (or pass -caddy)", caddyBin)
	}
	d := &demo{client: &http.Client{Timeout: 30 * time.Second}}
	if dir == "" {
		if d.dir, err = os.MkdirTemp("", "agent-router-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(d.dir)
	} else {
		if d.dir, err = filepath.Abs(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(d.dir, 0o700); err != nil {
			return err
		}
	}
	defer d.stop()

	env := []string{"DEMO_DIR=" + d.dir, "DEMO_PLATFORM_KEY=" + platformKey,
		// Caddy's own data and config (autosave, locks) stay in the demo's
		// directory, out of the user's home.
		"XDG_DATA_HOME=" + filepath.Join(d.dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(d.dir, "config")}
	var ledgers []string
	var azureURL string
	for _, f := range fakes {
		url, ledger, err := d.startFake(f.kind)
		if err != nil {
			return fmt.Errorf("starting the fake %s: %v", f.title, err)
		}
		if f.provider == "azure" {
			azureURL = url
		}
		env = append(env, "DEMO_"+strings.ToUpper(f.provider)+"_URL="+url)
		ledgers = append(ledgers, fmt.Sprintf("    %-12s %s", f.provider, ledger))
	}
	if httpPort, err = pickPort(httpPort); err != nil {
		return err
	}
	for given := adminPort; ; {
		if adminPort, err = pickPort(given); err != nil {
			return err
		}
		if adminPort != httpPort {
			break
		}
		if given != 0 {
			return fmt.Errorf("-admin-port and -http-port are both %d", given)
		}
	}
	d.site = "http://localhost:" + strconv.Itoa(httpPort)
	d.admin = "http://localhost:" + strconv.Itoa(adminPort)
	env = append(env, "DEMO_HTTP_PORT="+strconv.Itoa(httpPort), "DEMO_ADMIN_PORT="+strconv.Itoa(adminPort))

	config := filepath.Join(d.dir, "Caddyfile")
	if err := os.WriteFile(config, caddyfile, 0o600); err != nil {
		return err
	}
	if err := d.startCaddy(bin, config, env); err != nil {
		return err
	}

	setup, err := d.createOwner(account, email)
	if err != nil {
		return err
	}
	key, err := d.createAPIKey(account)
	if err != nil {
		return err
	}
	// A few requests served with the platform keys, so the request log and
	// the usage chart start with something to compare a BYOK request to.
	for _, model := range []string{"gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"} {
		if err := d.chat(key, model); err != nil {
			return fmt.Errorf("a first request through the gateway (%s): %v", model, err)
		}
	}

	fmt.Printf(`
Agent Router console demo: everything runs on loopback, no real provider is called.

  Console       %[1]s/console/
  %[2]s
  API key       %[3]s   (account %[4]s; for curl below)
  Admin API     %[5]s/agent_router/
  Files         %[6]s   (Caddyfile, caddy.log, the store)

  The fake providers' own records, like a provider's usage page (which key arrived):
%[7]s

The seed's journey, nothing to edit:
  1. Open the setup link, choose a password (12 characters or more), sign in.
  2. Settings → Bring Your Own Key → OpenAI: paste any key that starts with sk-
     (e.g. sk-proj-demo-my-own-key-1234567890), Save: the card says Active.
     (Any provider works; Azure also asks for its resource endpoint: %[9]s, the fake.)
  3. Build → Playground: model gpt-4o, send a message: the answer carries the BYOK badge.
  4. Monitoring → Request Logs: expand the row (Credential: BYOK); Usage: BYOK against platform.
  The same through the API, with the key above:
    curl %[1]s/v1/chat/completions -H "Authorization: Bearer %[3]s" \
      -d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' -i | grep -i credential

Ctrl-C stops Caddy and the fakes%[8]s.
`, d.site, setup, key, account, d.admin, d.dir, strings.Join(ledgers, "\n"), map[bool]string{true: " and removes " + d.dir, false: ""}[dir == ""], azureURL)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case s := <-sig:
		fmt.Printf("\n%v: stopping\n", s)
		return nil
	case err := <-d.exited:
		return fmt.Errorf("caddy exited (%v); its log: %s", err, filepath.Join(d.dir, "caddy.log"))
	}
}

// pickPort returns port, or a free loopback port when it is 0. A port given
// but taken fails here, naming the flag, rather than in Caddy's log.
func pickPort(port int) (int, error) {
	if port == 0 {
		return freePort()
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return 0, fmt.Errorf("port %d is taken (choose another with -http-port / -admin-port, or leave them out for free ones): %v", port, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePort finds a port nothing listens on, below the kernel's range for
// outgoing connections: Caddy binds it a moment later, and a port the
// kernel may hand to an outgoing connection meanwhile could be taken.
func freePort() (int, error) {
	hi := 32767
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			if lo, err := strconv.Atoi(f[0]); err == nil && lo > 11000 {
				hi = lo - 1
			}
		}
	}
	for try := 0; try < 100; try++ {
		p := 10000 + rand.IntN(hi-10000)
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			l.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port found")
}

// startFake serves a fake provider of kind on a free loopback port, with its
// ledger at /_fake/records. It returns the gateway's base_url for it and
// the ledger's URL.
func (d *demo) startFake(kind string) (baseURL, ledger string, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", err
	}
	fake := providertest.NewHandler(kind)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_fake/records", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		type entry struct {
			Time       time.Time `json:"time"`
			Path       string    `json:"path"`
			Model      string    `json:"model"`
			Stream     bool      `json:"stream"`
			Header     string    `json:"credential_header"`
			Credential string    `json:"credential"`
		}
		out := []entry{}
		for _, rec := range fake.Records() {
			out = append(out, entry{rec.Time, rec.Path, rec.Model, rec.Stream, rec.CredentialHeader, mask(rec.Credential)})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"records": out})
	})
	mux.Handle("/", fake)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.servers = append(d.servers, srv)
	go srv.Serve(l)
	u := "http://" + l.Addr().String()
	return fake.BaseURLFor(u), u + "/_fake/records", nil
}

// mask shows a key as a provider's dashboard does: its start and its last
// four characters.
func mask(k string) string {
	if len(k) < 16 {
		return strings.Repeat("•", len(k))
	}
	return k[:8] + "…" + k[len(k)-4:]
}

// startCaddy runs Caddy on the demo's Caddyfile and waits for its admin API.
func (d *demo) startCaddy(bin, config string, env []string) error {
	logf, err := os.Create(filepath.Join(d.dir, "caddy.log"))
	if err != nil {
		return err
	}
	d.caddy = exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	d.caddy.Env = append(os.Environ(), env...)
	d.caddy.Stdout, d.caddy.Stderr = logf, logf
	d.caddy.SysProcAttr = childAttr()
	if err := d.caddy.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %v", bin, err)
	}
	d.exited = make(chan error, 1)
	go func() { d.exited <- d.caddy.Wait(); logf.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := d.client.Get(d.admin + "/agent_router/providers")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			return fmt.Errorf("caddy exited at start (%v):\n%s", err, tail(filepath.Join(d.dir, "caddy.log")))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caddy's admin API at %s did not answer within 60s:\n%s", d.admin, tail(filepath.Join(d.dir, "caddy.log")))
		}
	}
}

// adminCall sends one admin API request and decodes its JSON answer.
func (d *demo) adminCall(method, path string, in, out any) (int, error) {
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, d.admin+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(body))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(body, out)
	}
	return resp.StatusCode, nil
}

// createOwner creates the account (unless it exists: a kept -dir) and its
// owner, and returns the line to print: the setup link, or, for an owner
// made by an earlier run, how to sign in.
func (d *demo) createOwner(account, email string) (string, error) {
	if code, err := d.adminCall("POST", "/agent_router/accounts", map[string]string{"id": account, "name": "Acme Corp"}, nil); err != nil && code != http.StatusConflict {
		return "", err
	}
	var u struct {
		SetupPath string `json:"setup_path"`
	}
	code, err := d.adminCall("POST", "/agent_router/accounts/"+account+"/users", map[string]string{"email": email, "role": "owner"}, &u)
	if code == http.StatusConflict {
		return fmt.Sprintf("Sign in       %s/console/signin as %s (the password set in an earlier run)", d.site, email), nil
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Setup link    %s%s\n                (works once: the owner %s sets a password there)", d.site, u.SetupPath, email), nil
}

func (d *demo) createAPIKey(account string) (string, error) {
	var k struct {
		Key string `json:"key"`
	}
	_, err := d.adminCall("POST", "/agent_router/accounts/"+account+"/keys", map[string]string{"name": "demo"}, &k)
	return k.Key, err
}

// chat sends one chat completion through the gateway.
func (d *demo) chat(key, model string) error {
	req, _ := http.NewRequest("POST", d.site+"/v1/chat/completions",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hello from the demo"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// stop ends Caddy (gracefully: it flushes usage and the request log) and
// the fakes.
func (d *demo) stop() {
	if d.caddy != nil && d.caddy.Process != nil {
		d.caddy.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(15 * time.Second):
			d.caddy.Process.Kill()
			<-d.exited
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range d.servers {
		if err := s.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Close()
		}
	}
}

// tail is the end of a log file, for an error message.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
