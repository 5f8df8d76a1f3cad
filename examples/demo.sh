#!/usr/bin/env bash
# An offline demo: a fake OpenAI on loopback, Agent Router in front of it,
# an account with a platform-served request, then a BYOK key and a
# BYOK-served request. Needs only Go. Run from the repository root:
#   ./examples/demo.sh
# Ports are free ones unless given: DEMO_HTTP_PORT, DEMO_ADMIN_PORT and
# DEMO_FAKE_PORT. (The console's journey: ./xcaddy.sh demo.)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local CGO_ENABLED=0
. examples/lib.sh
ensure_caddy
tmp=$(mktemp -d)
trap '{ set +x; } 2>/dev/null; stop_children; rm -rf "$tmp"' EXIT

HTTP_PORT=${DEMO_HTTP_PORT:-$(free_port)}
ADMIN_PORT=${DEMO_ADMIN_PORT:-$(free_port)}
go build -o "$tmp/fakeprovider" ./providers/providertest/cmd/fakeprovider
"$tmp/fakeprovider" -addr "127.0.0.1:${DEMO_FAKE_PORT:-0}" >"$tmp/fake.url" 2>"$tmp/fake.log" &
FAKE=$(wait_line $! "$tmp/fake.url" "$tmp/fake.log" "the fake provider")
FAKE_ROOT=${FAKE%/v1}

cat >"$tmp/Caddyfile" <<CADDY
{
	admin localhost:$ADMIN_PORT
	default_bind 127.0.0.1
	persist_config off
	agent_router {
		store $tmp/ar.db
	}
}
http://localhost:$HTTP_PORT {
	agent_router {
		provider openai {
			api_key {env.DEMO_PLATFORM_KEY}
			base_url $FAKE
		}
	}
}
CADDY
DEMO_PLATFORM_KEY=sk-demo-platform-key-0000000000 XDG_DATA_HOME="$tmp" XDG_CONFIG_HOME="$tmp" \
	./caddy run --config "$tmp/Caddyfile" --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
wait_http $! "localhost:$ADMIN_PORT/config/" "$tmp/caddy.log" "caddy"
A=localhost:$ADMIN_PORT/agent_router
set -x
curl -s -X POST $A/accounts -d '{"id":"acme","name":"Acme Corp"}'
KEY=$(curl -s -X POST $A/accounts/acme/keys -d '{"name":"demo"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
curl -s -i localhost:$HTTP_PORT/v1/chat/completions -H "Authorization: Bearer $KEY" \
	-d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
curl -s -X PUT $A/accounts/acme/byok/openai -d '{"api_key":"sk-proj-demo-byok-key-1111111111"}'
curl -s -i localhost:$HTTP_PORT/v1/chat/completions -H "Authorization: Bearer $KEY" \
	-d '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'
curl -s "$FAKE_ROOT/_fake/records"
# The request log is written in the background (a quarter of a second):
# wait until both requests are in it.
{ set +x; } 2>/dev/null
wait_for "the request log to hold both requests" 10 \
	bash -c "[ \"\$(curl -s '$A/logs?account=acme' | grep -o '\"latency_ms\"' | wc -l)\" -ge 2 ]"
set -x
curl -s "$A/logs?account=acme"
