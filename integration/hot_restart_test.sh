#!/usr/bin/env bash
# The operator's path: start the restarter, curl the listener, hot restart
# with kill -HUP (epoch 1 takes over, epoch 0 exits 0), stop with kill -TERM
# (exit 0, nothing left).
. "$(dirname "$0")/testlib.sh"

write_sandbox
start_restarter "$WORK/start.sh"

# Epoch 0 serves.
wait_for "epoch 0 to answer" eval 'http_get "http://127.0.0.1:$PORT/" | grep -q "fakeenvoy epoch=0 "'
pid0=$(epoch_pid 0)

# kill -HUP: epoch 1 serves, epoch 0 drains and exits 0.
kill -HUP "$RESTARTER_PID"
wait_for "epoch 1 to answer" eval 'http_get "http://127.0.0.1:$PORT/" | grep -q "fakeenvoy epoch=1 "'
pid1=$(epoch_pid 1)
wait_for "epoch 0 to exit 0" log_has "PID=$pid0 exited with code=0\$"
log_has 'got SIGHUP$' || fail "no 'got SIGHUP' in the log"
kill -0 "$RESTARTER_PID" || fail "the restarter exited"

# kill -TERM: epoch 1 exits 0, then the restarter, exit 0.
kill -TERM "$RESTARTER_PID"
wait_exit "$RESTARTER_PID"
[ "$EXIT_CODE" -eq 0 ] || fail "restarter exit code $EXIT_CODE, want 0"
log_has "sending TERM to PID=$pid1\$" || fail "no TERM sent to epoch 1"
log_has "PID=$pid1 exited with code=0\$" || fail "epoch 1 did not exit 0"
log_has 'all children exited cleanly$' || fail "no 'all children exited cleanly'"
for pid in "$pid0" "$pid1"; do
	! kill -0 "$pid" 2>/dev/null || fail "PID $pid still alive"
done
echo PASS
