package gateway

import (
	"encoding/json"
	"net/http"
)

// Error codes the gateway itself answers with, in OpenAI's error envelope
// {"error":{"message","type","param","code"}} (or the envelope of the
// client's door). They are part of the API.
const (
	CodeMissingAPIKey              = "missing_api_key"
	CodeInvalidAPIKey              = "invalid_api_key"
	CodeMethodNotAllowed           = "method_not_allowed"
	CodeRequestTooLarge            = "request_too_large"
	CodeInvalidJSON                = "invalid_json"
	CodeMissingModel               = "missing_model"
	CodeModelNotFound              = "model_not_found"
	CodeNoCredential               = "no_credential"
	CodeBYOKOnlyPolicy             = "byok_only_policy"
	CodeUnsupportedRequest         = "unsupported_request"
	CodeProviderNotImplemented     = "provider_not_implemented"
	CodeBYOKCredentialRejected     = "byok_credential_rejected"
	CodePlatformCredentialRejected = "platform_credential_rejected"
	CodeUpstreamUnreachable        = "upstream_unreachable"
	CodeUpstreamTimeout            = "upstream_timeout"
	CodeUpstreamError              = "upstream_error"
	CodeInternal                   = "internal_error"
	CodeBYOKBaseURLBlocked         = "byok_base_url_blocked"
	// ServeAccount's refusals (the console's playground).
	CodeAccountNotFound = "account_not_found"
	CodeAPIKeyNotFound  = "api_key_not_found"
	CodeProfileNotFound = "profile_not_found"
	// The Responses door's stored responses, and a path the gateway does
	// not serve.
	CodeNotFound         = "not_found"
	CodeResponseNotFound = "response_not_found"
	// A reference to a provider-side object the gateway cannot attribute
	// to the account (a conversation, item_reference, file_id, container),
	// refused under the platform key (references.go).
	CodeReferenceNotAllowed = "reference_not_allowed"
)

// codeClientGone is the request log's code (and the attempt's error class)
// when the client went away before its answer was complete; the record's
// status is then 499, nginx's "client closed request".
const codeClientGone = "client_closed_request"

// OpenAI's error types.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeNotFound       = "not_found_error"
	typeAPI            = "api_error"
	typeRateLimit      = "rate_limit_error"
)

// failure is an answer that is not the provider's success: a refusal of the
// gateway's own, or what the client sees of an upstream failure.
type failure struct {
	status                   int
	typ, code, msg           string
	retryAfter, retryAfterMs string
	// final marks an answer no retry can change: it carries
	// X-Should-Retry: false, which the OpenAI and Anthropic SDKs obey, and,
	// when status is 0, the status the door's clients take as final.
	final bool
	// raw, when set, is the upstream's own error body (scrubbed), relayed
	// as is: a front door's passthrough.
	raw []byte
	// limit marks a budget or rate-limit refusal: the answer is written
	// from the refusal's decision (x.lim.refusal, limits.go).
	limit bool
}

// fail answers the request with f in the door's envelope (or f.raw as the
// provider worded it) and records its status and code.
func (x *exchange) fail(f failure) {
	if f.limit {
		x.failLimit(f)
		return
	}
	h := x.w.Header()
	if f.retryAfter != "" {
		h.Set("Retry-After", f.retryAfter)
	}
	if f.retryAfterMs != "" {
		h.Set("Retry-After-Ms", f.retryAfterMs)
	}
	if f.final {
		h["X-Should-Retry"] = []string{"false"}
		if f.status == 0 {
			f.status = x.ep.door.finalStatus
		}
	}
	x.rec.Status, x.rec.ErrorCode = f.status, f.code
	if f.raw != nil {
		// A passthrough's upstream error, relayed as the provider worded
		// it (scrubbed): clients such as Claude Code recover by its words.
		h["Content-Type"] = []string{"application/json"}
		h.Del("Content-Length")
		x.w.WriteHeader(f.status)
		x.w.Write(f.raw)
		return
	}
	x.ep.door.writeError(x.w, f.status, f.typ, f.code, f.msg)
}

// refuse answers a request the gateway itself will not serve as asked.
func (x *exchange) refuse(status int, code, msg string) {
	x.fail(failure{status: status, typ: typeInvalidRequest, code: code, msg: msg})
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// openAIErrorBody is OpenAI's error envelope, the door of chat completions,
// embeddings and models.
func openAIErrorBody(_ int, typ, code, msg string) []byte {
	b, _ := json.Marshal(errorBody{errorDetail{Message: msg, Type: typ, Code: code}})
	return append(b, '\n')
}

// typeForStatus picks OpenAI's error type for a relayed upstream status.
func typeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return typeAuthentication
	case status == http.StatusNotFound:
		return typeNotFound
	case status == http.StatusTooManyRequests:
		return typeRateLimit
	case status >= 500:
		return typeAPI
	default:
		return typeInvalidRequest
	}
}
