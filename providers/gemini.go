package providers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// Gemini (AI Studio, the Generative Language API):
// https://generativelanguage.googleapis.com, POST
// /v1beta/models/{model}:generateContent, streamed with
// :streamGenerateContent?alt=sse (googleapis/go-genai client.go, models.go).
// The key travels in the x-goog-api-key header, as the official SDK sends it
// (go-genai api_client.go), never as ?key=: a URL ends up in access logs and
// traces, and these are BYOK secrets. Keys were AIza + 35 characters; since
// 2026 new keys start with AQ. (reports of IQ. too).
//
// Chat requests are translated to generateContent and answers back to
// OpenAI's chat.completion shape; embeddings go to :batchEmbedContents.
// What the translation drops is listed where it happens and in the README.
var gemini = register(&Provider{
	Name:           Gemini,
	DefaultBaseURL: "https://generativelanguage.googleapis.com",
	KeyPrefixes:    []string{"AIza", "AQ.", "IQ."},
	AuthHeader:     "X-Goog-Api-Key",
	Implemented:    true,
	build:          buildGemini,
	test:           testGemini,
	response:       geminiResponse,
	stream:         newGeminiStream,
	classify:       classifyGemini,
})

// --- request build ---

// geminiAPIVersion is the API version the SDK defaults to (go-genai
// client.go); function calling, system instructions and usage details are
// all v1beta features.
const geminiAPIVersion = "v1beta"

// geminiSkipSignature is the placeholder Google documents for replaying a
// function call whose thought signature is unknown (a history written by
// another model, or by a client that dropped the signature): Gemini 3
// rejects a replayed function call without one, with 400 "Function call is
// missing a thought_signature"
// (https://ai.google.dev/gemini-api/docs/thought-signatures; Continue and
// Strands do the same).
const geminiSkipSignature = "skip_thought_signature_validator"

// geminiURL is the URL of one model method. A model given as
// "models/gemini-..." (how ListModels names them) does not double the
// segment; the model is escaped as one path segment (":" too, since it
// separates the method). A base URL that already ends in an API version
// (/v1beta, /v1) is used as is.
func geminiURL(base, model, method string) string {
	if !strings.HasSuffix(base, "/v1beta") && !strings.HasSuffix(base, "/v1") {
		base += "/" + geminiAPIVersion
	}
	seg := strings.ReplaceAll(url.PathEscape(model), ":", "%3A")
	return base + "/models/" + seg + ":" + method
}

func buildGemini(ctx context.Context, c *Call) (*http.Request, error) {
	model := strings.TrimPrefix(c.Model, "models/")
	if model == "" {
		return nil, badRequest("the gemini model name is empty")
	}
	var (
		body   []byte
		method string
		err    error
	)
	switch c.Op {
	case OpEmbeddings:
		body, err = geminiEmbeddingsRequest(c.Body, model)
		method = "batchEmbedContents"
	default:
		body, err = geminiChatRequest(c, model)
		method = "generateContent"
		if c.Stream {
			method = "streamGenerateContent?alt=sse"
		}
	}
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, geminiURL(c.Endpoint.BaseURL, model, method), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["X-Goog-Api-Key"] = []string{c.Key}
	req.Header["Content-Type"] = []string{"application/json"}
	return req, nil
}

// Native request types (GenerateContentRequest in go-genai types.go).
type (
	geminiRequest struct {
		Contents          []geminiContent         `json:"contents"`
		SystemInstruction *geminiContent          `json:"systemInstruction,omitempty"`
		Tools             []geminiTool            `json:"tools,omitempty"`
		ToolConfig        *geminiToolConfig       `json:"toolConfig,omitempty"`
		GenerationConfig  *geminiGenerationConfig `json:"generationConfig,omitempty"`
	}
	geminiContent struct {
		Role  string       `json:"role,omitempty"`
		Parts []geminiPart `json:"parts"`
	}
	geminiPart struct {
		Text             string                  `json:"text,omitempty"`
		Thought          bool                    `json:"thought,omitempty"`
		ThoughtSignature string                  `json:"thoughtSignature,omitempty"`
		InlineData       *geminiBlob             `json:"inlineData,omitempty"`
		FileData         *geminiFileData         `json:"fileData,omitempty"`
		FunctionCall     *geminiFunctionCall     `json:"functionCall,omitempty"`
		FunctionResponse *geminiFunctionResponse `json:"functionResponse,omitempty"`
	}
	geminiBlob struct {
		MimeType string `json:"mimeType"`
		Data     string `json:"data"`
	}
	geminiFileData struct {
		MimeType string `json:"mimeType,omitempty"`
		FileURI  string `json:"fileUri"`
	}
	geminiFunctionCall struct {
		ID   string          `json:"id,omitempty"`
		Name string          `json:"name"`
		Args json.RawMessage `json:"args,omitempty"`
	}
	geminiFunctionResponse struct {
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	}
	geminiTool struct {
		FunctionDeclarations []geminiFunctionDeclaration `json:"functionDeclarations,omitempty"`
		GoogleSearch         *struct{}                   `json:"googleSearch,omitempty"`
	}
	geminiFunctionDeclaration struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	}
	geminiToolConfig struct {
		FunctionCallingConfig *geminiFunctionCallingConfig `json:"functionCallingConfig,omitempty"`
		// IncludeServerSideToolInvocations lets Gemini 3 run Google
		// Search beside function calls in one generation
		// (ai.google.dev/gemini-api/docs/tool-combination).
		IncludeServerSideToolInvocations bool `json:"includeServerSideToolInvocations,omitempty"`
	}
	geminiFunctionCallingConfig struct {
		Mode                 string   `json:"mode"`
		AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
	}
	geminiGenerationConfig struct {
		Temperature        *float64              `json:"temperature,omitempty"`
		TopP               *float64              `json:"topP,omitempty"`
		TopK               *int                  `json:"topK,omitempty"`
		MaxOutputTokens    int                   `json:"maxOutputTokens,omitempty"`
		StopSequences      []string              `json:"stopSequences,omitempty"`
		CandidateCount     int                   `json:"candidateCount,omitempty"`
		Seed               *int64                `json:"seed,omitempty"`
		PresencePenalty    *float64              `json:"presencePenalty,omitempty"`
		FrequencyPenalty   *float64              `json:"frequencyPenalty,omitempty"`
		ResponseMimeType   string                `json:"responseMimeType,omitempty"`
		ResponseJSONSchema json.RawMessage       `json:"responseJsonSchema,omitempty"`
		ThinkingConfig     *geminiThinkingConfig `json:"thinkingConfig,omitempty"`
	}
	geminiThinkingConfig struct {
		ThinkingBudget *int   `json:"thinkingBudget,omitempty"`
		ThinkingLevel  string `json:"thinkingLevel,omitempty"`
	}
)

