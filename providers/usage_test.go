package providers

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/pricing"
)

// Billing (issue 21) prices each answer from its Usage: pricing reads Raw,
// the provider's own usage object, and OpenAI's tier beside it. Every path
// an answer takes keeps what pricing needs: every token class (Anthropic's
// cache writes by lifetime too) and the service tier.
func TestUsageCarriesPricingClasses(t *testing.T) {
	const antUsage = `{"input_tokens":40,"cache_creation_input_tokens":300,"cache_read_input_tokens":1000,"output_tokens":33,` +
		`"service_tier":"priority","cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":200}}`
	antWant := pricing.Usage{Input: 40, CacheRead: 1000, CacheWrite5m: 100, CacheWrite1h: 200, Output: 33, Tier: pricing.PriorityTier}
	// An Anthropic stream states the input side (and the tier) first, the
	// output last.
	antStream := "event: message_start\ndata: " + `{"type":"message_start","message":{"model":"claude-sonnet-4-5","usage":` +
		strings.Replace(antUsage, `"output_tokens":33`, `"output_tokens":1`, 1) + `}}` + "\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
		"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":33}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	antAnswer := `{"type":"message","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":` + antUsage + `}`

	oaWant := pricing.Usage{Input: 70, CacheRead: 30, Output: 20, Reasoning: 5, PromptTokens: 100, Tier: pricing.Flex}
	const oaUsage = `{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":30},"completion_tokens_details":{"reasoning_tokens":5}}`
	oaStream := `data: {"id":"c","model":"gpt-4o","service_tier":"flex","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}` + "\n\n" +
		`data: {"id":"c","model":"gpt-4o","service_tier":"flex","choices":[],"usage":` + oaUsage + `}` + "\n\n" + "data: [DONE]\n\n"
	const respUsage = `{"input_tokens":100,"input_tokens_details":{"cached_tokens":30},"output_tokens":20,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":120}`
	respAnswer := `{"id":"resp_1","object":"response","status":"completed","service_tier":"flex","output":[],"usage":` + respUsage + `}`
	respStream := "event: response.completed\ndata: " + `{"type":"response.completed","response":` + respAnswer + `}` + "\n\n"

	gemWant := pricing.Usage{Input: 14, CacheRead: 16, Output: 52, Reasoning: 40, PromptTokens: 30, Tier: pricing.PriorityTier}
	gemStream := `data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"finishReason":"STOP","index":0}],` +
		`"usageMetadata":{"promptTokenCount":30,"candidatesTokenCount":12,"thoughtsTokenCount":40,"cachedContentTokenCount":16,` +
		`"totalTokenCount":82,"trafficType":"ON_DEMAND_PRIORITY"},"modelVersion":"gemini-2.5-flash"}` + "\r\n\r\n"

	stream := func(tr StreamTranslator, in string) Usage {
		t.Helper()
		if _, err := feedStream(tr, strings.NewReader(in), nil); err != nil {
			t.Fatal(err)
		}
		return tr.Usage()
	}
	answer := func(out []byte, u Usage, err error) Usage {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	msgs := func() *Call {
		return &Call{Model: "m", ID: "msg_1", Door: MessagesDoor, Stream: true, IncludeUsage: true}
	}
	resp := func() *Call {
		return &Call{Model: "m", ID: "resp_1", Door: ResponsesDoor, Stream: true, IncludeUsage: true}
	}
	for _, c := range []struct {
		name, provider string
		u              Usage
		want           pricing.Usage
	}{
		{"messages passthrough", Anthropic, answer(MessagesDoor.nativeResponse(msgs(), []byte(antAnswer))), antWant},
		{"messages passthrough, streamed", Anthropic, stream(MessagesDoor.nativeStream(msgs()), antStream), antWant},
		{"chat to anthropic", Anthropic, answer(anthropicResponse(antCall(), []byte(antAnswer))), antWant},
		{"chat to anthropic, streamed", Anthropic, stream(newAnthropicStream(antCall()), antStream), antWant},
		{"responses to anthropic, streamed", Anthropic, stream(newDoorStream(resp(), newResponsesEvents(resp()), newAnthropicStream), antStream), antWant},
		{"chat to openai", OpenAI, answer(passthroughResponse(nil, []byte(`{"service_tier":"flex","choices":[],"usage":`+oaUsage+`}`))), oaWant},
		{"chat to openai, streamed", OpenAI, stream(newPassthroughStream(&Call{}), oaStream), oaWant},
		{"messages to openai, streamed", OpenAI, stream(doorOverChat(MessagesDoor, msgs()), oaStream), oaWant},
		{"responses passthrough", OpenAI, answer(ResponsesDoor.nativeResponse(resp(), []byte(respAnswer))), oaWant},
		{"responses passthrough, streamed", OpenAI, stream(ResponsesDoor.nativeStream(resp()), respStream), oaWant},
		{"chat to gemini, streamed", Gemini, stream(newGeminiStream(&Call{Model: "m", Stream: true}), gemStream), gemWant},
		{"messages to gemini, streamed", Gemini, stream(newDoorStream(msgs(), newMessagesEvents(msgs()), newGeminiStream), gemStream), gemWant},
	} {
		got := pricing.FromProvider(c.provider, c.u.Raw)
		if got.Tier == pricing.Standard {
			got.Tier = pricing.ParseTier(c.u.ServiceTier)
		}
		if got != c.want {
			t.Errorf("%s: priced as %+v from %s (tier %q), want %+v", c.name, got, c.u.Raw, c.u.ServiceTier, c.want)
		}
	}
}

// TestPassthroughResponseAllocates: reading an OpenAI-shaped answer's usage
// copies the usage object (Raw outlives the pooled answer buffer) and
// nothing else: not the whole answer, not a result per path.
func TestPassthroughResponseAllocates(t *testing.T) {
	body := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there, in five words."},"finish_reason":"stop"}],"service_tier":"default","usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}`)
	var u Usage
	n := testing.AllocsPerRun(100, func() {
		_, u, _ = passthroughResponse(nil, body)
	})
	want := Usage{PromptTokens: 11, CompletionTokens: 5, TotalTokens: 16, CachedTokens: 3, ReasoningTokens: 2, ServiceTier: "default",
		Raw: json.RawMessage(`{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}`)}
	if !reflect.DeepEqual(u, want) {
		t.Errorf("usage %+v, want %+v", u, want)
	}
	if n > 1 {
		t.Errorf("reading the answer's usage allocates %v times, want 1 (the usage object's copy)", n)
	}
	// The usage is the answer's own, not a view of its buffer.
	copy(body, make([]byte, len(body)))
	if string(u.Raw) != string(want.Raw) {
		t.Errorf("the usage kept a view of the answer's buffer: %s", u.Raw)
	}
}

// TestOpenAIUsageFirstCopy: a member named twice is read at its first copy
// (as gjson.Get reads it), and chat's member wins over the Responses one.
func TestOpenAIUsageFirstCopy(t *testing.T) {
	u := openAIUsage(gjson.Parse(`{"prompt_tokens":7,"input_tokens":9,"prompt_tokens":99,"output_tokens":4,"input_tokens_details":{"cached_tokens":2}}`))
	if u.PromptTokens != 7 || u.CompletionTokens != 4 || u.CachedTokens != 2 || u.TotalTokens != 11 {
		t.Errorf("%+v", u)
	}
}
