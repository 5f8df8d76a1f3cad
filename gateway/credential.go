package gateway

import (
	"time"

	"github.com/agentrouter/caddy-agentrouter/pricing"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/routing"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// credential is what one upstream attempt is sent with.
type credential struct {
	source   string
	key      string
	endpoint providers.Endpoint
	secret   *store.Secret // BYOK only
	// guarded: the endpoint is the tenant's own base URL, dialed only
	// where the egress policy allows.
	guarded bool
	// contract is the payer's contract terms the request is priced under:
	// the BYOK credential's, or the platform's for the provider.
	contract *pricing.Contract
}

// pickCredential chooses the credential for one attempt from one snapshot:
// the account's BYOK key for the provider when the pin allows it, else the
// platform key when the pin and the account's policy allow it. A BYOK key
// the provider rejected is not sent again during its cool-down: one request
// per cool-down probes it (ClaimProbe), the others skip it. A skipped lone
// attempt is answered byok_credential_rejected at once, never with a silent
// switch to the platform; a fallback chain moves on. A zero now claims no
// probe (listing models).
func (g *Gateway) pickCredential(snap *store.Snapshot, account, provider string, pin routing.Pin, now time.Time) (credential, string) {
	pc := g.providers[provider]
	if pin != routing.PinPlatform {
		if sec := snap.Credential(account, provider); sec != nil {
			if !now.IsZero() && !sec.ClaimProbe(now, g.cooldown) {
				return credential{}, skipInvalid
			}
			// A base URL of the customer's own is dialed only where the
			// egress policy allows.
			return credential{source: SourceBYOK, key: sec.Key(), endpoint: byokEndpoint(pc, sec.Extras), secret: sec,
				guarded: sec.Extras.BaseURL != "", contract: snap.Contract(account, provider)}, ""
		}
		if pin == routing.PinBYOK {
			return credential{}, skipNoBYOK
		}
	}
	if snap.Policy(account, provider).BYOKOnly {
		return credential{}, skipPolicy
	}
	if pc.APIKey == "" {
		if pin == routing.PinPlatform {
			return credential{}, skipNoPlatform
		}
		return credential{}, skipNoCredential
	}
	return credential{source: SourcePlatform, key: pc.APIKey, endpoint: pc.Endpoint, contract: pc.Contract}, ""
}

// byokEndpoint is the endpoint a customer key is sent to: the platform's for
// the provider, with the key's own extras laid over it. The platform's
// organization and project never go with a customer's key.
func byokEndpoint(pc *ProviderConfig, extras store.Extras) providers.Endpoint {
	var ep providers.Endpoint
	if pc != nil {
		ep = pc.Endpoint
	}
	ep.Organization, ep.Project = extras.Organization, extras.Project
	if extras.BaseURL != "" {
		ep.BaseURL = extras.BaseURL
	}
	if extras.APIVersion != "" {
		ep.APIVersion = extras.APIVersion
	}
	return ep
}

// scrub removes from upstream text what the client must not see: the key
// that served (and anything shaped like a key) and, when the platform's key
// served, the platform's account ids (its OpenAI organization and project).
// A BYOK tenant sees its own.
func (c *credential) scrub(s string) string {
	b := providers.Scrub([]byte(s), c.key)
	if c.source == SourcePlatform {
		b = providers.ScrubAccountIDs(b, c.endpoint.Organization, c.endpoint.Project)
	}
	return string(b)
}
