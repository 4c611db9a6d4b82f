#!/usr/bin/env bash
# status.sh [postgres] [redis] [kafka] [cassandra]
#
# Prints one line per server (default: all): NAME STATE ADDRESS PID, where STATE is
#   running   answers on its port; pid is ours, or "-" when something else started it
#   starting  our process is alive but does not answer (yet)
#   stopped   neither
# Exits 0 when every named server is running, 3 otherwise (like an init script's status).
set -euo pipefail
# shellcheck source=scripts/infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

server_names "$@" >/dev/null # validates, dies on an unknown name
mapfile -t SERVERS < <(server_names "$@")

rc=0
for s in "${SERVERS[@]}"; do
	pid="$(server_pid "$s" || echo -)"
	if server_answers "$s"; then
		state=running
	elif [[ $pid != - ]]; then
		state=starting
		rc=3
	else
		state=stopped
		rc=3
	fi
	printf '%-9s  %-8s  %s:%-5s  pid %s\n' "$s" "$state" "$INFRA_HOST" "$(server_port "$s")" "$pid"
done
exit "$rc"
