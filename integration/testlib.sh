# testlib.sh: what the operator-style *_test.sh scripts share. Source it:
#
#   . "$(dirname "$0")/testlib.sh"
#
# It makes a work dir ($WORK) removed at exit, finds the restarter and
# fakeenvoy ($RESTARTER, $FAKEENVOY: from RESTARTER_BIN / FAKEENVOY_BIN,
# runfiles paths under Bazel, else built with go build into $WORK), and on
# exit kills and reaps every restarter it started (with its epochs), and
# prints their logs if the script failed.
set -euo pipefail

WORK=$(mktemp -d -p "${TEST_TMPDIR:-${TMPDIR:-/tmp}}")
STARTED_PIDS=()
LOGS=()

cleanup() {
	local rc=$?
	local pid
	for pid in "${STARTED_PIDS[@]}"; do
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ]; then
		local log
		for log in "${LOGS[@]}"; do
			echo "--- $log" >&2
			cat "$log" >&2 || true
		done
	fi
	# A killed epoch leaves the shared memory region behind, as Envoy does.
	[ -z "${BASE_ID:-}" ] || rm -f "/dev/shm/envoy_shared_memory_${BASE_ID}0"
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# resolve_bin ENV_VALUE NAME prints the binary's path: ENV_VALUE resolved as
# Bazel's runfiles do (absolute, relative to here, $RUNFILES_DIR,
# $TEST_SRCDIR, the manifest), or, when it is empty, NAME built from this
# repository.
resolve_bin() {
	local p=$1 name=$2 root
	if [ -z "$p" ]; then
		local repo
		repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
		mkdir -p "$WORK/bin"
		(cd "$repo" && go build -o "$WORK/bin/$name" "./$name") || fail "go build $name"
		echo "$WORK/bin/$name"
		return
	fi
	case $p in /*) echo "$p"; return ;; esac
	if [ -e "$p" ]; then echo "$PWD/$p"; return; fi
	for root in "${RUNFILES_DIR:-}" "${TEST_SRCDIR:-}"; do
		if [ -n "$root" ] && [ -e "$root/$p" ]; then echo "$root/$p"; return; fi
	done
	if [ -n "${RUNFILES_MANIFEST_FILE:-}" ]; then
		local line
		line=$(grep -m1 "^$p " "$RUNFILES_MANIFEST_FILE" || true)
		if [ -n "$line" ]; then echo "${line#* }"; return; fi
	fi
	fail "$p: not found in runfiles"
}

RESTARTER=$(resolve_bin "${RESTARTER_BIN:-}" restarter)
FAKEENVOY=$(resolve_bin "${FAKEENVOY_BIN:-}" fakeenvoy)

# now_ms prints a monotonic-enough clock in milliseconds.
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_for DESCRIPTION COMMAND...: run COMMAND until it succeeds, for at
# most 20 seconds (a deadline, not a sleep: it polls every 20ms).
wait_for() {
	local what=$1
	shift
	local deadline=$(($(now_ms) + 20000))
	until "$@" >/dev/null 2>&1; do
		if [ "$(now_ms)" -gt "$deadline" ]; then
			fail "timed out waiting for $what"
		fi
		sleep 0.02
	done
}

# free_port prints a loopback port nobody listens on, below the kernel's
# ephemeral range (so no client connection takes it before fakeenvoy binds
# it): a listener must keep its port across hot restarts. It skips the ports
# the Go scenarios' sandboxes reserved (an abstract unix socket each, see
# internal/proctest/ports.go).
free_port() {
	local low port hex
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$low" -gt 12000 ] || low=32768
	while :; do
		port=$((10000 + (RANDOM * 32768 + RANDOM) % (low - 10000)))
		hex=$(printf '%04X' "$port")
		if ! grep -q ":$hex 00000000:0000 0A" /proc/net/tcp 2>/dev/null &&
			! grep -q "@fakeenvoytest-port-$port\$" /proc/net/unix 2>/dev/null; then
			echo "$port"
			return
		fi
	done
}

# http_get URL [X-REQUEST-ID] prints the response body of a GET; it fails
# on a refused connection or a status other than 200. It uses curl, or bash's
# /dev/tcp where curl is missing.
http_get() {
	local url=$1 id=${2:-}
	if command -v curl >/dev/null; then
		curl -sS --fail --max-time 5 ${id:+-H "x-request-id: $id"} "$url"
		return
	fi
	local rest=${url#http://} hostport path
	hostport=${rest%%/*}
	path=/${rest#*/}
	[ "$rest" != "$hostport" ] || path=/
	{ exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null || return 1
	printf 'GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n' "$path" "$hostport" "${id:+x-request-id: $id$'\r\n'}" >&3
	local status response
	response=$(cat <&3)
	exec 3<&-
	# The status line's code, without a pipe: under pipefail, head closing
	# early would fail the pipeline with SIGPIPE (exit 141).
	status=${response%%$'\r\n'*}
	status=${status#* }
	status=${status%% *}
	[ "$status" = 200 ] || return 1
	printf '%s\n' "${response#*$'\r\n\r\n'}"
}

# free_base_id picks a base id as free_port picks a port: above every id
# --use-dynamic-base-id can choose, at random, and free on this host: no
# shared memory region of that id in /dev/shm (one left by an earlier run
# may hold INITIALIZING) and no domain socket of its ids bound (abstract
# ones show in /proc/net/unix too).
free_base_id() {
	local id scaled
	while :; do
		id=$((300000000 + (RANDOM * 32768 + RANDOM) % 700000000))
		scaled=$((id * 10))
		[ -e "/dev/shm/envoy_shared_memory_$scaled" ] && continue
		grep -Eq "_(parent|child)_${scaled%0}[0-2]\$" /proc/net/unix 2>/dev/null && continue
		echo "$id"
		return
	done
}

# write_sandbox writes $WORK/envoy.yaml (admin on a kernel-chosen port, one
# listener on $PORT logging to $WORK/access.log) and $WORK/start.sh, the
# start script: fakeenvoy with a random base id, domain sockets under $WORK,
# short drain and parent-shutdown times.
write_sandbox() {
	PORT=$(free_port)
	BASE_ID=$(free_base_id)
	cat >"$WORK/envoy.yaml" <<YAML
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: $PORT}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: $WORK/access.log
          route_config:
            virtual_hosts:
            - name: web
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: "hello\n"}}
YAML
	local sockets="$WORK/hr"
	[ "${#sockets}" -lt 80 ] || sockets="@restarter-sh-$BASE_ID"
	cat >"$WORK/start.sh" <<SH
