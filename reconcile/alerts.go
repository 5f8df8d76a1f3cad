package reconcile

import (
	"cmp"
	"slices"
	"time"
)

// Alert says that one of our keys was used outside the gateway: the
// provider recorded tokens on it, beyond the tolerance, that the gateway
// never sent. The wiring turns it into a log line, a metric, a line on the
// BYOK card and an entry in the admin API; here it is data.
type Alert struct {
	Account    string `json:"account"`
	Provider   string `json:"provider"`
	Credential string `json:"credential"`
	KeyID      string `json:"provider_key_id"`
	// First and Last are the first and last hour with out-of-band use in
	// the window; Hours how many hours had some.
	First time.Time `json:"first_hour"`
	Last  time.Time `json:"last_hour"`
	Hours int       `json:"hours"`
	// ExcessTokens is the tokens the provider recorded beyond the
	// gateway's, summed over those hours; ExcessRequests the same for
	// requests where the provider counts them (-1 where it does not).
	ExcessTokens   int64    `json:"excess_tokens"`
	ExcessRequests int64    `json:"excess_requests"`
	Models         []string `json:"models"`
}

// alerts gathers the out-of-band token rows into one alert per key.
func (c *comparison) alerts(rows []Row) []Alert {
	by := map[string]*Alert{}
	hours := map[string]map[int64]bool{}
	for _, r := range rows {
		if r.Kind != KindTokens || r.Status != StatusOutOfBand {
			continue
		}
		a := by[r.Credential]
		if a == nil {
			a = &Alert{Account: r.Account, Provider: r.Provider, Credential: r.Credential, KeyID: r.KeyID, First: r.Start, Last: r.Start}
			by[r.Credential] = a
			hours[r.Credential] = map[int64]bool{}
		}
		if r.Start.Before(a.First) {
			a.First = r.Start
		}
		if r.Start.After(a.Last) {
			a.Last = r.Start
		}
		if !hours[r.Credential][r.Start.Unix()] {
			hours[r.Credential][r.Start.Unix()] = true
			a.Hours++
		}
		a.ExcessTokens += max(r.Delta.Tokens.Total(), 0)
		if r.ProviderSide.Requests < 0 || a.ExcessRequests < 0 {
			a.ExcessRequests = -1
		} else {
			a.ExcessRequests += max(r.ProviderSide.Requests-r.Gateway.Requests, 0)
		}
		if !slices.Contains(a.Models, r.Model) {
			a.Models = append(a.Models, r.Model)
		}
	}
	out := make([]Alert, 0, len(by))
	for _, a := range by {
		slices.Sort(a.Models)
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b Alert) int { return cmp.Compare(a.Credential, b.Credential) })
	return out
}
