package ops

import "github.com/agentrouter/caddy-agentrouter/providers"

// ProviderInfo describes a supported provider.
type ProviderInfo struct {
	Name           string `json:"name"`
	Implemented    bool   `json:"implemented"`
	PlatformKey    bool   `json:"platform_key"`
	DefaultBaseURL string `json:"default_base_url,omitempty"`
}

// Providers lists the supported providers, in providers.Names order, with
// whether the running config has a platform key for each.
func (o *Ops) Providers() []ProviderInfo {
	out := make([]ProviderInfo, 0, len(providers.Names))
	for _, name := range providers.Names {
		p := providers.Get(name)
		out = append(out, ProviderInfo{Name: name, Implemented: p.Implemented,
			PlatformKey: o.platformKey(name), DefaultBaseURL: p.DefaultBaseURL})
	}
	return out
}
