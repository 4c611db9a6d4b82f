#!/usr/bin/env bash
# Runs the load scenarios of cmd/piazza-bench against a distributed deployment that it starts and
# stops itself, on the servers of scripts/infra (started if they are not running): every service in
# its own process (user, post, notification, presence, deadletter, messaging) and two gateways, on
# PostgreSQL, Kafka, Redis and Cassandra.
#
#   scripts/bench-distributed.sh [piazza-bench flags and scenarios]
#   e.g. scripts/bench-distributed.sh --size=small --profile fanout dm
#
# The deployment gets names of its own (databases bench<time>_<service>, Cassandra keyspace,
# Kafka topics and consumer groups under --bus-namespace, Redis keys under --redis-prefix), so it
# can share the servers with tests and other runs; its databases are dropped when it stops.
#
# PIAZZA_BIN       the piazza binary to run (default: built from ./cmd/piazza into .bench/)
# BENCH_PORT_BASE  first of the loopback ports it listens on (default 28000; it uses base+1 …
#                  base+199), so two runs side by side need two bases
# BENCH_KEEP=1     leave the deployment running after the scenarios (its stop command is printed)
# BENCH_SERVICE_ARGS  extra flags for every service process (e.g. --trace-sample-ratio=0)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/infra/up.sh >&2
eval "$(scripts/infra/env.sh)"

bin=${PIAZZA_BIN:-}
if [ -z "$bin" ]; then
  mkdir -p .bench
  bin=$root/.bench/piazza
  go build -o "$bin" ./cmd/piazza
fi
base=${BENCH_PORT_BASE:-28000}
name=bench$(date -u +%H%M%S)$$
dir=$(mktemp -d "${TMPDIR:-/tmp}/piazza-$name.XXXXXX")
mkdir -p "$dir/keys"
services=(user post notification presence deadletter)
pgbase=${PIAZZA_TEST_POSTGRES_URL%%\?*}
pgbase=${pgbase%/*}
db() { echo "$pgbase/${name}_$1?sslmode=disable"; }

# shellcheck disable=SC2317 # called by the EXIT trap
stop() {
  if [ -f "$dir/pids" ]; then
    # Gateways first, then the services they call.
    for pid in $(tac "$dir/pids"); do kill -TERM "$pid" 2>/dev/null || true; done
    while read -r pid; do
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    done <"$dir/pids"
  fi
  for svc in "${services[@]}"; do
    psql -q "$PIAZZA_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS ${name}_$svc WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}
if [ "${BENCH_KEEP:-0}" != 1 ]; then
  trap stop EXIT
fi

# An Ed25519 signing key for user-service (PKCS#8 PEM, as --jwt-keys-dir expects).
openssl genpkey -algorithm ed25519 -out "$dir/keys/$(date -u +%Y%m%dT%H%M%SZ).pem" 2>/dev/null
for svc in "${services[@]}"; do
  psql -q "$PIAZZA_TEST_POSTGRES_URL" -c "CREATE DATABASE ${name}_$svc"
done
cassandra=(--cassandra-hosts="$PIAZZA_TEST_CASSANDRA_HOSTS" --cassandra-keyspace="$name")
"$bin" migrate postgres --user-database-url="$(db user)" --post-database-url="$(db post)" \
  --notification-database-url="$(db notification)" --presence-database-url="$(db presence)" \
  --deadletter-database-url="$(db deadletter)" >"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log" >&2; exit 1; }
"$bin" migrate cassandra "${cassandra[@]}" >>"$dir/migrate.log" 2>&1 || { cat "$dir/migrate.log" >&2; exit 1; }

# shellcheck disable=SC2206 # BENCH_SERVICE_ARGS is a list of flags
common=(--kafka-brokers="$PIAZZA_TEST_KAFKA_BROKERS" --redis-addr="$PIAZZA_TEST_REDIS_ADDR"
  --redis-prefix="$name:" --bus-namespace="$name." --log-level=warn --pprof ${BENCH_SERVICE_ARGS:-})
run() {
  local log=$1
  shift
  "$bin" serve "$@" "${common[@]}" >"$dir/$log.log" 2>&1 &
  echo $! >>"$dir/pids"
}
grpc() { echo "127.0.0.1:$((base + $1))"; }
admin() { echo "127.0.0.1:$((base + 100 + $1))"; }
run user --services=user --grpc-addr="$(grpc 1)" --admin-addr="$(admin 1)" --user-database-url="$(db user)" \
  --jwt-keys-dir="$dir/keys" --argon2-memory-kib=64 --argon2-iterations=1 --access-token-ttl=12h
run post --services=post --grpc-addr="$(grpc 2)" --admin-addr="$(admin 2)" --post-database-url="$(db post)" \
  --user-service-addr="$(grpc 1)"
run notification --services=notification --grpc-addr="$(grpc 3)" --admin-addr="$(admin 3)" \
  --notification-database-url="$(db notification)" --user-service-addr="$(grpc 1)"
run presence --services=presence --grpc-addr="$(grpc 4)" --admin-addr="$(admin 4)" --presence-database-url="$(db presence)"
run deadletter --services=deadletter --grpc-addr="$(grpc 5)" --admin-addr="$(admin 5)" \
  --deadletter-database-url="$(db deadletter)"
run messaging --services=messaging --grpc-addr="$(grpc 6)" --admin-addr="$(admin 6)" "${cassandra[@]}"
peers=(--user-service-addr="$(grpc 1)" --post-service-addr="$(grpc 2)" --notification-service-addr="$(grpc 3)"
  --presence-service-addr="$(grpc 4)" --messaging-service-addr="$(grpc 6)")
limits=(--signup-limit-per-address=1000000/1m:1000000 --signup-limit-per-account=1000000/1m:1000000
  --login-limit-per-address=1000000/1m:1000000 --login-limit-per-account=1000000/1m:1000000)
run gateway1 --services=gateway --http-addr="127.0.0.1:$((base + 81))" --admin-addr="$(admin 81)" "${peers[@]}" "${limits[@]}"
run gateway2 --services=gateway --http-addr="127.0.0.1:$((base + 82))" --admin-addr="$(admin 82)" "${peers[@]}" "${limits[@]}"

for n in 1 2 3 4 5 6 81 82; do
  ok=
  for _ in $(seq 1 240); do
    if curl -sf -o /dev/null "http://$(admin "$n")/readyz"; then ok=1; break; fi
    sleep 0.5
  done
  if [ -z "$ok" ]; then
    echo "bench-distributed: the process with admin address $(admin "$n") did not become ready; its logs:" >&2
    tail -n 20 "$dir"/*.log >&2
    exit 1
  fi
done
echo "bench-distributed: deployment $name ready (logs in $dir)" >&2

targets="http://127.0.0.1:$((base + 81)),http://127.0.0.1:$((base + 82))"
admins="http://$(admin 81),http://$(admin 82)"
status=0
go run ./cmd/piazza-bench --target-url="$targets" --admin-url="$admins" "$@" || status=$?
if [ "${BENCH_KEEP:-0}" = 1 ]; then
  echo "bench-distributed: left running; stop with: kill \$(cat $dir/pids) and drop the databases ${name}_*" >&2
fi
exit "$status"
