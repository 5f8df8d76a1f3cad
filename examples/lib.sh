# Helpers for the example scripts (sourced, not run): free ports, and waits
# that fail fast, with the log, when a process they wait for has died.

# free_port prints a TCP port nothing on 127.0.0.1 listens on, from the
# dynamic range (another program may still take it before we do: the
# scripts then fail with that program's log, never hang).
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
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
