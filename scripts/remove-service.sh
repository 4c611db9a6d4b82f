#!/usr/bin/env bash
# remove-service.sh removes a service that scripts/add-service.sh added, cleanly: after it the
# tree is as it was before add-service.sh (git shows no change for a service added and removed
# without edits in between).
#
#   proto/piazza/NAME/, gen/piazza/NAME/, services/NAME/, process/NAME_service.go   deleted
#   process/config.go        NAME leaves process.Known; its --NAME-service-addr setting goes
#   process/services.go      its line in the table of services goes
#   deploy/docker-compose.yml        the NAME-service container goes
#   deploy/prometheus/prometheus.yml its scrape target goes
#
# The core services (user, post, notification, presence, deadletter, messaging, gateway) are
# refused unless --force: other services and the gateway call them, so removing one takes
# hand-written changes too. With --force it removes the same things and then lists every
# remaining reference to the service, which must be edited by hand before the build passes.
#
# Usage: scripts/remove-service.sh [--force] NAME
set -euo pipefail

die() { echo "remove-service.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

readonly core=(user post notification presence deadletter messaging gateway)

force=false
name=""
for arg in "$@"; do
	case "$arg" in
	-f | --force) force=true ;;
	-h | --help) usage ;;
	-*) die "unknown option '$arg'" ;;
	*) [[ -z "$name" ]] || usage; name="$arg" ;;
	esac
done
[[ -n "$name" ]] || usage
[[ "$name" =~ ^[a-z][a-z0-9]{1,29}$ ]] || die "'$name' is not a service name"
Name="${name^}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

is_core=false
for c in "${core[@]}"; do
	[[ "$c" != "$name" ]] || is_core=true
done
if [[ "$is_core" == true && "$force" != true ]]; then
	die "'$name' is a core service of the platform: other services and the gateway depend on it. Refusing without --force."
fi

found=false
for path in "services/$name" "proto/piazza/$name" "gen/piazza/$name" "process/${name}_service.go"; do
	[[ ! -e "$path" ]] || found=true
done
grep -qE "^[[:space:]]*\"$name\",[[:space:]]*$" process/config.go 2>/dev/null && found=true
grep -qE "^  $name-service:" deploy/docker-compose.yml 2>/dev/null && found=true
[[ "$found" == true ]] || die "there is no service '$name' to remove"
command -v go >/dev/null || die "go is not on PATH"
# The toolchain's own gofmt, whether or not its directory is on PATH.
gofmt="$(go env GOROOT)/bin/gofmt"

# ------------------------------------------------------------------------------------- files
rm -rf "services/$name" "proto/piazza/$name" "gen/piazza/$name" "process/${name}_service.go"

# edit FILE AWK-PROGRAM [awk -v assignments...]: rewrites FILE through awk.
edit() {
	local file="$1" prog="$2"
	shift 2
	[[ -f "$file" ]] || return 0
	awk "$@" "$prog" "$file" >"$file.tmp"
	if cmp -s "$file" "$file.tmp"; then
		rm -f "$file.tmp"
	else
		mv "$file.tmp" "$file"
	fi
}

# ------------------------------------------------------------------------------ registration
# process.Known: the line holding only "NAME", inside `var Known = []string{ ... }`.
edit process/config.go '
	/^var Known = \[\]string\{/ { in_known = 1 }
	in_known && $0 ~ "^[[:space:]]*\"" name "\",[[:space:]]*$" { next }
	in_known && /^\}/ { in_known = 0 }
	{ print }
' -v name="$name"
# Its setting, in the form add-service.sh writes it.
edit process/config.go '
	$1 == field && index($0, "flag:\"" name "-service-addr\"") { next }
	{ print }
' -v name="$name" -v field="${Name}ServiceAddr"
edit process/services.go '
	index($0, "{\"" name "\", a.add" Name "},") { next }
	{ print }
' -v name="$name" -v Name="$Name"
"$gofmt" -w process/config.go process/services.go

# ----------------------------------------------------------------------------------- deployment
# The service's block: from its key to the next line at its indentation or less (the next
# service, a comment before it, or the next top-level key), blank lines included.
edit deploy/docker-compose.yml '
	$0 == "  " name "-service:" { skipping = 1; next }
	skipping && ($0 ~ /^  [^ ]/ || $0 ~ /^[^ ]/) { skipping = 0 }
	!skipping { print }
' -v name="$name"
# The target group: its "- targets:" line and the "labels:" line that follows it.
edit deploy/prometheus/prometheus.yml '
	index($0, "- targets: [\"" name "-service:9090\"]") { dropped = 1; next }
	dropped && $1 == "labels:" { dropped = 0; next }
	{ dropped = 0; print }
' -v name="$name"

echo "remove-service.sh: removed $name-service."
if [[ "$is_core" == true ]]; then
	echo "remove-service.sh: '$name' is a core service; these references remain and must be edited by hand:"
	grep -rnE "services/$name\"|gen/piazza/$name/|\"$name\"|${Name}Service|$name-service" \
		--include='*.go' --include='*.yml' --include='*.yaml' --include='*.proto' \
		process cmd services e2e deploy 2>/dev/null | sed 's/^/  /' || echo "  (none found)"
fi
