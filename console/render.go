package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// pages holds one parsed template set per page: the layout plus the page's
// own file.
type pages struct {
	t map[string]*template.Template
}

var pageNames = []string{"signin", "setup", "byok", "keys", "members", "playground", "logs", "usage", "chargeback", "reconciliation", "limits", "error"}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		case *time.Time:
			if v == nil || v.IsZero() {
				return "never"
			}
			return v.UTC().Format("2006-01-02 15:04 UTC")
		}
		return ""
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"ms":  func(f float64) string { return fmt.Sprintf("%.0f ms", f) },
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"eq2": func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
	// usd writes nano-USD as dollars: "$0.006125" (exact, no float).
	"usd": usd,
	// cost writes a request's cost: "$0.006125", or why it is unpriced.
	"cost": func(c pricing.Cost) string {
		switch {
		case c.IsZero():
			return "—"
		case c.Unpriced:
			return "unpriced (" + strings.ReplaceAll(c.Reason.String(), "_", " ") + ")"
		}
		return usd(int64(c.NanoUSD))
	},
	// shadowCost writes a BYOK request's shadow cost as cost writes a cost.
	"shadowCost": func(s pricing.Shadow) string {
		if s.Unpriced {
			return "unpriced (" + strings.ReplaceAll(s.Reason.String(), "_", " ") + ")"
		}
		return usd(int64(s.NanoUSD))
	},
	"int64":    func(n pricing.Nano) int64 { return int64(n) },
	"discount": func(c pricing.Cost) string { return string(c.AppendDiscount(nil)) + " %" },
	// unitPrices lists a cost's unit prices, class by class.
	"unitPrices": func(c pricing.Cost) string {
		var parts []string
		for i, p := range c.Unit {
			if p.IsSet() {
				parts = append(parts, pricing.Class(i).String()+" $"+p.String())
			}
		}
		return strings.Join(parts, " · ")
	},
}

// usd writes an amount of nano-USD as dollars, exactly.
func usd(nano int64) string {
	if nano < 0 {
		return "-$" + pricing.Nano(-nano).String()
	}
	return "$" + pricing.Nano(nano).String()
}

func parsePages() (*pages, error) {
	p := &pages{t: make(map[string]*template.Template)}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/fragments.html", "templates/chart.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing console template %s: %v", name, err)
		}
		p.t[name] = t
	}
	// Fragments swapped in by console.js.
	t, err := template.New("fragments.html").Funcs(funcs).ParseFS(templateFS, "templates/fragments.html")
	if err != nil {
		return nil, fmt.Errorf("parsing console fragments: %v", err)
	}
	p.t["fragments"] = t
	return p, nil
}

// navItem is one sidebar link.
type navItem struct {
	Section, Label, Path string
	Current              bool
}

func nav(current string) []navItem {
	items := []navItem{
		{"Build", "Playground", "/playground", false},
		{"Monitoring", "Request Logs", "/logs", false},
		{"Monitoring", "Usage", "/usage", false},
		{"Monitoring", "Chargeback", "/chargeback", false},
		{"Monitoring", "Reconciliation", "/reconciliation", false},
		{"Monitoring", "Budgets & Limits", "/limits", false},
		{"Settings", "Bring Your Own Key", "/byok", false},
		{"Settings", "API Keys", "/keys", false},
		{"Settings", "Members", "/members", false},
	}
	for i := range items {
		items[i].Path = Prefix + items[i].Path
		items[i].Current = items[i].Path == current
	}
	return items
}

// view is what the layout renders.
type view struct {
	Title   string
	Nav     []navItem
	User    string
	Role    string
	Account string
	// Accounts are the signed-in person's accounts, for the switcher
	// (shown when there are two or more).
	Accounts []store.User
	CSRF     string
	Prefix   string
	Data     any
}

// render writes page name with data; r is nil on signed-out pages.
func (h *Handler) render(w http.ResponseWriter, hr *http.Request, status int, name string, r *request, title string, data any) {
	v := view{Title: title, Data: data, Prefix: Prefix}
	if r != nil {
		v.Nav = nav(navPath(hr.URL.Path))
		v.User, v.Role, v.Account, v.CSRF = r.user.Email, r.user.Role, r.account, r.csrf
		if ms, err := h.cfg.Store.Memberships(r.user.PersonID); err == nil && len(ms) > 1 {
			v.Accounts = ms
		}
	}
	var buf bytes.Buffer
	if err := h.pages.t[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		h.cfg.Logger.Error("rendering console page", zap.String("page", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func navPath(p string) string {
	rest := strings.TrimPrefix(p, Prefix+"/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return Prefix + "/" + rest
}

func (h *Handler) fragment(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages.t["fragments"].ExecuteTemplate(&buf, name, data); err != nil {
		h.cfg.Logger.Error("rendering console fragment", zap.String("fragment", name), zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

type errorData struct {
	Status  int
	Message string
}

// fail renders an error page (or a short text for script requests).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if r.Header.Get("X-CSRF-Token") != "" || r.Header.Get("Accept") == "text/plain" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		w.Write([]byte(msg))
		return
	}
	h.render(w, r, status, "error", nil, http.StatusText(status), errorData{status, msg})
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, http.StatusNotFound, "There is nothing here, or it belongs to another account.")
}

func (h *Handler) failReq(w http.ResponseWriter, r *request, err error) {
	st, msg := h.userError(err)
	if st == http.StatusNotFound {
		h.notFound(w, r.Request)
		return
	}
	h.fail(w, r.Request, st, msg)
}
