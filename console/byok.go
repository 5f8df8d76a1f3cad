package console

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/gateway"
	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/reconcile"
)

// providerInfo is how the console presents a provider.
type providerInfo struct {
	Name, Title, Hint string
}

var providerInfos = map[string]providerInfo{
	providers.OpenAI:     {providers.OpenAI, "OpenAI", "OpenAI keys begin with sk- (sk-proj-…, sk-svcacct-…)."},
	providers.Anthropic:  {providers.Anthropic, "Anthropic", "Anthropic keys begin with sk-ant- (sk-ant-api03-…)."},
	providers.Gemini:     {providers.Gemini, "Google (Gemini)", "Gemini API keys from Google AI Studio begin with AIza or AQ."},
	providers.Azure:      {providers.Azure, "Azure OpenAI", "The 32-character key of your Azure OpenAI resource, with its endpoint below."},
	providers.Mistral:    {providers.Mistral, "Mistral", "A 32-character key from console.mistral.ai."},
	providers.Together:   {providers.Together, "Together", "Together keys begin with tgp_v1_ (older ones are 64 hex characters)."},
	providers.Perplexity: {providers.Perplexity, "Perplexity", "Perplexity keys begin with pplx-."},
	providers.Cohere:     {providers.Cohere, "Cohere", "A 40-character key from dashboard.cohere.com."},
}

// card is one provider on the BYOK page.
type card struct {
	providerInfo
	Status ops.BYOKStatus
	// Label is Active, Invalid or Not configured.
	Label, Class string
	Open         bool
}

type byokData struct {
	Cards   []card
	Open    *card
	Owner   bool
	Error   string
	Notice  string
	Test    *gateway.TestResult
	CanTest bool
	// Form values to show again after an error (never the key).
	BaseURL, APIVersion string
	// Terms are the open card's contract terms; ContractError the
	// contract form's refusal.
	Terms         []termView
	ContractError string
	// Reader is the open provider's usage-reader card (reconcile.go), nil
	// for a provider without one; ReaderError and ReaderTest are its
	// form's answer. Alerts are the standing out-of-band alerts by
	// provider, for the cards.
	Reader      *readerCard
	ReaderError string
	ReaderTest  *ops.ReaderTestOutcome
	Alerts      map[string][]reconcile.Alert
}

func (h *Handler) cards(account, open string) ([]card, error) {
	// One card per provider, never paged: there are eight.
	slots, err := h.ops.BYOKList(account, ops.Page{})
	if err != nil {
		return nil, err
	}
	out := make([]card, 0, len(slots.Items))
	for _, st := range slots.Items {
		c := card{providerInfo: providerInfos[st.Provider], Status: st, Open: st.Provider == open}
		switch st.Status {
		case "active":
			c.Label, c.Class = "Active", "ok"
		case "invalid":
			c.Label, c.Class = "Invalid", "bad"
		default:
			c.Label, c.Class = "Not configured", "off"
		}
		out = append(out, c)
	}
	return out, nil
}

func (h *Handler) byokPage(w http.ResponseWriter, r *request) {
	h.renderBYOK(w, r, http.StatusOK, r.PathValue("provider"), byokData{Notice: noticeText(r.URL.Query().Get("done"))})
}

func noticeText(code string) string {
	switch code {
	case "saved":
		return "Saved. The next request to this provider uses the new key."
	case "removed":
		return "Removed. The next request to this provider uses the platform key, if there is one."
	case "policy":
		return "Policy saved."
	case "contract":
		return "Contract terms saved. They price the requests that start from their date on."
	case "reader_saved":
		return "Usage reader saved. The next reconciliation reads the provider's records with it."
	case "reader_removed":
		return "Usage reader removed. The ledger keeps what was reconciled."
	}
	return ""
}

