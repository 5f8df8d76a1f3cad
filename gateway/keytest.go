package gateway

import (
	"context"
	"fmt"
	"io"
	"time"

	"go.uber.org/zap"

	"github.com/agentrouter/caddy-agentrouter/egress"
	"github.com/agentrouter/caddy-agentrouter/providers"
	"github.com/agentrouter/caddy-agentrouter/store"
)

// TestResult is the answer of TestCredential (see providers.TestResult).
type TestResult = providers.TestResult

// testTimeout bounds a key test: it lists models, which answers at once.
const testTimeout = 15 * time.Second

// TestCredential checks a provider key with a cheap authenticated call (the
// provider's list of models), through the gateway's own upstream transports,
// so it reaches the provider exactly as requests with the key would. The
// endpoint is the platform's for provider (this handler's base_url, or the
// provider's public one), with extras laid over it as for a BYOK key:
// base_url, api_version, organization and project. The result says ok,
// rejected (the provider refused the key), unreachable or error; its
// message is scrubbed of the key and never holds it. Nothing is stored:
// callers that test a stored key mark it valid or invalid themselves.
func (g *Gateway) TestCredential(ctx context.Context, provider, key string, extras store.Extras) TestResult {
	p := providers.Get(provider)
	if p == nil {
		return TestResult{Outcome: providers.TestError, Message: fmt.Sprintf("unknown provider %q", truncate(provider, 64))}
	}
	if key == "" {
		return TestResult{Outcome: providers.TestError, Message: "no key to test"}
	}
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	req, err := p.NewTestRequest(ctx, byokEndpoint(g.providers[provider], extras), key)
	if err != nil {
		return TestResult{Outcome: providers.TestError, Message: "could not build the test request: " + scrubKey(err.Error(), key)}
	}
	start := time.Now()
	resp, err := g.upstreams.forURL(req.URL, extras.BaseURL != "").RoundTrip(req)
	latency := msSince(start)
	if err != nil {
		class := providers.ClassifyTransport(err)
		msg := "could not reach " + provider
		switch {
		case egress.IsBlocked(err):
			msg = "the base_url leads to an address the gateway may not reach (a private, loopback or link-local address)"
		case class == providers.ClassTimeout:
			msg = provider + " did not answer in time"
		}
		if c := g.logger.Check(zap.InfoLevel, "key test: provider unreachable"); c != nil {
			c.Write(zap.String("provider", provider), zap.String("class", class), zap.String("error", scrubKey(err.Error(), key)))
		}
		return TestResult{Outcome: providers.TestUnreachable, Message: msg, LatencyMS: latency}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	res := TestResult{Status: resp.StatusCode, LatencyMS: latency}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		res.Outcome = providers.TestOK
		return res
	}
	class := providers.ClassifyResponse(provider, resp.StatusCode, resp.Header, raw)
	detail := scrubKey(truncate(providers.ErrorMessage(raw), 300), key)
	if class == providers.ClassAuth {
		res.Outcome = providers.TestRejected
		res.Message = fmt.Sprintf("%s rejected the key (status %d): %s", provider, resp.StatusCode, detail)
	} else {
		res.Outcome = providers.TestError
		res.Message = fmt.Sprintf("%s answered %d (%s): %s", provider, resp.StatusCode, class, detail)
	}
	if c := g.logger.Check(zap.InfoLevel, "key test"); c != nil {
		c.Write(zap.String("provider", provider), zap.String("outcome", res.Outcome),
			zap.Int("upstream_status", resp.StatusCode), zap.String("class", class))
	}
	return res
}

// byokEndpoint is the endpoint a customer key is sent to: the platform's for
// the provider, with the key's own extras laid over it. The platform's
// organization and project never go with a customer's key.
func scrubKey(s, key string) string { return string(providers.Scrub([]byte(s), key)) }

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
