package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/providers"
)

// References to provider-side objects. A request body can name objects the
// provider keeps: a stored response (previous_response_id), a conversation,
// an item of a stored response (item_reference), an uploaded or generated
// file (file_id), a code-execution container. The platform key is shared by
// every account it serves, so at the provider all their objects sit in one
// place: naming another account's object under it would read (or continue)
// that account's data. The gateway therefore checks every reference before
// any provider is called:
//
//   - previous_response_id must be a response the caller's account created
//     through the gateway (the same record GET and DELETE check), whatever
//     the credential: else 404 response_not_found, as for an unknown id;
//   - the others cannot be attributed to an account (the gateway creates
//     no conversations and records no files, containers or item ids): they
//     are served with the account's own key (BYOK), which reaches only the
//     account's own objects, and refused under the platform key (404
//     reference_not_allowed; an attempt of a route that would use the
//     platform key is skipped, with reason reference_needs_byok).

// objectRefs are the provider-side objects a request names.
type objectRefs struct {
	// previous holds the Responses door's previous_response_id: every
	// copy of the member (a body may name it twice; gjson reads the first
	// copy, a provider's decoder the last), so all must be owned. A copy
	// that is not a string is "", which no account owns.
	previous    []string
	hasPrevious bool
	// foreign describes the first reference the gateway cannot attribute
	// (`conversation "conv_…"`), "" when there is none.
	foreign string
}

// maxRefQuote bounds how much of a client-chosen id an error quotes.
const maxRefQuote = 64

func quoteRef(field, id string) string {
	if id == "" {
		return field
	}
	return field + " " + strconv.Quote(truncate(id, maxRefQuote))
}

// findRefs reads the references in a request body for the door and
// operation: the door's own members (door.refs), then file_id anywhere.
// Members are matched as a provider's decoder reads them: with escaped
// spellings, and every copy of a repeated member. A chat-completions body
// without a file_id pays two byte scans.
func findRefs(d *door, op providers.Operation, body []byte) objectRefs {
	if op == providers.OpEmbeddings {
		return objectRefs{}
	}
	r := d.refs(body)
	if r.foreign == "" {
		r.foreign = findFileID(body)
	}
	return r
}

// noRefs: chat completions name no objects but files.
func noRefs([]byte) objectRefs { return objectRefs{} }

// setForeign keeps the first reference the gateway cannot attribute.
func (r *objectRefs) setForeign(ref string) {
	if r.foreign == "" {
		r.foreign = ref
	}
}

// responsesRefs reads the Responses API's references: previous_response_id,
// conversation, item references in the input, code_interpreter's container.
func responsesRefs(body []byte) (r objectRefs) {
	if !containsAny(body, "previous_response_id", "conversation", `"id"`, "container", `\u00`) {
		return r // none of the members below, in any spelling
	}
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		switch k.String() {
		case "previous_response_id":
			if v.Type != gjson.Null {
				r.previous, r.hasPrevious = append(r.previous, v.Str), true
			}
		case "conversation":
			if v.Type != gjson.Null {
				r.setForeign(quoteRef("conversation", idOf(v)))
			}
		case "input":
			// An item reference has an "id" member: a history without one
			// (Codex sends items without ids) is not walked.
			if !strings.Contains(v.Raw, `"id"`) && !strings.Contains(v.Raw, `\u00`) {
				return true
			}
			v.ForEach(func(_, it gjson.Result) bool {
				if isItemReference(it) {
					r.setForeign(quoteRef("item_reference", it.Get("id").String()))
				}
				return r.foreign == ""
			})
		case "tools":
			v.ForEach(func(_, t gjson.Result) bool {
				// code_interpreter's container: an id names an existing
				// container; {"type":"auto"} makes a new one.
				if t.IsObject() {
					t.ForEach(func(k, c gjson.Result) bool {
						if k.String() == "container" && c.Type == gjson.String {
							r.setForeign(quoteRef("container", c.Str))
						}
						return r.foreign == ""
					})
				}
				return r.foreign == ""
			})
		}
		return true
	})
	return r
}

