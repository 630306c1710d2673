#!/bin/sh
# monit: /etc/envoy/envoy-monit.sh, the start, stop and restart programs of
# envoy.monitrc. monit also calls "restart" when it finds the service down,
# so restart hot restarts a running restarter and starts a missing one.
set -u
pid_file=/run/envoy/restarter.pid
socket=/run/envoy/restarter.sock
running() { pid=$(cat "$pid_file" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }

case "${1:-}" in
start)
	mkdir -p /run/envoy /var/log/envoy
	/usr/local/bin/restarter \
		--pid-file "$pid_file" \
		--on-failed-restart keep \
		--init-gate auto \
		--control-socket "$socket" \
		--base-id-path /run/envoy/base-id \
		--check /etc/envoy/start_envoy.sh --check-arg --mode --check-arg validate \
		--ready-url http://127.0.0.1:9901/server_info \
		--ready-timeout 120s \
		--term-wait 30s \
		/etc/envoy/start_envoy.sh >>/var/log/envoy/restarter.log 2>&1 </dev/null &
	;;
stop)
	# TERM, then wait for the restarter to stop every epoch and exit (it
	# removes its pid file).
	running || exit 0
	kill -TERM "$pid"
	while [ -e "$pid_file" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
	;;
restart)
	# A hot restart; fails (Envoy keeps serving) when the check refuses it.
	if running; then
		exec /usr/local/bin/restarter reload --control-socket "$socket"
	fi
	exec "$0" start
	;;
*)
	echo "usage: $0 start|stop|restart" >&2
	exit 2
	;;
esac
