package providertest

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OpenAI's organisation admin API (money.md §3; the shapes of openai-go's
// AdminOrganizationUsage* and ProjectAPIKey types): an Admin API key
// ("sk-admin-…") as a Bearer token.
//
//	GET /v1/organization/usage/completions  start_time (unix s, required), end_time
//	    (exclusive), bucket_width 1m|1h|1d, limit, group_by[] ⊂ {project_id, user_id,
//	    api_key_id, model, batch, service_tier}, api_key_ids[], models[], project_ids[], page
//	GET /v1/organization/costs              bucket_width 1d only, limit 1–180, group_by[] ⊂
//	    {project_id, line_item, api_key_id}, api_key_ids[], project_ids[], page
//	GET /v1/organization/projects           limit, after
//	GET /v1/organization/projects/{id}/api_keys  limit 1–100, after

func openAIAdminError(status int, typ, code, msg string) *Response {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
	return &Response{Status: status, Body: string(b)}
}

// openAIAdminAuth answers a request without an accepted admin key. Like
// the data plane's fake, it echoes a rejected key in full, so the
// reconciler's scrubbing is tested.
func openAIAdminAuth(key string, admin bool) *Response {
	switch {
	case admin:
		return nil
	case key == "":
		return openAIAdminError(401, "invalid_request_error", "", "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
	case strings.HasPrefix(key, "sk-admin-"):
		return openAIAdminError(401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided: "+key+".")
	}
	return openAIAdminError(403, "invalid_request_error", "", "You have insufficient permissions for this operation. Missing scopes: api.usage.read. Use an Admin API key.")
}

func (a *AdminServer) serveOpenAIAdmin(w http.ResponseWriter, req adminRequest) {
	r := req.r
	if r.Method != http.MethodGet {
		Write(w, r, *openAIAdminError(405, "invalid_request_error", "", "method not allowed"))
		return
	}
	var resp *Response
	switch p := r.URL.Path; {
	case p == "/v1/organization/usage/completions":
		resp = a.openAIUsage(req)
	case p == "/v1/organization/costs":
		resp = a.openAICosts(req)
	case p == "/v1/organization/projects":
		resp = a.openAIProjects(req)
	case strings.HasPrefix(p, "/v1/organization/projects/") && strings.HasSuffix(p, "/api_keys"):
		resp = a.openAIProjectKeys(req, strings.TrimSuffix(strings.TrimPrefix(p, "/v1/organization/projects/"), "/api_keys"))
	default:
		resp = openAIAdminError(404, "invalid_request_error", "not_found", "Invalid URL (GET "+p+")")
	}
	Write(w, r, *resp)
}

// openAIRange reads start_time and end_time (default: now).
func openAIRange(req adminRequest) (start, end time.Time, err *Response) {
	q := req.r.URL.Query()
	s, e1 := strconv.ParseInt(q.Get("start_time"), 10, 64)
	if e1 != nil {
		return start, end, openAIAdminError(400, "invalid_request_error", "", "start_time is required and must be a unix timestamp in seconds")
	}
	start, end = time.Unix(s, 0).UTC(), req.now
	if v := q.Get("end_time"); v != "" {
		e, e2 := strconv.ParseInt(v, 10, 64)
		if e2 != nil {
			return start, end, openAIAdminError(400, "invalid_request_error", "", "end_time must be a unix timestamp in seconds")
		}
		end = time.Unix(e, 0).UTC()
	}
	if !end.After(start) {
		return start, end, openAIAdminError(400, "invalid_request_error", "", "end_time must be after start_time")
	}
	return start, end, nil
}

func (a *AdminServer) openAIUsage(req adminRequest) *Response {
	q := req.r.URL.Query()
	start, end, bad := openAIRange(req)
	if bad != nil {
		return bad
	}
	by, err := checkGroupBy(q, "project_id", "user_id", "api_key_id", "model", "batch", "service_tier")
	if err != nil {
		return openAIAdminError(400, "invalid_request_error", "", err.Error())
	}
	bq, err := parseBuckets(q, start, func(s span) bool { return s.start.Before(end) }, "", 0)
	if err != nil {
		return openAIAdminError(400, "invalid_request_error", "", err.Error())
	}
	spans, next, more, err := a.page(bq, q.Get("page"))
	if err != nil {
		return openAIAdminError(400, "invalid_request_error", "", err.Error())
	}
	f := filter{"api_key_id": values(q, "api_key_ids"), "model": values(q, "models"), "project_id": values(q, "project_ids")}
	keep := func(e UsageEvent) bool {
		return !e.Embeddings && f.pass("api_key_id", e.KeyID, e.KeyID == "") && f.pass("model", e.Model, false) &&
			f.pass("project_id", e.Project, false)
	}
	events := a.visible(req.now)
	data := make([]any, 0, len(spans))
	for _, s := range spans {
		results := []any{}
		for _, g := range aggregate(events, s, by, keep, nil) {
			results = append(results, map[string]any{
				"object":              "organization.usage.completions.result",
				"input_tokens":        g.tokens[classInput] + g.tokens[classCacheRead] + g.tokens[classCacheWrite5m] + g.tokens[classCacheWrite1h],
				"input_cached_tokens": g.tokens[classCacheRead], "output_tokens": g.tokens[classOutput],
				"input_audio_tokens": 0, "output_audio_tokens": 0, "num_model_requests": g.requests,
				"project_id": orNull(g.project, g.nullProject), "user_id": nil, "api_key_id": orNull(g.keyID, g.nullKey),
				"model": orNull(g.model, g.nullModel), "batch": nil, "service_tier": nil,
			})
		}
		data = append(data, map[string]any{"object": "bucket", "start_time": s.start.Unix(), "end_time": s.end.Unix(), "results": results})
	}
	return openAIPage(data, next, more)
}

func openAIPage(data []any, next string, more bool) *Response {
	body := map[string]any{"object": "page", "data": data, "has_more": more, "next_page": nil}
	if more {
		body["next_page"] = next
	}
	b, _ := json.Marshal(body)
	return &Response{Body: string(b)}
}

func (a *AdminServer) openAICosts(req adminRequest) *Response {
	q := req.r.URL.Query()
	start, end, bad := openAIRange(req)
	if bad != nil {
		return bad
	}
	by, err := checkGroupBy(q, "project_id", "line_item", "api_key_id")
	if err != nil {
		return openAIAdminError(400, "invalid_request_error", "", err.Error())
	}
	bq, err := parseBuckets(q, start, func(s span) bool { return s.start.Before(end) }, "1d", 180)
	if err != nil {
		return openAIAdminError(400, "invalid_request_error", "", err.Error())
	}
	spans, next, more, err := a.page(bq, q.Get("page"))
	if err != nil {
		return openAIAdminError(400, "invalid_request_error", "", err.Error())
	}
	f := filter{"api_key_id": values(q, "api_key_ids"), "project_id": values(q, "project_ids")}
	keep := func(e UsageEvent) bool {
		return f.pass("api_key_id", e.KeyID, e.KeyID == "") && f.pass("project_id", e.Project, false)
	}
	byLine := slices.Contains(by, "line_item")
	events := a.visible(req.now)
	data := make([]any, 0, len(spans))
	for _, s := range spans {
		results := []any{}
		classes := []tokenClass{-1}
		if byLine {
			classes = []tokenClass{classInput, classCacheRead, classCacheWrite5m, classCacheWrite1h, classOutput}
		}
		for _, c := range classes {
			// With line items, a group is also split by model (a line item
			// names the model and the token class).
			gby := by
			if byLine {
				gby = append(slices.Clone(by), "model")
			}
			cost := a.eventCost
			if c >= 0 {
				cost = func(e UsageEvent) *big.Rat { return a.classCost(e, c) }
			}
			for _, g := range aggregate(events, s, gby, keep, cost) {
				if byLine && g.tokens[c] == 0 {
					continue
				}
				res := map[string]any{"object": "organization.costs.result",
					"amount":    map[string]any{"value": json.Number(decimal(g.cost, 12)), "currency": "usd"},
					"line_item": nil, "project_id": orNull(g.project, g.nullProject),
					"api_key_id": orNull(g.keyID, g.nullKey)}
				if byLine {
					res["line_item"] = fmt.Sprintf("%s, %s", g.model, openAILineClass[c])
				}
				results = append(results, res)
			}
		}
		data = append(data, map[string]any{"object": "bucket", "start_time": s.start.Unix(), "end_time": s.end.Unix(), "results": results})
	}
	return openAIPage(data, next, more)
}

var openAILineClass = [nTokenClass]string{"input", "cached input", "cache write", "cache write", "output"}

// openAIList pages a list by the after cursor (an object id).
func (a *AdminServer) openAIList(req adminRequest, ids []string, item func(i int) any, maxLimit int) *Response {
	q := req.r.URL.Query()
	limit := 20
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return openAIAdminError(400, "invalid_request_error", "", fmt.Sprintf("limit must be between 1 and %d", maxLimit))
		}
		limit = n
	}
	from := 0
	if after := q.Get("after"); after != "" {
		i := slices.Index(ids, after)
		if i < 0 {
			return openAIAdminError(400, "invalid_request_error", "", "after: no such object")
		}
		from = i + 1
	}
	to := min(from+a.listSize(limit), len(ids))
	data := []any{}
	for i := from; i < to; i++ {
		data = append(data, item(i))
	}
	body := map[string]any{"object": "list", "data": data, "has_more": to < len(ids), "first_id": nil, "last_id": nil}
	if to > from {
		body["first_id"], body["last_id"] = ids[from], ids[to-1]
	}
	b, _ := json.Marshal(body)
	return &Response{Body: string(b)}
}

