// Package agentrouter is Agent Router for Caddy: an LLM API gateway with
// bring-your-own-key credentials. Importing it registers the Caddy modules, so
// `xcaddy build --with github.com/agentrouter/caddy-agentrouter` builds a
// Caddy with Agent Router.
package agentrouter

import (
	_ "github.com/agentrouter/caddy-agentrouter/caddymodule"
)
