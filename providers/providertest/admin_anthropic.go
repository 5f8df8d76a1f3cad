package providertest

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Anthropic's organisation admin API (money.md §3; Anthropic's API
// reference for the Admin API): an Admin API key ("sk-ant-admin…") in
// x-api-key, with anthropic-version.
//
//	GET /v1/organizations/usage_report/messages  starting_at (RFC 3339, required), ending_at,
//	    bucket_width 1m|1h|1d, limit, group_by[] ⊂ {api_key_id, workspace_id, model,
//	    service_tier, context_window}, api_key_ids[], workspace_ids[], models[], page
//	GET /v1/organizations/cost_report            bucket_width 1d only, group_by[] ⊂
//	    {workspace_id, description}, limit, page; amount in cents as a decimal string
//	GET /v1/organizations/api_keys               limit 1–1000, after_id, workspace_id, status
//
// Workbench usage, and usage of any key the fake does not know, has a null
// api_key_id; the default workspace is a null workspace_id.

func anthropicAdminError(status int, typ, msg string) *Response {
	return &Response{Status: status, Body: AnthropicError(typ, msg)}
}

// anthropicAdminAuth answers a request without an accepted admin key (and
// echoes a rejected admin key in full, for the scrubbing tests).
func anthropicAdminAuth(r *http.Request, key string, admin bool) *Response {
	switch {
	case key == "":
		return anthropicAdminError(401, "authentication_error", "x-api-key header is required")
	case r.Header.Get("Anthropic-Version") == "":
		return anthropicAdminError(400, "invalid_request_error", "anthropic-version: header is required")
	case admin:
		return nil
	case len(key) >= 12 && key[:12] == "sk-ant-admin":
		return anthropicAdminError(401, "authentication_error", "invalid x-api-key: "+key)
	}
	return anthropicAdminError(403, "permission_error", "This endpoint requires an Admin API key.")
}

func (a *AdminServer) serveAnthropicAdmin(w http.ResponseWriter, req adminRequest) {
	r := req.r
	if r.Method != http.MethodGet {
		Write(w, r, *anthropicAdminError(405, "invalid_request_error", "method not allowed"))
		return
	}
	var resp *Response
	switch r.URL.Path {
	case "/v1/organizations/usage_report/messages":
		resp = a.anthropicUsage(req)
	case "/v1/organizations/cost_report":
		resp = a.anthropicCosts(req)
	case "/v1/organizations/api_keys":
		resp = a.anthropicKeys(req)
	default:
		resp = anthropicAdminError(404, "not_found_error", "Not Found")
	}
	Write(w, r, *resp)
}

// anthropicRange reads starting_at and ending_at: buckets start on or
// after starting_at (snapped down) and end on or before ending_at
// (default: now).
func anthropicRange(req adminRequest) (start time.Time, keep func(span) bool, bad *Response) {
	q := req.r.URL.Query()
	start, err := time.Parse(time.RFC3339, q.Get("starting_at"))
	if err != nil {
		return start, nil, anthropicAdminError(400, "invalid_request_error", "starting_at: must be an RFC 3339 timestamp")
	}
	end := req.now
	if v := q.Get("ending_at"); v != "" {
		if end, err = time.Parse(time.RFC3339, v); err != nil {
			return start, nil, anthropicAdminError(400, "invalid_request_error", "ending_at: must be an RFC 3339 timestamp")
		}
		if !end.After(start) {
			return start, nil, anthropicAdminError(400, "invalid_request_error", "ending_at must be after starting_at")
		}
	}
	if q.Get("ending_at") == "" {
		// Up to the bucket in progress, as the report shows today so far.
		return start, func(s span) bool { return s.start.Before(end) }, nil
	}
	return start, func(s span) bool { return !s.end.After(end) }, nil
}

func anthropicPage(data []any, next string, more bool) *Response {
	body := map[string]any{"data": data, "has_more": more, "next_page": nil}
	if more {
		body["next_page"] = "page_" + next
	}
	b, _ := json.Marshal(body)
	return &Response{Body: string(b)}
}

