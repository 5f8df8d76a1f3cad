package reconcile

import (
	"fmt"
	"time"
)

// Token rows: per (credential, model, UTC hour), the gateway's tokens
// against the provider's, class by class.
//
// The verdict of a row of one of our credentials:
//
//   - match: equal in every class.
//   - out_of_band: the provider's total is above the gateway's by more than
//     the tolerance, after netting the shortfall of the settled hours on
//     either side (a request the two sides put on either side of an hour
//     boundary is drift, not a leak). A provider's late data only ever adds
//     to its count, so the excess is conclusive as soon as it is visible:
//     the first run after it shows flags it.
//   - pending: not settled, and the provider is below the gateway in every
//     class (its data may still arrive).
//   - drift: any other difference.
//
// A provider row on a key that is not one of our credentials (or a null
// key) is provider_only; a gateway row of a credential without a mapped
// key is unmapped.

type tokenKey struct {
	cred, key, model string
	hour             int64
}

type tokenAcc struct {
	gw, prov       Tokens
	gwReq, provReq int64
	hasGW, hasProv bool
	provReqUnknown bool
	workspace      string
}

func (c *comparison) tokenRows() []Row {
	acc := map[tokenKey]*tokenAcc{}
	get := func(k tokenKey) *tokenAcc {
		a := acc[k]
		if a == nil {
			a = &tokenAcc{}
			acc[k] = a
		}
		return a
	}
	for _, g := range c.in.Gateway {
		hour := g.Hour.UTC().Truncate(time.Hour)
		if g.CostOnly || !c.mine(g) || !c.in.Window.Contains(hour) {
			continue
		}
		a := get(tokenKey{g.Credential, c.credKey[g.Credential], c.canon(g.Model), hour.Unix()})
		a.gw.Add(g.Tokens)
		a.gwReq += g.Requests
	}
	for _, u := range c.in.Usage {
		hour := u.Hour.UTC().Truncate(time.Hour)
		if !c.in.Window.Contains(hour) {
			continue
		}
		cred := ""
		if u.KeyID != "" {
			cred = c.keyCred[u.KeyID]
		}
		a := get(tokenKey{cred, u.KeyID, c.canon(u.Model), hour.Unix()})
		a.prov.Add(u.Tokens)
		a.workspace = u.Workspace
		if u.Requests < 0 {
			a.provReqUnknown = true
		} else {
			a.provReq += u.Requests
		}
	}
	// A settled hour's shortfall (gateway above provider), for netting a
	// neighbour's excess.
	shortfall := func(k tokenKey) int64 {
		a := acc[k]
		if a == nil || !c.tol.settled(time.Unix(k.hour, 0).Add(time.Hour), c.in.Now) {
			return 0
		}
		return max(a.gw.Total()-a.prov.Total(), 0)
	}
	rows := make([]Row, 0, len(acc))
	for k, a := range acc {
		start := time.Unix(k.hour, 0).UTC()
		r := Row{Kind: KindTokens, Account: c.in.Scope.Account, Provider: c.in.Scope.Provider, Credential: k.cred,
			KeyID: k.key, Model: k.model, Start: start, End: start.Add(time.Hour),
			Settled: c.tol.settled(start.Add(time.Hour), c.in.Now)}
		if k.cred != "" {
			gw := a.gw
			r.Gateway = &Side{Requests: a.gwReq, Tokens: &gw}
		}
		if k.cred == "" || k.key != "" {
			prov := a.prov
			r.ProviderSide = &Side{Requests: a.provReq, Tokens: &prov}
			if a.provReqUnknown {
				r.ProviderSide.Requests = -1
			}
		}
		switch {
		case k.cred == "":
			r.Status = StatusProviderOnly
			r.Note = providerOnlyNote(k.key, a.workspace)
		case k.key == "":
			r.Status = StatusUnmapped
			r.Note = "the credential's provider key is not known: the owner must choose it"
		default:
			d := a.prov.Minus(a.gw)
			r.Delta.Tokens = &d
			prev, next := k, k
			prev.hour, next.hour = k.hour-3600, k.hour+3600
			excess := max(d.Total(), 0) - shortfall(prev) - shortfall(next)
			r.Status, r.Note = tokenVerdict(d, excess, c.tol.OutOfBandTokens, r.Settled)
		}
		rows = append(rows, r)
	}
	return rows
}

func tokenVerdict(d Tokens, unexplained, tol int64, settled bool) (Status, string) {
	switch {
	case d == Tokens{}:
		return StatusMatch, ""
	case unexplained > tol:
		return StatusOutOfBand, fmt.Sprintf("the provider recorded %d tokens more on this key than the gateway sent with it", unexplained)
	case !settled && d.Input <= 0 && d.CacheRead <= 0 && d.CacheWrite5m <= 0 && d.CacheWrite1h <= 0 && d.Output <= 0:
		return StatusPending, "the provider's figures for this hour may still arrive"
	case d.Total() > 0:
		return StatusDrift, fmt.Sprintf("the provider recorded %d tokens more (within the out-of-band tolerance, or matched by a neighbouring hour's shortfall)", d.Total())
	case d.Total() < 0:
		return StatusDrift, fmt.Sprintf("the provider recorded %d tokens fewer than the gateway sent", -d.Total())
	}
	return StatusDrift, "the same total, split differently between token classes"
}

func providerOnlyNote(key, workspace string) string {
	where := ""
	if workspace != "" {
		where = " (" + workspace + ")"
	}
	if key == "" {
		return "usage the provider records without a key id" + where + ": Workbench, the console, or a deleted key"
	}
	return "usage on provider key " + key + where + ", which is not one of this account's credentials"
}
