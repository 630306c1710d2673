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

# Each request has exactly one line, in the file that was current then.
ids() { grep -o '"req-[0-9]*"' "$1" | tr -d '"' | sort; }
[ "$(ids "$WORK/access.log.1")" = "$(seq -f 'req-%g' 1 10 | sort)" ] ||
	fail "access.log.1 has $(ids "$WORK/access.log.1" | tr '\n' ' '), want req-1 to req-10 once each"
[ "$(ids "$WORK/access.log")" = "$(seq -f 'req-%g' 11 20 | sort)" ] ||
	fail "access.log has $(ids "$WORK/access.log" | tr '\n' ' '), want req-11 to req-20 once each"

kill -TERM "$RESTARTER_PID"
wait_exit "$RESTARTER_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "restarter exit code $EXIT_CODE, want 0"
echo PASS
