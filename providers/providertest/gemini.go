package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/tidwall/gjson"
)

// The Gemini fake speaks the Generative Language API (AI Studio):
// POST /v1beta/models/{model}:generateContent, :streamGenerateContent?alt=sse
// and :batchEmbedContents, with the key in x-goog-api-key. A key sent as a
// ?key= query parameter is recorded with CredentialHeader "query" (and
// accepted, as Google does), so tests can assert it never happens. Error
// bodies are Google's ({"error":{"code","message","status","details"}}), a
// bad key is 400 INVALID_ARGUMENT with reason API_KEY_INVALID, and streams
// are data-only SSE events separated by CRLF, with no [DONE]. Its base URL
// is the server's URL, like https://generativelanguage.googleapis.com.

// GeminiUsage is the token counts a fake Gemini answer reports
// (usageMetadata). Prompt includes Cached, as promptTokenCount does;
// Candidates excludes Thoughts, as candidatesTokenCount does. The total is
// Prompt + Candidates + Thoughts + ToolUsePrompt.
type GeminiUsage struct {
	Prompt, Candidates, Thoughts, Cached, ToolUsePrompt int
}

// DefaultGeminiUsage is what the fake reports when no responder is set: 11
// prompt tokens and 3 + 2 thinking = 5 completion tokens, the same totals as
// the OpenAI-shaped fakes (11 + 5 = 16).
var DefaultGeminiUsage = GeminiUsage{Prompt: 11, Candidates: 3, Thoughts: 2}

// Total is totalTokenCount.
func (u GeminiUsage) Total() int { return u.Prompt + u.Candidates + u.Thoughts + u.ToolUsePrompt }

// Object is the usageMetadata object, with the optional counters only when
// they are not zero (as Gemini leaves them out).
func (u GeminiUsage) Object() map[string]any {
	m := map[string]any{
		"promptTokenCount":     u.Prompt,
		"candidatesTokenCount": u.Candidates,
		"totalTokenCount":      u.Total(),
		"promptTokensDetails":  []any{map[string]any{"modality": "TEXT", "tokenCount": u.Prompt}},
	}
	if u.Thoughts > 0 {
		m["thoughtsTokenCount"] = u.Thoughts
	}
	if u.Cached > 0 {
		m["cachedContentTokenCount"] = u.Cached
	}
	if u.ToolUsePrompt > 0 {
		m["toolUsePromptTokenCount"] = u.ToolUsePrompt
	}
	return m
}

// GeminiCall is a function call in a fake answer. Args is a JSON object;
// ID and ThoughtSignature are optional (AI Studio usually sends no id;
// thinking models sign their first call).
type GeminiCall struct {
	ID, Name, Args, ThoughtSignature string
}

func (c GeminiCall) part() map[string]any {
	fc := map[string]any{"name": c.Name, "args": json.RawMessage(c.Args)}
	if c.Args == "" {
		fc["args"] = map[string]any{}
	}
	if c.ID != "" {
		fc["id"] = c.ID
	}
	p := map[string]any{"functionCall": fc}
	if c.ThoughtSignature != "" {
		p["thoughtSignature"] = c.ThoughtSignature
	}
	return p
}

func geminiJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// GeminiResponse returns a GenerateContentResponse with one candidate made
// of parts (native part objects); finish is its finishReason ("" for none)
// and u its usage (nil for none).
func GeminiResponse(model string, parts []any, finish string, u *GeminiUsage) string {
	return geminiJSON(geminiResponse(model, parts, finish, u))
}

func geminiResponse(model string, parts []any, finish string, u *GeminiUsage) map[string]any {
	cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}}
	if parts == nil {
		cand = map[string]any{}
	}
	if finish != "" {
		cand["finishReason"] = finish
	}
	r := map[string]any{"candidates": []any{cand}, "modelVersion": model, "responseId": "fake-response-id"}
	if u != nil {
		r["usageMetadata"] = u.Object()
	}
	return r
}

// GeminiText returns a generateContent answer with text as its only part.
func GeminiText(model, text string, u GeminiUsage) string {
	return GeminiResponse(model, []any{map[string]any{"text": text}}, "STOP", &u)
}

// GeminiToolCalls returns a generateContent answer that calls functions
// (finishReason STOP, as Gemini reports it for function calls).
func GeminiToolCalls(model string, calls []GeminiCall, u GeminiUsage) string {
	parts := make([]any, len(calls))
	for i, c := range calls {
		parts[i] = c.part()
	}
	return GeminiResponse(model, parts, "STOP", &u)
}

