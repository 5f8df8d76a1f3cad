package admin

import (
	"net/http"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/ops"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// usage answers GET usage with the hourly or daily usage rollups:
// ?account=&from=&to=&bucket=hour|day&group_by=provider,model.
func usage(w http.ResponseWriter, r *http.Request, o *ops.Ops) error {
	q := r.URL.Query()
	uq := store.UsageQuery{AccountID: q.Get("account"), Bucket: q.Get("bucket")}
	for _, g := range strings.Split(q.Get("group_by"), ",") {
		if g = strings.TrimSpace(g); g != "" {
			uq.GroupBy = append(uq.GroupBy, g)
		}
	}
	var err error
	if uq.From, uq.To, err = timeRange(q); err != nil {
		return err
	}
	res, err := o.Usage(r.Context(), uq)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
