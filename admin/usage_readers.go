package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
)

// Usage readers: an account's admin key per provider (OpenAI, Anthropic)
// that reads the provider's own usage and cost records, and the
// platform's own (the routes without an account: r.PathValue("account")
// is then "", the platform's scope in ops).

// listUsageReaders: GET [accounts/{account}/]usage_readers → one slot per
// provider with a usage reader.
func listUsageReaders(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	out, err := o.UsageReaders(r.PathValue("account"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func getUsageReader(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	st, err := o.UsageReader(r.PathValue("account"), r.PathValue("provider"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// putUsageReader: PUT [accounts/{account}/]usage_readers/{provider} with
// {"api_key": "sk-admin-…"} seals the admin key → the slot (masked).
func putUsageReader(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	account, provider := r.PathValue("account"), r.PathValue("provider")
	if err := ops.CheckReaderProvider(provider); err != nil {
		return err
	}
	var in ops.UsageReaderInput
	if err := decode(r, &in); err != nil {
		return err
	}
	st, err := o.SaveUsageReader(account, provider, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func deleteUsageReader(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	if err := o.DeleteUsageReader(r.PathValue("account"), r.PathValue("provider")); err != nil {
		return err
	}
	return noContent(w)
}

// testUsageReader: POST [accounts/{account}/]usage_readers/{provider}/test
// makes one cheap authenticated call to the provider's usage endpoint,
// with the admin key in the body (not saved) or, with no body, the stored
// one.
func testUsageReader(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	account, provider := r.PathValue("account"), r.PathValue("provider")
	if err := ops.CheckReaderProvider(provider); err != nil {
		return err
	}
	var in ops.UsageReaderInput
	if err := decodeBody(r, &in, true); err != nil {
		return err
	}
	out, err := o.TestUsageReader(r.Context(), account, provider, in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}
