package admin

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/limits"
	"github.com/agentrouter/caddy-agentrouter/ops"
)

// Budgets and rate limits (limits/WIRING.md §7). The admin API is the
// operator: it sets anything, platform budgets and caps included. Every
// check runs before anything is stored; a refusal is a 400 naming the
// object and the field, and changes nothing.

// decodeLimit decodes a limit object strictly, saying first which amount
// field is wrong and why (the decoder's own message would hide it).
func decodeLimit(r *http.Request, v any) error {
	var raw json.RawMessage
	if err := decode(r, &raw); err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) == nil {
		for _, f := range []string{"amount_usd", "budget_usd"} {
			if a, ok := fields[f]; ok {
				var u limits.USD
				if err := u.UnmarshalJSON(a); err != nil {
					return errorf(http.StatusBadRequest, "%s: %v", f, err)
				}
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid JSON body: %v", jsonErr(err))
	}
	return nil
}

// allLimits: GET limits → every account's stored set.
func allLimits(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	return writeJSON(w, http.StatusOK, o.AllLimits())
}

// accountLimits: GET accounts/{account}/limits → the account's set, the
// state of every limit on it (the config's defaults included) and its
// recent alerts.
func accountLimits(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	l, err := o.AccountLimits(r.PathValue("account"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, l)
}

// putBudget: PUT accounts/{account}/budgets/{id} with a budget → the
// budget as stored (defaults filled).
func putBudget(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var b limits.Budget
	if err := decodeLimit(r, &b); err != nil {
		return err
	}
	b, err := o.PutBudget(r.PathValue("account"), r.PathValue("id"), b, ops.ByOperator)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

// deleteBudget: DELETE accounts/{account}/budgets/{id} → 204.
func deleteBudget(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	if err := o.DeleteBudget(r.PathValue("account"), r.PathValue("id"), ops.ByOperator); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// putRateLimit: PUT accounts/{account}/rate_limits/{id} with a rate limit
// → the rate limit as stored.
func putRateLimit(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var rl limits.RateLimit
	if err := decodeLimit(r, &rl); err != nil {
		return err
	}
	rl, err := o.PutRateLimit(r.PathValue("account"), r.PathValue("id"), rl, ops.ByOperator)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rl)
}

// deleteRateLimit: DELETE accounts/{account}/rate_limits/{id} → 204.
func deleteRateLimit(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	if err := o.DeleteRateLimit(r.PathValue("account"), r.PathValue("id"), ops.ByOperator); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// putSpillover: PUT accounts/{account}/spillover with {"amount_usd": "50"}
// → the account's set. 0 is strict (no fallback from a failing BYOK key
// to the platform key).
func putSpillover(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var sp limits.Spillover
	if err := decodeLimit(r, &sp); err != nil {
		return err
	}
	set, err := o.PutSpillover(r.PathValue("account"), &sp)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, set)
}

// deleteSpillover: DELETE accounts/{account}/spillover → the account's
// set (no allowance: fallbacks to the platform key are not limited here).
func deleteSpillover(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	set, err := o.PutSpillover(r.PathValue("account"), nil)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, set)
}

// putCaps: PUT accounts/{account}/caps with the caps → the account's set.
// Caps below a limit an owner already set are a 400 naming it.
func putCaps(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	var c limits.Caps
	if err := decodeLimit(r, &c); err != nil {
		return err
	}
	set, err := o.PutCaps(r.PathValue("account"), &c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, set)
}

// deleteCaps: DELETE accounts/{account}/caps → the account's set.
func deleteCaps(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	set, err := o.PutCaps(r.PathValue("account"), nil)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, set)
}
