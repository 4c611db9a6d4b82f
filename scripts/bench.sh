#!/usr/bin/env bash
# Runs the Go benchmarks of the repository and writes the results to bench/results/<UTC time>.txt
# together with the machine and commit they were measured on. When an earlier result exists it
# prints a benchstat comparison against the newest one, so a claimed improvement is measured in
# the same invocation. BENCH_COUNT and BENCH_TIME make the run longer (defaults suit a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${BENCH_COUNT:-5}
benchtime=${BENCH_TIME:-200ms}
mkdir -p bench/results
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
