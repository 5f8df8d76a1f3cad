package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// listBYOK: GET accounts/{account}/byok → one slot per provider (a page
// of them with limit or cursor, as every list takes).
func listBYOK(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	account := r.PathValue("account")
	return listRoute(w, r, func(p ops.Page) (ops.List[ops.BYOKStatus], error) { return o.BYOKList(account, p) })
}

func getBYOK(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	st, err := o.BYOK(r.PathValue("account"), r.PathValue("provider"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// putBYOK: PUT (or POST) accounts/{account}/byok/{provider} with
// ops.BYOKInput registers or rotates the key → the slot.
func putBYOK(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	provider := r.PathValue("provider")
	if err := ops.CheckProvider(provider); err != nil {
		return err
	}
	var in ops.BYOKInput
	if err := decode(r, &in); err != nil {
		return err
	}
	st, err := o.SaveBYOK(r.PathValue("account"), provider, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

type policyIn struct {
	BYOKOnly *bool `json:"byok_only"`
}

// patchBYOK changes the account's policy for a provider without touching
// its key: {"byok_only": true} keeps the provider's traffic on the
// account's own contract (or refuses it), even where a route lists a
// platform target.
func patchBYOK(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	provider := r.PathValue("provider")
	if err := ops.CheckProvider(provider); err != nil {
		return err
	}
	var in policyIn
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.BYOKOnly == nil {
		return errorf(http.StatusBadRequest, "byok_only is required: {\"byok_only\": true}")
	}
	st, err := o.SetBYOKOnly(r.PathValue("account"), provider, *in.BYOKOnly)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func deleteBYOK(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	if err := o.DeleteBYOK(r.PathValue("account"), r.PathValue("provider")); err != nil {
		return err
	}
	return noContent(w)
}

// testBYOK: POST accounts/{account}/byok/{provider}/test checks a key with
// a cheap authenticated call through the running gateway: the key in the
// body (with its extras, checked as PUT checks them; nothing is saved),
// or, with no body, the account's stored key, whose invalid mark a success
// clears and a rejection sets.
func testBYOK(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	account, provider := r.PathValue("account"), r.PathValue("provider")
	if err := ops.CheckProvider(provider); err != nil {
		return err
	}
	if _, err := o.Account(account); err != nil {
		return err
	}
	var in ops.TestInput
	if err := decodeBody(r, &in, true); err != nil {
		return err
	}
	out, err := o.TestBYOK(r.Context(), account, provider, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}
