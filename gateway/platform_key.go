package gateway

import (
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// PlatformKeyID identifies the platform key configured for provider
// without revealing it: its fingerprint (store.Fingerprint) and masked
// form (providers.Mask); both "" when none is configured. The
// reconciliation of the platform's own contract matches it to the
// provider's key list.
func (g *Gateway) PlatformKeyID(provider string) (fingerprint, masked string) {
	pc := g.providers[provider]
	if pc == nil || pc.APIKey == "" {
		return "", ""
	}
	return store.Fingerprint(pc.APIKey), providers.Mask(pc.APIKey)
}
