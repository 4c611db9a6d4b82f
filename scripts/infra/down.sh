#!/usr/bin/env bash
# down.sh [postgres] [redis] [kafka] [cassandra]
#
# Stops the named servers (default: all) that scripts/infra/up.sh started, each through its pid
# file (never by process name), and waits until each has exited. Data under .infra/ is kept, so
# the next up.sh starts quickly. A server answering on the port without a pid file of ours is
# left alone and reported.
set -euo pipefail
# shellcheck source=scripts/infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

server_names "$@" >/dev/null # validates, dies on an unknown name
mapfile -t SERVERS < <(server_names "$@")
take_lock

STOP_TIMEOUT=90

# alive PID: the process exists and is not a zombie (a server whose parent never reaps it).
alive() {
	local state
	[[ -r /proc/$1/stat ]] || return 1
	state="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)"
	[[ -n $state && $state != Z ]]
}

stop_server() {
	local name="$1" pid i
	if ! pid="$(server_pid "$name")"; then
		if port_open "$(server_port "$name")"; then
			echo "$name: not started by scripts/infra (no pid file of ours); left running on port $(server_port "$name")"
		else
			echo "$name: not running"
		fi
		[[ $name == postgres ]] || rm -f "$(server_pidfile "$name")"
		return 0
	fi
	if [[ $name == postgres ]]; then
		# pg_ctl signals the pid in postmaster.pid and waits; fast = roll back open sessions.
		as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null 2>&1 9>&- || true
	else
		kill -TERM "$pid" 2>/dev/null || true
	fi
	for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
		alive "$pid" || break
		sleep 0.2
	done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
		echo "$name: did not stop within ${STOP_TIMEOUT}s; killed pid $pid"
	else
		echo "$name: stopped (pid $pid)"
	fi
	[[ $name == postgres ]] || rm -f "$(server_pidfile "$name")"
}

# Stop in parallel: Kafka and Cassandra each take a few seconds to shut down cleanly.
pids=()
for s in "${SERVERS[@]}"; do
	stop_server "$s" >"$INFRA_DIR/.down-$s" 2>&1 &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
for s in "${SERVERS[@]}"; do
	sed 's/^/infra: /' "$INFRA_DIR/.down-$s" >&2
	rm -f "$INFRA_DIR/.down-$s"
done
exit "$rc"