func (g *geminiGenerationConfig) empty() bool {
	return g.Temperature == nil && g.TopP == nil && g.TopK == nil && g.MaxOutputTokens == 0 &&
		len(g.StopSequences) == 0 && g.CandidateCount == 0 && g.Seed == nil && g.PresencePenalty == nil &&
		g.FrequencyPenalty == nil && g.ResponseMimeType == "" && len(g.ResponseJSONSchema) == 0 && g.ThinkingConfig == nil
}

// geminiExtraContent is a tool call's extra_content as Google's
// OpenAI-compatible endpoint writes it, with the call's thought signature;
// clients that keep unknown fields (the OpenAI SDKs do) send it back with
// the history.
type geminiExtraContent struct {
	Google struct {
		ThoughtSignature string `json:"thought_signature,omitempty"`
	} `json:"google"`
}

// geminiSignature reads a tool call's thought signature from its
// extra_content; one that does not decode is refused as a malformed field
// of the body is.
func geminiSignature(tc *ToolCall) (string, error) {
	var ec *geminiExtraContent
	if err := decodeField("messages.tool_calls.extra_content", tc.ExtraContent, &ec); err != nil || ec == nil {
		return "", err
	}
	return ec.Google.ThoughtSignature, nil
}

// geminiPartIn is a client content part with the two part types only
// Gemini takes, audio and files. They stay out of ContentPart: the other
// adapters refuse those parts without reading them, and would otherwise
// refuse a message over a malformed input_audio or file member they never
// use.
type geminiPartIn struct {
	ContentPart
	InputAudio *struct {
		Data   string `json:"data"`
		Format string `json:"format"`
	} `json:"input_audio"`
	File *struct {
		FileData string `json:"file_data"`
		FileID   string `json:"file_id"`
	} `json:"file"`
}

// geminiOptions are the request options only Gemini reads, decoded from
// the Opt and raw fields ChatRequest keeps for them.
type geminiOptions struct {
	topK             *int
	presencePenalty  *float64
	frequencyPenalty *float64
	responseFormat   *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	}
	reasoningEffort string
}

// geminiDecodeChat reads the hub request. The fields only Gemini reads
// (its options, the tool calls' thought signatures) are decoded before
// anything else, so that a malformed one is refused first, as a malformed
// field of ChatRequest is. A door's thinking effort stands in for
// reasoning_effort.
func geminiDecodeChat(c *Call) (*ChatRequest, *geminiOptions, error) {
	in, err := c.chatRequest()
	if err != nil {
		return nil, nil, err
	}
	var o geminiOptions
	if o.topK, err = in.TopK.Get("top_k"); err != nil {
		return nil, nil, err
	}
	if o.presencePenalty, err = in.PresencePenalty.Get("presence_penalty"); err != nil {
		return nil, nil, err
	}
	if o.frequencyPenalty, err = in.FrequencyPenalty.Get("frequency_penalty"); err != nil {
		return nil, nil, err
	}
	if err := decodeField("response_format", in.ResponseFormat, &o.responseFormat); err != nil {
		return nil, nil, err
	}
	if o.reasoningEffort, err = in.ReasoningEffort.Get("reasoning_effort"); err != nil {
		return nil, nil, err
	}
	if o.reasoningEffort == "" {
		o.reasoningEffort = in.Effort
	}
	for i := range in.Messages {
		for j := range in.Messages[i].ToolCalls {
			if _, err := geminiSignature(&in.Messages[i].ToolCalls[j]); err != nil {
				return nil, nil, err
			}
		}
	}
	return in, &o, nil
}

// geminiChatRequest translates the hub request to a generateContent body
// (providers.md §4.3, §12.5).
func geminiChatRequest(c *Call, model string) ([]byte, error) {
	in, opts, err := geminiDecodeChat(c)
	if err != nil {
		return nil, err
	}
	var out geminiRequest
	if err := geminiContents(in.Messages, &out); err != nil {
		return nil, err
	}
	if err := geminiTools(in, &out); err != nil {
		return nil, err
	}
	if err := geminiWebSearch(c, in, model, &out); err != nil {
		return nil, err
	}
	gc, err := geminiGeneration(in, opts, model)
	if err != nil {
		return nil, err
	}
	if !gc.empty() {
		out.GenerationConfig = gc
	}
	return json.Marshal(out)
}

