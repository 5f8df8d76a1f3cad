package reconcile

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
	"github.com/tidwall/gjson"
)

// The test harness. The gateway's side is not wired yet (WIRING.md), so a
// "gateway" here is the test itself: it sends each request with a BYOK key
// over real HTTP to a fake provider, reads the usage of the answer it got
// the way the gateway does (pricing.FromProvider), prices it with the price
// book, and adds it to its own aggregates. The wiring's end-to-end test must
// replace this with requests through the real gateway and aggregates read
// from its request log.

const (
	openAIAdminKey    = "sk-admin-CANARYadminOPENAIcanaryADMIN0001"
	anthropicAdminKey = "sk-ant-admin01-CANARYadminANTHROPICcanaryADMIN01"
	account           = "acct_bu1"
)

// fingerprint is store.Fingerprint (not imported: the store is not this
// package's to depend on).
func fingerprint(key string) string {
	h := sha256.Sum256([]byte(key))
	return "fp_" + hex.EncodeToString(h[:6])
}

// harness is one fake provider with its admin API, a clock they share with
// the reconciler, and the gateway side of what the test sent.
type harness struct {
	t        testing.TB
	provider string
	fake     *providertest.AdminServer
	book     *pricing.Book
	adminKey string

	mu    sync.Mutex
	clock time.Time
	gw    map[gwKey]*GatewayUsage
	order []gwKey
}

type gwKey struct {
	cred, model string
	hour        int64
}

func newHarness(t testing.TB, provider string, start time.Time) *harness {
	h := &harness{t: t, provider: provider, book: pricing.MustCompile(pricing.Default()), clock: start, gw: map[gwKey]*GatewayUsage{}}
	if provider == "anthropic" {
		h.fake, h.adminKey = providertest.NewAnthropicAdmin(), anthropicAdminKey
	} else {
		h.fake, h.adminKey = providertest.NewOpenAIAdmin(), openAIAdminKey
	}
	t.Cleanup(h.fake.Close)
	h.fake.SetClock(h.now)
	h.fake.AddAdminKey(h.adminKey)
	return h
}

func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

func (h *harness) set(t time.Time) {
	h.mu.Lock()
	h.clock = t
	h.mu.Unlock()
}

// key makes a BYOK key for the harness's provider (distinct by n) and
// registers it with the fake organisation (in project or workspace ws).
func (h *harness) key(n int, ws string) (string, Credential) {
	var key string
	k := providertest.AdminKey{}
	if h.provider == "anthropic" {
		key = fmt.Sprintf("sk-ant-api03-%sBYOKkeyBYOKkey%04dxQ", strings.Repeat("Ab3", 12), n)
		k.Workspace = ws
	} else {
		key = fmt.Sprintf("sk-proj-%sBYOKkeyBYOKkey%04dzW", strings.Repeat("Cd7", 12), n)
		k.Project = ws
	}
	h.fake.AddKey(key, k)
	return key, Credential{Fingerprint: fingerprint(key), Masked: providers.Mask(key)}
}

// send is one upstream call of "the gateway" with key, at the harness's
// clock.
func (h *harness) send(key, model string, stream bool) { h.call(key, model, stream, true) }

// sendOutside uses key without the gateway: the provider sees it, the
// gateway side does not.
func (h *harness) sendOutside(key, model string) { h.call(key, model, false, false) }

func (h *harness) call(key, model string, stream, viaGateway bool) {
	at := h.now()
	var req *http.Request
	if h.provider == "anthropic" {
		body := fmt.Sprintf(`{"model":%q,"max_tokens":64,"stream":%v,"messages":[{"role":"user","content":"hi"}]}`, model, stream)
		req, _ = http.NewRequest(http.MethodPost, h.fake.URL+"/v1/messages", strings.NewReader(body))
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("Anthropic-Version", "2023-06-01")
	} else {
		body := fmt.Sprintf(`{"model":%q,"stream":%v,"stream_options":%s,"messages":[{"role":"user","content":"hi"}]}`, model, stream,
			map[bool]string{true: `{"include_usage":true}`, false: "null"}[stream])
		req, _ = http.NewRequest(http.MethodPost, h.fake.BaseURL()+"/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		h.t.Fatalf("upstream %s: %d", model, resp.StatusCode)
	}
	raw := h.usageOf(resp, stream)
	if !viaGateway {
		return
	}
	u := pricing.FromProvider(h.provider, raw)
	cost := h.book.Cost(h.provider, model, u)
	h.mu.Lock()
	defer h.mu.Unlock()
	k := gwKey{fingerprint(key), model, at.Truncate(time.Hour).Unix()}
	g := h.gw[k]
	if g == nil {
		g = &GatewayUsage{Account: account, Provider: h.provider, Credential: k.cred, Model: model, Hour: at.Truncate(time.Hour)}
		h.gw[k] = g
		h.order = append(h.order, k)
	}
	g.Requests++
	g.Tokens.Add(TokensOf(u))
	if cost.Unpriced {
		g.Unpriced++
	} else {
		g.CostNanoUSD += int64(cost.NanoUSD)
	}
}

// usageOf reads the provider's usage object out of an answer, as the
// gateway's relay does: the body's usage, the stream's usage chunk, or
// Anthropic's message_start usage completed by message_delta's output.
func (h *harness) usageOf(resp *http.Response, stream bool) []byte {
	if !stream {
		var body json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			h.t.Fatal(err)
		}
		return []byte(gjson.GetBytes(body, "usage").Raw)
	}
	var usage map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		v := gjson.Parse(data)
		switch {
		case v.Get("type").String() == "message_start":
			json.Unmarshal([]byte(v.Get("message.usage").Raw), &usage)
		case v.Get("type").String() == "message_delta":
			usage["output_tokens"] = v.Get("usage.output_tokens").Int()
		case v.Get("usage").IsObject():
			json.Unmarshal([]byte(v.Get("usage").Raw), &usage)
		}
	}
	b, _ := json.Marshal(usage)
	return b
}

// gateway returns the gateway side's aggregates so far.
func (h *harness) gateway() []GatewayUsage {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]GatewayUsage, len(h.order))
	for i, k := range h.order {
		out[i] = *h.gw[k]
	}
	return out
}

// reader returns a Reader of the fake organisation with the admin key,
// with fast retries.
func (h *harness) reader(opts Options) Reader {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	opts.BaseURL = h.fake.URL
	if opts.BaseDelay == 0 {
		opts.BaseDelay = time.Millisecond
	}
	var r Reader
	var err error
	if h.provider == "anthropic" {
		r, err = NewAnthropic(h.adminKey, opts)
	} else {
		r, err = NewOpenAI(h.adminKey, opts)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// run reconciles the window at the harness's clock.
func (h *harness) run(l Ledger, w Window, creds []Credential, opts Options) (Result, error) {
	rc := &Reconciler{Ledger: l, Book: h.book, Now: h.now}
	return rc.Run(context.Background(), Job{Scope: Scope{Account: account, Provider: h.provider}, Window: w,
		Credentials: creds, Gateway: h.gateway(), Reader: h.reader(opts)})
}

// rowsOf returns the ledger's rows of the window.
func rowsOf(t testing.TB, l Ledger, provider string, w Window) []Row {
	rows, err := l.Rows(context.Background(), Scope{Account: account, Provider: provider}, w)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func ledgerJSON(t testing.TB, l Ledger, provider string, w Window) string {
	b, err := json.Marshal(rowsOf(t, l, provider, w))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
