// Command caddy is a development build of Caddy with the standard modules and
// Agent Router, equivalent to what xcaddy builds. It is used by tests and the
// benchmark; production builds use xcaddy (see xcaddy.sh).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/agentrouter/caddy-agentrouter"
)

func main() {
	caddycmd.Main()
}