// geminiContents fills contents and systemInstruction from the messages.
func geminiContents(msgs []ChatMessage, out *geminiRequest) error {
	var system []geminiPart
	// names maps a tool_call_id to its function's name: Gemini's
	// functionResponse needs the name, OpenAI's tool message only gives the
	// id. It is filled as the history is read, so a reused id ("call_0" in
	// every turn) resolves to its latest call.
	names := map[string]string{}
	for i := range msgs {
		m := &msgs[i]
		switch m.Role {
		case "system", "developer":
			// Every system and developer message goes to systemInstruction,
			// in order (Portkey keeps only a leading one); their position in
			// the conversation is lost.
			text, err := geminiTextOnly(&m.Content, i)
			if err != nil {
				return err
			}
			if text != "" {
				system = append(system, geminiPart{Text: text})
			}
		case "user":
			parts, err := geminiUserParts(&m.Content, i)
			if err != nil {
				return err
			}
			out.Contents = geminiAppendTurn(out.Contents, "user", parts)
		case "assistant":
			parts, err := geminiAssistantParts(m, i, names)
			if err != nil {
				return err
			}
			out.Contents = geminiAppendTurn(out.Contents, "model", parts)
		case "tool", "function":
			part, err := geminiToolResult(m, i, names)
			if err != nil {
				return err
			}
			out.Contents = geminiAppendTurn(out.Contents, "user", []geminiPart{part})
		default:
			return badRequest("messages[%d]: role %q is not supported", i, m.Role)
		}
	}
	if len(out.Contents) == 0 {
		// Gemini refuses a request without contents; say so before the call.
		return badRequest("gemini needs at least one user or assistant message with content")
	}
	if len(system) > 0 {
		out.SystemInstruction = &geminiContent{Parts: system}
	}
	return nil
}

// geminiTools declares the functions and maps tool_choice.
func geminiTools(in *ChatRequest, out *geminiRequest) error {
	var decls []geminiFunctionDeclaration
	for i, t := range in.Tools {
		if t.Type != "" && t.Type != "function" {
			return badRequest("tools[%d]: type %q is not supported by gemini", i, t.Type)
		}
		if t.Function.Name == "" {
			return badRequest("tools[%d]: the function has no name", i)
		}
		params, err := geminiParameters(t.Function.Parameters)
		if err != nil {
			return badRequest("tools[%d].function.parameters: %s", i, err)
		}
		decls = append(decls, geminiFunctionDeclaration{Name: t.Function.Name, Description: t.Function.Description, Parameters: params})
	}
	if len(decls) == 0 {
		return nil
	}
	out.Tools = []geminiTool{{FunctionDeclarations: decls}}
	// toolConfig only with declarations: Gemini rejects it otherwise
	// (Bifrost chat.go).
	fc := func(mode string, names ...string) *geminiToolConfig {
		return &geminiToolConfig{FunctionCallingConfig: &geminiFunctionCallingConfig{Mode: mode, AllowedFunctionNames: names}}
	}
	switch mode, fn := ToolChoiceMode(in.ToolChoice); mode {
	case "":
	case "auto":
		out.ToolConfig = fc("AUTO")
	case "none":
		out.ToolConfig = fc("NONE")
	case "required":
		out.ToolConfig = fc("ANY")
	case "function":
		out.ToolConfig = fc("ANY", fn)
	default:
		return badRequest("tool_choice %q is not supported", mode)
	}
	return nil
}

// geminiWebSearch grounds the answer in Google Search for
// web_search_options. Gemini 2.x cannot combine it with function
// declarations in one request (it answers 400 "Tool use with function
// calling is unsupported"); Gemini 3 can, with server-side tool invocations
// included (ai.google.dev/gemini-api/docs/tool-combination). When they
// cannot be combined, search is left out and the call says so. The search
// options (context size, location, domains) have no Gemini equivalent: a
// search whose allowed domains are the client's limit (a door's) is left
// out too, as it would widen what the model reads.
func geminiWebSearch(c *Call, in *ChatRequest, model string, out *geminiRequest) error {
	ws, err := in.WebSearch()
	if err != nil || ws == nil {
		return err
	}
	if ws.strictDomains && len(ws.domains()) > 0 {
		c.omit("web_search")
		return nil
	}
	if len(out.Tools) == 0 {
		out.Tools = []geminiTool{{GoogleSearch: &struct{}{}}}
		return nil
	}
	if !geminiCombinesTools(model) {
		c.omit("web_search")
		return nil
	}
	out.Tools[0].GoogleSearch = &struct{}{}
	if out.ToolConfig == nil {
		out.ToolConfig = &geminiToolConfig{}
	}
	out.ToolConfig.IncludeServerSideToolInvocations = true
	return nil
}

// geminiCombinesTools reports whether model can run built-in tools (Google
// Search) beside function calls: Gemini 3 and later, not 1.x, 2.x or Gemma.
func geminiCombinesTools(model string) bool {
	m := strings.ToLower(strings.TrimPrefix(model, "models/"))
	return strings.HasPrefix(m, "gemini-") && !strings.HasPrefix(m, "gemini-1") && !strings.HasPrefix(m, "gemini-2")
}

// geminiAppendTurn adds parts as a turn of role, merged into the previous
// turn when it has the same role: Gemini wants user and model turns to
// alternate (Portkey merges for the same reason). A turn with no parts is
// dropped.
func geminiAppendTurn(contents []geminiContent, role string, parts []geminiPart) []geminiContent {
	if len(parts) == 0 {
		return contents
	}
	if n := len(contents); n > 0 && contents[n-1].Role == role {
		contents[n-1].Parts = append(contents[n-1].Parts, parts...)
		return contents
	}
	return append(contents, geminiContent{Role: role, Parts: parts})
}

// geminiPartsIn reads a message's content: a string, an array of parts, or
// null.
func geminiPartsIn(content *Content, i int) ([]geminiPartIn, error) {
	parts, err := decodeContent(*content, func(s string) geminiPartIn { return geminiPartIn{ContentPart: textPart(s)} },
		func(p ContentPart) geminiPartIn { return geminiPartIn{ContentPart: p} })
	if err != nil {
		return nil, badRequest("messages[%d].content must be a string or an array of parts", i)
	}
	return parts, nil
}

