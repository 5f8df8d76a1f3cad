package console

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// maxMessage bounds a playground message.
const maxMessage = 32 << 10

// modelGroup is the playground's models of one provider ("" for aliases
// and routes, which may span providers).
type modelGroup struct {
	Label  string
	Models []string
}

type playgroundData struct {
	Models  []modelGroup
	Keys    []store.APIKey
	Model   string
	KeyID   string
	Message string
	Answer  string
	Error   string
	Result  *store.LogRecord
	Enabled bool
}

func (h *Handler) playgroundData(r *request, model, keyID string) (playgroundData, error) {
	keys, err := h.cfg.Store.APIKeys(r.account)
	if err != nil {
		return playgroundData{}, err
	}
	d := playgroundData{Keys: keys, Model: model, KeyID: keyID, Enabled: h.cfg.Gateway != nil}
	if d.Enabled {
		profile := ""
		for _, k := range keys {
			if k.ID == keyID {
				profile = k.Profile
			}
		}
		idx := map[string]int{}
		for _, m := range h.cfg.Gateway.ModelsFor(r.account, profile) {
			label := "Aliases and routes"
			if m.Provider != "" {
				label = providerInfos[m.Provider].Title
			}
			i, ok := idx[label]
			if !ok {
				i = len(d.Models)
				idx[label] = i
				d.Models = append(d.Models, modelGroup{Label: label})
			}
			d.Models[i].Models = append(d.Models[i].Models, m.ID)
		}
	}
	return d, nil
}

func (h *Handler) playgroundPage(w http.ResponseWriter, r *request) {
	keyID := r.URL.Query().Get("key")
	if keyID != "" && !h.ownsKey(r.account, keyID) {
		h.notFound(w, r.Request)
		return
	}
	d, err := h.playgroundData(r, r.URL.Query().Get("model"), keyID)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	h.render(w, r.Request, http.StatusOK, "playground", r, "Playground", d)
}

// chatInput reads and checks the playground form.
func (h *Handler) chatInput(r *request) (model, keyID, msg, problem string, status int) {
	model, keyID, msg = strings.TrimSpace(r.PostFormValue("model")), r.PostFormValue("key"), r.PostFormValue("message")
	switch {
	case h.cfg.Gateway == nil:
		return model, keyID, msg, "The playground is not available on this server.", http.StatusServiceUnavailable
	case keyID != "" && !h.ownsKey(r.account, keyID):
		return model, keyID, msg, "", http.StatusNotFound
	case model == "":
		return model, keyID, msg, "Pick a model.", http.StatusBadRequest
	case strings.TrimSpace(msg) == "":
		return model, keyID, msg, "Type a message.", http.StatusBadRequest
	case len(msg) > maxMessage:
		return model, keyID, msg, "The message is longer than 32 KiB.", http.StatusBadRequest
	}
	return model, keyID, msg, "", 0
}

func chatBody(model, msg string, stream bool) []byte {
	b, _ := json.Marshal(map[string]any{
		"model":    model,
		"stream":   stream,
		"messages": []map[string]string{{"role": "user", "content": msg}},
	})
	return b
}

func (h *Handler) chatRequest(r *request, body []byte) *http.Request {
	in, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
	in.Header.Set("Content-Type", "application/json")
	in.RemoteAddr, in.Host = r.RemoteAddr, r.Host
	return in
}

// SourceConsole marks the playground's requests in the request log.
const SourceConsole = "console"

func (h *Handler) accountRequest(r *request, keyID string) gateway.AccountRequest {
	return gateway.AccountRequest{AccountID: r.account, KeyID: keyID, Source: SourceConsole}
}

