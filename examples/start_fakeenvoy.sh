#!/bin/sh
# The demo start script: `restarter examples/start_fakeenvoy.sh` runs it once
# per epoch with RESTART_EPOCH set. It needs only Go: it builds fakeenvoy
# from this repository (go build's cache makes later builds instant) unless
# $FAKEENVOY names a binary. Every setting can be overridden from the
# environment:
#   FAKEENVOY                  fakeenvoy binary (default: build one, which
#                              needs `go` on PATH)
#   FAKEENVOY_CACHE_DIR        where the built binary and base id live
#                              (default: ${XDG_CACHE_HOME:-$HOME/.cache}/envoy-restarter,
#                              or /tmp/envoy-restarter-$UID with neither set,
#                              as under runit, s6, supervisord or env -i)
#   FAKEENVOY_CONFIG           bootstrap (default: examples/fakeenvoy.yaml)
#   ENVOY_BASE_ID_PATH         base id file (set by `restarter --base-id-path`;
#                              default: $FAKEENVOY_CACHE_DIR/fakeenvoy.base-id)
#   ENVOY_BASE_ID              base id for epochs > 0 (default: read the file)
#   DRAIN_TIME_S               --drain-time-s (default 2)
#   PARENT_SHUTDOWN_TIME_S     --parent-shutdown-time-s (default 3)
#   FAKEENVOY_EXTRA_ARGS       more flags, split on spaces
# Arguments given to this script are passed on to fakeenvoy, so that
# `restarter --check examples/start_fakeenvoy.sh --check-arg --mode
# --check-arg validate` validates the config the next epoch would load.
set -eu

: "${RESTART_EPOCH:?RESTART_EPOCH is not set: run this script under the restarter}"

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
if [ -n "${FAKEENVOY_CACHE_DIR:-}" ]; then
	cache_dir=$FAKEENVOY_CACHE_DIR
elif [ -n "${XDG_CACHE_HOME:-}" ]; then
	cache_dir=$XDG_CACHE_HOME/envoy-restarter
elif [ -n "${HOME:-}" ]; then
	cache_dir=$HOME/.cache/envoy-restarter
else
	cache_dir=${TMPDIR:-/tmp}/envoy-restarter-$(id -u)
fi
mkdir -p "$cache_dir"

if [ -z "${FAKEENVOY:-}" ]; then
	if ! command -v go >/dev/null 2>&1; then
		echo "start_fakeenvoy.sh: go not found on PATH: set FAKEENVOY to a built fakeenvoy (go build -o fakeenvoy ./fakeenvoy)" >&2
		exit 1
	fi
	FAKEENVOY=$cache_dir/fakeenvoy
	if [ -z "${HOME:-}" ]; then
		# go keeps its caches under $HOME unless told otherwise.
		export GOCACHE="${GOCACHE:-$cache_dir/go-build}" GOPATH="${GOPATH:-$cache_dir/go}"
	fi
	(cd "$repo" && go build -o "$FAKEENVOY" ./fakeenvoy)
fi

config=${FAKEENVOY_CONFIG:-$here/fakeenvoy.yaml}
base_id_path=${ENVOY_BASE_ID_PATH:-${FAKEENVOY_BASE_ID_PATH:-$cache_dir/fakeenvoy.base-id}}

if [ "$RESTART_EPOCH" -eq 0 ]; then
	set -- --use-dynamic-base-id --base-id-path "$base_id_path" "$@"
else
	base_id=${ENVOY_BASE_ID:-$(cat "$base_id_path")}
	set -- --base-id "$base_id" "$@"
fi

# shellcheck disable=SC2086 # FAKEENVOY_EXTRA_ARGS is split on purpose.
exec "$FAKEENVOY" \
	--restart-epoch "$RESTART_EPOCH" \
	--config-path "$config" \
	--drain-time-s "${DRAIN_TIME_S:-2}" \
	--parent-shutdown-time-s "${PARENT_SHUTDOWN_TIME_S:-3}" \
	"$@" ${FAKEENVOY_EXTRA_ARGS:-}
