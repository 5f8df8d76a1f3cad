package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/providers/providertest"
)

// TestSDKProviders drives the official OpenAI Go SDK, unmodified, through a
// real Caddy against fakes of all eight providers, once with an account's
// own (BYOK) key and once with the platform key: a plain chat, streams with
// and without usage, tool-call round trips (plain and streamed), and
// provider errors. Each fake answers in its provider's native protocol with
// distinctive token counts, and checks the native request the gateway built.
// Afterwards every request each fake received is checked: the credential
// came in that provider's own header, it was the right account's key, and
// no key was ever in a URL.
func TestSDKProviders(t *testing.T) {
	se := newSDKEnv(t)
	for _, p := range se.providers {
		for _, cred := range []string{"byok", "platform"} {
			t.Run(p.name+"/"+cred, func(t *testing.T) {
				client := sdkClient(se.arKeys[cred])
				run := func(name string, f func(t *testing.T, s sdkScenario)) {
					t.Run(name, func(t *testing.T) {
						defer p.fake.SetResponder(nil)
						f(t, sdkScenario{p: p, cred: cred, client: client, tag: fmt.Sprintf("[sdk:%s/%s/%s]", p.name, cred, name),
							key: p.keys[cred]})
					})
				}
				run("chat", sdkChat)
				run("stream", sdkStream)
				run("stream_no_usage", sdkStreamNoUsage)
				run("tool_round_trip", sdkToolRoundTrip)
				run("tool_round_trip_stream", sdkToolRoundTripStream)
				run("error_rate_limit", sdkRateLimit)
				run("error_rate_limit_stream", sdkRateLimitStream)
				run("error_bad_key", sdkBadKey) // last: it marks a BYOK key invalid
			})
		}
	}
	t.Run("credentials", func(t *testing.T) { se.checkRecords(t) })
}

// --- the environment: Caddy with eight providers, two accounts ---

type sdkUsage struct{ prompt, completion, total int64 }

// sdkProvider is one provider under test: its fake, its keys, and how its
// native API answers and is checked.
type sdkProvider struct {
	name     string // the gateway's provider name
	model    string // the model the client asks for
	upstream string // the model (or Azure deployment) the fake sees
	header   string // where the fake must find the credential
	toolID   string // the id the provider gives its tool call ("" for none: Gemini)
	fake     *providertest.Server
	keys     map[string]string // "byok", "platform"
	want     sdkUsage          // the usage in OpenAI's terms the SDK must see
	native   sdkNative
}

// sdkNative scripts one provider's native answers and checks its native
// requests.
type sdkNative interface {
	text(p *sdkProvider, text string) providertest.Response
	stream(p *sdkProvider, rec providertest.Record, pieces []string) providertest.Response
	toolCall(p *sdkProvider, name, args string) providertest.Response
	// toolStream answers a streamed tool call; text is said first when the
	// provider does that (Gemini).
	toolStream(p *sdkProvider, rec providertest.Record, name string, argPieces []string) (providertest.Response, string)
	rateLimit(p *sdkProvider) providertest.Response
	// checkToolResult checks that the native request carries the
	// assistant's call and the tool's result for it.
	checkToolResult(p *sdkProvider, body []byte, id, name, args, result string) error
}

type sdkEnv struct {
	e         *env
	providers []*sdkProvider
	arKeys    map[string]string // Agent Router keys: "byok" account, "platform" account
}

