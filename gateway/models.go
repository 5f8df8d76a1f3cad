package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// ModelInfo is one model an account can ask for.
type ModelInfo struct {
	// ID is the name to send as "model".
	ID string `json:"id"`
	// Provider serves the model; "" for an alias or a route, whose targets
	// may span providers.
	Provider string `json:"provider,omitempty"`
	// OwnedBy is /v1/models' owned_by: the provider, or "agent_router" for
	// an alias or a route.
	OwnedBy string `json:"owned_by"`
}

// ModelsFor lists what GET /v1/models answers for the account: for each
// provider it can reach with a BYOK or the platform key, the models declared
// in the config and the catalog's examples; then every alias and route, the
// named profile's included (an unknown or empty profile lists the site's).
func (g *Gateway) ModelsFor(accountID, profile string) []ModelInfo {
	routes := g.routes
	if t, ok := g.profiles[profile]; ok {
		routes = t
	}
	return g.modelsFor(g.store.Snapshot(), accountID, routes)
}

func (g *Gateway) modelsFor(snap *store.Snapshot, account string, routes *routing.Table) []ModelInfo {
	var out []ModelInfo
	for _, name := range providers.Names {
		p := providers.Get(name)
		if !p.Implemented {
			continue
		}
		if _, reason := g.pickCredential(snap, account, name, routing.PinAuto, time.Time{}); reason != "" {
			continue
		}
		seen := map[string]bool{}
		for _, m := range g.declaredNames {
			if g.declared[m].provider.Name == name {
				seen[m] = true
				out = append(out, ModelInfo{ID: m, Provider: name, OwnedBy: name})
			}
		}
		for _, m := range providers.ExampleModels[name] {
			if !seen[m] {
				out = append(out, ModelInfo{ID: m, Provider: name, OwnedBy: name})
			}
		}
	}
	for _, name := range routes.Names() {
		out = append(out, ModelInfo{ID: name, OwnedBy: "agent_router"})
	}
	return out
}

// serveModels answers GET /v1/models with ModelsFor's list.
func (g *Gateway) serveModels(x *exchange) {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i, m := range g.modelsFor(x.snap, x.c.account, x.c.routes) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":`)
		b.WriteString(strconv.Quote(m.ID))
		b.WriteString(`,"object":"model","created":0,"owned_by":`)
		b.WriteString(strconv.Quote(m.OwnedBy))
		b.WriteByte('}')
	}
	b.WriteString("]}\n")
	x.w.Header()["Content-Type"] = []string{"application/json"}
	x.rec.Status = http.StatusOK
	x.w.WriteHeader(http.StatusOK)
	x.w.Write(b.Bytes())
}
