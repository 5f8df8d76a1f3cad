package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// Error codes the gateway itself answers with, in OpenAI's error envelope
// {"error":{"message","type","param","code"}}. They are part of the API.
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
	// The Responses door's stored responses.
	CodeNotFound         = "not_found"
	CodeResponseNotFound = "response_not_found"
	// A reference to a provider-side object the gateway cannot attribute
	// to the account (a conversation, item_reference, file_id, container),
	// refused under the platform key (references.go).
	CodeReferenceNotAllowed = "reference_not_allowed"
)

// finalStatus is the status of an answer no retry can change, for the
// clients of door (see providers.Door.FinalStatus): 400 for OpenAI's shapes,
// which no OpenAI SDK and not Codex retries; 424 for Anthropic's Messages,
// where Claude Code stops at once.
func finalStatus(door *providers.Door) int {
	if door != nil && door.FinalStatus != 0 {
		return door.FinalStatus
	}
	return http.StatusBadRequest
}

// OpenAI's error types.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeNotFound       = "not_found_error"
	typeAPI            = "api_error"
	typeRateLimit      = "rate_limit_error"
)

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// writeError answers in OpenAI's error envelope. Messages must never hold
// key material; callers pass scrubbed text.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	b, _ := json.Marshal(errorBody{errorDetail{Message: msg, Type: typ, Code: code}})
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeDoorError answers in the envelope of the client's front door:
// OpenAI's for chat completions, embeddings and Responses, Anthropic's for
// Messages.
func writeDoorError(w http.ResponseWriter, door *providers.Door, status int, typ, code, msg string) {
	if door == nil {
		writeError(w, status, typ, code, msg)
		return
	}
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(door.ErrorBody(status, code, msg))
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
