package pricing

import (
	"unsafe"

	"github.com/tidwall/gjson"
)

// Reading each provider's own usage block into a Usage. Every reader makes
// one pass over the object with gjson, allocates nothing, and reads a
// missing, non-numeric or negative count as 0 and a huge one as 2^40 (so a
// garbled block can neither meter negative tokens nor overflow a sum).
// Sources: providers.md §2–§9 and §12.3, money.md §1.

// maxTokens bounds one reported count (as providers.antMaxTokenCount does).
const maxTokens = 1 << 40

// FromProvider reads raw, the usage object the provider named by provider
// returned (what providers.Usage.Raw keeps): Anthropic's usage, Gemini's
// usageMetadata, Cohere's usage, Perplexity's usage; OpenAI, Azure,
// Mistral and Together speak OpenAI's shape, chat completions or Responses.
// The service tier OpenAI reports outside the usage object (the answer's
// service_tier) is the caller's to set, with ParseTier.
func FromProvider(provider string, raw []byte) Usage {
	switch provider {
	case "anthropic":
		return FromAnthropic(raw)
	case "gemini":
		return FromGemini(raw)
	case "cohere":
		return FromCohere(raw)
	case "perplexity":
		return FromPerplexity(raw)
	default:
		return FromOpenAI(raw)
	}
}

// object parses raw without copying it: the Results it yields point into
// raw and are not kept past the reader that asked.
func object(raw []byte) gjson.Result {
	if len(raw) == 0 {
		return gjson.Result{}
	}
	r := gjson.Parse(unsafe.String(unsafe.SliceData(raw), len(raw)))
	if !r.IsObject() {
		return gjson.Result{}
	}
	return r
}

func count(v gjson.Result) int64 {
	if v.Type != gjson.Number {
		return 0
	}
	return min(max(v.Int(), 0), maxTokens)
}

// FromOpenAI reads OpenAI's usage, in the chat completions shape
// (prompt_tokens includes prompt_tokens_details.cached_tokens;
// completion_tokens includes completion_tokens_details.reasoning_tokens)
// or the Responses shape (input_tokens, input_tokens_details.cached_tokens,
// output_tokens, output_tokens_details.reasoning_tokens).
func FromOpenAI(raw []byte) Usage {
	var prompt, cached, out, reasoning int64
	object(raw).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens", "input_tokens":
			prompt = count(v)
		case "completion_tokens", "output_tokens":
			out = count(v)
		case "prompt_tokens_details", "input_tokens_details":
			cached = count(v.Get("cached_tokens"))
		case "completion_tokens_details", "output_tokens_details":
			reasoning = count(v.Get("reasoning_tokens"))
		}
		return true
	})
	return FromCounts(prompt, cached, out, reasoning)
}

// FromCounts is OpenAI's usage from its four counts, in chat terms (prompt
// includes cached, completion includes reasoning), as FromOpenAI reads
// them: each bounded to [0, 2^40], cached to the prompt and reasoning to
// the completion. The gateway prices an OpenAI-shaped answer from the
// counts its adapter already read (providers.Usage), without a second
// pass over the block.
func FromCounts(prompt, cached, completion, reasoning int64) Usage {
	prompt, completion = bound(prompt), bound(completion)
	cached, reasoning = min(bound(cached), prompt), min(bound(reasoning), completion)
	return Usage{Input: prompt - cached, CacheRead: cached, Output: completion, Reasoning: reasoning, PromptTokens: prompt}
}

func bound(n int64) int64 { return min(max(n, 0), maxTokens) }

// OpenAIShaped reports whether FromProvider reads provider's usage as
// OpenAI's (FromOpenAI): its answers' counts say everything the block does.
func OpenAIShaped(provider string) bool {
	switch provider {
	case "anthropic", "gemini", "cohere", "perplexity":
		return false
	}
	return true
}

// FromPerplexity reads Perplexity's OpenAI-shaped usage, whose top-level
// reasoning_tokens (Sonar Deep Research) are counted apart from
// completion_tokens and priced apart. Its citation_tokens and search
// queries are not token classes of the book (the row says so).
func FromPerplexity(raw []byte) Usage {
	u := FromOpenAI(raw)
	if r := object(raw).Get("reasoning_tokens"); r.Exists() {
		u.Reasoning, u.ReasoningApart = count(r), true
	}
	return u
}

// FromAnthropic reads Anthropic's usage: input_tokens excludes both cache
// counters; cache_creation_input_tokens is every cache write, split by
// lifetime in cache_creation.{ephemeral_5m_input_tokens,
// ephemeral_1h_input_tokens} when present. A write is counted once: in the
// split's classes, any remainder (or all of it, without a split) as a 5 m
// write, Anthropic's default lifetime. usage.service_tier is the tier.
func FromAnthropic(raw []byte) Usage {
	var u Usage
	var created, w5, w1 int64
	var split bool
	object(raw).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "input_tokens":
			u.Input = count(v)
		case "cache_read_input_tokens":
			u.CacheRead = count(v)
		case "cache_creation_input_tokens":
			created = count(v)
		case "cache_creation":
			if v.IsObject() {
				split = true
				w5, w1 = count(v.Get("ephemeral_5m_input_tokens")), count(v.Get("ephemeral_1h_input_tokens"))
			}
		case "output_tokens":
			u.Output = count(v)
		case "service_tier":
			u.Tier = ParseTier(v.Str)
		}
		return true
	})
	if split {
		u.CacheWrite5m, u.CacheWrite1h = w5, w1
		if rest := created - w5 - w1; rest > 0 {
			u.CacheWrite5m += rest
		}
	} else {
		u.CacheWrite5m = created
	}
	return u
}

// FromGemini reads Gemini's usageMetadata: promptTokenCount includes
// cachedContentTokenCount; toolUsePromptTokenCount is input too;
// thoughtsTokenCount is billed as output and not part of
// candidatesTokenCount (providers.md §4.4); trafficType names the tier.
func FromGemini(raw []byte) Usage {
	var prompt, cached, tool, cand, thoughts int64
	var u Usage
	object(raw).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "promptTokenCount":
			prompt = count(v)
		case "cachedContentTokenCount":
			cached = count(v)
		case "toolUsePromptTokenCount":
			tool = count(v)
		case "candidatesTokenCount":
			cand = count(v)
		case "thoughtsTokenCount":
			thoughts = count(v)
		case "trafficType":
			u.Tier = ParseTier(v.Str)
		}
		return true
	})
	cached = min(cached, prompt)
	u.Input, u.CacheRead = prompt-cached+tool, cached
	u.Output, u.Reasoning = cand+thoughts, thoughts
	u.PromptTokens = prompt + tool
	return u
}

// FromCohere reads Cohere's v2 usage: billed_units (what Cohere bills)
// before tokens (what the model processed), as the price applies to what
// is billed; cached_tokens is the cached part of the input.
func FromCohere(raw []byte) Usage {
	var billedIn, billedOut, tokIn, tokOut, cached int64
	var billed, tok bool
	object(raw).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "billed_units":
			if v.IsObject() {
				billed = true
				billedIn, billedOut = count(v.Get("input_tokens")), count(v.Get("output_tokens"))
			}
		case "tokens":
			if v.IsObject() {
				tok = true
				tokIn, tokOut = count(v.Get("input_tokens")), count(v.Get("output_tokens"))
			}
		case "cached_tokens":
			cached = count(v)
		}
		return true
	})
	in, out := tokIn, tokOut
	if billed || !tok {
		in, out = billedIn, billedOut
	}
	cached = min(cached, in)
	return Usage{Input: in - cached, CacheRead: cached, Output: out, PromptTokens: in}
}
