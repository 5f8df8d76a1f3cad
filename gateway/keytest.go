package gateway

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// TestResult is the answer of TestCredential (see providers.TestResult).
type TestResult = providers.TestResult

// testTimeout bounds a key test: it lists models, which answers at once.
const testTimeout = 15 * time.Second

// TestCredential checks a provider key with a cheap authenticated call (the
// provider's list of models), through the gateway's own upstream transports
// and its one upstream call (callUpstream), so it reaches the provider
// exactly as requests with the key would and its failures read the same.
// The endpoint is the platform's for provider (this handler's base_url, or
// the provider's public one), with extras laid over it as for a BYOK key:
// base_url, api_version, organization and project. The result says ok,
// rejected (the provider refused the key), unreachable or error; its
// message is scrubbed of the key and never holds it. Nothing is stored and
// no request is logged: callers that test a stored key mark it valid or
// invalid themselves.
func (g *Gateway) TestCredential(ctx context.Context, provider, key string, extras store.Extras) TestResult {
	p := providers.Get(provider)
	if p == nil {
		return TestResult{Outcome: providers.TestError, Message: fmt.Sprintf("unknown provider %q", truncate(provider, 64))}
	}
	if key == "" {
		return TestResult{Outcome: providers.TestError, Message: "no key to test"}
	}
	cred := credential{source: SourceBYOK, key: key, endpoint: byokEndpoint(g.providers[provider], extras), guarded: extras.BaseURL != ""}
	tctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	req, err := p.NewTestRequest(tctx, cred.endpoint, key)
	if err != nil {
		return TestResult{Outcome: providers.TestError, Message: "could not build the test request: " + cred.scrub(err.Error())}
	}
	start := time.Now()
	u := g.callUpstream(ctx, req, provider, &cred, false, headerDeadline{})
	res := TestResult{Status: u.status, LatencyMS: msSince(start)}
	switch {
	case u.resp != nil:
		// Read what a models list holds, so the connection is reused.
		io.Copy(io.Discard, io.LimitReader(u.resp.Body, maxErrorBody))
		u.resp.Body.Close()
		res.Outcome = providers.TestOK
		if u.status >= 300 {
			res.Outcome, res.Message = providers.TestError, fmt.Sprintf("%s answered %d", provider, u.status)
		}
		return res
	case u.status == 0:
		res.Outcome, res.Message = providers.TestUnreachable, unreachableMessage(provider, u.fail.code)
		if c := g.logger.Check(zap.InfoLevel, "key test: provider unreachable"); c != nil {
			c.Write(zap.String("provider", provider), zap.String("class", u.class), zap.String("error", cred.scrub(u.err.Error())))
		}
		return res
	case u.class == providers.ClassAuth:
		res.Outcome = providers.TestRejected
		res.Message = fmt.Sprintf("%s rejected the key (status %d): %s", provider, u.status, truncate(u.detail, 300))
	default:
		res.Outcome = providers.TestError
		res.Message = fmt.Sprintf("%s answered %d (%s): %s", provider, u.status, u.class, truncate(u.detail, 300))
	}
	if c := g.logger.Check(zap.InfoLevel, "key test"); c != nil {
		c.Write(zap.String("provider", provider), zap.String("outcome", res.Outcome),
			zap.Int("upstream_status", u.status), zap.String("class", u.class))
	}
	return res
}

// unreachableMessage says why a key test got no answer, from the code of
// the failure a request would have got.
func unreachableMessage(provider, code string) string {
	switch code {
	case CodeBYOKBaseURLBlocked:
		return "the base_url leads to an address the gateway may not reach (a private, loopback or link-local address)"
	case CodeUpstreamTimeout:
		return provider + " did not answer in time"
	}
	return "could not reach " + provider
}
