package reconcile

import (
	"fmt"
	"slices"
	"time"
)

// Cost rows: per UTC day, the gateway's priced cost against the provider's
// bill, for each of our credentials (OpenAI, whose costs group by key) or
// each workspace that holds our keys (Anthropic, whose cost report cannot
// group by key).
//
// The verdict: match within the tolerance (1 % of the larger side by
// default); out_of_band when the provider billed more and a token row of
// the same day found out-of-band use; pending when the provider billed
// less and the day is not settled; drift otherwise. A provider's bill only
// grows as late data arrives, so a bill above ours is conclusive before
// the day settles.

type dayKey struct {
	id, key string // credential (or workspace) and provider key
	day     int64
}

type costAcc struct {
	gw, gwUnpriced, gwReq int64
	prov, other           int64
}

func (a *costAcc) addGateway(g GatewayUsage) {
	a.gw, a.gwUnpriced, a.gwReq = a.gw+g.CostNanoUSD, a.gwUnpriced+g.Unpriced, a.gwReq+g.Requests
}

func (a *costAcc) addProvider(p ProviderCost) {
	a.prov, a.other = a.prov+p.NanoUSD, a.other+p.OtherNanoUSD
}

func dayOf(t time.Time) int64 { return t.UTC().Truncate(day).Unix() }

// oobDays are the (credential, day) pairs with an out-of-band token row.
func oobDays(rows []Row) map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, r := range rows {
		if r.Kind == KindTokens && r.Status == StatusOutOfBand {
			out[[2]string{r.Credential, fmt.Sprint(dayOf(r.Start))}] = true
		}
	}
	return out
}

func (c *comparison) gatewayCosts(add func(g GatewayUsage, d int64)) {
	for _, g := range c.in.Gateway {
		d := dayOf(g.Hour)
		if c.mine(g) && c.in.Window.Contains(time.Unix(d, 0)) {
			add(g, d)
		}
	}
}

func (c *comparison) costRowsByKey(tokenRows []Row) []Row {
	acc := map[dayKey]*costAcc{}
	get := func(k dayKey) *costAcc {
		if acc[k] == nil {
			acc[k] = &costAcc{}
		}
		return acc[k]
	}
	c.gatewayCosts(func(g GatewayUsage, d int64) {
		get(dayKey{g.Credential, c.credKey[g.Credential], d}).addGateway(g)
	})
	for _, p := range c.in.Costs {
		d := dayOf(p.Day)
		if !c.in.Window.Contains(time.Unix(d, 0)) {
			continue
		}
		cred := ""
		if p.KeyID != "" {
			cred = c.keyCred[p.KeyID]
		}
		get(dayKey{cred, p.KeyID, d}).addProvider(p)
	}
	oob := oobDays(tokenRows)
	rows := make([]Row, 0, len(acc))
	for k, a := range acc {
		r := c.costRow(k.day, a)
		r.Credential, r.KeyID = k.id, k.key
		switch {
		case k.id == "":
			r.Gateway = nil
			r.Status, r.Note = StatusProviderOnly, providerOnlyNote(k.key, "")
		case k.key == "":
			r.ProviderSide = nil
			r.Status, r.Note = StatusUnmapped, "the credential's provider key is not known: the owner must choose it"
		default:
			c.costVerdict(&r, a, oob[[2]string{k.id, fmt.Sprint(k.day)}])
		}
		rows = append(rows, r)
	}
	return rows
}

// costRow fills the common part of a cost row from its sums.
func (c *comparison) costRow(d int64, a *costAcc) Row {
	start := time.Unix(d, 0).UTC()
	return Row{Kind: KindCost, Account: c.in.Scope.Account, Provider: c.in.Scope.Provider, Start: start, End: start.Add(day),
		Settled:      c.tol.settled(start.Add(day), c.in.Now),
		Gateway:      &Side{Requests: a.gwReq, CostNanoUSD: a.gw, CostUSD: usd(a.gw), Unpriced: a.gwUnpriced},
		ProviderSide: &Side{Requests: -1, CostNanoUSD: a.prov, CostUSD: usd(a.prov), OtherNanoUSD: a.other}}
}

