package console

import (
	"net/http"
	"strings"
	"time"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
)

// termView is one contract term on the BYOK card.
type termView struct {
	pricing.ContractTerm
	// InForce: the term that prices requests starting now; Scheduled: it
	// takes effect later (an owner may still remove it).
	InForce, Scheduled bool
}

// contractTerms lays out a credential's terms for its card.
func contractTerms(terms []pricing.ContractTerm) []termView {
	t := now()
	out := make([]termView, len(terms))
	inForce := -1
	for i, term := range terms {
		out[i] = termView{ContractTerm: term, Scheduled: term.EffectiveFrom.After(t)}
		if !out[i].Scheduled {
			inForce = i
		}
	}
	if inForce >= 0 {
		out[inForce].InForce = true
	}
	return out
}

// contractPost handles the contract form of a BYOK card (owners only):
// action add (a term from a date, today meaning now, never earlier) or
// remove (a term not yet in force). Errors re-render the card with the
// reason; nothing is changed.
func (h *Handler) contractPost(w http.ResponseWriter, r *request) {
	provider := r.PathValue("provider")
	if providers.Get(provider) == nil {
		h.notFound(w, r.Request)
		return
	}
	var err error
	switch r.PostFormValue("action") {
	case "add":
		var t pricing.ContractTerm
		if t, err = termFromForm(r); err == nil {
			_, err = h.ops.AddContractTerm(r.account, provider, t)
		}
	case "remove":
		from, perr := time.Parse(time.RFC3339Nano, r.PostFormValue("from"))
		if perr != nil {
			err = errText("Unknown term.")
			break
		}
		_, err = h.ops.DeleteContractTerm(r.account, provider, from)
	default:
		err = errText("Unknown action.")
	}
	if err != nil {
		st, msg := h.userError(err)
		if ops.KindOf(err) == ops.Conflict {
			msg = "That term has taken effect: requests were priced under it, so it stays."
		}
		if _, ok := err.(errText); ok {
			st = http.StatusBadRequest
		}
		h.renderBYOK(w, r, st, provider, byokData{ContractError: msg})
		return
	}
	http.Redirect(w, r.Request, Prefix+"/byok/"+provider+"?done=contract#contract", http.StatusSeeOther)
}

// termFromForm reads the contract form: effective_from (a date: that UTC
// midnight, or now when it is today or empty), discount (percent), one
// optional rate (model with input, cache read and output prices), note.
func termFromForm(r *request) (pricing.ContractTerm, error) {
	var t pricing.ContractTerm
	if v := strings.TrimSpace(r.PostFormValue("effective_from")); v != "" {
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return t, errText("The start date must be a date (YYYY-MM-DD).")
		}
		if today := now().UTC().Truncate(24 * time.Hour); d.After(today) {
			t.EffectiveFrom = d
		} else if d.Before(today) {
			return t, errText("The start date is in the past: a contract term applies to requests made after it is saved, never to earlier ones.")
		}
	}
	t.DiscountPercent = strings.TrimSuffix(strings.TrimSpace(r.PostFormValue("discount")), "%")
	t.Note = strings.TrimSpace(r.PostFormValue("note"))
	if model := strings.TrimSpace(r.PostFormValue("rate_model")); model != "" {
		t.Rates = []pricing.ContractRate{{Model: model, Prices: pricing.PriceSet{
			Input:     strings.TrimSpace(r.PostFormValue("rate_input")),
			CacheRead: strings.TrimSpace(r.PostFormValue("rate_cache_read")),
			Output:    strings.TrimSpace(r.PostFormValue("rate_output")),
		}}}
	}
	return t, nil
}