// messagesRefs reads Anthropic's container: an id (or {"id": ...}) reuses a
// code-execution container with its files.
func messagesRefs(body []byte) (r objectRefs) {
	if !containsAny(body, "container", `\u00`) {
		return r
	}
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		if k.String() == "container" && (v.Type == gjson.String || v.IsObject() && v.Get("id").Exists()) {
			r.setForeign(quoteRef("container", idOf(v)))
		}
		return true
	})
	return r
}

// containsAny reports whether body holds any of the literals.
func containsAny(body []byte, lits ...string) bool {
	for _, l := range lits {
		if bytes.Contains(body, []byte(l)) {
			return true
		}
	}
	return false
}

// idOf is an id given as a string or as {"id": ...}.
func idOf(v gjson.Result) string {
	if v.IsObject() {
		return v.Get("id").String()
	}
	return v.String()
}

// isItemReference: an input item {"type":"item_reference","id":...}, whose
// type OpenAI lets a client leave out (an item with an id and no role or
// content). Every copy of a repeated member counts.
func isItemReference(it gjson.Result) bool {
	if !it.IsObject() {
		return false
	}
	ref, typed, id, message := false, false, false, false
	it.ForEach(func(k, v gjson.Result) bool {
		switch k.String() {
		case "type":
			if v.Type != gjson.Null {
				typed = true
				ref = ref || v.Str == "item_reference"
			}
		case "id":
			id = true
		case "role", "content":
			message = true
		}
		return true
	})
	return ref || !typed && id && !message
}

// findFileID finds a file_id (or file_ids) member anywhere in the body:
// input_file and input_image parts, chat completions' file parts,
// Anthropic's file sources and container uploads, code_interpreter's
// files. Two byte scans clear almost every body: a member needs the literal
// "file_id" or a \u00 escape in its name.
func findFileID(body []byte) string {
	if !bytes.Contains(body, []byte("file_id")) && !bytes.Contains(body, []byte(`\u00`)) {
		return ""
	}
	found := ""
	var walk func(v gjson.Result) bool
	walk = func(v gjson.Result) bool {
		if v.IsObject() {
			// A tool call's arguments (Anthropic's tool_use input) are the
			// client's own data, and so are JSON schemas and metadata.
			toolUse := false
			switch v.Get("type").Str {
			case "tool_use", "server_tool_use", "mcp_tool_use":
				toolUse = true
			}
			v.ForEach(func(k, val gjson.Result) bool {
				switch name := k.String(); {
				case name == "file_id" && val.Type == gjson.String:
					found = quoteRef("file_id", val.Str)
				case name == "file_ids" && val.IsArray() && len(val.Array()) > 0:
					found = quoteRef("file_ids", val.Array()[0].String())
				case name == "parameters" || name == "input_schema" || name == "schema" || name == "metadata" || toolUse && name == "input":
				default:
					walk(val)
				}
				return found == ""
			})
		} else if v.IsArray() {
			v.ForEach(func(_, val gjson.Result) bool { return walk(val) })
		}
		return found == ""
	}
	walk(gjson.ParseBytes(body))
	return found
}

// ownsPrevious reports whether the account owns every previous_response_id
// the body names, and returns the first it does not own.
func (g *Gateway) ownsPrevious(account string, refs objectRefs) (string, bool) {
	for _, id := range refs.previous {
		if _, err := g.store.ResponseFor(account, id); err != nil {
			return id, false
		}
	}
	return "", true
}

// previousResponseFailure is the answer to a previous_response_id the
// caller's account does not own.
func previousResponseFailure(id string) failure {
	return failure{status: http.StatusNotFound, typ: typeInvalidRequest, code: CodeResponseNotFound,
		msg: "previous_response_id: no response with id " + strconv.Quote(truncate(id, maxRefQuote)) + " was created by this account through the gateway"}
}

// foreignRefFailure is the answer when only the platform key could serve a
// request naming an object the gateway cannot attribute.
func foreignRefFailure(ref, provider string) failure {
	return failure{status: http.StatusNotFound, typ: typeInvalidRequest, code: CodeReferenceNotAllowed,
		msg: "the request names " + ref + ", a " + provider + " object the gateway cannot attribute to this account: such references are served only with the account's own " + provider + " key, never the platform's (send the content itself, or register the account's own key)"}
}