func (a *AdminServer) anthropicBuckets(req adminRequest, only string) ([]span, string, bool, []string, *Response) {
	q := req.r.URL.Query()
	start, keep, bad := anthropicRange(req)
	if bad != nil {
		return nil, "", false, nil, bad
	}
	allowed := []string{"api_key_id", "workspace_id", "model", "service_tier", "context_window"}
	if only == "1d" {
		allowed = []string{"workspace_id", "description"}
	}
	by, err := checkGroupBy(q, allowed...)
	if err != nil {
		return nil, "", false, nil, anthropicAdminError(400, "invalid_request_error", err.Error())
	}
	bq, err := parseBuckets(q, start, keep, only, 0)
	if err != nil {
		return nil, "", false, nil, anthropicAdminError(400, "invalid_request_error", err.Error())
	}
	cursor := q.Get("page")
	if cursor != "" {
		c, ok := cutPrefix(cursor, "page_")
		if !ok {
			return nil, "", false, nil, anthropicAdminError(400, "invalid_request_error", "page: invalid cursor")
		}
		cursor = c
	}
	spans, next, more, err := a.page(bq, cursor)
	if err != nil {
		return nil, "", false, nil, anthropicAdminError(400, "invalid_request_error", "page: "+err.Error())
	}
	return spans, next, more, by, nil
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

func (a *AdminServer) anthropicUsage(req adminRequest) *Response {
	spans, next, more, by, bad := a.anthropicBuckets(req, "")
	if bad != nil {
		return bad
	}
	q := req.r.URL.Query()
	f := filter{"api_key_id": values(q, "api_key_ids"), "model": values(q, "models"), "workspace_id": values(q, "workspace_ids")}
	keep := func(e UsageEvent) bool {
		return f.pass("api_key_id", e.KeyID, e.KeyID == "") && f.pass("model", e.Model, false) &&
			f.pass("workspace_id", e.Workspace, e.Workspace == "")
	}
	events := a.visible(req.now)
	data := make([]any, 0, len(spans))
	for _, s := range spans {
		results := []any{}
		for _, g := range aggregate(events, s, by, keep, nil) {
			res := map[string]any{
				"uncached_input_tokens": g.tokens[classInput], "cache_read_input_tokens": g.tokens[classCacheRead],
				"cache_creation": map[string]any{"ephemeral_5m_input_tokens": g.tokens[classCacheWrite5m],
					"ephemeral_1h_input_tokens": g.tokens[classCacheWrite1h]},
				"output_tokens": g.tokens[classOutput], "server_tool_use": map[string]any{"web_search_requests": 0},
				"api_key_id": orNull(g.keyID, g.nullKey), "workspace_id": orNull(g.workspace, g.nullWorkspace),
				"model": orNull(g.model, g.nullModel), "service_tier": nil, "context_window": nil,
			}
			if slices.Contains(by, "service_tier") {
				res["service_tier"] = "standard"
			}
			if slices.Contains(by, "context_window") {
				res["context_window"] = "0-200k"
			}
			results = append(results, res)
		}
		data = append(data, map[string]any{"starting_at": s.start.Format(time.RFC3339), "ending_at": s.end.Format(time.RFC3339), "results": results})
	}
	return anthropicPage(data, next, more)
}

var anthropicTokenType = [nTokenClass]string{"uncached_input_tokens", "cache_read_input_tokens",
	"cache_creation.ephemeral_5m_input_tokens", "cache_creation.ephemeral_1h_input_tokens", "output_tokens"}

var anthropicDescription = [nTokenClass]string{"Input Tokens", "Cache Read Tokens", "Cache Write Tokens (5m)", "Cache Write Tokens (1h)", "Output Tokens"}

func (a *AdminServer) anthropicCosts(req adminRequest) *Response {
	spans, next, more, by, bad := a.anthropicBuckets(req, "1d")
	if bad != nil {
		return bad
	}
	byDesc := slices.Contains(by, "description")
	events := a.visible(req.now)
	data := make([]any, 0, len(spans))
	keep := func(UsageEvent) bool { return true }
	for _, s := range spans {
		results := []any{}
		classes := []tokenClass{-1}
		gby := by
		if byDesc {
			classes = []tokenClass{classInput, classCacheRead, classCacheWrite5m, classCacheWrite1h, classOutput}
			gby = append(slices.Clone(by), "model")
		}
		for _, c := range classes {
			cost := a.eventCost
			if c >= 0 {
				cost = func(e UsageEvent) *big.Rat { return a.classCost(e, c) }
			}
			for _, g := range aggregate(events, s, gby, keep, cost) {
				if byDesc && g.tokens[c] == 0 {
					continue
				}
				// Cents, as a decimal string: "123.45" is $1.2345.
				cents := new(big.Rat).Mul(g.cost, big.NewRat(100, 1))
				res := map[string]any{"currency": "USD", "amount": decimal(cents, 10),
					"workspace_id": orNull(g.workspace, g.nullWorkspace), "description": nil, "cost_type": nil,
					"context_window": nil, "model": nil, "service_tier": nil, "token_type": nil}
				if byDesc {
					res["description"] = fmt.Sprintf("%s Usage - %s", g.model, anthropicDescription[c])
					res["cost_type"], res["model"], res["token_type"] = "tokens", g.model, anthropicTokenType[c]
					res["service_tier"], res["context_window"] = "standard", "0-200k"
				}
				results = append(results, res)
			}
		}
		data = append(data, map[string]any{"starting_at": s.start.Format(time.RFC3339), "ending_at": s.end.Format(time.RFC3339), "results": results})
	}
	return anthropicPage(data, next, more)
}

func (a *AdminServer) anthropicKeys(req adminRequest) *Response {
	q := req.r.URL.Query()
	limit := 20
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return anthropicAdminError(400, "invalid_request_error", "limit: must be between 1 and 1000")
		}
		limit = n
	}
	var keys []AdminKey
	for _, k := range a.adminKeys() {
		if ws := q.Get("workspace_id"); ws != "" && k.Workspace != ws {
			continue
		}
		if st := q.Get("status"); st != "" && k.Status != st {
			continue
		}
		keys = append(keys, k)
	}
	from := 0
	if after := q.Get("after_id"); after != "" {
		i := slices.IndexFunc(keys, func(k AdminKey) bool { return k.ID == after })
		if i < 0 {
			return anthropicAdminError(400, "invalid_request_error", "after_id: no such API key")
		}
		from = i + 1
	}
	to := min(from+a.listSize(limit), len(keys))
	data := []any{}
	for _, k := range keys[from:to] {
		scope := map[string]any{"type": "workspace", "workspace_id": k.Workspace}
		if k.Workspace == "" {
			scope["workspace_id"] = "wrkspc_default"
		}
		data = append(data, map[string]any{"type": "api_key", "id": k.ID, "name": k.Name,
			"partial_key_hint": k.Redacted, "status": k.Status, "workspace_id": orNull(k.Workspace, k.Workspace == ""),
			"created_at": k.Created.Format(time.RFC3339), "expires_at": nil, "scope": scope,
			"created_by": map[string]any{"id": "user_01Fake", "type": "user"}})
	}
	body := map[string]any{"data": data, "has_more": to < len(keys), "first_id": nil, "last_id": nil}
	if to > from {
		body["first_id"], body["last_id"] = keys[from].ID, keys[to-1].ID
	}
	b, _ := json.Marshal(body)
	return &Response{Body: string(b)}
}
