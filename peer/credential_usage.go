package peer

import (
	"context"
	"errors"

	"github.com/agentrouter/caddy-agentrouter/store"
)

// The reconciler's read of the fleet's credential usage (store's
// credential_usage rollups, the gateway's side of the ledger): each member
// answers its own rows of one range and scope.

// maxCredentialAnswer bounds a member's answer: 31 days × 24 hours of a
// scope's credentials and models, at about 300 bytes a row.
const maxCredentialAnswer = 32 << 20

type credentialRows struct {
	Rows []store.CredentialUsage `json:"rows"`
}

func answerCredentialUsage(s *store.Store, body []byte) (any, error) {
	var q store.CredentialUsageQuery
	if err := strictJSON(body, &q); err != nil {
		return nil, err
	}
	rows, err := s.CredentialUsage(q)
	if err != nil {
		return nil, err
	}
	return credentialRows{Rows: rows}, nil
}

// CredentialUsage asks member m for its credential usage matching q. The
// answer is used only when it is signed by a fleet member and every row is
// inside the asked range and scope.
func CredentialUsage(ctx context.Context, s *store.Store, m store.Member, q store.CredentialUsageQuery) ([]store.CredentialUsage, error) {
	if err := q.Check(); err != nil {
		return nil, err
	}
	var out credentialRows
	if err := ask(ctx, s, m, "credential_usage", q, &out, maxCredentialAnswer); err != nil {
		return nil, err
	}
	for _, r := range out.Rows {
		switch {
		case r.Hour.Before(q.From) || !r.Hour.Before(q.To):
			return nil, errors.New("it answered credential usage outside the asked range")
		case q.Source != "" && r.Source != q.Source, q.Account != "" && r.Account != q.Account, q.Provider != "" && r.Provider != q.Provider:
			return nil, errors.New("it answered credential usage of another scope")
		}
	}
	return out.Rows, nil
}
