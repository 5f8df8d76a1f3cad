package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

type keyIn struct {
	Name string `json:"name"`
	// Profile binds the key to a routing profile of the running config.
	Profile string `json:"profile"`
}

type keyPatch struct {
	// Profile rebinds the key; "" unbinds it.
	Profile *string `json:"profile"`
}

// createKey: POST accounts/{account}/keys {"name", "profile"} (or no body)
// → 201 the key with its plaintext, shown this once.
func createKey(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var in keyIn
	if err := decodeBody(r, &in, true); err != nil {
		return err
	}
	k, err := o.CreateKey(r.PathValue("account"), in.Name, in.Profile)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusCreated, k)
}

// listKeys: GET accounts/{account}/keys → the account's keys, oldest
// first (a page with limit or cursor); never a key's plaintext.
func listKeys(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	account := r.PathValue("account")
	return listRoute(w, r, func(p ops.Page) (ops.List[store.APIKey], error) { return o.Keys(account, p) })
}

// patchKey changes an API key's routing profile: {"profile": "team"} binds
// it, {"profile": ""} unbinds it. The next request with the key uses it.
func patchKey(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var in keyPatch
	if err := decode(r, &in); err != nil {
		return err
	}
	if in.Profile == nil {
		return errorf(http.StatusBadRequest, "profile is required: {\"profile\": \"team\"} (\"\" unbinds)")
	}
	k, err := o.SetKeyProfile(r.PathValue("account"), r.PathValue("key"), *in.Profile)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k)
}

func revokeKey(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	if err := o.RevokeKey(r.PathValue("account"), r.PathValue("key")); err != nil {
		return err
	}
	return noContent(w)
}
