#!/usr/bin/env bash
# Runs the benchmarks of the repository and writes their results under bench/results/, with the
# machine and commit they were measured on.
#
#   scripts/bench.sh [micro|load|distributed|all]      (default: all)
#
# micro: the Go benchmarks (go test -bench) into bench/results/<UTC time>.txt; when an earlier
#        result exists, a benchstat comparison against the newest one, so a claimed improvement
#        is measured in the same invocation. BENCH_COUNT and BENCH_TIME make the run longer
#        (defaults suit a smoke run).
# load:  the load scenarios of cmd/piazza-bench (sse-capacity, fanout, api-mix, dm) against the
#        embedded default, into bench/results/<UTC time>-embedded-all.{json,md}. BENCH_SIZE
#        picks the size (smoke, small — the default, a few minutes — or large); BENCH_ARGS
#        passes more flags, e.g. BENCH_ARGS='--profile fanout' or
#        BENCH_ARGS='--target-url=http://127.0.0.1:8080 --admin-url=http://127.0.0.1:9190'.
# distributed: the same scenarios against a distributed deployment on the real servers, started
#        and stopped by scripts/bench-distributed.sh, into bench/results/<UTC time>-distributed-all.*
#        (BENCH_SIZE and BENCH_ARGS as for load). Not part of all: it needs the servers.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
case "$what" in
  micro|load|all) ;;
  distributed)
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
    exec scripts/bench-distributed.sh --size="${BENCH_SIZE:-small}" ${BENCH_ARGS:-}
    ;;
  *) echo "usage: $0 [micro|load|distributed|all]" >&2; exit 2 ;;
esac
mkdir -p bench/results

if [ "$what" != load ]; then
  count=${BENCH_COUNT:-5}
  benchtime=${BENCH_TIME:-200ms}
  previous=$(ls -1 bench/results/*.txt 2>/dev/null | sort | tail -n 1 || true)
  out="bench/results/$(date -u +%Y%m%dT%H%M%SZ).txt"
  {
    echo "# commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(go version)"
    go test -run '^$' -bench . -benchmem -count "$count" -benchtime "$benchtime" ./...
  } | tee "$out.partial" | grep -E '^(Benchmark|ok|FAIL|#)' || true
  mv "$out.partial" "$out"
  echo "results: $out"
  if [ -n "$previous" ]; then
    echo "compared with $previous:"
    go tool benchstat "$previous" "$out"
  fi
fi

if [ "$what" != micro ]; then
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
  go run ./cmd/piazza-bench --size="${BENCH_SIZE:-small}" ${BENCH_ARGS:-}
fi
