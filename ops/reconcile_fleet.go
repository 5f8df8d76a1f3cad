package ops

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// FleetCredentialUsage is the fleet's credential usage matching q: every
// live member's own rows (over package peer), concatenated. Unlike the
// usage a person reads, a member that does not answer fails it: the
// reconciler would take the traffic it served for use of the keys outside
// the gateway. Single-node it is s.CredentialUsage.
func FleetCredentialUsage(ctx context.Context, s *store.Store, q store.CredentialUsageQuery) ([]store.CredentialUsage, error) {
	if !s.Fleet().Enabled {
		return s.CredentialUsage(q)
	}
	members := s.Members()
	rows := make([][]store.CredentialUsage, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			if m.Self {
				rows[i], errs[i] = s.CredentialUsage(q)
				return
			}
			rows[i], errs[i] = peer.CredentialUsage(ctx, s, m, q)
		})
	}
	wg.Wait()
	var missing []string
	var out []store.CredentialUsage
	for i, m := range members {
		if errs[i] != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", m.ID, errs[i]))
			continue
		}
		out = append(out, rows[i]...)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("fleet members did not answer with their credential usage: %s", strings.Join(missing, "; "))
	}
	return out, nil
}
