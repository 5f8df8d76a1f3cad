package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
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

func listKeys(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	keys, err := o.Keys(r.PathValue("account"), ops.Page{})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, keys.Items)
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
