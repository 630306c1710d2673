#!/usr/bin/env bash
# Log rotation as an operator does it: mv access.log access.log.1, then
# kill -USR1 the restarter; fakeenvoy reopens access.log, and every
# request's line is in exactly one of the two files.
. "$(dirname "$0")/testlib.sh"

write_sandbox
start_restarter "$WORK/start.sh"
wait_for "epoch 0 to answer" http_get "http://127.0.0.1:$PORT/" warmup
pid0=$(epoch_pid 0)

for i in $(seq 1 10); do http_get "http://127.0.0.1:$PORT/" "req-$i" >/dev/null; done

mv "$WORK/access.log" "$WORK/access.log.1"
kill -USR1 "$RESTARTER_PID"
wait_for "epoch 0 to reopen its logs" log_has "\\[$pid0\\].*caught SIGUSR1\\. Reopening access logs\\.\$"
wait_for "a new access.log" test -e "$WORK/access.log"
log_has "sending SIGUSR1 to PID=$pid0\$" || fail "SIGUSR1 not forwarded"

for i in $(seq 11 20); do http_get "http://127.0.0.1:$PORT/" "req-$i" >/dev/null; done

kill -TERM "$RESTARTER_PID"
wait_exit "$RESTARTER_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "restarter exit code $EXIT_CODE, want 0"

# Envoy buffers its log files (written at each flush and at exit) and
# reopens at the next flush, so the lines still buffered at SIGUSR1 go to
# the new file: each request has exactly one line across the two files, and
# those sent after the reopen are in the new one.
ids() { cat "$@" | grep -o '"req-[0-9]*"' | tr -d '"' | sort; }
[ "$(ids "$WORK/access.log.1" "$WORK/access.log")" = "$(seq -f 'req-%g' 1 20 | sort)" ] ||
	fail "the two files have $(ids "$WORK/access.log.1" "$WORK/access.log" | tr '\n' ' '), want req-1 to req-20 once each"
for i in $(seq 11 20); do
	grep -q "\"req-$i\"" "$WORK/access.log" || fail "req-$i, sent after the reopen, is not in the new access.log"
done
echo PASS