func newSDKEnv(t *testing.T) *sdkEnv {
	t.Helper()
	mk := func(name, kind, model, upstream, header, toolID string, native sdkNative, want sdkUsage, platform, byok string) *sdkProvider {
		f := providertest.New(kind)
		t.Cleanup(f.Close)
		return &sdkProvider{name: name, model: model, upstream: upstream, header: header, toolID: toolID, fake: f,
			native: native, want: want, keys: map[string]string{"platform": platform, "byok": byok}}
	}
	oa := func(mode oaUsageMode, crlf bool) sdkNative { return oaNative{mode: mode, crlf: crlf} }
	ps := []*sdkProvider{
		mk("openai", "openai", "gpt-4o-mini", "gpt-4o-mini", "Authorization", "call_SDKopenai0001",
			oa(oaUsageOnRequest, false), sdkUsage{101, 11, 112},
			"sk-proj-PLATFORM"+randomAlnum(40), "sk-proj-BYOK"+randomAlnum(40)),
		mk("azure", "azure", "azure-gpt-4o", "sdk-deploy-4o", "Api-Key", "call_SDKazure0001",
			oa(oaUsageOnRequest, false), sdkUsage{102, 12, 114},
			randomHex(32), randomHex(32)),
		mk("mistral", "openai", "mistral-small-latest", "mistral-small-latest", "Authorization", "Mw3xK9pQ2",
			oa(oaUsageOnFinish, false), sdkUsage{103, 13, 116},
			randomAlnum(32), randomAlnum(32)),
		mk("together", "openai", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "Authorization", "call_SDKtogether01",
			oa(oaUsageOnRequest, false), sdkUsage{104, 14, 118},
			"tgp_v1_PLATFORM"+randomAlnum(35), "tgp_v1_BYOK"+randomAlnum(39)),
		mk("perplexity", "openai", "sonar", "sonar", "Authorization", "call_SDKpplx0001",
			oa(oaUsageOnFinish, true), sdkUsage{105, 15, 120},
			"pplx-PLATFORM"+randomAlnum(40), "pplx-BYOK"+randomAlnum(44)),
		// Anthropic: prompt = input + cache read + cache creation.
		mk("anthropic", "anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", "X-Api-Key", "toolu_01SDKanthropicXYZ",
			anthropicNative{u: providertest.AnthropicUsage{Input: 31, CacheRead: 7, CacheCreation: 3, Output: 16}}, sdkUsage{41, 16, 57},
			"sk-ant-api03-PLATFORM"+randomAlnum(80)+"AA", "sk-ant-api03-BYOK"+randomAlnum(84)+"AA"),
		// Gemini: prompt = promptTokenCount (cached included), completion =
		// candidates + thoughts.
		mk("gemini", "gemini", "gemini-2.5-flash", "gemini-2.5-flash", "X-Goog-Api-Key", "",
			geminiNative{u: providertest.GeminiUsage{Prompt: 43, Cached: 5, Candidates: 9, Thoughts: 8}}, sdkUsage{43, 17, 60},
			"AIza"+randomAlnum(35), "AQ.BYOK"+randomAlnum(40)),
		// Cohere: tokens, not billed units.
		mk("cohere", "cohere", "command-a-03-2025", "command-a-03-2025", "Authorization", "get_weather_sdk01abc",
			cohereNative{u: providertest.CohereUsage{InputTokens: 47, OutputTokens: 18, BilledInputTokens: 40, BilledOutputTokens: 18}}, sdkUsage{47, 18, 65},
			randomAlnum(40), randomAlnum(40)),
	}
	e := &env{t: t, dir: t.TempDir(),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	t.Setenv("AR_SDK_MASTER_KEY", base64.StdEncoding.EncodeToString(randomBytes(32)))
	var blocks strings.Builder
	for _, p := range ps {
		envName := "AR_SDK_" + strings.ToUpper(p.name) + "_KEY"
		t.Setenv(envName, p.keys["platform"])
		model := p.model
		if p.upstream != p.model {
			model += " " + p.upstream
		}
		fmt.Fprintf(&blocks, "\t\tprovider %s {\n\t\t\tapi_key {env.%s}\n\t\t\tbase_url %s\n\t\t\tmodel %s\n\t\t}\n",
			p.name, envName, p.fake.BaseURL(), model)
	}
	cfg := testCaddyfile(e.dir, "AR_SDK_MASTER_KEY", blocks.String(), loopbackEgress)
	e.tester = caddytest.NewTester(t)
	e.tester.InitServer(cfg, "caddyfile")

	e.createAccount("sdk-byok")
	e.createAccount("sdk-platform")
	for _, p := range ps {
		body := map[string]string{"api_key": p.keys["byok"]}
		if p.name == "azure" {
			body["base_url"] = p.fake.BaseURL()
		}
		e.putBYOK("sdk-byok", p.name, body)
	}
	return &sdkEnv{e: e, providers: ps, arKeys: map[string]string{
		"byok": e.createKey("sdk-byok", "sdk").Key, "platform": e.createKey("sdk-platform", "sdk").Key}}
}

func sdkClient(arKey string) openai.Client {
	return openai.NewClient(option.WithBaseURL(siteURL+"/v1/"), option.WithAPIKey(arKey),
		option.WithMaxRetries(0), option.WithRequestTimeout(15*time.Second))
}

var sdkTagRE = regexp.MustCompile(`\[sdk:([a-z]+)/(byok|platform)/[a-z_]+\]`)

// checkRecords checks every request every fake received.
func (se *sdkEnv) checkRecords(t *testing.T) {
	var canaries []string
	for _, p := range se.providers {
		canaries = append(canaries, p.keys["byok"], p.keys["platform"])
	}
	for _, p := range se.providers {
		recs := p.fake.Records()
		seen := map[string]int{}
		for i, rec := range recs {
			m := sdkTagRE.FindSubmatch(rec.Body)
			if m == nil {
				t.Errorf("%s: record %d (%s %s) carries no scenario tag", p.name, i, rec.Method, rec.Path)
				continue
			}
			tag := string(m[0])
			if string(m[1]) != p.name {
				t.Errorf("%s: record %d is %s's request", p.name, i, tag)
			}
			cred := string(m[2])
			seen[cred]++
			if rec.CredentialHeader != p.header {
				t.Errorf("%s %s: the credential came in %q, want %s", p.name, tag, rec.CredentialHeader, p.header)
			}
			if rec.Credential != p.keys[cred] {
				t.Errorf("%s %s: the fake got %s, want the %s key", p.name, tag, providersKeyName(se, rec.Credential), cred)
			}
			if rec.Model != p.upstream {
				t.Errorf("%s %s: the fake was asked for model %q, want %q", p.name, tag, rec.Model, p.upstream)
			}
			if q := strings.ToLower(rec.Query); strings.Contains(q, "key=") {
				t.Errorf("%s %s: the query %q has a key parameter", p.name, tag, rec.Query)
			}
			for _, c := range canaries {
				if strings.Contains(rec.Path, c) || strings.Contains(rec.Query, c) {
					t.Errorf("%s %s: a key (%s) is in the URL %s?%s", p.name, tag, providersKeyName(se, c), rec.Path, rec.Query)
				}
				if strings.Contains(string(rec.Body), c) {
					t.Errorf("%s %s: a key (%s) is in the request body", p.name, tag, providersKeyName(se, c))
				}
				for h, vs := range rec.Header {
					for _, v := range vs {
						if strings.Contains(v, c) && (h != p.header || c != p.keys[cred]) {
							t.Errorf("%s %s: header %s carries %s", p.name, tag, h, providersKeyName(se, c))
						}
					}
				}
			}
		}
		if seen["byok"] == 0 || seen["platform"] == 0 {
			t.Errorf("%s: records per credential = %v, want both", p.name, seen)
		}
		t.Logf("%s: %d requests checked (%v)", p.name, len(recs), seen)
	}
}

// providersKeyName names a key without printing it.
func providersKeyName(se *sdkEnv, key string) string {
	if key == "" {
		return "no key"
	}
	for _, p := range se.providers {
		for cred, k := range p.keys {
			if k == key {
				return p.name + "'s " + cred + " key"
			}
		}
	}
	return fmt.Sprintf("an unknown key (%d chars)", len(key))
}

// --- scenarios ---

type sdkScenario struct {
	p      *sdkProvider
	cred   string
	client openai.Client
	tag    string
	key    string // the provider credential this scenario must use
}

func (s sdkScenario) params(prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    openai.ChatModel(s.p.model),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(s.tag + " " + prompt)},
	}
}

