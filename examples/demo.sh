#!/usr/bin/env bash
# An offline demo: a fake OpenAI on loopback, Agent Router in front of it,
# an account with a platform-served request, then a BYOK key and a
# BYOK-served request. Needs only Go. Run from the repository root:
#   ./examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local CGO_ENABLED=0
[ -x ./caddy ] || ./xcaddy.sh build
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/fakeprovider" ./providers/providertest/cmd/fakeprovider
"$tmp/fakeprovider" -addr 127.0.0.1:19901 >"$tmp/fake.url" &
sleep 1
cat >"$tmp/Caddyfile" <<CADDY
{
	admin localhost:12019
	default_bind 127.0.0.1
	agent_router {
		store $tmp/ar.db
	}
}
http://localhost:18080 {
	agent_router {
		provider openai {
			api_key {env.DEMO_PLATFORM_KEY}
			base_url $(cat "$tmp/fake.url")
		}
	}
}
CADDY
DEMO_PLATFORM_KEY=sk-demo-platform-key-0000000000 XDG_DATA_HOME="$tmp" XDG_CONFIG_HOME="$tmp" \
	./caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
until curl -sf localhost:12019/config/ >/dev/null; do sleep 0.2; done
A=localhost:12019/agent_router
set -x
curl -s -X POST $A/accounts -d '{"id":"acme","name":"Acme Corp"}'
KEY=$(curl -s -X POST $A/accounts/acme/keys -d '{"name":"demo"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
curl -s -i localhost:18080/v1/chat/completions -H "Authorization: Bearer $KEY" \
	-d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
curl -s -X PUT $A/accounts/acme/byok/openai -d '{"api_key":"sk-proj-demo-byok-key-1111111111"}'
curl -s -i localhost:18080/v1/chat/completions -H "Authorization: Bearer $KEY" \
	-d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'
curl -s localhost:19901/_fake/records
curl -s "$A/logs?account=acme"
