package providers

import (
	"context"
	"net/http"
)

// Shorthands the tests use; the gateway calls NewCallRequest and
// ClassifyResponse.

func (p *Provider) NewRequest(ctx context.Context, op Operation, ep Endpoint, key, model string, body []byte) (*http.Request, error) {
	return p.NewCallRequest(ctx, &Call{Op: op, Endpoint: ep, Key: key, Model: model, Body: body})
}

func Classify(provider string, status int, body []byte) string {
	return ClassifyResponse(provider, status, nil, body)
}
