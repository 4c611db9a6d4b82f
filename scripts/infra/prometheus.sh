#!/usr/bin/env bash
# prometheus.sh --dir DIR --listen HOST:PORT --target SERVICE=HOST:PORT[,HOST:PORT...]...
#               [--config FILE] [--interval DURATION]
#
# Runs a private Prometheus in the foreground (it execs, so its pid is this script's) against
# piazza processes started by hand or by a test, with the repository's scrape configuration:
#
#   1. installs the Debian package `prometheus` (and python3-yaml, for step 2) when missing;
#   2. renders FILE (default deploy/prometheus/prometheus.yml, the Compose deployment's) into
#      DIR/prometheus.yml: each static target group labelled service=SERVICE gets the addresses
#      given by --target SERVICE=...; groups of services not given, and scrape jobs left
#      without targets (Prometheus itself, the collector...), are dropped; the scrape and
#      evaluation intervals become DURATION (default 1s);
#   3. execs prometheus on HOST:PORT with its data under DIR/data and exemplar storage on
#      (the latency panels link their exemplars to traces).
#
# It prints the rendered configuration's path on stderr and nothing on stdout. Ready when
# GET http://HOST:PORT/-/ready answers 200; stop it with SIGTERM to its pid. Example, against
# the distributed layout of the README (admin addresses 127.0.0.1:9190-9195):
#
#   scripts/infra/prometheus.sh --dir /tmp/prom --listen 127.0.0.1:19990 \
#     --target gateway=127.0.0.1:9190 --target user=127.0.0.1:9191 --target post=127.0.0.1:9192 \
#     --target notification=127.0.0.1:9193 --target presence=127.0.0.1:9194 \
#     --target deadletter=127.0.0.1:9195
set -euo pipefail
# shellcheck source=scripts/infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$REPO_ROOT/deploy/prometheus/prometheus.yml"
DIR=""
LISTEN=""
INTERVAL=1s
TARGETS=()
while (($# > 0)); do
	(($# >= 2)) || die "prometheus.sh: $1 needs a value"
	case "$1" in
	--config) CONFIG="$2" ;;
	--dir) DIR="$2" ;;
	--listen) LISTEN="$2" ;;
	--interval) INTERVAL="$2" ;;
	--target) TARGETS+=("$2") ;;
	*) die "prometheus.sh: unknown argument '$1' (see the comment at the top of the script)" ;;
	esac
	shift 2
done
[[ -n $DIR ]] || die "prometheus.sh: --dir is required"
[[ -n $LISTEN ]] || die "prometheus.sh: --listen is required"
((${#TARGETS[@]} > 0)) || die "prometheus.sh: give at least one --target SERVICE=HOST:PORT"
[[ -r $CONFIG ]] || die "prometheus.sh: cannot read $CONFIG"

# --- install what is missing -----------------------------------------------------------------

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
if ((${#missing[@]} > 0)); then
	((EUID == 0)) || die "missing packages: ${missing[*]}; install them as root (apt-get install -y ${missing[*]})"
	mkdir -p "$INFRA_DIR"
	APT_LOG="$INFRA_DIR/apt.log"
	info "installing Debian packages: ${missing[*]} (log: $APT_LOG)"
	installed=0
	# Another apt run (up.sh, a person) may hold the lock: wait for it, then retry.
	for try in 1 2 3; do
		if {
			apt-get -o DPkg::Lock::Timeout=300 update -qq &&
				DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
					--no-install-recommends "${missing[@]}"
		} </dev/null >>"$APT_LOG" 2>&1; then
			installed=1
			break
		fi
		sleep $((try * 5))
	done
	if ((!installed)); then
		log_tail "$APT_LOG" 30
		die "apt-get install ${missing[*]} failed"
	fi
fi

# --- render the scrape configuration ---------------------------------------------------------

mkdir -p "$DIR/data"
RENDERED="$DIR/prometheus.yml"
python3 - "$CONFIG" "$RENDERED" "$INTERVAL" "${TARGETS[@]}" <<'PY'
import sys
import yaml

src, dest, interval, *pairs = sys.argv[1:]
targets = {}
for pair in pairs:
    service, sep, addrs = pair.partition("=")
    if not sep or not service or not addrs:
        sys.exit(f"prometheus.sh: --target {pair!r} is not SERVICE=HOST:PORT[,HOST:PORT...]")
    targets.setdefault(service, []).extend(a for a in addrs.split(",") if a)

with open(src) as f:
    cfg = yaml.safe_load(f)
cfg.setdefault("global", {})
cfg["global"].update(scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval)
jobs, used = [], set()
for job in cfg.get("scrape_configs", []):
    groups = []
    for group in job.pop("static_configs", []):
        service = (group.get("labels") or {}).get("service")
        if service in targets:
            used.add(service)
            groups.append(dict(group, targets=targets[service]))
    # Only static targets can be mapped: a job discovering its targets otherwise is dropped.
    if groups and not any(k.endswith("_sd_configs") for k in job):
        job["static_configs"] = groups
        # The job's own interval must not exceed the rendered one.
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
        jobs.append(job)
unknown = sorted(set(targets) - used)
if unknown:
    sys.exit(f"prometheus.sh: no target group labelled service={unknown[0]} in {src}")
cfg["scrape_configs"] = jobs
with open(dest, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
PY
info "prometheus: configuration $RENDERED, listening on $LISTEN"

# --- run ------------------------------------------------------------------------------------

# Debian's package puts the web console files where the binary finds them by default; the
# flags below keep everything else private to DIR.
exec prometheus \
	--config.file="$RENDERED" \
	--storage.tsdb.path="$DIR/data" \
	--storage.tsdb.retention.time=1d \
	--web.listen-address="$LISTEN" \
	--enable-feature=exemplar-storage \
	--log.level=warn