func (s sdkScenario) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (s sdkScenario) checkUsage(t *testing.T, what string, u openai.CompletionUsage) {
	t.Helper()
	got := sdkUsage{u.PromptTokens, u.CompletionTokens, u.TotalTokens}
	if got != s.p.want {
		t.Errorf("%s usage = %+v, want %+v (what the fake reported, in OpenAI's terms)", what, got, s.p.want)
	}
}

// last returns the fake's newest record, which must be this scenario's.
func (s sdkScenario) last(t *testing.T) providertest.Record {
	t.Helper()
	rec, ok := s.p.fake.Last()
	if !ok || !strings.Contains(string(rec.Body), s.tag) {
		t.Fatalf("the fake's last request is not this scenario's (%s)", s.tag)
	}
	return rec
}

func sdkChat(t *testing.T, s sdkScenario) {
	answer := fmt.Sprintf("Hello from %s, served with the %s key.", s.p.name, s.cred)
	s.p.fake.SetResponder(func(rec providertest.Record) providertest.Response { return s.p.native.text(s.p, answer) })
	var httpResp *http.Response
	resp, err := s.client.Chat.Completions.New(s.ctx(t), s.params("Say hello."), option.WithResponseInto(&httpResp))
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if got := httpResp.Header.Get("X-Agent-Router-Provider"); got != s.p.name {
		t.Errorf("X-Agent-Router-Provider = %q, want %s", got, s.p.name)
	}
	if got := httpResp.Header.Get("X-Agent-Router-Credential"); got != s.cred {
		t.Errorf("X-Agent-Router-Credential = %q, want %s", got, s.cred)
	}
	if len(resp.Choices) != 1 {
		t.Fatalf("chat: %d choices", len(resp.Choices))
	}
	if got := resp.Choices[0].Message.Content; got != answer {
		t.Errorf("chat content = %q, want %q", got, answer)
	}
	if fr := resp.Choices[0].FinishReason; fr != "stop" {
		t.Errorf("chat finish_reason = %q, want stop", fr)
	}
	s.checkUsage(t, "chat", resp.Usage)
	if rec := s.last(t); rec.Stream {
		t.Errorf("a plain chat reached the fake as a stream")
	}
}

// sdkReadStream accumulates a stream and counts the chunks that carried
// usage.
func sdkReadStream(t *testing.T, stream interface {
	Next() bool
	Current() openai.ChatCompletionChunk
	Err() error
	Close() error
}) (openai.ChatCompletionAccumulator, int, error) {
	t.Helper()
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	usageChunks, n := 0, 0
	for stream.Next() {
		ch := stream.Current()
		n++
		if !acc.AddChunk(ch) {
			t.Errorf("the accumulator refused chunk %d: %s", n, ch.RawJSON())
		}
		if u := gjson.Get(ch.RawJSON(), "usage"); u.IsObject() {
			usageChunks++
		}
	}
	return acc, usageChunks, stream.Err()
}

