# shellcheck shell=bash
# shellcheck disable=SC2034 # settings used by the scripts that source this file
# Shared settings and helpers of scripts/infra. Sourced by up.sh, down.sh, status.sh and env.sh;
# it defines things and starts nothing.
#
# Every port, version and path lives here, in one place. Ports can be overridden from the
# environment (PIAZZA_INFRA_*_PORT) so two checkouts, or a machine with something else on the
# default port, can run side by side; env.sh prints the addresses derived from the same values.

INFRA_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$INFRA_SCRIPTS/../.." && pwd)"
# Binaries, data, logs and pid files; git-ignored.
INFRA_DIR="$REPO_ROOT/.infra"

INFRA_HOST=127.0.0.1
# The servers every command acts on when it is given no names; also the start/summary order.
ALL_SERVERS=(postgres redis kafka cassandra)

# --- ports ---
# Not the usual ones, so a packaged server on its default port never collides; and below the
# kernel's ephemeral range (32768-60999 by default), so no outgoing connection of another
# program (Kafka's own broker-to-controller link, say) can be holding one of them as its local
# port while the server is down and about to bind it. up.sh warns about an override inside it.
PG_PORT="${PIAZZA_INFRA_PG_PORT:-15432}"
REDIS_PORT="${PIAZZA_INFRA_REDIS_PORT:-16379}"
KAFKA_PORT="${PIAZZA_INFRA_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${PIAZZA_INFRA_KAFKA_CONTROLLER_PORT:-19093}"
CASSANDRA_PORT="${PIAZZA_INFRA_CASSANDRA_PORT:-19042}"
CASSANDRA_STORAGE_PORT="${PIAZZA_INFRA_CASSANDRA_STORAGE_PORT:-17000}"

# --- versions and toolchain ---
KAFKA_VERSION=4.1.1
CASSANDRA_VERSION=5.0.6
SLF4J_VERSION=2.0.17
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
# Cassandra 5.0 runs on Java 17 only in practice (newer JDKs need flags it lacks); Kafka uses
# the same JVM so one install serves both.
JAVA17_HOME="${PIAZZA_INFRA_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
PG_BIN="${PIAZZA_INFRA_PG_BIN:-/usr/lib/postgresql/15/bin}"

# --- readiness timeouts, seconds ---
PG_TIMEOUT=60
REDIS_TIMEOUT=30
KAFKA_TIMEOUT=120
CASSANDRA_TIMEOUT=180

# --- layout under .infra ---
# The postgres OS user must reach its data directory. When the checkout lies under a directory
# it cannot search (a clone in /root, say), up.sh keeps the cluster in /var/tmp instead and
# leaves .infra/postgres as a symlink to it; the postgres user is then given the real path.
PG_DIR="$INFRA_DIR/postgres"
if [[ -L $PG_DIR ]]; then
	PG_DIR="$(readlink -f "$PG_DIR")"
fi
PG_DATA="$PG_DIR/data"
PG_LOG="$PG_DIR/postgres.log"
REDIS_DIR="$INFRA_DIR/redis"
REDIS_PID="$REDIS_DIR/redis.pid"
REDIS_LOG="$REDIS_DIR/redis.log"
KAFKA_DIR="$INFRA_DIR/kafka"
KAFKA_LIB="$KAFKA_DIR/lib"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_CONFIG="$KAFKA_DIR/server.properties"
# Any fixed id will do for a throwaway single-node cluster; fixed keeps the formatted data
# valid across restarts.
KAFKA_CLUSTER_ID=HlkWxcBIQCO4QrD069yZnQ
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
CASSANDRA_DIR="$INFRA_DIR/cassandra"
CASSANDRA_LIB="$CASSANDRA_DIR/lib"
CASSANDRA_CONF="$CASSANDRA_DIR/conf"
CASSANDRA_DATA="$CASSANDRA_DIR/data"
CASSANDRA_PID="$CASSANDRA_DIR/cassandra.pid"
CASSANDRA_LOG="$CASSANDRA_DIR/cassandra.log"

info() { printf 'infra: %s\n' "$*" >&2; }
die() {
	printf 'infra: error: %s\n' "$*" >&2
	exit 1
}

