package admin

import (
	"net/http"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// listLogs: GET logs?account=&key_id=&provider=&credential_source=&source=
// &status=&from=&to=&limit=&before= → a page of the request log, newest
// first, with the cursor of the next ("next") and, in a fleet, the members
// that did not answer ("missing").
func listLogs(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	q := r.URL.Query()
	f := store.LogFilter{AccountID: q.Get("account"), KeyID: q.Get("key_id"), Before: q.Get("before"),
		Provider: q.Get("provider"), CredentialSource: q.Get("credential_source"), Source: q.Get("source")}
	var err error
	if f.Limit, err = intParam(q, "limit", 1, "limit must be a number from 1 to 1000"); err != nil {
		return err
	}
	if f.Status, err = intParam(q, "status", 1, "status must be an HTTP status from 100 to 599"); err != nil {
		return err
	}
	if f.From, f.To, err = timeRange(q); err != nil {
		return err
	}
	page, err := o.Logs(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func getLog(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	rec, err := o.Log(r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rec)
}
