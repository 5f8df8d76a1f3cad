#!/usr/bin/env bash
# Build, run and test Agent Router with pinned versions.
#
#   ./xcaddy.sh          build ./caddy (Caddy v2.11.9 + this plugin from the working tree)
#   ./xcaddy.sh run      build, then ./caddy run --config Caddyfile
#   ./xcaddy.sh test     run the whole test suite: go test ./... with CGO off and
#                        xcaddy's build tags (caddytest needs full source paths,
#                        so tests are built without -trimpath)
#   ./xcaddy.sh demo     build, then run the console demo offline: fake providers
#                        for all eight providers on loopback, Caddy with the
#                        console, an account and a setup link (examples/console-demo)
#   ./xcaddy.sh etcd     build ./etcd, the etcd server of the version in go.mod,
#                        for fleet mode (examples/fleet-local.sh uses it)
#
# Extra arguments after run/test/demo are passed on (e.g. ./xcaddy.sh test -run TestX ./store/).
# test adds ./... unless a package is named, so ./xcaddy.sh test -count=1 tests everything.
set -euo pipefail
cd "$(dirname "$0")"

XCADDY_VERSION=v0.4.5
CADDY_VERSION=v2.11.9
MODULE=github.com/agentrouter/caddy-agentrouter

# No toolchain downloads here, and xcaddy builds static binaries: keep tests
# on the same CGO setting and tags, so switching costs as little as it can.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
BUILD_TAGS=nobadger,nomysql,nopgx

ensure_xcaddy() {
	local bin
	bin="$(go env GOPATH)/bin/xcaddy"
	if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "${XCADDY_VERSION#v}"; then
		XCADDY="$bin"
		return
	fi
	echo "installing xcaddy $XCADDY_VERSION" >&2
	go install "github.com/caddyserver/xcaddy/cmd/xcaddy@$XCADDY_VERSION"
	XCADDY="$bin"
}

build() {
	ensure_xcaddy
	# xcaddy always asks the module proxy about the plugin, even when it is
	# replaced by a local path; a pseudo version (@v0.0.0) keeps it from
	# querying an unpublished module.
	"$XCADDY" build "$CADDY_VERSION" --with "$MODULE@v0.0.0=$PWD" --output ./caddy
}

# test_args sets TEST_ARGS to the go test arguments with ./... added when
# none of them names a package: an argument that is neither a flag nor the
# value of a flag that takes one. ./... goes before -args (everything after
# -args belongs to the test binary).
test_args() {
	local skip=0 a f i=0
	TEST_ARGS=("$@")
	for a in "$@"; do
		if [ "$skip" = 1 ]; then
			skip=0
			i=$((i + 1))
			continue
		fi
		f="$a"
		case "$f" in --?*) f="${f#-}" ;; esac
		case "$f" in
		-args)
			TEST_ARGS=("${@:1:i}" ./... "${@:i+1}")
			return
			;;
		-*=*) ;;
		-run | -skip | -bench | -benchtime | -count | -cpu | -timeout | -parallel | -list | -fuzz | -fuzztime | \
			-fuzzminimizetime | -shuffle | -coverprofile | -covermode | -coverpkg | -cpuprofile | -memprofile | \
			-memprofilerate | -blockprofile | -blockprofilerate | -mutexprofile | -mutexprofilefraction | -outputdir | \
			-trace | -o | -exec | -tags | -p | -ldflags | -gcflags | -asmflags | -mod | -modfile | -pkgdir | -toolexec | \
			-vet | -C | -overlay | -pgo) skip=1 ;;
		-*) ;;
		*) return ;;
		esac
		i=$((i + 1))
	done
	TEST_ARGS+=(./...)
}

cmd="${1:-build}"
[ $# -gt 0 ] && shift
case "$cmd" in
build)
	build
	;;
run)
	build
	exec ./caddy run --config Caddyfile --adapter caddyfile "$@"
	;;
test)
	test_args "$@"
	exec go test -tags "$BUILD_TAGS" "${TEST_ARGS[@]}"
	;;
demo)
	build
	exec go run -tags "$BUILD_TAGS" ./examples/console-demo -caddy ./caddy "$@"
	;;
etcd)
	# etcd's own module cannot be installed with go install (its go.mod has
	# replace directives) and distributions ship old versions; this module
	# requires the server at the version fleet mode is tested with, so it
	# builds it from the module cache.
	go build -o ./etcd go.etcd.io/etcd/server/v3
	./etcd --version | head -1
	;;
*)
	echo "usage: $0 [build|run|test|demo|etcd] [args...]" >&2
	exit 2
	;;
esac