func (a *AdminServer) openAIProjects(req adminRequest) *Response {
	var ids []string
	for _, k := range a.adminKeys() {
		if !slices.Contains(ids, k.Project) {
			ids = append(ids, k.Project)
		}
	}
	if !slices.Contains(ids, "proj_default") {
		ids = append([]string{"proj_default"}, ids...)
	}
	return a.openAIList(req, ids, func(i int) any {
		return map[string]any{"id": ids[i], "object": "organization.project", "name": "Project " + ids[i],
			"created_at": 1700000000, "archived_at": nil, "status": "active"}
	}, 100)
}

func (a *AdminServer) openAIProjectKeys(req adminRequest, project string) *Response {
	var keys []AdminKey
	known := project == "proj_default"
	for _, k := range a.adminKeys() {
		if k.Project == project {
			keys, known = append(keys, k), true
		}
	}
	if !known {
		return openAIAdminError(404, "invalid_request_error", "not_found", "No such project: "+project)
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return a.openAIList(req, ids, func(i int) any {
		k := keys[i]
		return map[string]any{"object": "organization.project.api_key", "redacted_value": k.Redacted, "name": k.Name,
			"created_at": k.Created.Unix(), "last_used_at": nil, "id": k.ID, "expires_at": nil,
			"owner": map[string]any{"type": "user", "user": map[string]any{"id": "user_fake", "name": "Fake Owner", "role": "owner"}}}
	}, 100)
}