func sdkStream(t *testing.T, s sdkScenario) {
	pieces := []string{"Str", "eamed ", "from ", s.p.name, " with the ", s.cred, " key."}
	s.p.fake.SetResponder(func(rec providertest.Record) providertest.Response { return s.p.native.stream(s.p, rec, pieces) })
	params := s.params("Stream a hello.")
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	acc, usageChunks, err := sdkReadStream(t, s.client.Chat.Completions.NewStreaming(s.ctx(t), params))
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("stream: %d choices accumulated", len(acc.Choices))
	}
	if got, want := acc.Choices[0].Message.Content, strings.Join(pieces, ""); got != want {
		t.Errorf("streamed content = %q, want %q", got, want)
	}
	if fr := acc.Choices[0].FinishReason; fr != "stop" {
		t.Errorf("stream finish_reason = %q, want stop", fr)
	}
	if usageChunks != 1 {
		t.Errorf("%d chunks carried usage, want exactly 1", usageChunks)
	}
	s.checkUsage(t, "stream", acc.Usage)
	if rec := s.last(t); !rec.Stream {
		t.Errorf("the stream did not reach the fake as a stream")
	}
}

func sdkStreamNoUsage(t *testing.T, s sdkScenario) {
	pieces := []string{"No ", "usage ", "asked."}
	s.p.fake.SetResponder(func(rec providertest.Record) providertest.Response { return s.p.native.stream(s.p, rec, pieces) })
	acc, usageChunks, err := sdkReadStream(t, s.client.Chat.Completions.NewStreaming(s.ctx(t), s.params("Stream without usage.")))
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != "No usage asked." {
		t.Fatalf("streamed content = %+v", acc.Choices)
	}
	if usageChunks != 0 {
		t.Errorf("%d chunks carried usage though the client did not ask for it (accumulated %+v)", usageChunks,
			sdkUsage{acc.Usage.PromptTokens, acc.Usage.CompletionTokens, acc.Usage.TotalTokens})
	}
}

const (
	sdkToolName   = "get_weather"
	sdkToolArgs   = `{"city":"Paris","unit":"celsius"}`
	sdkToolResult = `{"temp_c":21,"sky":"sunny"}`
)

func sdkToolParams(s sdkScenario) openai.ChatCompletionNewParams {
	params := s.params("What is the weather in Paris?")
	params.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:        sdkToolName,
		Description: openai.String("Current weather for a city"),
		Parameters: shared.FunctionParameters{
			"type": "object",
			"properties": map[string]any{
				"city": map[string]any{"type": "string"},
				"unit": map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
			},
			"required": []string{"city"},
		},
	})}
	return params
}

// sdkToolResponder answers the tool call until the native request carries
// the tool's result, then the final text.
func sdkToolResponder(s sdkScenario, call func(rec providertest.Record) providertest.Response, final string) providertest.Responder {
	return func(rec providertest.Record) providertest.Response {
		if strings.Contains(string(rec.Body), "sunny") {
			if rec.Stream {
				return s.p.native.stream(s.p, rec, []string{final[:5], final[5:]})
			}
			return s.p.native.text(s.p, final)
		}
		return call(rec)
	}
}

func (s sdkScenario) checkToolCall(t *testing.T, msg openai.ChatCompletionMessage, finish string) openai.ChatCompletionMessageToolCallUnion {
	t.Helper()
	if finish != "tool_calls" {
		t.Errorf("finish_reason = %q, want tool_calls", finish)
	}
	if len(msg.ToolCalls) != 1 {
		t.Fatalf("the SDK saw %d tool calls, want 1: %+v", len(msg.ToolCalls), msg)
	}
	tc := msg.ToolCalls[0]
	if tc.ID == "" || s.p.toolID != "" && tc.ID != s.p.toolID {
		t.Errorf("tool call id = %q, want %q", tc.ID, s.p.toolID)
	}
	if tc.Type != "function" {
		t.Errorf("tool call type = %q, want function", tc.Type)
	}
	if tc.Function.Name != sdkToolName || !jsonEqual(tc.Function.Arguments, sdkToolArgs) {
		t.Errorf("tool call = %s(%s), want %s(%s)", tc.Function.Name, tc.Function.Arguments, sdkToolName, sdkToolArgs)
	}
	return tc
}