// GeminiBlocked returns the answer to a blocked prompt: no candidates, a
// promptFeedback with reason (e.g. "SAFETY"), usage for the prompt only.
func GeminiBlocked(model, reason string, prompt int) string {
	u := GeminiUsage{Prompt: prompt}
	return geminiJSON(map[string]any{"promptFeedback": map[string]any{"blockReason": reason},
		"usageMetadata": u.Object(), "modelVersion": model})
}

// GeminiEvent frames one stream event as Gemini does: data only, CRLF
// separators.
func GeminiEvent(v any) string {
	s, ok := v.(string)
	if !ok {
		s = geminiJSON(v)
	}
	return "data: " + s + "\r\n\r\n"
}

// GeminiStream returns the raw events of a streamed text answer: one event
// per piece, the last one with finishReason STOP and the usage (Gemini
// sends usageMetadata on every event; only the last one is final, so the
// earlier ones carry the prompt count only).
func GeminiStream(model string, pieces []string, u GeminiUsage) []string {
	out := make([]string, len(pieces))
	partial := GeminiUsage{Prompt: u.Prompt, Cached: u.Cached}
	for i, p := range pieces {
		parts := []any{map[string]any{"text": p}}
		if i < len(pieces)-1 {
			out[i] = GeminiEvent(geminiResponse(model, parts, "", &partial))
		} else {
			out[i] = GeminiEvent(geminiResponse(model, parts, "STOP", &u))
		}
	}
	return out
}

// GeminiToolCallStream returns the raw events of a streamed answer that
// says text (when not empty) and then makes calls, whole, in the final
// event.
func GeminiToolCallStream(model, text string, calls []GeminiCall, u GeminiUsage) []string {
	var out []string
	if text != "" {
		partial := GeminiUsage{Prompt: u.Prompt, Cached: u.Cached}
		out = append(out, GeminiEvent(geminiResponse(model, []any{map[string]any{"text": text}}, "", &partial)))
	}
	parts := make([]any, len(calls))
	for i, c := range calls {
		parts[i] = c.part()
	}
	return append(out, GeminiEvent(geminiResponse(model, parts, "STOP", &u)))
}

// GeminiError returns a native error body, e.g.
// GeminiError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.").
// details are google.rpc detail objects (see GeminiErrorInfo, GeminiRetryInfo).
func GeminiError(code int, status, message string, details ...any) string {
	e := map[string]any{"code": code, "message": message, "status": status}
	if len(details) > 0 {
		e["details"] = details
	}
	return geminiJSON(map[string]any{"error": e})
}

// GeminiErrorInfo is a google.rpc.ErrorInfo detail with reason (e.g.
// "API_KEY_INVALID").
func GeminiErrorInfo(reason string) any {
	return map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
		"domain": "googleapis.com", "metadata": map[string]any{"service": "generativelanguage.googleapis.com"}}
}

// GeminiRetryInfo is a google.rpc.RetryInfo detail, e.g. "37s".
func GeminiRetryInfo(delay string) any {
	return map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}
}

// GeminiQuotaFailure is a google.rpc.QuotaFailure detail for one quota, e.g.
// "GenerateRequestsPerDayPerProjectPerModel-FreeTier" with limit "20".
func GeminiQuotaFailure(quotaID, limit string) any {
	return map[string]any{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []any{map[string]any{
		"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
		"quotaId":     quotaID, "quotaValue": limit}}}
}

// GeminiUnauthorized is Google's answer to a bad key: 400 INVALID_ARGUMENT
// with reason API_KEY_INVALID. Unlike Google, the fake echoes the key, so
// tests can check that the gateway scrubs it.
func GeminiUnauthorized(key string) Response {
	return Response{Status: 400, Body: GeminiError(400, "INVALID_ARGUMENT",
		"API key not valid. Please pass a valid API key. (got "+key+")", GeminiErrorInfo("API_KEY_INVALID"))}
}

// GeminiEmbeddings returns a batchEmbedContents answer with one
// three-value vector per input.
func GeminiEmbeddings(n int) string {
	embs := make([]any, n)
	for i := range embs {
		embs[i] = map[string]any{"values": []float64{0.1, 0.2, float64(i)}}
	}
	return geminiJSON(map[string]any{"embeddings": embs})
}

