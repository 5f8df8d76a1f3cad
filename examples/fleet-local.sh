#!/usr/bin/env bash
# Fleet mode on one machine: one etcd member and three Agent Router
# instances on loopback, plain http, in front of a fake OpenAI. It creates an
# account and a BYOK key through the first instance, checks that the other
# two serve it, rotates the key through the second, checks that the first
# and third serve the new one (and how long that took), and reads the
# fleet-wide request log from the third. Run from the repository root:
#
#   ./examples/fleet-local.sh          # check, then stop everything
#   ./examples/fleet-local.sh -keep    # check, then keep running until Ctrl-C
#
# It builds ./etcd (./xcaddy.sh etcd: the etcd server at the version in
# go.mod) and ./caddy when they are missing. Ports are free ones. A real
# fleet runs three or five etcd members with TLS (README, Fleet mode).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local CGO_ENABLED=0
. examples/lib.sh
keep=0
[ "${1:-}" = "-keep" ] && keep=1
[ -x ./etcd ] || ./xcaddy.sh etcd
ensure_caddy
tmp=$(mktemp -d)
trap 'stop_children; rm -rf "$tmp"' EXIT

step() { printf '\n== %s\n' "$*"; }

step "etcd: one member on loopback"
EC=$(free_port)
EP=$(free_port)
ETCD=http://127.0.0.1:$EC
./etcd --name e1 --data-dir "$tmp/etcd" \
	--listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
	--listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
	--initial-cluster "e1=http://127.0.0.1:$EP" \
	--auto-compaction-mode periodic --auto-compaction-retention 1h >"$tmp/etcd.log" 2>&1 &
wait_http $! "$ETCD/health" "$tmp/etcd.log" "etcd"
echo "etcd $(./etcd --version | head -1 | awk '{print $3}') at $ETCD"

step "a fake OpenAI that records which key each request carried"
go build -o "$tmp/fakeprovider" ./providers/providertest/cmd/fakeprovider
"$tmp/fakeprovider" >"$tmp/fake.url" 2>"$tmp/fake.log" &
FAKE=$(wait_line $! "$tmp/fake.url" "$tmp/fake.log" "the fake provider")
RECORDS=${FAKE%/v1}/_fake/records
echo "fake OpenAI at $FAKE"

step "three Agent Router instances in fleet mode, one etcd prefix"
# Every instance of a fleet needs the same master key.
AGENT_ROUTER_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export AGENT_ROUTER_MASTER_KEY
SITE=()
ADMIN=()
PEER=()
for i in 1 2 3; do
	SITE[i]=$(free_port)
	ADMIN[i]=$(free_port)
	PEER[i]=$(free_port)
	mkdir -p "$tmp/gw$i"
	cat >"$tmp/gw$i/Caddyfile" <<CADDY
{
	admin 127.0.0.1:${ADMIN[i]}
	default_bind 127.0.0.1
	persist_config off
	agent_router {
		store $tmp/gw$i/agent_router.db
		master_key {env.AGENT_ROUTER_MASTER_KEY}
		store etcd {
			endpoints $ETCD
			instance_id gw$i
			# where the other instances read this one's request log and usage
			peer_listen 127.0.0.1:${PEER[i]}
		}
	}
}
http://127.0.0.1:${SITE[i]} {
	agent_router {
		provider openai {
			api_key {env.PLATFORM_KEY}
			base_url $FAKE
		}
	}
}
CADDY
	PLATFORM_KEY=sk-platform-fleet-demo-000000000000 XDG_DATA_HOME="$tmp/gw$i" XDG_CONFIG_HOME="$tmp/gw$i" \
		./caddy run --config "$tmp/gw$i/Caddyfile" --adapter caddyfile >"$tmp/gw$i/caddy.log" 2>&1 &
	PID[i]=$!