func sdkToolRoundTrip(t *testing.T, s sdkScenario) {
	final := fmt.Sprintf("It is sunny and 21°C in Paris (%s, %s).", s.p.name, s.cred)
	s.p.fake.SetResponder(sdkToolResponder(s, func(providertest.Record) providertest.Response {
		return s.p.native.toolCall(s.p, sdkToolName, sdkToolArgs)
	}, final))
	params := sdkToolParams(s)
	resp, err := s.client.Chat.Completions.New(s.ctx(t), params)
	if err != nil {
		t.Fatalf("tool call: %v", err)
	}
	if len(resp.Choices) != 1 {
		t.Fatalf("tool call: %d choices", len(resp.Choices))
	}
	tc := s.checkToolCall(t, resp.Choices[0].Message, resp.Choices[0].FinishReason)
	s.checkUsage(t, "tool call", resp.Usage)
	first := s.last(t)
	if !strings.Contains(string(first.Body), sdkToolName) {
		t.Errorf("the native request does not declare the tool: %s", first.Body)
	}

	params.Messages = append(params.Messages, resp.Choices[0].Message.ToParam(), openai.ToolMessage(sdkToolResult, tc.ID))
	resp, err = s.client.Chat.Completions.New(s.ctx(t), params)
	if err != nil {
		t.Fatalf("tool result: %v", err)
	}
	if err := s.p.native.checkToolResult(s.p, s.last(t).Body, tc.ID, sdkToolName, sdkToolArgs, sdkToolResult); err != nil {
		t.Errorf("the native request with the tool result: %v\n%s", err, s.last(t).Body)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != final {
		t.Fatalf("answer after the tool result = %+v, want %q", resp.Choices, final)
	}
	s.checkUsage(t, "answer after the tool result", resp.Usage)
}

func sdkToolRoundTripStream(t *testing.T, s sdkScenario) {
	final := fmt.Sprintf("Streamed: sunny in Paris (%s, %s).", s.p.name, s.cred)
	pieces := []string{`{"city":`, `"Paris","un`, `it":"celsius"}`}
	_, said := s.p.native.toolStream(s.p, providertest.Record{}, sdkToolName, pieces)
	s.p.fake.SetResponder(sdkToolResponder(s, func(rec providertest.Record) providertest.Response {
		r, _ := s.p.native.toolStream(s.p, rec, sdkToolName, pieces)
		return r
	}, final))
	params := sdkToolParams(s)
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	acc, _, err := sdkReadStream(t, s.client.Chat.Completions.NewStreaming(s.ctx(t), params))
	if err != nil {
		t.Fatalf("streamed tool call: %v", err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("streamed tool call: %d choices", len(acc.Choices))
	}
	msg := acc.Choices[0].Message
	tc := s.checkToolCall(t, msg, acc.Choices[0].FinishReason)
	if said != "" && msg.Content != said {
		t.Errorf("streamed text before the call = %q, want %q", msg.Content, said)
	}
	s.checkUsage(t, "streamed tool call", acc.Usage)

	params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage(sdkToolResult, tc.ID))
	acc, _, err = sdkReadStream(t, s.client.Chat.Completions.NewStreaming(s.ctx(t), params))
	if err != nil {
		t.Fatalf("streamed answer after the tool result: %v", err)
	}
	if err := s.p.native.checkToolResult(s.p, s.last(t).Body, tc.ID, sdkToolName, sdkToolArgs, sdkToolResult); err != nil {
		t.Errorf("the native request with the tool result: %v\n%s", err, s.last(t).Body)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != final {
		t.Fatalf("streamed answer after the tool result = %+v, want %q", acc.Choices, final)
	}
	s.checkUsage(t, "streamed answer after the tool result", acc.Usage)
}

func (s sdkScenario) checkAPIError(t *testing.T, err error, status int, code string) *openai.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d", status)
	}
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %T (%v) is not an *openai.Error", err, err)
	}
	if apiErr.StatusCode != status {
		t.Errorf("status = %d, want %d: %s", apiErr.StatusCode, status, apiErr.RawJSON())
	}
	if code != "" && apiErr.Code != code {
		t.Errorf("code = %q, want %q: %s", apiErr.Code, code, apiErr.RawJSON())
	}
	if apiErr.Message == "" {
		t.Errorf("no error message: %s", apiErr.RawJSON())
	}
	for _, k := range s.p.keys {
		if strings.Contains(apiErr.RawJSON(), k) || strings.Contains(apiErr.Message, k) {
			t.Errorf("the error shows a %s key", s.p.name)
		}
	}
	return apiErr
}

func sdkRateLimit(t *testing.T, s sdkScenario) {
	s.p.fake.SetResponder(func(providertest.Record) providertest.Response { return s.p.native.rateLimit(s.p) })
	_, err := s.client.Chat.Completions.New(s.ctx(t), s.params("Hello?"))
	s.checkAPIError(t, err, 429, "")
}

func sdkRateLimitStream(t *testing.T, s sdkScenario) {
	s.p.fake.SetResponder(func(providertest.Record) providertest.Response { return s.p.native.rateLimit(s.p) })
	params := s.params("Stream hello?")
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	acc, _, err := sdkReadStream(t, s.client.Chat.Completions.NewStreaming(s.ctx(t), params))
	s.checkAPIError(t, err, 429, "")
	if len(acc.Choices) != 0 {
		t.Errorf("a failed stream produced choices: %+v", acc.Choices)
	}
}