// playgroundSend serves the form without script: the answer comes whole.
func (h *Handler) playgroundSend(w http.ResponseWriter, r *request) {
	model, keyID, msg, problem, status := h.chatInput(r)
	if status == http.StatusNotFound {
		h.notFound(w, r.Request)
		return
	}
	d, err := h.playgroundData(r, model, keyID)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	d.Message = msg
	if problem != "" {
		d.Error = problem
		h.render(w, r.Request, status, "playground", r, "Playground", d)
		return
	}
	rec := newBufferWriter()
	h.cfg.Gateway.ServeAccount(rec, h.chatRequest(r, chatBody(model, msg, false)), h.accountRequest(r, keyID))
	if rec.status/100 == 2 {
		d.Answer = gjson.GetBytes(rec.buf.Bytes(), "choices.0.message.content").String()
	} else {
		d.Error = gjson.GetBytes(rec.buf.Bytes(), "error.message").String()
		if d.Error == "" {
			d.Error = http.StatusText(rec.status)
		}
	}
	if id := rec.header.Get("X-Agent-Router-Request-Id"); id != "" {
		h.recent.add(id, r.account)
		if lr, ok := h.logRecord(r.account, id); ok {
			d.Result = &lr
		}
	}
	h.render(w, r.Request, http.StatusOK, "playground", r, "Playground", d)
}

// playgroundStream relays the gateway's event stream to console.js.
func (h *Handler) playgroundStream(w http.ResponseWriter, r *request) {
	model, keyID, msg, problem, status := h.chatInput(r)
	if status != 0 {
		if problem == "" {
			problem = "Not found."
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		w.Write([]byte(problem))
		return
	}
	h.cfg.Gateway.ServeAccount(w, h.chatRequest(r, chatBody(model, msg, true)), h.accountRequest(r, keyID))
	// console.js asks for the details next: remember the id as ours.
	if id := w.Header().Get("X-Agent-Router-Request-Id"); id != "" {
		h.recent.add(id, r.account)
	}
}

// playgroundResult renders the details of one of the account's requests
// (provider, model, credential, attempts, tokens, latency).
func (h *Handler) playgroundResult(w http.ResponseWriter, r *request) {
	lr, ok := h.logRecord(r.account, r.PathValue("id"))
	if !ok {
		h.notFound(w, r.Request)
		return
	}
	h.fragment(w, "result", lr)
}

// logRecord returns the account's request-log record id. Only for an id
// of a request this console just made for the account does it wait for the
// log writer (once per id): an unknown id answers from what is written, so
// that no one can make every page load force a write.
func (h *Handler) logRecord(account, id string) (store.LogRecord, bool) {
	if id == "" || len(id) > 64 {
		return store.LogRecord{}, false
	}
	lr, err := h.cfg.Store.Log(id)
	if err != nil && h.recent.take(id, account) {
		h.cfg.Store.SyncLog()
		lr, err = h.cfg.Store.Log(id)
	}
	if err != nil || lr.AccountID != account {
		return store.LogRecord{}, false
	}
	return lr, true
}

// maxRecent bounds the playground request ids a console remembers.
const maxRecent = 256

// recentRequests are the playground's latest request ids (id → account),
// the oldest forgotten first.
type recentRequests struct {
	mu    sync.Mutex
	ids   map[string]string
	order []string
}

func (c *recentRequests) add(id, account string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = make(map[string]string)
	}
	if len(c.order) >= maxRecent {
		delete(c.ids, c.order[0])
		c.order = c.order[1:]
	}
	c.ids[id] = account
	c.order = append(c.order, id)
}

// take reports whether id is a recent request of account, and forgets it.
func (c *recentRequests) take(id, account string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.ids[id]; !ok || a != account {
		return false
	}
	delete(c.ids, id) // its stale entry in order goes when it comes round
	return true
}

// bufferWriter collects a whole response.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func newBufferWriter() *bufferWriter {
	return &bufferWriter{header: http.Header{}, status: http.StatusOK}
}

func (b *bufferWriter) Header() http.Header         { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.buf.Write(p) }
func (b *bufferWriter) WriteHeader(s int)           { b.status = s }
