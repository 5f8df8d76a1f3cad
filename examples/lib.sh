# Helpers for the example scripts (sourced, not run): free ports, and waits
# that fail fast, with the log, when a process they wait for has died.

# free_port prints a TCP port nothing on 127.0.0.1 listens on, below the
# kernel's range for outgoing connections (a port that one of them uses
# cannot be bound either), and not handed out before by this script (when
# $tmp is set). Another program may still take it before we do: the
# scripts then fail with that program's log, never hang.
free_port() {
	local p lo=10000 hi=32767
	if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
		read -r eph _ </proc/sys/net/ipv4/ip_local_port_range
		[ "$eph" -gt 11000 ] && hi=$((eph - 1))
	fi
	for _ in $(seq 1 100); do
		p=$((lo + RANDOM % (hi - lo)))
		if [ -n "${tmp:-}" ] && grep -qx "$p" "$tmp/.ports" 2>/dev/null; then
			continue
		fi
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			[ -n "${tmp:-}" ] && echo "$p" >>"$tmp/.ports"
			echo "$p"
			return
		fi
	done
	echo "no free port found" >&2
	return 1
}

# fail prints its message and a log file's end, and exits.
fail() {
	echo "FAIL: $1" >&2
	if [ -n "${2:-}" ] && [ -f "$2" ]; then
		echo "--- $2 (end)" >&2
		tail -n 30 "$2" >&2
	fi
	exit 1
}

# wait_line PID FILE LOG NAME: waits (10 s) for process PID to write a line
# to FILE, and prints it; fails at once if PID exits first.
wait_line() {
	local pid=$1 file=$2 log=$3 name=$4
	for _ in $(seq 1 100); do
		if [ -s "$file" ]; then
			head -n 1 "$file"
			return
		fi
		kill -0 "$pid" 2>/dev/null || fail "$name exited at start" "$log"
		sleep 0.1
	done
	fail "$name did not start within 10 s" "$log"
}

# wait_http PID URL LOG NAME: waits (60 s) until URL answers 2xx; fails at
# once if PID exits first.
wait_http() {
	local pid=$1 url=$2 log=$3 name=$4
	for _ in $(seq 1 600); do
		curl -sf -o /dev/null "$url" && return
		kill -0 "$pid" 2>/dev/null || fail "$name exited at start" "$log"
		sleep 0.1
	done
	fail "$name did not answer at $url within 60 s" "$log"
}

# wait_for WHAT SECONDS CMD...: runs CMD every 0.1 s until it succeeds.
wait_for() {
	local what=$1 secs=$2
	shift 2
	for _ in $(seq 1 $((secs * 10))); do
		"$@" && return
		sleep 0.1
	done
	fail "$what: not within $secs s"
}

# stop_children ends the background jobs of this shell and waits for them.
stop_children() {
	local pids
	pids=$(jobs -p)
	[ -n "$pids" ] || return 0
	kill $pids 2>/dev/null || true
	wait $pids 2>/dev/null || true
}

# ensure_caddy builds ./caddy when it is missing or older than a Go source
# file or go.mod of this module (a stale binary fails on new config).
ensure_caddy() {
	if [ ! -x ./caddy ] || [ -n "$(find . -path ./integration -prune -o \( -name '*.go' -o -name go.mod -o -name '*.html' -o -name '*.css' -o -name '*.js' \) -newer ./caddy -print -quit)" ]; then
		./xcaddy.sh build
	fi
}