done
for i in 1 2 3; do
	wait_http "${PID[i]}" "127.0.0.1:${ADMIN[i]}/agent_router/fleet" "$tmp/gw$i/caddy.log" "instance gw$i"
	echo "gw$i: site http://127.0.0.1:${SITE[i]}, admin 127.0.0.1:${ADMIN[i]}, peer listener 127.0.0.1:${PEER[i]}"
done

admin() { curl -sS -X "$2" "127.0.0.1:${ADMIN[$1]}/agent_router$3" ${4:+-d "$4"}; }

# chat N: one request through instance N; prints the credential source the
# gateway reports and the key the fake received.
chat() {
	local src
	src=$(curl -sS -o /dev/null -D - "127.0.0.1:${SITE[$1]}/v1/chat/completions" -H "Authorization: Bearer $KEY" \
		-d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' | tr -d '\r' |
		awk -F': ' 'tolower($1)=="x-agent-router-credential"{print $2}')
	echo "$src $(curl -s "$RECORDS" | tail -n 1 | sed -E 's/.*"credential":"([^"]*)".*/\1/')"
}

step "gw1: an account, an API key, a BYOK key (v1)"
admin 1 POST /accounts '{"id":"acme","name":"Acme Corp"}'
echo
KEY=$(admin 1 POST /accounts/acme/keys '{"name":"fleet"}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
V1=sk-proj-fleet-demo-v1-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
admin 1 PUT /accounts/acme/byok/openai "{\"api_key\":\"$V1\"}"
echo

step "gw2 and gw3 serve v1"
for i in 2 3; do
	got=$(chat $i)
	echo "gw$i: $got"
	[ "$got" = "byok $V1" ] || fail "gw$i did not serve the BYOK key v1 (got: $got)" "$tmp/gw$i/caddy.log"
done

step "gw2: rotate to v2; gw1 and gw3 serve v2"
V2=sk-proj-fleet-demo-v2-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
admin 2 PUT /accounts/acme/byok/openai "{\"api_key\":\"$V2\"}"
echo
t0=$(date +%s%N)
for i in 1 3; do
	for n in $(seq 1 100); do
		got=$(chat $i)
		[ "$got" = "byok $V2" ] && break
		[ "$n" = 100 ] && fail "gw$i still serves the old key 2 s after the rotation (got: $got)" "$tmp/gw$i/caddy.log"
		sleep 0.02
	done
	if [ "$n" = 1 ]; then
		echo "gw$i: $got (the first request after the rotation returned)"
	else
		echo "gw$i: $got (request $n, $((($(date +%s%N) - t0) / 1000000)) ms after the rotation returned)"
	fi
done

step "the fleet as gw3 sees it, and the fleet-wide request log"
admin 3 GET /fleet
echo
wait_for "the fleet-wide log to hold all four requests" 10 \
	bash -c "[ \"\$(curl -s '127.0.0.1:${ADMIN[3]}/agent_router/logs?account=acme' | grep -o '\"latency_ms\"' | wc -l)\" -ge 4 ]"
served=$(curl -s "127.0.0.1:${ADMIN[3]}/agent_router/logs?account=acme" |
	grep -o "\"instance\":\"gw[0-9]\",[^}]*\"credential_version\":[0-9]*" |
	sed -E "s/\"instance\":\"(gw[0-9])\".*\"credential_version\":([0-9]+)/\1 served key version \2/" | sort)
echo "$served"
[ "$served" = "$(printf 'gw1 served key version 2\ngw2 served key version 1\ngw3 served key version 1\ngw3 served key version 2')" ] ||
	fail "the fleet-wide log read on gw3 is not the four requests of the three instances"
echo
echo "PASS: a rotation through gw2 was served by gw1 and gw3"

if [ "$keep" = 1 ]; then
	echo
	echo "Running until Ctrl-C: etcd $ETCD; gw1..3 sites ${SITE[1]} ${SITE[2]} ${SITE[3]}, admin ${ADMIN[1]} ${ADMIN[2]} ${ADMIN[3]}"
	echo "API key (account acme): $KEY"
	wait
fi