// geminiTextOnly joins the text parts of a system, developer or tool
// message with newlines; any other part is refused.
func geminiTextOnly(content *Content, i int) (string, error) {
	parts, err := geminiPartsIn(content, i)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "text" {
			return "", badRequest("messages[%d].content[%d]: only text parts are supported in this message", i, j)
		}
		if b.Len() > 0 && p.Text != "" {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// geminiUserParts converts a user message. Empty text parts are dropped:
// Gemini refuses an empty text part.
func geminiUserParts(content *Content, i int) ([]geminiPart, error) {
	parts, err := geminiPartsIn(content, i)
	if err != nil {
		return nil, err
	}
	var out []geminiPart
	for j, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				out = append(out, geminiPart{Text: p.Text})
			}
		case "image_url":
			u, _ := p.URL()
			if u == "" {
				return nil, badRequest("messages[%d].content[%d]: image_url has no url", i, j)
			}
			part, err := geminiMediaPart(u)
			if err != nil {
				return nil, badRequest("messages[%d].content[%d]: %s", i, j, err)
			}
			out = append(out, part)
		case "input_audio":
			if p.InputAudio == nil || p.InputAudio.Data == "" || p.InputAudio.Format == "" {
				return nil, badRequest("messages[%d].content[%d]: input_audio needs data and format", i, j)
			}
			out = append(out, geminiPart{InlineData: &geminiBlob{MimeType: "audio/" + p.InputAudio.Format, Data: p.InputAudio.Data}})
		case "file":
			if p.File == nil || p.File.FileData == "" {
				// An OpenAI file_id means nothing to Gemini.
				return nil, badRequest("messages[%d].content[%d]: only files given inline as file_data are supported", i, j)
			}
			mime, data, ok := splitDataURL(p.File.FileData)
			if !ok {
				return nil, badRequest("messages[%d].content[%d]: file_data must be a base64 data: URL", i, j)
			}
			out = append(out, geminiPart{InlineData: &geminiBlob{MimeType: mime, Data: data}})
		default:
			return nil, badRequest("messages[%d].content[%d]: part type %q is not supported", i, j, p.Type)
		}
	}
	return out, nil
}

// geminiMediaPart turns an image URL into a part: a data: URL becomes
// inlineData; an http(s) or gs:// URL becomes fileData, which Gemini
// fetches itself (Files API URIs, YouTube and public URLs); the gateway
// never downloads anything. The MIME type of a URL is guessed from its
// extension and left out when unknown (fileData.mimeType is optional).
func geminiMediaPart(u string) (geminiPart, error) {
	if strings.HasPrefix(u, "data:") {
		mime, data, ok := splitDataURL(u)
		if !ok {
			return geminiPart{}, fmt.Errorf("a data: URL must be base64 with a media type (data:image/png;base64,...)")
		}
		return geminiPart{InlineData: &geminiBlob{MimeType: mime, Data: data}}, nil
	}
	pu, err := url.Parse(u)
	if err != nil || (pu.Scheme != "https" && pu.Scheme != "http" && pu.Scheme != "gs") || pu.Host == "" {
		return geminiPart{}, fmt.Errorf("an image URL must be http(s), gs:// or a base64 data: URL")
	}
	return geminiPart{FileData: &geminiFileData{FileURI: u, MimeType: geminiMimeTypes[strings.ToLower(path.Ext(pu.Path))]}}, nil
}

// geminiMimeTypes are the media types Gemini takes, by file extension
// (ai.google.dev/gemini-api/docs/image-understanding, document-processing).
var geminiMimeTypes = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
	".heic": "image/heic", ".heif": "image/heif", ".gif": "image/gif", ".pdf": "application/pdf",
}

// geminiAssistantParts converts an assistant message: its text, then one
// functionCall part per tool call, with the arguments parsed (Gemini wants
// an object). The first call of a turn carries its thought signature, or the
// documented placeholder when the client did not keep it.
func geminiAssistantParts(m *ChatMessage, i int, names map[string]string) ([]geminiPart, error) {
	parts, err := geminiPartsIn(&m.Content, i)
	if err != nil {
		return nil, err
	}
	var out []geminiPart
	for j, p := range parts {
		text := p.Text
		switch p.Type {
		case "text":
		case "refusal":
			text = p.Refusal
		default:
			return nil, badRequest("messages[%d].content[%d]: part type %q is not supported in an assistant message", i, j, p.Type)
		}
		if text != "" {
			out = append(out, geminiPart{Text: text})
		}
	}
	for j := range m.ToolCalls {
		tc := &m.ToolCalls[j]
		if tc.Function.Name == "" {
			return nil, badRequest("messages[%d].tool_calls[%d]: the function has no name", i, j)
		}
		args := strings.TrimSpace(tc.Function.Arguments)
		if args == "" {
			args = "{}"
		}
		if args[0] != '{' || !json.Valid([]byte(args)) {
			return nil, badRequest("messages[%d].tool_calls[%d]: the arguments must be a JSON object", i, j)
		}
		sig, _ := geminiSignature(tc) // checked by geminiDecodeChat
		if sig == "" && j == 0 {
			sig = geminiSkipSignature
		}
		out = append(out, geminiPart{
			FunctionCall:     &geminiFunctionCall{Name: tc.Function.Name, Args: json.RawMessage(args)},
			ThoughtSignature: sig,
		})
		if tc.ID != "" {
			names[tc.ID] = tc.Function.Name
		}
	}
	return out, nil
}