func sdkBadKey(t *testing.T, s sdkScenario) {
	// The fake refuses every key, in its provider's own way (echoing the key).
	if s.cred == "byok" {
		s.waitProviderReset(t)
	}
	s.p.fake.AcceptOnly("not-" + randomAlnum(24))
	defer s.p.fake.AcceptOnly()
	_, err := s.client.Chat.Completions.New(s.ctx(t), s.params("Hello with a bad key?"))
	// The account's own key: 400, which no SDK retries (the account's
	// owner must replace it); the platform's: 502.
	status := 502
	if s.cred == "byok" {
		status = 400
	}
	s.checkAPIError(t, err, status, s.cred+"_credential_rejected")
}

// waitProviderReset waits until the gateway sends the account's key
// requests again: after the rate-limit scenarios the provider's 429 holds
// the key back until its reset, and the gateway answers 429 itself
// (X-Agent-Router-Limit-Source: provider) with the Retry-After it learnt.
func (s sdkScenario) waitProviderReset(t *testing.T) {
	t.Helper()
	for range 5 {
		_, err := s.client.Chat.Completions.New(s.ctx(t), s.params("Are you back?"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Response.Header.Get("X-Agent-Router-Limit-Source") != "provider" {
			return
		}
		secs, perr := strconv.Atoi(apiErr.Response.Header.Get("Retry-After"))
		if perr != nil || secs < 1 || secs > 30 {
			t.Fatalf("the gateway's provider-limit 429 has Retry-After %q", apiErr.Response.Header.Get("Retry-After"))
		}
		time.Sleep(time.Duration(secs)*time.Second + 100*time.Millisecond)
	}
	t.Fatal("the account's key is still held back after 5 waits")
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func sdkJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// --- OpenAI-shaped providers: openai, azure, mistral, together, perplexity ---

type oaUsageMode int

const (
	// oaUsageOnRequest: a usage-only chunk (no choices) before [DONE] when
	// the request asked for stream_options.include_usage (OpenAI, Azure,
	// Together).
	oaUsageOnRequest oaUsageMode = iota
	// oaUsageOnFinish: usage on the finish chunk of every stream, asked
	// or not (Mistral, Perplexity).
	oaUsageOnFinish
)

// oaNative scripts OpenAI-shaped answers; crlf frames events with CRLF and
// leaves out [DONE], as Perplexity does.
type oaNative struct {
	mode oaUsageMode
	crlf bool
}

func oaUsageObject(u sdkUsage) map[string]any {
	return map[string]any{"prompt_tokens": u.prompt, "completion_tokens": u.completion, "total_tokens": u.total}
}

func oaCompletion(p *sdkProvider, msg map[string]any, finish string) string {
	return sdkJSON(map[string]any{
		"id": "chatcmpl-sdk-" + p.name, "object": "chat.completion", "created": 1700000000, "model": p.upstream,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish, "logprobs": nil}},
		"usage":   oaUsageObject(p.want),
	})
}

func oaChunk(p *sdkProvider, choices []any, usage map[string]any) string {
	m := map[string]any{"id": "chatcmpl-sdk-" + p.name, "object": "chat.completion.chunk", "created": 1700000000,
		"model": p.upstream, "choices": choices}
	if usage != nil {
		m["usage"] = usage
	}
	return sdkJSON(m)
}

func (n oaNative) events(p *sdkProvider, rec providertest.Record, deltas []map[string]any, finish string) providertest.Response {
	choice := func(delta map[string]any, fr any) []any {
		return []any{map[string]any{"index": 0, "delta": delta, "finish_reason": fr, "logprobs": nil}}
	}
	var ev []string
	for _, d := range deltas {
		ev = append(ev, oaChunk(p, choice(d, nil), nil))
	}
	if n.mode == oaUsageOnFinish {
		ev = append(ev, oaChunk(p, choice(map[string]any{}, finish), oaUsageObject(p.want)))
	} else {
		ev = append(ev, oaChunk(p, choice(map[string]any{}, finish), nil))
		if gjson.GetBytes(rec.Body, "stream_options.include_usage").Bool() {
			ev = append(ev, oaChunk(p, []any{}, oaUsageObject(p.want)))
		}
	}
	if !n.crlf {
		return providertest.Response{Events: append(ev, "[DONE]")}
	}
	raw := make([]string, len(ev))
	for i, e := range ev {
		raw[i] = "data: " + e + "\r\n\r\n"
	}
	return providertest.Response{RawEvents: raw}
}

func (oaNative) text(p *sdkProvider, text string) providertest.Response {
	return providertest.Response{Body: oaCompletion(p, map[string]any{"role": "assistant", "content": text}, "stop")}
}

func (n oaNative) stream(p *sdkProvider, rec providertest.Record, pieces []string) providertest.Response {
	deltas := []map[string]any{{"role": "assistant", "content": ""}}
	for _, s := range pieces {
		deltas = append(deltas, map[string]any{"content": s})
	}
	return n.events(p, rec, deltas, "stop")
}

func (oaNative) toolCall(p *sdkProvider, name, args string) providertest.Response {
	return providertest.Response{Body: oaCompletion(p, map[string]any{"role": "assistant", "content": nil,
		"tool_calls": []any{map[string]any{"id": p.toolID, "type": "function",
			"function": map[string]any{"name": name, "arguments": args}}}}, "tool_calls")}
}

func (n oaNative) toolStream(p *sdkProvider, rec providertest.Record, name string, argPieces []string) (providertest.Response, string) {
	deltas := []map[string]any{{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{
		"index": 0, "id": p.toolID, "type": "function", "function": map[string]any{"name": name, "arguments": ""}}}}}
	for _, a := range argPieces {
		deltas = append(deltas, map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": a}}}})
	}
	return n.events(p, rec, deltas, "tool_calls"), ""
}

func (oaNative) rateLimit(p *sdkProvider) providertest.Response {
	switch p.name {
	case "azure":
		return providertest.Response{Status: 429, Header: map[string]string{"Retry-After": "6"},
			Body: `{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."}}`}
	case "mistral":
		return providertest.Response{Status: 429,
			Body: `{"object":"error","message":"Requests rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}`}
	}
	return providertest.Response{Status: 429, Header: map[string]string{"Retry-After": "2"},
		Body: `{"error":{"message":"Rate limit reached for requests. Please try again in 2s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`}
}

func (oaNative) checkToolResult(p *sdkProvider, body []byte, id, name, args, result string) error {
	msgs := gjson.GetBytes(body, "messages").Array()
	if len(msgs) != 3 {
		return fmt.Errorf("%d messages, want user, assistant, tool", len(msgs))
	}
	a, tool := msgs[1], msgs[2]
	tc := a.Get("tool_calls.0")
	if a.Get("role").String() != "assistant" || len(a.Get("tool_calls").Array()) != 1 || tc.Get("id").String() != id ||
		tc.Get("type").String() != "function" || tc.Get("function.name").String() != name || !jsonEqual(tc.Get("function.arguments").String(), args) {
		return fmt.Errorf("the assistant message is %s, want one call %s %s(%s)", a.Raw, id, name, args)
	}
	if tool.Get("role").String() != "tool" || tool.Get("tool_call_id").String() != id || tool.Get("content").String() != result {
		return fmt.Errorf("the tool message is %s, want the result for %s", tool.Raw, id)
	}
	return nil
}

// --- Anthropic ---

type anthropicNative struct{ u providertest.AnthropicUsage }

func (n anthropicNative) text(p *sdkProvider, text string) providertest.Response {
	return providertest.Response{Body: providertest.AnthropicMessage(p.upstream, text, n.u)}
}

func (n anthropicNative) stream(p *sdkProvider, _ providertest.Record, pieces []string) providertest.Response {
	return providertest.Response{RawEvents: providertest.AnthropicStream(p.upstream, pieces, n.u)}
}

func (n anthropicNative) toolCall(p *sdkProvider, name, args string) providertest.Response {
	return providertest.Response{Body: providertest.AnthropicToolUse(p.upstream, p.toolID, name, args, n.u)}
}

func (n anthropicNative) toolStream(p *sdkProvider, _ providertest.Record, name string, argPieces []string) (providertest.Response, string) {
	return providertest.Response{RawEvents: providertest.AnthropicToolUseStream(p.upstream, p.toolID, name, argPieces, n.u)}, ""
}

func (anthropicNative) rateLimit(*sdkProvider) providertest.Response {
	return providertest.Response{Status: 429, Header: map[string]string{"Retry-After": "12"},
		Body: providertest.AnthropicError("rate_limit_error", "This request would exceed the rate limit for your organization of 50 requests per minute.")}
}

func (anthropicNative) checkToolResult(_ *sdkProvider, body []byte, id, name, args, result string) error {
	msgs := gjson.GetBytes(body, "messages").Array()
	if len(msgs) != 3 {
		return fmt.Errorf("%d messages, want user, assistant, user", len(msgs))
	}
	use := msgs[1].Get(`content.#(type=="tool_use")`)
	if msgs[1].Get("role").String() != "assistant" || use.Get("id").String() != id || use.Get("name").String() != name ||
		!jsonEqual(use.Get("input").Raw, args) {
		return fmt.Errorf("the assistant message is %s, want a tool_use %s %s(%s)", msgs[1].Raw, id, name, args)
	}
	res := msgs[2].Get(`content.#(type=="tool_result")`)
	content := res.Get("content")
	text := content.String()
	if content.IsArray() {
		text = ""
		for _, b := range content.Array() {
			text += b.Get("text").String()
		}
	}
	if msgs[2].Get("role").String() != "user" || res.Get("tool_use_id").String() != id || text != result {
		return fmt.Errorf("the last message is %s, want a user tool_result for %s", msgs[2].Raw, id)
	}
	return nil
}

// --- Gemini ---

type geminiNative struct{ u providertest.GeminiUsage }

func (n geminiNative) text(p *sdkProvider, text string) providertest.Response {
	return providertest.Response{Body: providertest.GeminiText(p.upstream, text, n.u)}
}

func (n geminiNative) stream(p *sdkProvider, _ providertest.Record, pieces []string) providertest.Response {
	return providertest.Response{RawEvents: providertest.GeminiStream(p.upstream, pieces, n.u)}
}

// AI Studio sends calls without an id; thinking models sign the first one.
func (n geminiNative) toolCall(p *sdkProvider, name, args string) providertest.Response {
	return providertest.Response{Body: providertest.GeminiToolCalls(p.upstream,
		[]providertest.GeminiCall{{Name: name, Args: args, ThoughtSignature: "c2RrLXNpZw=="}}, n.u)}
}

func (n geminiNative) toolStream(p *sdkProvider, _ providertest.Record, name string, argPieces []string) (providertest.Response, string) {
	said := "Let me check the weather."
	return providertest.Response{RawEvents: providertest.GeminiToolCallStream(p.upstream, said,
		[]providertest.GeminiCall{{Name: name, Args: strings.Join(argPieces, "")}}, n.u)}, said
}

func (geminiNative) rateLimit(*sdkProvider) providertest.Response {
	return providertest.Response{Status: 429, Body: providertest.GeminiError(429, "RESOURCE_EXHAUSTED",
		"Resource has been exhausted (e.g. check quota).", providertest.GeminiRetryInfo("12s"))}
}

func (geminiNative) checkToolResult(_ *sdkProvider, body []byte, _, name, args, result string) error {
	contents := gjson.GetBytes(body, "contents").Array()
	if len(contents) != 3 {
		return fmt.Errorf("%d contents, want user, model, function response", len(contents))
	}
	call := contents[1].Get(`parts.#(functionCall).functionCall`)
	if contents[1].Get("role").String() != "model" || call.Get("name").String() != name || !jsonEqual(call.Get("args").Raw, args) {
		return fmt.Errorf("the model turn is %s, want a functionCall %s(%s)", contents[1].Raw, name, args)
	}
	// The SDK does not keep the call's thought signature (extra_content),
	// and thinking models refuse a first call without one: the gateway
	// must supply one.
	if contents[1].Get(`parts.#(functionCall).thoughtSignature`).String() == "" {
		return fmt.Errorf("the model turn's first functionCall has no thoughtSignature: %s", contents[1].Raw)
	}
	resp := contents[2].Get(`parts.#(functionResponse).functionResponse`)
	if role := contents[2].Get("role").String(); role != "user" && role != "function" {
		return fmt.Errorf("the function response comes in a %q turn", role)
	}
	if resp.Get("name").String() != name || !jsonEqual(resp.Get("response").Raw, result) {
		return fmt.Errorf("the last turn is %s, want a functionResponse named %s with %s", contents[2].Raw, name, result)
	}
	return nil
}

// --- Cohere ---

type cohereNative struct{ u providertest.CohereUsage }

func (n cohereNative) text(_ *sdkProvider, text string) providertest.Response {
	return providertest.Response{Body: providertest.CohereChat(text, n.u)}
}

func (n cohereNative) stream(_ *sdkProvider, _ providertest.Record, pieces []string) providertest.Response {
	return providertest.Response{RawEvents: providertest.CohereStream(pieces, n.u)}
}

func (n cohereNative) toolCall(p *sdkProvider, name, args string) providertest.Response {
	return providertest.Response{Body: providertest.CohereToolCall(p.toolID, name, args, n.u)}
}

func (n cohereNative) toolStream(p *sdkProvider, _ providertest.Record, name string, argPieces []string) (providertest.Response, string) {
	return providertest.Response{RawEvents: providertest.CohereToolCallStream(p.toolID, name, argPieces, n.u)}, ""
}

func (cohereNative) rateLimit(*sdkProvider) providertest.Response {
	return providertest.Response{Status: 429,
		Body: providertest.CohereError("You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits.")}
}

func (cohereNative) checkToolResult(_ *sdkProvider, body []byte, id, name, args, result string) error {
	msgs := gjson.GetBytes(body, "messages").Array()
	if len(msgs) != 3 {
		return fmt.Errorf("%d messages, want user, assistant, tool", len(msgs))
	}
	tc := msgs[1].Get("tool_calls.0")
	if msgs[1].Get("role").String() != "assistant" || tc.Get("id").String() != id || tc.Get("function.name").String() != name ||
		!jsonEqual(tc.Get("function.arguments").String(), args) {
		return fmt.Errorf("the assistant message is %s, want a call %s %s(%s)", msgs[1].Raw, id, name, args)
	}
	content := msgs[2].Get("content")
	text := content.String()
	if content.IsArray() {
		text = ""
		for _, b := range content.Array() {
			text += b.Get("text").String()
			if d := b.Get("document.data"); d.Exists() {
				text += d.String()
			}
		}
	}
	if msgs[2].Get("role").String() != "tool" || msgs[2].Get("tool_call_id").String() != id || !jsonEqual(text, result) {
		return fmt.Errorf("the tool message is %s, want tool_call_id %s with %s", msgs[2].Raw, id, result)
	}
	return nil
}
