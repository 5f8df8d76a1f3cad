package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// The console journey from the BYOK guide, in a real browser (Debian's
// Chromium, headless, driven by chromedp) against the real Caddy with the
// fake providers. In CI a missing browser fails the test; on a developer
// machine without Chromium (and without CI set) it is skipped.

const journeyPassword = "journey password 2026"

// screenshotDir keeps the pages' screenshots (gitignored).
var screenshotDir = filepath.Join("screenshots")

func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium found: CI must run the browser tests (.ci/run installs it with apt-get)")
	}
	t.Skip("no Chromium found (install Debian's chromium, or set CHROMIUM); set CI to make this a failure")
	return ""
}

// browser starts a headless Chromium with a fresh profile.
func browser(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	bin := findChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// The first call starts the browser; it must not carry a timeout (a
	// timeout there would stop the browser).
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		acancel()
		t.Fatalf("starting %s: %v", bin, err)
	}
	return ctx, func() { cancel(); acancel() }
}

// do runs browser steps, failing the test with what was being done and the
// page it was on.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	get(t, ctx, what, chromedp.Steps(steps...))
}

// get runs one browser action and returns its value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		loc, _ := chromedp.Run(dctx, chromedp.Location())
		body, _ := chromedp.Run(dctx, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("%s: %v\nat %s\n%s", what, err, loc, body)
	}
	return v
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "reading "+sel, chromedp.Text(css(sel), chromedp.NodeVisible))
}

func value(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "reading "+sel, chromedp.Value(css(sel)))
}

func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	return get(t, ctx, "counting "+sel, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
}