// geminiToolResult converts a tool message (or a legacy function message)
// to a functionResponse part. Its name comes from the assistant's tool call
// with the same id, else from the message's own name. The response must be
// an object: a JSON object result goes as is, anything else as
// {"content": "<text>"}.
func geminiToolResult(m *ChatMessage, i int, names map[string]string) (geminiPart, error) {
	name := names[m.ToolCallID]
	if name == "" {
		name = m.Name
	}
	if name == "" {
		return geminiPart{}, badRequest("messages[%d]: tool_call_id %q does not match a tool call of an earlier assistant message", i, m.ToolCallID)
	}
	text, err := geminiTextOnly(&m.Content, i)
	if err != nil {
		return geminiPart{}, err
	}
	resp := json.RawMessage(strings.TrimSpace(text))
	if len(resp) == 0 || resp[0] != '{' || !json.Valid(resp) {
		resp, _ = json.Marshal(map[string]string{"content": text})
	}
	return geminiPart{FunctionResponse: &geminiFunctionResponse{Name: name, Response: resp}}, nil
}

// geminiGeneration maps the sampling options to generationConfig.
// Dropped: logprobs/top_logprobs, logit_bias, parallel_tool_calls, user,
// service_tier, metadata, store.
func geminiGeneration(in *ChatRequest, o *geminiOptions, model string) (*geminiGenerationConfig, error) {
	gc := &geminiGenerationConfig{
		Temperature: in.Temperature, TopP: in.TopP, TopK: o.topK, Seed: in.Seed,
		StopSequences: in.Stop,
	}
	// An output limit above the model's maximum is clamped to it; none
	// leaves Gemini's default, which is the model's maximum.
	if n := in.MaxOutputTokens(); n > 0 {
		gc.MaxOutputTokens = clampOutput(model, n)
	}
	if in.N != nil {
		if *in.N < 1 {
			return nil, badRequest("n must be at least 1")
		}
		if *in.N > 1 {
			gc.CandidateCount = *in.N
		}
	}
	// Penalties only when set to something: several Gemini models refuse
	// the fields, and some clients send zeros by default.
	if o.presencePenalty != nil && *o.presencePenalty != 0 {
		gc.PresencePenalty = o.presencePenalty
	}
	if o.frequencyPenalty != nil && *o.frequencyPenalty != 0 {
		gc.FrequencyPenalty = o.frequencyPenalty
	}
	if rf := o.responseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			gc.ResponseMimeType = "application/json"
		case "json_schema":
			gc.ResponseMimeType = "application/json"
			// responseJsonSchema takes JSON Schema as is (Bifrost); the
			// older responseSchema takes only an OpenAPI subset.
			if rf.JSONSchema != nil {
				if s := bytes.TrimSpace(rf.JSONSchema.Schema); len(s) > 0 && s[0] == '{' {
					gc.ResponseJSONSchema = s
				}
			}
		default:
			return nil, badRequest("response_format type %q is not supported", rf.Type)
		}
	}
	tc, err := geminiThinking(model, o.reasoningEffort)
	if err != nil {
		return nil, err
	}
	gc.ThinkingConfig = tc
	return gc, nil
}

// geminiThinking maps reasoning_effort to thinkingConfig: a token budget on
// Gemini 2.5 (Google's OpenAI-compatible endpoint maps low/medium/high to
// 1024/8192/24576 and none to 0; 2.5 Pro cannot turn thinking off, so its
// floor of 128 stands in), thinkingLevel on Gemini 3 and later, nothing on
// models without thinking (1.x, 2.0, Gemma). [unverified: which levels each
// 3.x model accepts; Gemini answers 400 for one it does not.]
func geminiThinking(model, effort string) (*geminiThinkingConfig, error) {
	if effort == "" {
		return nil, nil
	}
	level := effort
	switch effort {
	case "none":
		level = "minimal"
	case "xhigh":
		level = "high"
	case "minimal", "low", "medium", "high":
	default:
		return nil, badRequest("reasoning_effort %q is not supported (none, minimal, low, medium, high)", effort)
	}
	m := strings.ToLower(model)
	switch {
	case strings.HasPrefix(m, "gemini-1") || strings.HasPrefix(m, "gemini-2.0") || strings.HasPrefix(m, "gemma"):
		return nil, nil
	case strings.HasPrefix(m, "gemini-2.5"):
		budget := map[string]int{"minimal": 0, "low": 1024, "medium": 8192, "high": 24576}[level]
		if budget == 0 && strings.Contains(m, "pro") {
			budget = 128
		}
		return &geminiThinkingConfig{ThinkingBudget: &budget}, nil
	}
	return &geminiThinkingConfig{ThinkingLevel: level}, nil
}

