#!/usr/bin/env bash
# Agent Router's load benchmark: the gateway against plain Caddy's
# reverse_proxy (the same binary) and against the fake upstream directly.
#
#   ./bench/run.sh            the full run (~4-5 minutes on 2 cores)
#   ./bench/run.sh -quick     a few seconds per phase, one round
#   ./bench/run.sh -h         every flag
#
# It is `go run ./bench` from the repository root; see bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local CGO_ENABLED=0
exec go run ./bench "$@"
