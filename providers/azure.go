package providers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
)

// DefaultAzureAPIVersion is the api-version used when none is configured
// (the GA version documented at learn.microsoft.com, Azure OpenAI API
// version lifecycle).
const DefaultAzureAPIVersion = "2024-10-21"

// Azure OpenAI: a per-resource endpoint (https://{resource}.openai.azure.com),
// the "api-key" header, deployments instead of model names. Classic routes are
// /openai/deployments/{deployment}/...?api-version=...; api_version "v1"
// selects the v1 API at /openai/v1/... with the deployment as the model
// (openai-go azure/azure.go; Portkey azure-openai/api.ts). Keys are 32 hex
// characters, but newer resources may differ, so no shape is enforced.
var azure = register(&Provider{
	Name:        Azure,
	AuthHeader:  "Api-Key",
	Implemented: true,
	build:       buildAzure,
	test:        testAzure,
	// Azure's v1 API serves Responses (at /openai/v1/responses).
	speaks: func(api string, ep Endpoint) bool { return api == ResponsesDoor.API && ep.APIVersion == "v1" },
})

var errAzureEndpoint = errors.New("azure needs a base_url (https://{resource}.openai.azure.com)")

func buildAzure(ctx context.Context, c *Call) (*http.Request, error) {
	ep, op, model := c.Endpoint, c.Op, c.Model
	body, err := c.wireBody(false)
	if err != nil {
		return nil, err
	}
	if op == OpChat {
		body = askStreamUsage(c, body) // Azure follows OpenAI here
	}
	if ep.BaseURL == "" {
		return nil, errAzureEndpoint
	}
	version := ep.APIVersion
	if version == "" {
		version = DefaultAzureAPIVersion
	}
	var u string
	if version == "v1" {
		body = SetModel(body, model)
		u = ep.BaseURL + "/openai/v1" + opPath(op)
	} else {
		u = ep.BaseURL + "/openai/deployments/" + url.PathEscape(model) + opPath(op) + "?api-version=" + url.QueryEscape(version)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header["Api-Key"] = []string{c.Key}
	req.Header["Content-Type"] = []string{"application/json"}
	return req, nil
}

// testAzure: the resource's model list, GET /openai/models?api-version=…
// (classic) or /openai/v1/models (api_version v1), with the api-key header.
func testAzure(ctx context.Context, ep Endpoint, key string) (*http.Request, error) {
	if ep.BaseURL == "" {
		return nil, errAzureEndpoint
	}
	version := ep.APIVersion
	if version == "" {
		version = DefaultAzureAPIVersion
	}
	u := ep.BaseURL + "/openai/models?api-version=" + url.QueryEscape(version)
	if version == "v1" {
		u = ep.BaseURL + "/openai/v1/models"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header["Api-Key"] = []string{key}
	return req, nil
}