// geminiEmbeddingsRequest translates an OpenAI embeddings body to
// batchEmbedContents: one request per input string, dimensions as
// outputDimensionality. Token-array inputs are refused.
func geminiEmbeddingsRequest(body []byte, model string) ([]byte, error) {
	var in struct {
		Input      json.RawMessage `json:"input"`
		Dimensions *int            `json:"dimensions"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, badRequest("invalid embeddings request: %s", jsonMessage(err))
	}
	var texts []string
	if json.Unmarshal(in.Input, &texts) != nil {
		var s string
		if json.Unmarshal(in.Input, &s) != nil {
			return nil, badRequest("gemini embeddings take input as a string or an array of strings")
		}
		texts = []string{s}
	}
	if len(texts) == 0 {
		return nil, badRequest("input is empty")
	}
	type embedRequest struct {
		Model                string        `json:"model"`
		Content              geminiContent `json:"content"`
		OutputDimensionality *int          `json:"outputDimensionality,omitempty"`
	}
	reqs := make([]embedRequest, len(texts))
	for i, t := range texts {
		reqs[i] = embedRequest{Model: "models/" + model, Content: geminiContent{Parts: []geminiPart{{Text: t}}}, OutputDimensionality: in.Dimensions}
	}
	return json.Marshal(map[string]any{"requests": reqs})
}

// --- response and stream translation ---

// Native answer types (GenerateContentResponse in go-genai types.go).
type (
	geminiResponseIn struct {
		Candidates     []geminiCandidate `json:"candidates"`
		PromptFeedback *struct {
			BlockReason        string `json:"blockReason"`
			BlockReasonMessage string `json:"blockReasonMessage"`
		} `json:"promptFeedback"`
		UsageMetadata json.RawMessage `json:"usageMetadata"`
		ModelVersion  string          `json:"modelVersion"`
		Error         json.RawMessage `json:"error"`
	}
	geminiCandidate struct {
		Content      *geminiContent `json:"content"`
		FinishReason string         `json:"finishReason"`
		Index        *int           `json:"index"`
	}
)

// geminiCallIDs names function calls that come without an id (AI Studio
// usually sends none): "call_<response>_<n>", unique across the
// conversation's turns and stable for one answer.
type geminiCallIDs struct {
	prefix string
	n      int
}

func newGeminiCallIDs(callID string) *geminiCallIDs {
	base := strings.TrimPrefix(callID, "chatcmpl-")
	clean := len(base) <= 24
	for i := 0; clean && i < len(base); i++ {
		c := base[i]
		clean = c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_'
	}
	if !clean {
		h := fnv.New64a()
		h.Write([]byte(base))
		base = strconv.FormatUint(h.Sum64(), 16)
	}
	if base == "" {
		return &geminiCallIDs{prefix: "call_"}
	}
	return &geminiCallIDs{prefix: "call_" + base + "_"}
}

func (g *geminiCallIDs) toolCall(fc *geminiFunctionCall, sig string) ToolCall {
	id := fc.ID
	if id == "" {
		id = g.prefix + strconv.Itoa(g.n)
	}
	g.n++
	args := "{}"
	if a := bytes.TrimSpace(fc.Args); len(a) > 0 && !bytes.Equal(a, []byte("null")) {
		var b bytes.Buffer
		if json.Compact(&b, a) == nil {
			args = b.String()
		}
	}
	tc := ToolCall{ID: id, Type: "function", Function: FunctionCall{Name: fc.Name, Arguments: args}}
	if sig != "" {
		var ec geminiExtraContent
		ec.Google.ThoughtSignature = sig
		tc.ExtraContent, _ = json.Marshal(ec)
	}
	return tc
}

// geminiParts reads a candidate's parts: the answer's text (thought
// summaries are skipped) and its function calls. Other parts (inline
// images, executable code and its results) are dropped.
func geminiParts(c *geminiContent, ids *geminiCallIDs) (string, []ToolCall) {
	if c == nil {
		return "", nil
	}
	var text strings.Builder
	var calls []ToolCall
	for i := range c.Parts {
		p := &c.Parts[i]
		switch {
		case p.FunctionCall != nil:
			calls = append(calls, ids.toolCall(p.FunctionCall, p.ThoughtSignature))
		case p.Thought:
		default:
			text.WriteString(p.Text)
		}
	}
	return text.String(), calls
}

// geminiFinish maps finishReason (go-genai types.go FinishReason) to
// OpenAI's: MAX_TOKENS → length; SAFETY, RECITATION, BLOCKLIST,
// PROHIBITED_CONTENT, SPII, LANGUAGE, IMAGE_SAFETY, IMAGE_PROHIBITED_CONTENT,
// IMAGE_RECITATION → content_filter; anything else (STOP, OTHER,
// MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, new
// values) → stop, or tool_calls when the answer has function calls (Gemini
// says STOP then; Bifrost rewrites it the same way). MALFORMED_FUNCTION_CALL
// carries no call, so tool_calls would send a client looking for one.
func geminiFinish(reason string, calls bool) string {
	switch reason {
	case "MAX_TOKENS":
		return "length"
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE",
		"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION":
		return "content_filter"
	}
	if calls {
		return "tool_calls"
	}
	return "stop"
}

// geminiUsage reads usageMetadata in OpenAI's terms (providers.md §12.3):
// prompt = promptTokenCount (which includes cached content) +
// toolUsePromptTokenCount (input the model read from its own tools, billed as
// input); completion = candidatesTokenCount + thoughtsTokenCount (candidates
// exclude thinking); total = totalTokenCount, else the sum; cached =
// cachedContentTokenCount; reasoning = thoughtsTokenCount. Raw keeps
// usageMetadata.
func geminiUsage(raw json.RawMessage) Usage {
	r := gjson.ParseBytes(raw)
	if !r.IsObject() {
		return Usage{}
	}
	u := Usage{
		PromptTokens:     r.Get("promptTokenCount").Int() + r.Get("toolUsePromptTokenCount").Int(),
		CompletionTokens: r.Get("candidatesTokenCount").Int() + r.Get("thoughtsTokenCount").Int(),
		TotalTokens:      r.Get("totalTokenCount").Int(),
		CachedTokens:     r.Get("cachedContentTokenCount").Int(),
		ReasoningTokens:  r.Get("thoughtsTokenCount").Int(),
		Raw:              json.RawMessage(r.Raw),
	}
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u
}

// geminiBlocked is the refusal shown when Gemini blocked the prompt and
// returned no candidate.
func geminiBlocked(r *geminiResponseIn) string {
	msg := "the provider blocked the prompt"
	if pf := r.PromptFeedback; pf != nil {
		if pf.BlockReason != "" {
			msg += " (" + pf.BlockReason + ")"
		}
		if pf.BlockReasonMessage != "" {
			msg += ": " + pf.BlockReasonMessage
		}
	}
	return msg
}

func geminiCandidateIndex(c *geminiCandidate, pos int) int {
	if c.Index != nil {
		return *c.Index
	}
	return pos // proto3 JSON leaves out index 0
}

func geminiResponse(c *Call, body []byte) ([]byte, Usage, error) {
	if c.Op == OpEmbeddings {
		return geminiEmbeddingsResponse(c, body)
	}
	var r geminiResponseIn
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, Usage{}, fmt.Errorf("gemini answered with invalid JSON: %s", jsonMessage(err))
	}
	u := geminiUsage(r.UsageMetadata)
	model := r.ModelVersion
	if model == "" {
		model = c.Model
	}
	var choices []CompletionItem
	if len(r.Candidates) == 0 {
		// No candidate at all: the prompt was blocked.
		choices = append(choices, CompletionItem{
			Message:      ResponseMessage{Role: "assistant", Refusal: Str(geminiBlocked(&r))},
			FinishReason: "content_filter",
		})
	}
	ids := newGeminiCallIDs(c.ID)
	for i := range r.Candidates {
		cand := &r.Candidates[i]
		text, calls := geminiParts(cand.Content, ids)
		msg := ResponseMessage{Role: "assistant", ToolCalls: calls}
		if text != "" || len(calls) == 0 {
			msg.Content = &text
		}
		choices = append(choices, CompletionItem{
			Index: geminiCandidateIndex(cand, i), Message: msg,
			FinishReason: geminiFinish(cand.FinishReason, len(calls) > 0),
		})
	}
	b, err := newCompletionChoices(c, model, choices, u)
	return b, u, err
}

// geminiEmbeddingsResponse renders {"embeddings":[{"values":[...]}]} as
// OpenAI's list, as floats or, when the client asked for
// encoding_format "base64", as base64 of little-endian float32s. Gemini's
// batchEmbedContents reports no token usage [unverified: newer answers may
// carry usageMetadata; it is read when present].
func geminiEmbeddingsResponse(c *Call, body []byte) ([]byte, Usage, error) {
	var r struct {
		Embeddings []struct {
			Values []json.Number `json:"values"`
		} `json:"embeddings"`
		UsageMetadata json.RawMessage `json:"usageMetadata"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, Usage{}, fmt.Errorf("gemini answered with invalid JSON: %s", jsonMessage(err))
	}
	b64 := gjson.GetBytes(c.Body, "encoding_format").String() == "base64"
	type item struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	data := make([]item, len(r.Embeddings))
	for i, e := range r.Embeddings {
		vals := e.Values
		if vals == nil {
			vals = []json.Number{}
		}
		data[i] = item{Object: "embedding", Index: i, Embedding: vals}
		if b64 {
			buf := make([]byte, 4*len(vals))
			for j, v := range vals {
				f, _ := v.Float64()
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(float32(f)))
			}
			data[i].Embedding = base64.StdEncoding.EncodeToString(buf)
		}
	}
	u := geminiUsage(r.UsageMetadata)
	u.CompletionTokens = 0
	u.TotalTokens = u.PromptTokens
	type usage struct {
		PromptTokens int64 `json:"prompt_tokens"`
		TotalTokens  int64 `json:"total_tokens"`
	}
	out, err := json.Marshal(struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
		Usage  usage  `json:"usage"`
	}{"list", data, c.Model, usage{u.PromptTokens, u.TotalTokens}})
	return out, u, err
}