#!/bin/sh
exec "$FAKEENVOY" --config-path "$WORK/envoy.yaml" --restart-epoch "\$RESTART_EPOCH" \\
	--base-id $BASE_ID --socket-path "$sockets" \\
	--fake-drain-time 100ms --fake-parent-shutdown-time 400ms --file-flush-interval-msec 100
SH
	chmod +x "$WORK/start.sh"
}

# start_restarter ARG... starts the restarter in its own session (so its
# whole process group can be killed) with its log in $WORK/restarter.log,
# and sets RESTARTER_PID.
start_restarter() {
	setsid "$RESTARTER" "$@" >"$WORK/restarter.log" 2>&1 &
	RESTARTER_PID=$!
	STARTED_PIDS+=("$RESTARTER_PID")
	LOGS+=("$WORK/restarter.log")
}

# log_has REGEX: the restarter's log (epochs' logs included) has a line
# matching the extended REGEX.
log_has() { grep -Eq -- "$1" "$WORK/restarter.log"; }

# wait_forked N waits until the restarter has logged epoch N's fork: its log
# is written off its event loop, so it may lag behind what the epoch itself
# already did (answered a request, say).
forked_count() { grep -c 'forked new child process with PID=' "$WORK/restarter.log"; }
wait_forked() {
	wait_for "the restarter to log epoch $1's fork" eval '[ "$(forked_count)" -gt '"$1"' ]'
}

# epoch_pid N waits for epoch N's fork and prints the pid the restarter
# forked for it.
epoch_pid() {
	wait_forked "$1"
	grep -Eo 'forked new child process with PID=[0-9]+' "$WORK/restarter.log" | sed -n "$(($1 + 1))p" | cut -d= -f2
}

# wait_exit PID: wait for a process this script started; its exit code is
# then in EXIT_CODE.
wait_exit() {
	EXIT_CODE=0
	wait "$1" || EXIT_CODE=$?
}