// shot saves a screenshot of the page as name.png, and a half-size copy as
// name-small.png (for docs/).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	full := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	small := get(t, ctx, "small screenshot "+name, func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		m, err := cdp.Call(ctx, tg, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		r, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format: page.CaptureScreenshotFormatPng, CaptureBeyondViewport: ptrTo(true), FromSurface: ptrTo(true),
			Clip: &page.Viewport{Width: m.CSSContentSize.Width, Height: min(m.CSSContentSize.Height, 1100), Scale: 0.5},
		})
		return r.Data, err
	})
	for file, b := range map[string][]byte{name + ".png": full, name + "-small.png": small} {
		if err := os.WriteFile(filepath.Join(screenshotDir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// setPassword redeems a setup link with a plain HTTP client (the browser
// does it for the first owner).
func setPassword(t *testing.T, setupPath, password string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(siteURL + "/console/setup")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no csrf on the setup page")
	}
	tok := setupPath[strings.Index(setupPath, "#")+1:]
	resp, err = c.PostForm(siteURL+"/console/setup", url.Values{"csrf": {string(m[1])}, "token": {tok}, "password": {password}, "password2": {password}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "Your password is set") {
		t.Fatalf("setting the password: %d %s", resp.StatusCode, b)
	}
}

// navigateBy runs steps that make the page navigate (a click on a submit
// button or a link) and returns once the new document has loaded: what is
// read next is the new page, never the one being replaced.
func navigateBy(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// RunResponse returns after the load event of the document the steps
	// navigated to (its response is nil here: the test browser does not
	// enable the Network domain).
	resp, err := chromedp.RunResponse(sctx, steps...)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if resp != nil && resp.Status != http.StatusOK {
		t.Fatalf("%s: the new page answered %d", what, resp.Status)
	}
}

// expandRow opens the <details> element sel with a click on its summary, as
// a user does, and waits for its content. Each try queries the selector
// afresh inside the chromedp actions, so a node replaced between the query
// and the click ("Could not find node with given id": the page re-rendered)
// costs a retry, not the test; only the deadline fails it. A row already
// open is not clicked again (that would close it).
func expandRow(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	isOpen := fmt.Sprintf(`(() => { const d = document.querySelector(%q); return !!(d && d.open); })()`, sel)
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var open bool
		if open, err = chromedp.Run(sctx, chromedp.Evaluate[bool](isOpen)); err == nil && !open {
			_, err = chromedp.Run(sctx, chromedp.Click(css(sel+" > summary"), chromedp.NodeVisible))
		}
		if err == nil {
			_, err = chromedp.Run(sctx, chromedp.WaitVisible(css(sel+"[open] > dl")))
		}
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("expanding %s: %v", sel, err)
}

type newUser struct {
	ID        string `json:"id"`
	SetupPath string `json:"setup_path"`
}

func signIn(t *testing.T, ctx context.Context, email, password string) {
	t.Helper()
	do(t, ctx, "sign in as "+email,
		chromedp.Navigate(siteURL+"/console/signin"),
		chromedp.WaitVisible(css("#email")),
		chromedp.SendKeys(css("#email"), email),
		chromedp.SendKeys(css("#password"), password),
		chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css("#providers")),
	)
}

func signOut(t *testing.T, ctx context.Context) {
	t.Helper()
	do(t, ctx, "sign out", chromedp.Click(css("#signout")), chromedp.WaitVisible(css("#email")))
}

// sendPlayground sends msg from the playground (with the API key's
// profile) and waits for the details under the answer.
func sendPlayground(t *testing.T, ctx context.Context, keyID, model, msg string) (answer, credential string) {
	t.Helper()
	do(t, ctx, "playground: "+msg,
		chromedp.Navigate(siteURL+"/console/playground?key="+keyID),
		chromedp.WaitVisible(css("#message")),
		chromedp.SetValue(css("#model"), model),
		chromedp.SendKeys(css("#message"), msg),
		chromedp.Click(css("#send")),
		chromedp.WaitVisible(css("#result")),
	)
	return text(t, ctx, "#answer"), text(t, ctx, "#r-credential")
}

func TestConsoleJourneyInBrowser(t *testing.T) {
	// The organisation's admin API, for the usage-reader card and the
	// reconciliation page.
	org := providertest.NewOpenAIAdmin()
	defer org.Close()
	adminKey := "sk-admin-JOURNEYadmin" + randomAlnum(30)
	org.AddAdminKey(adminKey)
	e := newEnv(t, envOptions{handler: "\t\tconsole\n\t\tprofile cheap {\n\t\t\talias fast gpt-4o-mini\n\t\t}",
		global: "\t\treconcile {\n\t\t\tadmin_url openai " + org.URL + "\n\t\t}"})
	ctx, cancel := browser(t)
	defer cancel()

	e.createAccount("acme")
	e.createAccount("globex")
	var owner, member, other newUser
	e.mustAdmin("POST", "/agent_router/accounts/acme/users", map[string]string{"email": "owner@acme.test", "role": "owner"}, 201, &owner)
	e.mustAdmin("POST", "/agent_router/accounts/acme/users", map[string]string{"email": "member@acme.test", "role": "member"}, 201, &member)
	e.mustAdmin("POST", "/agent_router/accounts/globex/users", map[string]string{"email": "owner@globex.test", "role": "owner"}, 201, &other)
	setPassword(t, member.SetupPath, journeyPassword)
	setPassword(t, other.SetupPath, journeyPassword)

	// The owner opens the setup link: the code comes from the fragment.
	do(t, ctx, "setup link",
		chromedp.Navigate(siteURL+owner.SetupPath),
		chromedp.WaitVisible(css("#password")),
	)
	tokenField := value(t, ctx, "#token")
	if tokenField == "" || !strings.HasSuffix(owner.SetupPath, tokenField) {
		t.Fatalf("the setup code was not filled from the link")
	}
	shot(t, ctx, "setup")
	do(t, ctx, "set password",
		chromedp.SendKeys(css("#password"), journeyPassword),
		chromedp.SendKeys(css("#password2"), journeyPassword),
		chromedp.Click(css(`button[type="submit"]`)),
		chromedp.WaitVisible(css("#email")),
	)
	shot(t, ctx, "signin")

	// Sign in → the BYOK page lists 8 providers, none configured.
	signIn(t, ctx, "owner@acme.test", journeyPassword)
	if n := count(t, ctx, `#providers [data-status="not_configured"]`); n != 8 {
		t.Fatalf("%d providers not configured, want 8", n)
	}
	shot(t, ctx, "byok")

	// Open OpenAI's card; a key with Anthropic's prefix is refused with the hint.
	do(t, ctx, "open the openai card",
		chromedp.Click(css(`[data-provider="openai"] a.cardlink`)),
		chromedp.WaitVisible(css("#api_key")),
		chromedp.SendKeys(css("#api_key"), "sk-ant-api03-"+randomAlnum(40)),
		chromedp.Click(css("#save")),
		chromedp.WaitVisible(css("#byok-error")),
	)
	if msg := text(t, ctx, "#byok-error"); !strings.Contains(msg, "looks like a key for anthropic") {
		t.Fatalf("wrong-prefix error: %q", msg)
	}
	if hint := text(t, ctx, "#key-hint"); !strings.Contains(hint, "OpenAI keys begin with sk-") {
		t.Fatalf("hint: %q", hint)
	}
	if value(t, ctx, "#api_key") != "" {
		t.Fatal("the API key field is prefilled")
	}

	// A good key → Save → Active with the masked key.
	key1 := "sk-proj-" + randomAlnum(48)
	do(t, ctx, "save a good key",
		chromedp.SendKeys(css("#api_key"), key1),
		chromedp.Click(css("#save")),
		chromedp.WaitVisible(css("#notice")),
	)
	if n := count(t, ctx, `[data-provider="openai"] [data-status="active"]`); n != 1 {
		t.Fatal("the openai card is not Active")
	}
	if m := text(t, ctx, "#masked"); m != "sk-proj-…"+key1[len(key1)-4:] {
		t.Fatalf("masked key %q", m)
	}
	shot(t, ctx, "byok-active")

	// Test (the stored key): ok.
	do(t, ctx, "test the key", chromedp.Click(css("#test")), chromedp.WaitVisible(css("#test-result")))
	if r := text(t, ctx, "#test-result"); !strings.Contains(r, "OK") {
		t.Fatalf("test result %q", r)
	}
	if last, _ := e.openai.Last(); last.Credential != key1 || !strings.HasSuffix(last.Path, "/models") {
		t.Fatalf("the test did not list models with the key: %s", last.Path)
	}

	// The card's contract terms: the owner adds 10 % off from now; it is
	// the term in force, and it prices the requests below.
	do(t, ctx, "add a contract term",
		chromedp.SendKeys(css("#c-discount"), "10"),
		chromedp.SendKeys(css("#c-note"), "MSA 2026"),
		chromedp.Click(css("#contract-add")),
		chromedp.WaitVisible(css("#contract-terms tr.in-force")),
	)
	if row := text(t, ctx, "#contract-terms tr.in-force"); !strings.Contains(row, "10 %") || !strings.Contains(row, "MSA 2026") || !strings.Contains(row, "in force") {
		t.Fatalf("the term in force: %q", row)
	}
	shot(t, ctx, "byok-contract")

	// API Keys: create one (shown once), for the playground's profile and
	// the log filter.
	do(t, ctx, "create an API key",
		chromedp.Navigate(siteURL+"/console/keys"),
		chromedp.SendKeys(css("#key-name"), "journey"),
		chromedp.SetValue(css("#key-profile"), "cheap"),
		chromedp.Click(css(`#key-create button[type="submit"]`)),
		chromedp.WaitVisible(css("#new-key")),
	)
	apiKey := value(t, ctx, "#new-key")
	if !strings.HasPrefix(apiKey, "ar_") {
		t.Fatalf("new key %q", apiKey)
	}
	shot(t, ctx, "keys")
	var keys []struct{ ID, Name, Profile string }
	e.mustAdmin("GET", "/agent_router/accounts/acme/keys", nil, 200, &keys)
	keyID := keys[0].ID
	if keys[0].Profile != "cheap" {
		t.Fatalf("the key's profile is %q, want cheap", keys[0].Profile)
	}

	// Playground: the fake gets the BYOK key; the badge says BYOK.
	answer, cred := sendPlayground(t, ctx, keyID, "gpt-4o", "journey-tag-1")
	if answer == "" || !strings.Contains(cred, "BYOK") {
		t.Fatalf("playground: answer %q, credential %q", answer, cred)
	}
	if r := recordFor(t, e.openai, "journey-tag-1"); r.Credential != key1 {
		t.Fatal("the fake did not get the BYOK key")
	}
	// The key's profile adds its alias to the models the playground offers.
	if n := count(t, ctx, `#model option[value="fast"]`); n != 1 {
		t.Fatal("the profile's alias is not offered")
	}
	if p := text(t, ctx, "#r-provider"); p != "openai" {
		t.Fatalf("provider %q", p)
	}
	shot(t, ctx, "playground")

	// Request Logs: filter by the key, expand the row: BYOK badge and attempts.
	do(t, ctx, "request logs",
		chromedp.Navigate(siteURL+"/console/logs"),
		chromedp.WaitVisible(css("#log-filters")),
		chromedp.SetValue(css("#f-key"), keyID),
	)
	// The unfiltered page has rows too: wait for the filtered page itself
	// (the load of the document the submit asked for), not for a row that
	// may still be the old page's.
	navigateBy(t, ctx, "apply the filter", chromedp.Click(css("#apply")))
	if loc := get(t, ctx, "location", chromedp.Location()); !strings.Contains(loc, "key="+keyID) {
		t.Fatalf("the filter is not in the URL: %s", loc)
	}
	do(t, ctx, "filtered rows", chromedp.WaitVisible(css("details.logrow")))
	if n := count(t, ctx, "details.logrow"); n != 1 {
		t.Fatalf("%d rows for the key, want 1", n)
	}
	expandRow(t, ctx, "details.logrow")
	do(t, ctx, "row detail", chromedp.WaitVisible(css("details.logrow[open] ol.attempts")))
	if d := text(t, ctx, "details.logrow[open] dl"); !strings.Contains(d, "BYOK") || !strings.Contains(d, "openai/gpt-4o") || !strings.Contains(d, "HTTP 200") {
		t.Fatalf("row detail: %q", d)
	}
	// Its cost: the fake's 11 prompt and 5 completion tokens at gpt-4o's
	// list price (11 × 2.50 + 5 × 10 = 77.5 µUSD), 10 % off under the
	// contract term; paid by the account's own key; the price version.
	if c := text(t, ctx, "details.logrow[open] summary .cost"); c != "$0.00006975" {
		t.Fatalf("the row's cost %q, want $0.00006975", c)
	}
	if d := text(t, ctx, "details.logrow[open] dd.cost"); !strings.Contains(d, "paid by BYOK") || !strings.Contains(d, "10 % off") {
		t.Fatalf("cost detail %q", d)
	}
	if v := text(t, ctx, "details.logrow[open] code.price-version"); !regexp.MustCompile(`^[0-9]+-[0-9a-f]{12}$`).MatchString(v) {
		t.Fatalf("price version %q", v)
	}
	shot(t, ctx, "logs")

	// Rotate: the next message reaches the fake with the new key.
	key2 := "sk-proj-" + randomAlnum(48)
	do(t, ctx, "rotate",
		chromedp.Navigate(siteURL+"/console/byok/openai"),
		chromedp.WaitVisible(css("#api_key")),
		chromedp.SendKeys(css("#api_key"), key2),
		chromedp.Click(css("#save")),
		chromedp.WaitVisible(css("#notice")),
	)
	if m := text(t, ctx, "#masked"); !strings.HasSuffix(m, key2[len(key2)-4:]) {
		t.Fatalf("masked after rotation %q", m)
	}
	sendPlayground(t, ctx, keyID, "gpt-4o", "journey-tag-2")
	if r := recordFor(t, e.openai, "journey-tag-2"); r.Credential != key2 {
		t.Fatal("the rotated key was not used")
	}

	// The usage-reader card beside the BYOK card: an admin key, masked once
	// saved, tested; then Monitoring → Reconciliation finds use of the key
	// that never went through the gateway.
	org.AddKey(key2, providertest.AdminKey{Name: "acme prod"})
	do(t, ctx, "usage reader",
		chromedp.Navigate(siteURL+"/console/byok/openai"),
		chromedp.WaitVisible(css("#reader_key")),
		chromedp.SendKeys(css("#reader_key"), adminKey),
		chromedp.Click(css("#reader-save")),
		chromedp.WaitVisible(css("#reader-masked")),
	)
	if m := text(t, ctx, "#reader-masked"); m != "sk-admin-…"+adminKey[len(adminKey)-4:] {
		t.Fatalf("the admin key shows as %q", m)
	}
	if v := value(t, ctx, "#reader_key"); v != "" {
		t.Fatal("the admin key field is filled after saving")
	}
	do(t, ctx, "usage reader test", chromedp.Click(css("#reader-test-button")), chromedp.WaitVisible(css("#reader-test")))
	if r := text(t, ctx, "#reader-test"); !strings.Contains(r, "OK") {
		t.Fatalf("usage reader test: %q", r)
	}
	shot(t, ctx, "usage-reader")
	org.InjectUsage(key2, providertest.UsageEvent{Model: "gpt-4o", Input: 300, Output: 120})
	do(t, ctx, "reconciliation",
		chromedp.Navigate(siteURL+"/console/reconciliation"),
		chromedp.WaitVisible(css("#run-openai")),
		chromedp.Click(css("#run-openai")),
		chromedp.WaitVisible(css("#run-result")),
	)
	if r := text(t, ctx, "#run-result"); !strings.Contains(r, "Reconciled OpenAI") {
		t.Fatalf("check: %q", r)
	}
	if n := count(t, ctx, `p[data-alert]`); n != 1 || count(t, ctx, `#recon-tokens tr[data-status="out_of_band"]`) != 1 {
		t.Fatalf("%d alerts, %d out-of-band rows", n, count(t, ctx, `#recon-tokens tr[data-status="out_of_band"]`))
	}
	shot(t, ctx, "reconciliation")
	do(t, ctx, "the BYOK card says so", chromedp.Navigate(siteURL+"/console/byok"), chromedp.WaitVisible(css("#providers")))
	if n := count(t, ctx, `[data-provider="openai"] .oob`); n != 1 {
		t.Fatal("the BYOK card does not show the out-of-band use")
	}
	if html := get(t, ctx, "page source", chromedp.Evaluate[string](`document.documentElement.outerHTML`)); strings.Contains(html, adminKey) {
		t.Fatal("the admin key is in the page")
	}

	// Remove: the platform key serves the next one, and the badge says so.
	do(t, ctx, "remove",
		chromedp.Navigate(siteURL+"/console/byok/openai"),
		chromedp.WaitVisible(css("#remove")),
		chromedp.Click(css("#remove")),
		chromedp.WaitVisible(css("#notice")),
	)
	if n := count(t, ctx, `[data-provider="openai"] [data-status="not_configured"]`); n != 1 {
		t.Fatal("the openai card is not back to Not configured")
	}
	_, cred = sendPlayground(t, ctx, keyID, "gpt-4o", "journey-tag-3")
	if !strings.Contains(cred, "Platform") {
		t.Fatalf("credential after removal %q", cred)
	}
	if r := recordFor(t, e.openai, "journey-tag-3"); r.Credential != e.options.platformKey {
		t.Fatal("the platform key did not serve after removal")
	}

	// Usage shows both sources.
	do(t, ctx, "usage", chromedp.Navigate(siteURL+"/console/usage"), chromedp.WaitVisible(css("#usage-table")))
	byok, _ := strconv.Atoi(text(t, ctx, "#total-byok"))
	platform, _ := strconv.Atoi(text(t, ctx, "#total-platform"))
	if byok < 2 || platform < 1 {
		t.Fatalf("usage: %d byok, %d platform", byok, platform)
	}
	// The chart: a bar slot for each of the 24 hours, whose tooltips add up
	// to the totals.
	if n := count(t, ctx, `[aria-labelledby="chart-title"] svg.chart g.bucket`); n != 24 {
		t.Fatalf("the chart has %d buckets, want 24", n)
	}
	sums := get(t, ctx, "the chart's tooltips", chromedp.Evaluate[[]int](`Array.from(document.querySelectorAll('[aria-labelledby="chart-title"] svg.chart g.bucket > title')).
		map(t => /BYOK ([0-9,]+), Platform ([0-9,]+)/.exec(t.textContent)).
		reduce((s, m) => [s[0] + parseInt(m[1].replace(/,/g, "")), s[1] + parseInt(m[2].replace(/,/g, ""))], [0, 0])`))
	if len(sums) != 2 || sums[0] != byok || sums[1] != platform {
		t.Fatalf("the chart's tooltips add up to %v, the totals are %d BYOK and %d platform", sums, byok, platform)
	}
	// Money: the two BYOK messages (the term stays through the rotation: it
	// is the contract's, not the key's) and the platform one.
	if b, p := text(t, ctx, "#cost-byok"), text(t, ctx, "#cost-platform"); b != "$0.0001395" || p != "$0.0000775" {
		t.Fatalf("cost BYOK %s, platform %s; want $0.0001395 and $0.0000775", b, p)
	}
	if n := count(t, ctx, "#cost svg.chart g.bucket rect.byok"); n != 1 {
		t.Fatalf("the cost chart has %d BYOK bars, want 1", n)
	}
	shot(t, ctx, "usage")

	// Chargeback: this month per provider, key and model, and its CSV.
	do(t, ctx, "chargeback", chromedp.Navigate(siteURL+"/console/chargeback"), chromedp.WaitVisible(css("#chargeback-table")))
	if n := count(t, ctx, "#chargeback-table tbody tr[data-provider]"); n != 3 {
		t.Fatalf("%d chargeback rows, want 3 (the two keys' BYOK rows and the platform's)", n)
	}
	if b := text(t, ctx, "#cb-byok"); b != "$0.0001395" {
		t.Fatalf("chargeback BYOK total %q", b)
	}
	if href := get(t, ctx, "CSV link", chromedp.Evaluate[string](`document.querySelector("#chargeback-csv").getAttribute("href")`)); !strings.HasPrefix(href, "/console/chargeback.csv?month=") {
		t.Fatalf("CSV link %q", href)
	}
	shot(t, ctx, "chargeback")
	// A config reload keeps the session: it lives in the store.
	e.load()
	do(t, ctx, "after a reload", chromedp.Navigate(siteURL+"/console/byok"), chromedp.WaitVisible(css("#providers")))
	do(t, ctx, "members", chromedp.Navigate(siteURL+"/console/members"), chromedp.WaitVisible(css("#members")))
	shot(t, ctx, "members")

	// At 390 px the pages stay readable: nothing wider than the window.
	do(t, ctx, "narrow", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(siteURL+"/console/byok/openai"), chromedp.WaitVisible(css("#providers")))
	for _, p := range []string{"/console/byok/openai", "/console/logs", "/console/usage", "/console/chargeback", "/console/reconciliation", "/console/keys", "/console/playground"} {
		do(t, ctx, "narrow "+p, chromedp.Navigate(siteURL+p), chromedp.WaitVisible(css("h1")))
		wide := get(t, ctx, "width of "+p, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth + 1`))
		if wide {
			t.Errorf("%s scrolls sideways at 390 px", p)
		}
	}
	do(t, ctx, "narrow byok", chromedp.Navigate(siteURL+"/console/byok"), chromedp.WaitVisible(css("#providers")))
	shot(t, ctx, "byok-390")
	do(t, ctx, "wide again", chromedp.EmulateViewport(1280, 900))

	// Sign out: the session is dead server-side, even for a replayed cookie.
	cookies := get(t, ctx, "cookies", func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{siteURL + "/console/"}})
		return res.Cookies, err
	})
	var session string
	for _, c := range cookies {
		if c.Name == "ar_session" {
			session = c.Value
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax {
				t.Errorf("session cookie flags: %+v", c)
			}
		}
	}
	if session == "" {
		t.Fatal("no session cookie")
	}
	signOut(t, ctx)
	req, _ := http.NewRequest("GET", siteURL+"/console/byok", nil)
	req.AddCookie(&http.Cookie{Name: "ar_session", Value: session})
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "<h1>Sign in</h1>") {
		t.Fatal("the signed-out session still works")
	}

	// A member cannot save keys: no form, and a crafted POST is refused.
	signIn(t, ctx, "member@acme.test", journeyPassword)
	do(t, ctx, "member byok", chromedp.Navigate(siteURL+"/console/byok/openai"), chromedp.WaitVisible(css("#member-note")))
	if n := count(t, ctx, "#byok-form"); n != 0 {
		t.Fatal("a member sees the key form")
	}
	status := get(t, ctx, "crafted post", chromedp.Evaluate[int](`fetch("/console/byok/openai", {method: "POST",
		headers: {"X-CSRF-Token": document.body.dataset.csrf},
		body: new URLSearchParams({action: "save", api_key: "sk-proj-`+randomAlnum(40)+`"})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if status != http.StatusForbidden {
		t.Fatalf("member's crafted save: %d", status)
	}
	signOut(t, ctx)

	// Another account's user sees none of it.
	signIn(t, ctx, "owner@globex.test", journeyPassword)
	if n := count(t, ctx, `#providers [data-status="not_configured"]`); n != 8 {
		t.Fatalf("globex sees %d providers not configured", n)
	}
	do(t, ctx, "globex logs", chromedp.Navigate(siteURL+"/console/logs"), chromedp.WaitVisible(css("#no-logs")))
	do(t, ctx, "globex crafted key filter", chromedp.Navigate(siteURL+"/console/logs?key="+keyID))
	h1 := text(t, ctx, "h1")
	if !strings.HasPrefix(h1, "404") {
		t.Fatalf("globex with acme's key id: %q", h1)
	}
	do(t, ctx, "globex keys", chromedp.Navigate(siteURL+"/console/keys"), chromedp.WaitVisible(css("#keys")))
	keysHTML := get(t, ctx, "globex keys html", chromedp.OuterHTML(css("main")))
	if strings.Contains(keysHTML, "journey") || strings.Contains(keysHTML, keyID) {
		t.Fatal("globex sees acme's key")
	}

	// globex's owner invites acme's owner: one person, two accounts. The
	// invitation reads the same as for a new address; acme's owner accepts
	// it with the password they already have, then switches accounts.
	do(t, ctx, "invite an existing person",
		chromedp.Navigate(siteURL+"/console/members"),
		chromedp.WaitVisible(css("#invite-email")),
		chromedp.SendKeys(css("#invite-email"), "owner@acme.test"),
		chromedp.Click(css(`#invite button[type="submit"]`)),
		chromedp.WaitVisible(css("#setup-link")),
	)
	invite := value(t, ctx, "#setup-link")
	if !strings.HasPrefix(invite, siteURL+"/console/setup#") {
		t.Fatalf("invitation link %q", invite)
	}
	if n := count(t, ctx, `#members [data-status="invited"]`); n != 1 {
		t.Fatalf("%d invited rows, want 1", n)
	}
	shot(t, ctx, "members-invited")
	signOut(t, ctx)
	do(t, ctx, "open the invitation",
		chromedp.Navigate(invite),
		chromedp.WaitVisible(css("#password")),
		chromedp.SendKeys(css("#password"), journeyPassword),
		chromedp.SendKeys(css("#password2"), journeyPassword),
		chromedp.Click(css(`#setup-form button[type="submit"]`)),
		chromedp.WaitVisible(css("#email")),
	)
	if n := text(t, ctx, "p.notice"); !strings.Contains(n, "Invitation accepted") {
		t.Fatalf("after accepting: %q", n)
	}
	signIn(t, ctx, "owner@acme.test", journeyPassword)
	if opts := count(t, ctx, "#account-select option"); opts != 2 {
		t.Fatalf("the switcher offers %d accounts, want 2", opts)
	}
	if n := count(t, ctx, `[data-provider="openai"] [data-status="not_configured"]`); n != 1 {
		t.Fatal("acme's openai card is not where the journey left it")
	}
	do(t, ctx, "switch to globex",
		chromedp.SetValue(css("#account-select"), "globex"),
		chromedp.Click(css("#switch-account")),
	)
	// The BYOK page was on screen before: wait for the one the switch
	// redirected to (globex selected, and on the server side too).
	do(t, ctx, "globex selected", chromedp.WaitReady(css(`#account-select option[value="globex"][selected]`)), chromedp.WaitVisible(css("#providers")))
	do(t, ctx, "globex keys as acme's owner", chromedp.Navigate(siteURL+"/console/keys"), chromedp.WaitVisible(css("#keys")))
	if html := get(t, ctx, "keys html", chromedp.OuterHTML(css("main"))); strings.Contains(html, keyID) {
		t.Fatal("acme's key shows in globex")
	}
	shot(t, ctx, "switcher")
	inviteToken := invite[strings.Index(invite, "#")+1:]

	// Canary: the provider keys never reached a log or the store in clear.
	for _, f := range []string{"caddy.log", "access.log", "ar.db"} {
		raw, _ := os.ReadFile(filepath.Join(e.dir, f))
		for _, secret := range []string{key1, key2, journeyPassword, session, tokenField, apiKey, inviteToken} {
			if strings.Contains(string(raw), secret) {
				t.Errorf("%s holds a secret in plaintext (%d chars)", f, len(secret))
			}
		}
	}
}
