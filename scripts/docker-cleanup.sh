#!/usr/bin/env bash
# docker-cleanup.sh removes what this project's Compose deployment (deploy/docker-compose.yml,
# Compose project "piazza") has left behind, and nothing else:
#
#   - its containers that are not running (exited, created, dead), and its running containers
#     of services that deploy/docker-compose.yml no longer defines (e.g. after
#     scripts/remove-service.sh);
#   - then its volumes and networks that no remaining container uses. A volume holds data
#     (databases, Kafka, signing keys): it is listed as such before anything is removed.
#
# Everything is selected by the label Compose puts on what it creates
# (com.docker.compose.project=<project>), so other projects' resources are never touched, and
# a running stack keeps its containers and whatever they use.
#
# Usage: scripts/docker-cleanup.sh [--yes] [--project NAME]
#   --yes           remove without asking (otherwise it shows the list and asks)
#   --project NAME  the Compose project (default: $COMPOSE_PROJECT_NAME, else "piazza")
#
# Exit status: 0 when done or nothing to do (also when Docker is not installed: then nothing of
# the project can exist here, and it says so); 1 when Docker cannot be reached or a removal
# fails; 2 on a usage error.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

project="${COMPOSE_PROJECT_NAME:-piazza}"
yes=false
while [[ $# -gt 0 ]]; do
	case "$1" in
	-y | --yes) yes=true ;;
	-p | --project)
		[[ $# -ge 2 ]] || { echo "docker-cleanup.sh: --project needs a name" >&2; exit 2; }
		project="$2"
		shift
		;;
	--project=*) project="${1#*=}" ;;
	-h | --help) usage; exit 0 ;;
	*) echo "docker-cleanup.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
compose_file="$root/deploy/docker-compose.yml"

if ! command -v docker >/dev/null 2>&1; then
	echo "docker-cleanup.sh: Docker is not installed here (no 'docker' command on PATH): there is nothing of project '$project' to clean up."
	exit 0
fi
if ! docker info >/dev/null 2>&1; then
	echo "docker-cleanup.sh: cannot reach the Docker daemon ('docker info' failed): is it running, and may this user use it?" >&2
	exit 1
fi

label="com.docker.compose.project=$project"

# The services the Compose file defines now; empty when Compose is unavailable, in which case
# only containers that are not running are removed.
defined=""
if [[ -f "$compose_file" ]] && defined="$(docker compose -f "$compose_file" -p "$project" config --services 2>/dev/null)"; then
	:
else
	defined=""
fi

declare -a rm_containers=() rm_volumes=() rm_networks=()
declare -A removing=()
while IFS=$'\t' read -r id name state service; do
	[[ -n "$id" ]] || continue
	orphan=false
	case "$state" in
	running | restarting | paused | removing) ;;
	*) orphan=true ;;
	esac
	if [[ "$orphan" == false && -n "$defined" && -n "$service" ]] && ! grep -qxF -- "$service" <<<"$defined"; then
		orphan=true
	fi
	if [[ "$orphan" == true ]]; then
		rm_containers+=("$id	$name ($state, service ${service:-?})")
		removing["$id"]=1
	fi
done < <(docker ps -a --no-trunc --filter "label=$label" --format '{{.ID}}	{{.Names}}	{{.State}}	{{.Label "com.docker.compose.service"}}')

# kept_users prints the containers (any project) that use the resource and are not being removed.
kept_users() {
	local filter="$1" id
	while read -r id; do
		[[ -n "$id" && -z "${removing[$id]:-}" ]] && echo "$id"
	done < <(docker ps -a -q --no-trunc --filter "$filter")
	return 0
}

while read -r volume; do
	[[ -n "$volume" ]] || continue
	if [[ -z "$(kept_users "volume=$volume")" ]]; then
		rm_volumes+=("$volume")
	fi
done < <(docker volume ls -q --filter "label=$label")

while read -r network; do
	[[ -n "$network" ]] || continue
	if [[ -z "$(kept_users "network=$network")" ]]; then
		rm_networks+=("$network")
	fi
done < <(docker network ls -q --no-trunc --filter "label=$label")

if [[ ${#rm_containers[@]} -eq 0 && ${#rm_volumes[@]} -eq 0 && ${#rm_networks[@]} -eq 0 ]]; then
	echo "docker-cleanup.sh: nothing to remove for project '$project'."
	exit 0
fi

echo "docker-cleanup.sh: will remove, from Compose project '$project':"
if [[ ${#rm_containers[@]} -gt 0 ]]; then
	echo "  containers:"
	for c in "${rm_containers[@]}"; do echo "    ${c#*	}"; done
fi
if [[ ${#rm_volumes[@]} -gt 0 ]]; then
	echo "  volumes (their data is deleted):"
	for v in "${rm_volumes[@]}"; do echo "    $v"; done
fi
if [[ ${#rm_networks[@]} -gt 0 ]]; then
	echo "  networks:"
	for n in "${rm_networks[@]}"; do echo "    $(docker network inspect -f '{{.Name}}' "$n" 2>/dev/null || echo "$n")"; done
fi

if [[ "$yes" != true ]]; then
	# The question is printed even when stdin is not a terminal (read -p would not), so that a
	# piped answer is still an answer to a visible question.
	printf 'Remove them? [y/N] '
	read -r answer || answer=""
	case "$answer" in
	y | Y | yes | YES) ;;
	*) echo "docker-cleanup.sh: nothing removed."; exit 0 ;;
	esac
fi

failed=0
for c in "${rm_containers[@]}"; do
	docker rm -f "${c%%	*}" >/dev/null || failed=1
done
for v in "${rm_volumes[@]}"; do
	docker volume rm "$v" >/dev/null || failed=1
done
for n in "${rm_networks[@]}"; do
	docker network rm "$n" >/dev/null || failed=1
done
if [[ $failed -ne 0 ]]; then
	echo "docker-cleanup.sh: some removals failed (see above)." >&2
	exit 1
fi
echo "docker-cleanup.sh: removed ${#rm_containers[@]} container(s), ${#rm_volumes[@]} volume(s), ${#rm_networks[@]} network(s)."