func (h *Handler) renderBYOK(w http.ResponseWriter, r *request, status int, open string, d byokData) {
	if open != "" && providers.Get(open) == nil {
		h.notFound(w, r.Request)
		return
	}
	cards, err := h.cards(r.account, open)
	if err != nil {
		h.failReq(w, r, err)
		return
	}
	d.Cards, d.Owner, d.CanTest = cards, r.isOwner, h.cfg.Gateway != nil
	for i := range cards {
		if cards[i].Open {
			d.Open = &cards[i]
		}
	}
	d.Alerts = h.readerAlerts(r.account)
	if d.Open != nil {
		d.Terms = contractTerms(d.Open.Status.Contract)
		if d.Reader = h.readerCardOf(r.account, open); d.Reader != nil {
			d.Reader.Error, d.Reader.Test = d.ReaderError, d.ReaderTest
		}
	}
	if d.Open != nil && d.BaseURL == "" && d.APIVersion == "" {
		d.BaseURL, d.APIVersion = d.Open.Status.BaseURL, d.Open.Status.APIVersion
	}
	title := "Bring Your Own Key"
	if d.Open != nil {
		title = d.Open.Title + " · " + title
	}
	h.render(w, r.Request, status, "byok", r, title, d)
}

// byokPost handles the provider form: action save (register or rotate; an
// empty key removes, as the guide says), remove, test, or policy.
func (h *Handler) byokPost(w http.ResponseWriter, r *request) {
	provider := r.PathValue("provider")
	if providers.Get(provider) == nil {
		h.notFound(w, r.Request)
		return
	}
	key := r.PostFormValue("api_key")
	d := byokData{BaseURL: strings.TrimSpace(r.PostFormValue("base_url")), APIVersion: strings.TrimSpace(r.PostFormValue("api_version"))}
	action := r.PostFormValue("action")
	switch action {
	case "save":
		if strings.TrimSpace(key) == "" {
			st, err := h.ops.BYOK(r.account, provider)
			if err != nil {
				h.failReq(w, r, err)
				return
			}
			if st.Status == "not_configured" {
				d.Error = "Paste an API key to save."
				h.renderBYOK(w, r, http.StatusBadRequest, provider, d)
				return
			}
			action = "remove"
			break
		}
		in := ops.BYOKInput{APIKey: &key, BaseURL: d.BaseURL, APIVersion: d.APIVersion}
		if _, err := h.ops.SaveBYOK(r.account, provider, in); err != nil {
			st, msg := h.userError(err)
			d.Error = msg
			h.renderBYOK(w, r, st, provider, d)
			return
		}
		http.Redirect(w, r.Request, Prefix+"/byok/"+provider+"?done=saved", http.StatusSeeOther)
		return
	case "remove":
	case "test":
		h.byokTest(w, r, provider, key, d)
		return
	case "policy":
		on := r.PostFormValue("byok_only") == "on"
		if _, err := h.ops.SetBYOKOnly(r.account, provider, on); err != nil {
			h.failReq(w, r, err)
			return
		}
		http.Redirect(w, r.Request, Prefix+"/byok/"+provider+"?done=policy", http.StatusSeeOther)
		return
	default:
		d.Error = "Unknown action."
		h.renderBYOK(w, r, http.StatusBadRequest, provider, d)
		return
	}
	// remove
	if err := h.ops.DeleteBYOK(r.account, provider); err != nil {
		st, msg := h.userError(err)
		if st == http.StatusNotFound {
			msg = "There is no key to remove."
		}
		d.Error = msg
		h.renderBYOK(w, r, st, provider, d)
		return
	}
	http.Redirect(w, r.Request, Prefix+"/byok/"+provider+"?done=removed", http.StatusSeeOther)
}

// byokTest tests the pasted key, or the stored one when the field is empty
// (ops.TestBYOK: the admin API's checks, so a test cannot probe internal
// addresses; a success with the stored key clears its invalid mark, a
// rejection sets one).
func (h *Handler) byokTest(w http.ResponseWriter, r *request, provider, key string, d byokData) {
	if h.cfg.Gateway == nil {
		d.Error = "Testing is not available on this server."
		h.renderBYOK(w, r, http.StatusServiceUnavailable, provider, d)
		return
	}
	var in ops.TestInput
	if key = providers.NormalizeKey(key); key != "" {
		in = ops.TestInput{APIKey: &key, BaseURL: d.BaseURL, APIVersion: d.APIVersion}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	out, err := h.ops.TestBYOK(ctx, r.account, provider, in)
	if err != nil {
		st, msg := h.userError(err)
		if errors.Is(err, ops.ErrNoStoredKey) {
			st, msg = http.StatusBadRequest, "Paste a key to test, or save one first."
		}
		d.Error = msg
		h.renderBYOK(w, r, st, provider, d)
		return
	}
	d.Test = &out.TestResult
	h.renderBYOK(w, r, http.StatusOK, provider, d)
}

type errText string

func (e errText) Error() string { return string(e) }