// geminiStream translates streamGenerateContent?alt=sse: each event is a
// whole GenerateContentResponse. Each candidate becomes a choice: its role on
// its first chunk, a content delta per event with text, its function calls as
// complete tool-call deltas (Gemini sends them whole), and a finish chunk at
// its finishReason. usageMetadata is taken from the latest event that has it.
// Gemini sends no [DONE]: End adds it, after the usage chunk when the client
// asked for one.
type geminiStream struct {
	c       *Call
	model   string
	ids     *geminiCallIDs
	cands   map[int]*geminiCandState
	usage   Usage
	blocked bool
}

type geminiCandState struct {
	finished bool
	calls    int // tool-call deltas sent, the next one's index
}

func newGeminiStream(c *Call) StreamTranslator {
	return &geminiStream{c: c, ids: newGeminiCallIDs(c.ID), cands: map[int]*geminiCandState{}}
}

func (s *geminiStream) chunk(dst []byte, index int, d ChunkDelta, finish string) []byte {
	return appendChoiceChunk(dst, s.c, s.model, index, d, finish)
}

func (s *geminiStream) Event(dst []byte, ev Event) ([]byte, error) {
	d := bytes.TrimSpace(ev.Data)
	if len(d) == 0 || bytes.Equal(d, []byte("[DONE]")) {
		return dst, nil
	}
	if d[0] == '[' {
		// The array form, as Gemini writes errors (and streams without
		// alt=sse).
		var items []json.RawMessage
		if err := json.Unmarshal(d, &items); err != nil {
			return dst, geminiInvalidEvent()
		}
		for _, it := range items {
			var err error
			if dst, err = s.event(dst, it); err != nil {
				return dst, err
			}
		}
		return dst, nil
	}
	return s.event(dst, d)
}

func geminiInvalidEvent() *StreamError {
	return &StreamError{Class: ClassServer, Code: "upstream_stream_error", Message: "the provider sent an event that is not valid JSON"}
}

func (s *geminiStream) event(dst []byte, d []byte) ([]byte, error) {
	var r geminiResponseIn
	if err := json.Unmarshal(d, &r); err != nil {
		return dst, geminiInvalidEvent()
	}
	if e := bytes.TrimSpace(r.Error); len(e) > 0 && !bytes.Equal(e, []byte("null")) {
		return dst, geminiStreamError(d)
	}
	if s.model == "" {
		s.model = r.ModelVersion
		if s.model == "" {
			s.model = s.c.Model
		}
	}
	if len(r.UsageMetadata) > 0 {
		if u := geminiUsage(r.UsageMetadata); u.Raw != nil {
			s.usage = u
		}
	}
	if len(r.Candidates) == 0 && r.PromptFeedback != nil && r.PromptFeedback.BlockReason != "" && len(s.cands) == 0 && !s.blocked {
		s.blocked = true
		dst = s.chunk(dst, 0, ChunkDelta{Role: "assistant", Content: Str("")}, "")
		dst = s.chunk(dst, 0, ChunkDelta{Refusal: Str(geminiBlocked(&r))}, "")
		return s.chunk(dst, 0, ChunkDelta{}, "content_filter"), nil
	}
	for i := range r.Candidates {
		cand := &r.Candidates[i]
		idx := geminiCandidateIndex(cand, i)
		st := s.cands[idx]
		if st == nil {
			st = &geminiCandState{}
			s.cands[idx] = st
			dst = s.chunk(dst, idx, ChunkDelta{Role: "assistant", Content: Str("")}, "")
		}
		if st.finished {
			continue // nothing may follow a choice's finish_reason
		}
		text, calls := geminiParts(cand.Content, s.ids)
		if text != "" {
			dst = s.chunk(dst, idx, ChunkDelta{Content: &text}, "")
		}
		if len(calls) > 0 {
			for j := range calls {
				n := st.calls
				calls[j].Index = &n
				st.calls++
			}
			dst = s.chunk(dst, idx, ChunkDelta{ToolCalls: calls}, "")
		}
		if cand.FinishReason != "" {
			st.finished = true
			dst = s.chunk(dst, idx, ChunkDelta{}, geminiFinish(cand.FinishReason, st.calls > 0))
		}
	}
	return dst, nil
}

