package providers

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/tidwall/gjson"
)

// The Responses door's tools, translated for chat completions and back.
//
//   - function tools are offered as they are;
//   - custom (free-form) tools, such as Codex's apply_patch, as functions of
//     one string, input, whose calls come back as custom_tool_call items;
//   - a namespace's tools (Codex's multi_agent_v1: spawn_agent, wait_agent,
//     ...) as functions named namespace__name, the namespace's description
//     leading each one's; their calls come back as function_call (or
//     custom_tool_call) items with the tool's own name and its namespace, as
//     OpenAI answers them, and a history item's namespace + name finds the
//     flattened name again;
//   - web_search becomes the hub's Search, which each adapter turns into
//     its host's own search (Anthropic's web search tool, Gemini's Google
//     Search grounding) or leaves out, saying so (Call.Omitted); the door
//     itself leaves out cache-only search (external_web_access: false,
//     Codex's default), which no host offers: a live search would give the
//     model what the client chose to keep from it.
//
// Other built-in tools (file_search, code_interpreter, ...) are refused
// with a 400 naming them.

// respToolRef is what a function offered to the model stands for in the
// client's request.
type respToolRef struct {
	name, namespace string
	custom          bool
}

// respTools is a request's tools as offered to the model.
type respTools struct {
	offered []Tool
	// byFlat maps an offered function's name to the client's tool.
	byFlat map[string]respToolRef
}

// maxFlatName is the longest function name every target takes (OpenAI's
// and Gemini's limit is 64; Anthropic's 128).
const maxFlatName = 64

// flatName is the name a namespace's tool is offered under: namespace__name,
// or, when that is longer than maxFlatName, its first 55 bytes, '_' and 8
// hex digits of a hash of both names. A tool outside a namespace keeps its
// name.
func (ts *respTools) flatName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	flat := namespace + "__" + name
	if len(flat) <= maxFlatName {
		return flat
	}
	h := sha256.Sum256([]byte(namespace + "\x00" + name))
	return flat[:maxFlatName-9] + "_" + hex.EncodeToString(h[:4])
}

// newRespTools reads the request's tools: function, custom and namespace
// tools are offered as functions; web_search is left to respWebSearch;
// anything else is refused.
func newRespTools(tools []respTool, provider string) (*respTools, error) {
	ts := &respTools{byFlat: map[string]respToolRef{}}
	var add func(t respTool, namespace string) error
	add = func(t respTool, namespace string) error {
		switch t.Type {
		case "function", "custom":
		case "namespace":
			if namespace != "" {
				return badRequest("namespace %q: a namespace cannot hold another namespace", namespace)
			}
			if t.Name == "" {
				return badRequest("every namespace tool needs a name")
			}
			for _, inner := range t.Tools {
				if inner.Type != "function" && inner.Type != "custom" {
					return badRequest("namespace %q: tools of type %q are not available for %s models through the gateway (only function and custom tools are)", t.Name, inner.Type, provider)
				}
				if t.Description != "" {
					inner.Description = t.Description + "\n\n" + inner.Description
				}
				if err := add(inner, t.Name); err != nil {
					return err
				}
			}
			return nil
		case "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11":
			if namespace == "" {
				return nil // respWebSearch
			}
			fallthrough
		default:
			return badRequest("the %s tool is not available for %s models through the gateway (only function, custom, namespace and web_search tools are)", t.Type, provider)
		}
		if t.Name == "" {
			return badRequest("every function tool needs a name")
		}
		flat := ts.flatName(namespace, t.Name)
		if prev, dup := ts.byFlat[flat]; dup {
			return badRequest("the tools %q and %q would both be offered to %s models as %q: rename one", qualified(prev.namespace, prev.name), qualified(namespace, t.Name), provider, flat)
		}
		ts.byFlat[flat] = respToolRef{name: t.Name, namespace: namespace, custom: t.Type == "custom"}
		params, strict := t.Parameters, t.Strict
		if t.Type == "custom" {
			params, strict = customToolParams, nil
		}
		ts.offered = append(ts.offered, Tool{Type: "function", Function: ToolFunction{Name: flat, Description: t.Description,
			Parameters: params, Strict: strict}})
		return nil
	}
	for _, t := range tools {
		if err := add(t, ""); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

func qualified(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "." + name
}

// ref returns what the function the model called (by its offered name)
// stands for: a name it does not know stands for itself.
func (ts *respTools) ref(flat string) respToolRef {
	if r, ok := ts.byFlat[flat]; ok {
		return r
	}
	return respToolRef{name: flat}
}

// item is a finished tool call's output item: a custom_tool_call (with the
// input the function's one argument carried) for custom tools, a
// function_call otherwise, each with the tool's own name and its namespace.
func (ts *respTools) item(id, callID, flat, args, status string) map[string]any {
	r := ts.ref(flat)
	var it map[string]any
	if r.custom {
		input := ""
		if status == "completed" {
			input = gjson.Get(args, "input").String()
		}
		it = map[string]any{"id": id, "type": "custom_tool_call", "call_id": callID, "name": r.name, "input": input, "status": status}
	} else {
		it = map[string]any{"id": id, "type": "function_call", "call_id": callID, "name": r.name, "arguments": args, "status": status}
	}
	if r.namespace != "" {
		it["namespace"] = r.namespace
	}
	return it
}

// respWebSearch turns a web_search tool into the hub's Search, its
// allowed domains a limit the search must keep; cache-only search is left
// out (see the top of this file).
func respWebSearch(c *Call, tools []respTool, out *ChatRequest) {
	var ws *respTool
	for i := range tools {
		switch tools[i].Type {
		case "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11":
			ws = &tools[i]
		}
	}
	if ws == nil {
		return
	}
	if ws.ExternalWebAccess != nil && !*ws.ExternalWebAccess {
		c.omit("web_search")
		return
	}
	search := &WebSearch{SearchContextSize: ws.SearchContextSize, strictDomains: true}
	if ul := ws.UserLocation; ul != nil {
		search.UserLocation = &WebSearchLocation{Type: "approximate"}
		search.UserLocation.Approximate.City, search.UserLocation.Approximate.Country = ul.City, ul.Country
		search.UserLocation.Approximate.Region, search.UserLocation.Approximate.Timezone = ul.Region, ul.Timezone
	}
	if ws.Filters != nil && len(ws.Filters.AllowedDomains) > 0 {
		search.Filters = &WebSearchFilters{AllowedDomains: ws.Filters.AllowedDomains}
	}
	out.Search = search
}
