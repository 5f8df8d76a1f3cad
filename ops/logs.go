package ops

import (
	"context"
	"strings"

	"github.com/agentrouter/caddy-agentrouter/peer"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// LogPage is one page of the request log.
type LogPage struct {
	Records []store.LogRecord `json:"records"`
	// Next is the cursor for the following (older) page: pass it as
	// Before.
	Next string `json:"next,omitempty"`
	// Missing lists the fleet members that did not answer (fleet mode):
	// their records are not in this page.
	Missing []MemberError `json:"missing,omitempty"`
}

// maxSourceLength bounds the source filter.
const maxSourceLength = 64

// CheckLogFilter refuses a filter the request log cannot answer: a limit
// outside 0 (the default) to 1000, an unknown provider, a credential
// source other than byok or platform, a source longer than 64 characters,
// a status outside 100-599 (0: any), a range that ends before it starts.
func CheckLogFilter(f store.LogFilter) error {
	if f.Limit < 0 || f.Limit > peer.MaxLogs {
		return errorf(Invalid, "limit must be a number from 1 to %d", peer.MaxLogs)
	}
	if f.Provider != "" && providers.Get(f.Provider) == nil {
		return errorf(Invalid, "unknown provider %q (supported: %s)", clip(f.Provider), strings.Join(providers.Names, ", "))
	}
	if c := f.CredentialSource; c != "" && c != "byok" && c != "platform" {
		return errorf(Invalid, "credential_source must be byok or platform")
	}
	if len(f.Source) > maxSourceLength {
		return errorf(Invalid, "source is longer than %d characters", maxSourceLength)
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		return errorf(Invalid, "status must be an HTTP status from 100 to 599")
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return errorf(Invalid, "from must be before to")
	}
	return nil
}

// Logs returns a page of the request log matching f, newest first, from
// every live member in fleet mode (FleetLogs).
func (o *Ops) Logs(ctx context.Context, f store.LogFilter) (LogPage, error) {
	if err := CheckLogFilter(f); err != nil {
		return LogPage{}, err
	}
	recs, next, missing, err := FleetLogs(ctx, o.Store, f)
	if err != nil {
		return LogPage{}, err
	}
	return LogPage{Records: recs, Next: next, Missing: missing}, nil
}

// Log returns one request-log record of this instance.
func (o *Ops) Log(id string) (store.LogRecord, error) { return o.Store.Log(id) }