func (c *comparison) costVerdict(r *Row, a *costAcc, oob bool) {
	diff := a.prov - a.gw
	r.Delta.CostNanoUSD, r.Delta.CostPPM = diff, relPPM(diff, max(abs(a.gw), abs(a.prov)))
	switch {
	case c.tol.costMatch(a.gw, a.prov):
		r.Status = StatusMatch
	case diff > 0 && oob:
		r.Status, r.Note = StatusOutOfBand, "the provider billed more, and this key had out-of-band use that day"
	case diff < 0 && !r.Settled:
		r.Status, r.Note = StatusPending, "the provider's bill for this day may still grow"
	default:
		r.Status = StatusDrift
		r.Note = fmt.Sprintf("the provider billed %s USD against the gateway's %s USD", usd(a.prov), usd(a.gw))
	}
	if a.gwUnpriced > 0 {
		r.Note = joinNote(r.Note, fmt.Sprintf("%d gateway requests had no price and are not in its cost", a.gwUnpriced))
	}
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// costRowsByWorkspace compares an Anthropic workspace's daily token cost
// with what the gateway priced for our credentials whose keys live in it.
// The workspace's bill may include keys that are not ours (and Workbench):
// the provider side is the bill's share that our keys' tokens make up, by
// their list-price value in the provider's own usage report (SharePPM;
// the whole bill when the workspace is ours alone), beside the whole.
func (c *comparison) costRowsByWorkspace(tokenRows []Row) []Row {
	acc := map[dayKey]*costAcc{}
	get := func(k dayKey) *costAcc {
		if acc[k] == nil {
			acc[k] = &costAcc{}
		}
		return acc[k]
	}
	ours := map[string][]string{} // workspace → our fingerprints
	for fp, ws := range c.credWS {
		ours[ws] = append(ours[ws], fp)
	}
	var unmapped []Row
	c.gatewayCosts(func(g GatewayUsage, d int64) {
		if _, ok := c.credKey[g.Credential]; !ok {
			get(dayKey{"\x00" + g.Credential, "", d}).addGateway(g) // an unmapped credential's own row
			return
		}
		get(dayKey{c.credWS[g.Credential], "", d}).addGateway(g)
	})
	for _, p := range c.in.Costs {
		d := dayOf(p.Day)
		if c.in.Window.Contains(time.Unix(d, 0)) {
			get(dayKey{p.Workspace, "", d}).addProvider(p)
		}
	}
	share := c.workspaceShares()
	oob := oobDays(tokenRows)
	rows := make([]Row, 0, len(acc))
	for k, a := range acc {
		r := c.costRow(k.day, a)
		if fp, ok := cutUnmapped(k.id); ok {
			r.Credential, r.ProviderSide = fp, nil
			r.Status, r.Note = StatusUnmapped, "the credential's provider key is not known: the owner must choose it"
			unmapped = append(unmapped, r)
			continue
		}
		r.Workspace = k.id
		creds := slices.Sorted(slices.Values(ours[k.id]))
		if len(creds) == 0 {
			r.Gateway = nil
			r.Status, r.Note = StatusProviderOnly, "cost of workspace "+workspaceName(k.id)+", which holds none of this account's credentials"
			rows = append(rows, r)
			continue
		}
		r.Credentials = creds
		if len(creds) == 1 {
			r.Credential, r.KeyID = creds[0], c.credKey[creds[0]]
		}
		s, ok := share[dayKey{k.id, "", k.day}]
		if !ok {
			s = 1_000_000 // no usage report for the day: the bill is ours alone
		}
		whole := a.prov
		a.prov = mulDiv(whole, s, 1_000_000)
		r.ProviderSide.WorkspaceNanoUSD, r.ProviderSide.SharePPM = whole, s
		r.ProviderSide.CostNanoUSD, r.ProviderSide.CostUSD = a.prov, usd(a.prov)
		anyOOB := false
		for _, fp := range creds {
			anyOOB = anyOOB || oob[[2]string{fp, fmt.Sprint(k.day)}]
		}
		c.costVerdict(&r, a, anyOOB)
		rows = append(rows, r)
	}
	return append(rows, unmapped...)
}

func cutUnmapped(id string) (string, bool) {
	if len(id) > 0 && id[0] == 0 {
		return id[1:], true
	}
	return "", false
}

func workspaceName(ws string) string {
	if ws == "" {
		return "(default)"
	}
	return ws
}

// workspaceShares is, per (workspace, day), the part of the workspace's
// list-price token value that our mapped keys account for, in ppm.
func (c *comparison) workspaceShares() map[dayKey]int64 {
	type sums struct{ ours, all int64 }
	acc := map[dayKey]*sums{}
	for _, u := range c.in.Usage {
		v, _ := c.listValue(c.canon(u.Model), u.Tokens, nil, u.Hour)
		k := dayKey{u.Workspace, "", dayOf(u.Hour)}
		s := acc[k]
		if s == nil {
			s = &sums{}
			acc[k] = s
		}
		s.all += v
		if u.KeyID != "" && c.keyCred[u.KeyID] != "" {
			s.ours += v
		}
	}
	out := make(map[dayKey]int64, len(acc))
	for k, s := range acc {
		if s.all > 0 {
			out[k] = mulDiv(s.ours, 1_000_000, s.all)
		}
	}
	return out
}