// GeminiDefault is the Gemini fake's answer when no responder is set: a
// fixed text (or a five-event stream) naming the model it was asked for,
// with DefaultGeminiUsage; embeddings get one vector per request.
func GeminiDefault(rec Record, op string) Response {
	if op == OpModels {
		return Response{Body: `{"models":[{"name":"models/gemini-2.5-flash","displayName":"Gemini 2.5 Flash","supportedGenerationMethods":["generateContent"]}]}`}
	}
	if op == "embeddings" {
		return Response{Body: GeminiEmbeddings(len(gjson.GetBytes(rec.Body, "requests").Array()))}
	}
	u := DefaultGeminiUsage
	if rec.Usage != nil {
		u = rec.Usage.Gemini()
	}
	if rec.Stream {
		return Response{RawEvents: GeminiStream(rec.Model, []string{"Hel", "lo", " from", " the", " fake"}, u)}
	}
	return Response{Body: GeminiText(rec.Model, "Hello from the fake", u)}
}

func geminiErrorResponse(status int, rpc, message string) *Response {
	return &Response{Status: status, Body: GeminiError(status, rpc, message)}
}

// geminiParse reads /v1beta/models/{model}:{method}.
func geminiParse(r *http.Request, rec *Record) (string, *Response) {
	if key := r.URL.Query().Get("key"); key != "" {
		rec.CredentialHeader, rec.Credential = "query", key
	} else if key := r.Header.Get("X-Goog-Api-Key"); key != "" {
		rec.CredentialHeader, rec.Credential = "X-Goog-Api-Key", key
	}
	if r.URL.Path == "/v1beta/models" && r.Method == http.MethodGet {
		if rec.Credential == "" {
			return "", geminiErrorResponse(403, "PERMISSION_DENIED",
				"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
		}
		return OpModels, nil
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1beta/models/")
	i := strings.LastIndexByte(rest, ':')
	if !ok || i <= 0 || r.Method != http.MethodPost {
		return "", geminiErrorResponse(404, "NOT_FOUND", fmt.Sprintf("unknown path %s %s", r.Method, r.URL.Path))
	}
	rec.Model = rest[:i]
	if rec.Credential == "" {
		return "", geminiErrorResponse(403, "PERMISSION_DENIED",
			"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.")
	}
	if !json.Valid(rec.Body) {
		return "", geminiErrorResponse(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
	}
	if early := geminiTools(rec); early != nil {
		return "", early
	}
	switch rest[i+1:] {
	case "generateContent":
		return "chat", nil
	case "streamGenerateContent":
		rec.Stream = true
		if r.URL.Query().Get("alt") != "sse" {
			// Without alt=sse Gemini streams one JSON array; the gateway
			// must ask for SSE.
			return "", geminiErrorResponse(400, "INVALID_ARGUMENT", "the fake streams only with alt=sse")
		}
		return "chat", nil
	case "batchEmbedContents":
		return "embeddings", nil
	}
	return "", geminiErrorResponse(404, "NOT_FOUND", "unknown method "+rest[i+1:])
}

// geminiFunctionName is what Gemini takes as a function's name: a letter
// or underscore, then letters, digits, underscores, dots, colons and
// dashes, 64 at most (FunctionDeclaration.name in go-genai types.go).
var geminiFunctionName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$`)

// geminiTools refuses the tools Gemini refuses: a function name it does not
// take, and Google Search beside function declarations on a model before
// Gemini 3 (ai.google.dev/gemini-api/docs/tool-combination), or on Gemini 3
// without server-side tool invocations.
func geminiTools(rec *Record) *Response {
	search, decls := false, false
	for _, t := range gjson.GetBytes(rec.Body, "tools").Array() {
		if t.Get("googleSearch").Exists() || t.Get("google_search").Exists() {
			search = true
		}
		for _, d := range t.Get("functionDeclarations").Array() {
			decls = true
			if name := d.Get("name").String(); !geminiFunctionName.MatchString(name) {
				return geminiErrorResponse(400, "INVALID_ARGUMENT", fmt.Sprintf(
					"* GenerateContentRequest.tools[0].function_declarations[0].name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length of 64. (got %q)", name))
			}
		}
	}
	if search && decls {
		if strings.HasPrefix(rec.Model, "gemini-1") || strings.HasPrefix(rec.Model, "gemini-2") {
			return geminiErrorResponse(400, "INVALID_ARGUMENT", "Tool use with function calling is unsupported")
		}
		if !gjson.GetBytes(rec.Body, "toolConfig.includeServerSideToolInvocations").Bool() {
			return geminiErrorResponse(400, "INVALID_ARGUMENT", "Built-in tools combined with function calling need toolConfig.includeServerSideToolInvocations")
		}
	}
	return nil
}

func init() {
	RegisterKind("gemini", &Kind{
		BaseURL:      func(u string) string { return u },
		Parse:        geminiParse,
		Unauthorized: GeminiUnauthorized,
		Default:      GeminiDefault,
	})
}
