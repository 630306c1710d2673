#!/usr/bin/env bash
# A missing, non-executable or directory start script: the restarter exits
# 2 with a one-line message on stderr and starts nothing.
. "$(dirname "$0")/testlib.sh"

printf '#!/bin/sh\nexec sleep 1000\n' >"$WORK/not-executable.sh"
chmod 644 "$WORK/not-executable.sh"
mkdir "$WORK/dir"

check() {
	local command=$1 want=$2 rc=0
	"$RESTARTER" "$command" >"$WORK/stdout" 2>"$WORK/stderr" || rc=$?
	[ "$rc" -eq 2 ] || fail "$command: exit code $rc, want 2"
	[ ! -s "$WORK/stdout" ] || fail "$command: unexpected stdout: $(cat "$WORK/stdout")"
	[ "$(wc -l <"$WORK/stderr")" -eq 1 ] || fail "$command: stderr is not one line: $(cat "$WORK/stderr")"
	[ "$(cat "$WORK/stderr")" = "$want" ] || fail "$command: stderr $(cat "$WORK/stderr"), want $want"
}

check "$WORK/missing.sh" "restarter: COMMAND \"$WORK/missing.sh\": no such file"
check "$WORK/not-executable.sh" "restarter: COMMAND \"$WORK/not-executable.sh\": not executable (permission denied)"
check "$WORK/dir" "restarter: COMMAND \"$WORK/dir\": is a directory"
echo PASS
