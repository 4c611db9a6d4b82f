#!/usr/bin/env bash
# env.sh: prints the export lines that point the integration tests at the servers of up.sh:
#
#   scripts/infra/up.sh && eval "$(scripts/infra/env.sh)" && go test -tags integration ./...
#
# It only prints; it neither checks nor starts anything. The addresses follow the same
# PIAZZA_INFRA_*_PORT overrides as up.sh. To run the tests against servers started some other
# way (the Docker Compose file, say), export the PIAZZA_TEST_* variables yourself instead.
set -euo pipefail
# shellcheck source=scripts/infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cat <<EOT
export PIAZZA_TEST_POSTGRES_URL='postgres://postgres@$INFRA_HOST:$PG_PORT/postgres?sslmode=disable'
export PIAZZA_TEST_REDIS_ADDR='$INFRA_HOST:$REDIS_PORT'
export PIAZZA_TEST_KAFKA_BROKERS='$INFRA_HOST:$KAFKA_PORT'
export PIAZZA_TEST_CASSANDRA_HOSTS='$INFRA_HOST:$CASSANDRA_PORT'
EOT