# server_names validates the names given on a command line (none means all) and prints them in
# ALL_SERVERS order, each once.
server_names() {
	local want=("$@") s n found
	if ((${#want[@]} == 0)); then
		want=("${ALL_SERVERS[@]}")
	fi
	for n in "${want[@]}"; do
		found=0
		for s in "${ALL_SERVERS[@]}"; do
			[[ $n == "$s" ]] && found=1
		done
		((found)) || die "unknown server '$n' (known: ${ALL_SERVERS[*]})"
	done
	for s in "${ALL_SERVERS[@]}"; do
		for n in "${want[@]}"; do
			if [[ $n == "$s" ]]; then
				echo "$s"
				break
			fi
		done
	done
}

server_port() {
	case "$1" in
	postgres) echo "$PG_PORT" ;;
	redis) echo "$REDIS_PORT" ;;
	kafka) echo "$KAFKA_PORT" ;;
	cassandra) echo "$CASSANDRA_PORT" ;;
	esac
}

server_log() {
	case "$1" in
	postgres) echo "$PG_LOG" ;;
	redis) echo "$REDIS_LOG" ;;
	kafka) echo "$KAFKA_LOG" ;;
	cassandra) echo "$CASSANDRA_LOG" ;;
	esac
}

server_pidfile() {
	case "$1" in
	postgres) echo "$PG_DATA/postmaster.pid" ;;
	redis) echo "$REDIS_PID" ;;
	kafka) echo "$KAFKA_PID" ;;
	cassandra) echo "$CASSANDRA_PID" ;;
	esac
}

# server_cmdline_marker is a string the server's /proc/PID/cmdline must contain, so a pid file
# left behind by a dead server never makes us signal an unrelated process that reused the pid.
server_cmdline_marker() {
	case "$1" in
	postgres) echo "postgres" ;;
	redis) echo "redis-server" ;;
	kafka) echo "kafka.Kafka" ;;
	cassandra) echo "org.apache.cassandra.service.CassandraDaemon" ;;
	esac
}

# server_pid prints the pid of the server this checkout started, or fails when its pid file is
# absent or names a process that is gone or is not that server.
server_pid() {
	local pidfile pid
	pidfile="$(server_pidfile "$1")"
	[[ -r $pidfile ]] || return 1
	pid="$(head -n 1 "$pidfile" 2>/dev/null | tr -dc '0-9')"
	[[ -n $pid ]] || return 1
	[[ -r /proc/$pid/cmdline ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(server_cmdline_marker "$1")" || return 1
	echo "$pid"
}

# port_open succeeds when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	# shellcheck disable=SC2016 # $0 and $1 are the inner shell's
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$INFRA_HOST" "$1" 2>/dev/null
}

# server_answers succeeds when the server speaks its own protocol on its port (a real query for
# Kafka and Cassandra, not just an open port): that is what "ready" and "reusable" mean here.
server_answers() {
	local port
	port="$(server_port "$1")"
	port_open "$port" || return 1
	python3 "$INFRA_SCRIPTS/probe.py" "$1" "$INFRA_HOST" "$port" >/dev/null 2>&1
}

# as_postgres runs a command as the postgres OS user when we are root (the server refuses to
# run as root) and as ourselves otherwise.
as_postgres() {
	if ((EUID == 0)); then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# render_template copies TEMPLATE to DEST replacing every @NAME@ by the value of shell variable
# NAME, for the NAMEs given.
render_template() {
	local template="$1" dest="$2" name value expr=()
	shift 2
	for name in "$@"; do
		value="${!name}"
		value="${value//\\/\\\\}"
		value="${value//|/\\|}"
		value="${value//&/\\&}"
		expr+=(-e "s|@${name}@|${value}|g")
	done
	sed "${expr[@]}" "$template" >"$dest.tmp"
	mv "$dest.tmp" "$dest"
}

# log_tail prints the last lines of a server's log to stderr, indented, for failure reports.
log_tail() {
	local log="$1" lines="${2:-40}"
	if [[ -s $log ]]; then
		printf 'infra: --- last %s lines of %s ---\n' "$lines" "$log" >&2
		tail -n "$lines" "$log" | sed 's/^/  | /' >&2
	else
		printf 'infra: (no log at %s)\n' "$log" >&2
	fi
}

# take_lock serialises up.sh and down.sh runs of this checkout (several `make test` at once
# must not start two Kafkas). The lock is fd 9; every server is started with 9>&- so a
# long-lived server never inherits, and so keeps holding, the lock.
take_lock() {
	mkdir -p "$INFRA_DIR"
	exec 9>"$INFRA_DIR/.lock"
	if flock -n 9; then
		return 0
	fi
	info "waiting for another scripts/infra command of this checkout to finish"
	if ! flock -w 900 9; then
		die "another scripts/infra command has held $INFRA_DIR/.lock for 15 minutes"
	fi
}
