package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The console demo (./xcaddy.sh demo, examples/console-demo) is the
// README's one command for a newcomer: this drives the seed's journey
// through it in the browser, with nothing but what it prints. It picks
// free ports, so it does not need integration's fixed ones; it lives here
// for the browser helpers.
func TestConsoleDemoJourney(t *testing.T) {
	ctx, cancel := browser(t)
	defer cancel()
	bin := t.TempDir()
	goBuild(t, filepath.Join(bin, "caddy"), "./cmd/caddy")
	goBuild(t, filepath.Join(bin, "console-demo"), "./examples/console-demo")

	demo := exec.Command(filepath.Join(bin, "console-demo"), "-caddy", filepath.Join(bin, "caddy"))
	out, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	demo.Stderr = &stderr
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	defer func() {
		if demo.ProcessState == nil {
			demo.Process.Kill()
			<-exited
		}
	}()

	// What it prints, up to the line that says how to stop it.
	printed := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Ctrl-C stops") {
				break
			}
		}
		printed <- b.String()
		io.Copy(io.Discard, out)
	}()
	var banner string
	select {
	case banner = <-printed:
	case err := <-exited:
		t.Fatalf("the demo exited at start: %v\n%s", err, stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the demo printed nothing within 2 minutes\n%s", stderr.String())
	}
	t.Logf("the demo printed:\n%s", banner)
	find := func(re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(banner)
		if m == nil {
			t.Fatalf("%s not in what the demo printed", re)
		}
		return m[1]
	}
	site := find(`Console\s+(http://localhost:\d+)/console/`)
	setup := find(`Setup link\s+(http://\S+/console/setup#\S+)`)
	apiKey := find(`API key\s+(ar_\S+)`)
	dir := find(`Files\s+(\S+)`)
	ledger := find(`openai\s+(http://127\.0\.0\.1:\d+/_fake/records)`)
	azure := find(`resource endpoint: (http://127\.0\.0\.1:\d+),`)

	// 1. The setup link: set the password, sign in; eight providers.
	do(t, ctx, "the printed setup link",
		chromedp.Navigate(setup),
		chromedp.WaitVisible(css("#password")),
		chromedp.SendKeys(css("#password"), journeyPassword),
		chromedp.SendKeys(css("#password2"), journeyPassword),
		chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css("#email")),
		chromedp.SendKeys(css("#email"), "owner@acme.example"),
		chromedp.SendKeys(css("#password"), journeyPassword),
		chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css("#providers")),
	)
	if n := count(t, ctx, `#providers [data-status="not_configured"]`); n != 8 {
		t.Fatalf("%d providers not configured, want 8", n)
	}

	// 2. A BYOK key for OpenAI, as the demo suggests, and one for Azure
	// with the endpoint it prints: both Active.
	byok := "sk-proj-demo-" + randomAlnum(32)
	do(t, ctx, "save the openai key",
		chromedp.Click(css(`[data-provider="openai"] a.cardlink`)),
		chromedp.WaitVisible(css("#api_key")),
		chromedp.SendKeys(css("#api_key"), byok),
		chromedp.Click(css("#save")),
		chromedp.WaitVisible(css("#notice")),
	)
	do(t, ctx, "save the azure key",
		chromedp.Navigate(site+"/console/byok/azure"),
		chromedp.WaitVisible(css("#api_key")),
		chromedp.SendKeys(css("#api_key"), strings.ToLower(randomHex(32))),
		chromedp.SendKeys(css("#base_url"), azure),
		chromedp.Click(css("#save")),
		chromedp.WaitVisible(css("#notice")),
	)
	if n := count(t, ctx, `[data-status="active"]`); n != 2 {
		t.Fatalf("%d providers active, want openai and azure", n)
	}

	// 3. The playground answers with the BYOK badge, and the fake OpenAI's
	// own records show the key that arrived.
	do(t, ctx, "playground",
		chromedp.Navigate(site+"/console/playground"),
		chromedp.WaitVisible(css("#message")),
		chromedp.SetValue(css("#model"), "gpt-4o"),
		chromedp.SendKeys(css("#message"), "hello from the demo test"),
		chromedp.Click(css("#send")),
		chromedp.WaitVisible(css("#result")),
	)
	if answer, cred := text(t, ctx, "#answer"), text(t, ctx, "#r-credential"); answer == "" || !strings.Contains(cred, "BYOK") {
		t.Fatalf("playground: answer %q, credential %q", answer, cred)
	}
	var records struct {
		Records []struct{ Model, Credential string }
	}
	getJSON(t, ledger, &records)
	last := records.Records[len(records.Records)-1]
	if last.Model != "gpt-4o" || last.Credential != byok[:8]+"…"+byok[len(byok)-4:] {
		t.Fatalf("the fake's last record: %+v", last)
	}
	// Azure through the printed API key: the BYOK key reaches the fake
	// Azure too.
	req, _ := http.NewRequest("POST", site+"/v1/chat/completions", strings.NewReader(`{"model":"azure-gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Agent-Router-Credential") != "byok" || resp.Header.Get("X-Agent-Router-Provider") != "azure" {
		t.Fatalf("azure through the API key: %d %v", resp.StatusCode, resp.Header)
	}

	// 4. Request Logs: the BYOK rows, one expanded; Usage: both sources.
	do(t, ctx, "request logs", chromedp.Navigate(site+"/console/logs?source=byok"), chromedp.WaitVisible(css("details.logrow")))
	expandRow(t, ctx, "details.logrow")
	if d := text(t, ctx, "details.logrow[open] dl"); !strings.Contains(d, "BYOK") {
		t.Fatalf("row detail: %q", d)
	}
	do(t, ctx, "usage", chromedp.Navigate(site+"/console/usage"), chromedp.WaitVisible(css("#usage-table")))
	byokN, _ := strconv.Atoi(text(t, ctx, "#total-byok"))
	platformN, _ := strconv.Atoi(text(t, ctx, "#total-platform"))
	// The demo's own three platform requests, then ours.
	if byokN < 2 || platformN < 3 {
		t.Fatalf("usage: %d byok, %d platform", byokN, platformN)
	}
	shot(t, ctx, "demo-usage")

	// Ctrl-C stops it all: the demo exits 0, Caddy is gone, the temporary
	// directory too.
	demo.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the demo exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop within 30 s of Ctrl-C")
	}
	if _, err := http.Get(site + "/console/"); err == nil {
		t.Error("Caddy still answers after the demo stopped")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the demo's directory %s is still there (%v)", dir, err)
	}
}

// goBuild builds a package of this module (path relative to the module
// root) into out, with the test suite's build settings.
func goBuild(t *testing.T, out, pkg string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-tags", "nobadger,nomysql,nopgx", "-o", out, pkg)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	t.Logf("built %s in %v", pkg, time.Since(start).Round(time.Second))
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(fmt.Errorf("%s: %v", url, err))
	}
}