// geminiStreamError turns an error event (the same object as an HTTP error
// body) into a StreamError, classed as that HTTP status would be.
func geminiStreamError(d []byte) *StreamError {
	status := int(gjson.GetBytes(d, "error.code").Int())
	if status < 400 || status > 599 {
		status = 500
	}
	msg := ErrorMessage(d)
	if msg == "" {
		msg = "the provider reported an error in the stream"
	}
	return &StreamError{Class: ClassifyResponse(Gemini, status, nil, d), Code: "upstream_stream_error", Message: msg}
}

// End closes the stream. Gemini's stream simply stops after the last event,
// so a stream is complete only when every choice it started has a
// finishReason (or the prompt was blocked).
func (s *geminiStream) End(dst []byte) ([]byte, error) {
	complete := s.blocked || len(s.cands) > 0
	for _, st := range s.cands {
		complete = complete && st.finished
	}
	if !complete {
		return dst, errIncomplete("answer")
	}
	if s.c.IncludeUsage {
		dst = appendUsageChunk(dst, s.c, s.model, s.usage)
	}
	return appendDone(dst, s.c), nil
}

func (s *geminiStream) Usage() Usage { return s.usage }

// --- error classes ---

// geminiErrorObject returns the error object of a Gemini error body, which
// is {"error": {...}} or, at times, an array of those (Bifrost
// gemini/errors.go reads both).
func geminiErrorObject(body []byte) gjson.Result {
	r := gjson.ParseBytes(body)
	if r.IsArray() {
		r = r.Get("0")
	}
	return r.Get("error")
}

// classifyGemini adds Gemini's own classes (providers.md §4.6, §13):
//   - a bad key is 400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID
//     ("API key not valid", "API key expired"): auth, not bad_request;
//   - 400 FAILED_PRECONDITION (free tier not available in the caller's
//     country, billing to enable): quota — no retry, another key may work;
//   - 429 RESOURCE_EXHAUSTED says "You exceeded your current quota" for
//     per-minute limits too, so the message alone decides nothing: a
//     QuotaFailure on a per-day quota (quotaId ...PerDay...) or with a limit
//     of 0 (the model is not in the key's tier) is quota; one with a
//     RetryInfo is rate_limit; with neither, "exceeded your current quota"
//     or "quota exceeded" is quota (the account is out until it is topped up
//     or the day ends), anything else ("Resource has been exhausted (e.g.
//     check quota)") rate_limit;
//   - 503 UNAVAILABLE is overloaded, 403 PERMISSION_DENIED auth and 500
//     server, as the common rules already say.
func classifyGemini(status int, _ http.Header, body []byte) string {
	e := geminiErrorObject(body)
	rpc := e.Get("status").String()
	msg := strings.ToLower(e.Get("message").String())
	var reasons []string
	var retryInfo, perDay, zeroLimit bool
	e.Get("details").ForEach(func(_, d gjson.Result) bool {
		typ := d.Get("@type").String()
		if r := d.Get("reason").String(); r != "" {
			reasons = append(reasons, r)
		}
		switch {
		case strings.HasSuffix(typ, "google.rpc.RetryInfo"):
			retryInfo = true
		case strings.HasSuffix(typ, "google.rpc.QuotaFailure"):
			d.Get("violations").ForEach(func(_, v gjson.Result) bool {
				if strings.Contains(strings.ToLower(v.Get("quotaId").String()), "perday") {
					perDay = true
				}
				if v.Get("quotaValue").String() == "0" {
					zeroLimit = true
				}
				return true
			})
		}
		return true
	})
	for _, r := range reasons {
		if r == "API_KEY_INVALID" || r == "API_KEY_EXPIRED" {
			return ClassAuth
		}
	}
	if strings.Contains(msg, "api key not valid") || strings.Contains(msg, "api key expired") {
		return ClassAuth
	}
	switch {
	case status == 400 && rpc == "FAILED_PRECONDITION":
		return ClassQuota
	case status == 429:
		switch {
		case perDay || zeroLimit:
			return ClassQuota
		case retryInfo:
			return ClassRateLimit
		case strings.Contains(msg, "exceeded your current quota") || strings.Contains(msg, "quota exceeded"):
			return ClassQuota
		}
		return ClassRateLimit
	}
	return ""
}

// testGemini: GET /v1beta/models with x-goog-api-key (never ?key=, which
// would put the key in URLs and logs).
func testGemini(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	base := ep.BaseURL
	if !strings.HasSuffix(base, "/v1beta") && !strings.HasSuffix(base, "/v1") {
		base += "/" + geminiAPIVersion
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/models", nil)
	if err != nil {
		return nil, err
	}
	req.Header["X-Goog-Api-Key"] = []string{key}
	return req, nil
}
