#!/bin/sh
# start_envoy.sh: the start script a hot restarter runs for each epoch.
#
#   restarter /etc/envoy/start_envoy.sh
#
# The restarter sets RESTART_EPOCH (0 for the first start, then 1, 2, ... for
# each hot restart, on SIGHUP) and runs this script without a shell of its
# own; the script prepares the process limits and then *execs* Envoy, so that
# the restarter's child is Envoy itself: signals it forwards (SIGTERM,
# SIGUSR1) reach Envoy, and Envoy's exit status is the child's.
#
# Every value can be overridden from the environment (for example in a
# systemd unit's Environment= lines); arguments given to this script are
# passed on to Envoy after the ones below.
set -eu

: "${RESTART_EPOCH:?RESTART_EPOCH is not set: run this script under a hot restarter}"
ENVOY_BIN="${ENVOY_BIN:-envoy}"
ENVOY_CONFIG="${ENVOY_CONFIG:-/etc/envoy/envoy.yaml}"
ENVOY_SERVICE_CLUSTER="${ENVOY_SERVICE_CLUSTER:-cluster}"
ENVOY_SERVICE_NODE="${ENVOY_SERVICE_NODE:-node}"
ENVOY_SERVICE_ZONE="${ENVOY_SERVICE_ZONE:-zone}"
ENVOY_ULIMIT_NOFILE="${ENVOY_ULIMIT_NOFILE:-102400}"
ENVOY_INOTIFY_MAX_USER_WATCHES="${ENVOY_INOTIFY_MAX_USER_WATCHES:-524288}"
# Base ids, see below: a fixed id, or a file through which epoch 0's dynamic
# id reaches the later epochs.
ENVOY_BASE_ID="${ENVOY_BASE_ID:-}"
ENVOY_BASE_ID_PATH="${ENVOY_BASE_ID_PATH:-}"

warn() { printf 'start_envoy.sh: warning: %s\n' "$*" >&2; }

# Envoy holds a file descriptor per connection, listener and watched file.
if ! ulimit -n "$ENVOY_ULIMIT_NOFILE" 2>/dev/null; then
	warn "cannot raise the open files limit to $ENVOY_ULIMIT_NOFILE (it stays $(ulimit -n)); run as root or raise the hard limit (LimitNOFILE= in systemd)"
fi

# Envoy watches its runtime directories, SDS files and, with file-based
# xDS, its config files with inotify; each hot restart epoch adds its own
# watches while the old epoch drains, so the per-user limit is raised ahead
# of time. Only ever raised, never lowered. In a container /proc/sys is
# usually read-only: set it on the host then. Set the variable to empty to skip.
watches=/proc/sys/fs/inotify/max_user_watches
if [ -n "$ENVOY_INOTIFY_MAX_USER_WATCHES" ] && [ -r "$watches" ]; then
	current=$(cat "$watches")
	if [ "$current" -lt "$ENVOY_INOTIFY_MAX_USER_WATCHES" ]; then
		if ! { echo "$ENVOY_INOTIFY_MAX_USER_WATCHES" >"$watches"; } 2>/dev/null; then
			warn "cannot raise fs.inotify.max_user_watches from $current to $ENVOY_INOTIFY_MAX_USER_WATCHES (not permitted here); set it on the host: sysctl -w fs.inotify.max_user_watches=$ENVOY_INOTIFY_MAX_USER_WATCHES"
		fi
	fi
fi

# Base ids. All epochs of one Envoy must use the same base id: it names the
# shared memory and the domain sockets the epochs hand over through, and two
# Envoys on one host must use different ones.
#  - ENVOY_BASE_ID set: that fixed id, at every epoch.
#  - ENVOY_BASE_ID_PATH set: epoch 0 lets Envoy pick a free id
#    (--use-dynamic-base-id) and write it to that file (--base-id-path). Envoy
#    refuses --use-dynamic-base-id at any later epoch, so later epochs read the
#    id back and pass it as --base-id. (The restarter's --base-id-path flag
#    does this reading for you and exports ENVOY_BASE_ID to later epochs.)
#  - neither: Envoy's default, base id 0.
if [ -n "$ENVOY_BASE_ID" ]; then
	set -- --base-id "$ENVOY_BASE_ID" "$@"
elif [ -n "$ENVOY_BASE_ID_PATH" ]; then
	if [ "$RESTART_EPOCH" -eq 0 ]; then
		rm -f "$ENVOY_BASE_ID_PATH"
		set -- --use-dynamic-base-id --base-id-path "$ENVOY_BASE_ID_PATH" "$@"
	else
		if [ ! -s "$ENVOY_BASE_ID_PATH" ]; then
			echo "start_envoy.sh: $ENVOY_BASE_ID_PATH: no base id written by epoch 0; cannot hot restart" >&2
			exit 1
		fi
		set -- --base-id "$(cat "$ENVOY_BASE_ID_PATH")" "$@"
	fi
fi

exec "$ENVOY_BIN" -c "$ENVOY_CONFIG" \
	--restart-epoch "$RESTART_EPOCH" \
	--service-cluster "$ENVOY_SERVICE_CLUSTER" \
	--service-node "$ENVOY_SERVICE_NODE" \
	--service-zone "$ENVOY_SERVICE_ZONE" \
	"$@"
