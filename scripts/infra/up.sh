#!/usr/bin/env bash
# up.sh [postgres] [redis] [kafka] [cassandra]
#
# Installs what is missing and starts the named servers (default: all) on 127.0.0.1 for the
# integration tests, then waits until each answers a real request. Idempotent: a server already
# answering on its port is reused as it is; jars and packages already present are not fetched
# again. Kafka and Cassandra (and the others) start in parallel. Data, logs and pid files live
# under .infra/ at the repository root. Prints one summary line per server; on failure prints
# the tail of the failing server's log and exits 1 naming it.
#
# Then: eval "$(scripts/infra/env.sh)" exports the PIAZZA_TEST_* addresses; scripts/infra/down.sh
# stops the servers.
set -euo pipefail
# shellcheck source=scripts/infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

server_names "$@" >/dev/null # validates, dies on an unknown name
mapfile -t SERVERS < <(server_names "$@")

now_us() { echo "${EPOCHREALTIME/[.,]/}"; }
seconds_since() { # START_US -> "12.3"
	local d=$(($(now_us) - $1))
	printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000))
}
START_US="$(now_us)"

take_lock
RUN_DIR="$INFRA_DIR/.up"
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"

# --- installing -------------------------------------------------------------------------------

APT_LOG="$INFRA_DIR/apt.log"

apt_install() {
	if ((EUID != 0)); then
		printf 'infra: error: missing packages: %s; install them as root (apt-get install -y %s)\n' "$*" "$*" >&2
		return 1
	fi
	info "installing Debian packages: $* (log: $APT_LOG)"
	local try
	# Another apt run (another checkout, a person) may hold the lock: wait for it, then retry.
	for try in 1 2 3; do
		if {
			apt-get -o DPkg::Lock::Timeout=300 update -qq &&
				DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
					--no-install-recommends "$@"
		} </dev/null >>"$APT_LOG" 2>&1 9>&-; then
			return 0
		fi
		sleep $((try * 5))
	done
	printf 'infra: error: apt-get install %s failed\n' "$*" >&2
	log_tail "$APT_LOG" 30
	return 1
}

# fetch_jars NAME LIBDIR STAMP -Dprop=value...: copies the runtime dependencies of
# scripts/infra/NAME/pom.xml into LIBDIR, unless LIBDIR already holds a complete copy for STAMP
# (so a restart never touches the network; ~/.m2 caches the downloads themselves).
jars_ready() { # LIBDIR STAMP
	[[ -f $1/.complete && "$(cat "$1/.complete")" == "$2" ]]
}

fetch_jars() {
	local name="$1" libdir="$2" stamp="$3" log
	shift 3
	jars_ready "$libdir" "$stamp" && return 0
	log="$INFRA_DIR/$name/fetch.log"
	mkdir -p "$INFRA_DIR/$name"
	info "fetching $stamp jars with Maven (log: $log)"
	rm -rf "$libdir"
	mkdir -p "$libdir"
	if ! mvn -B -q -f "$INFRA_SCRIPTS/$name/pom.xml" "$@" \
		"$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime \
		-DoutputDirectory="$libdir" >"$log" 2>&1; then
		printf 'infra: error: %s: fetching jars failed\n' "$name" >&2
		log_tail "$log" 30
		return 1
	fi
	echo "$stamp" >"$libdir/.complete"
}

KAFKA_STAMP="kafka_2.13 $KAFKA_VERSION slf4j $SLF4J_VERSION"
CASSANDRA_STAMP="cassandra-all $CASSANDRA_VERSION"

# --- starting ---------------------------------------------------------------------------------

# launch PIDFILE LOG COMMAND...: starts a long-running server detached from this script (own
# session, no terminal, no inherited lock fd, output to LOG) and records its pid in PIDFILE.
launch() {
	local pidfile="$1" log="$2"
	shift 2
	rm -f "$pidfile"
	[[ -f $log ]] && mv -f "$log" "$log.1"
	# The inner bash writes its own pid, then execs the server: the pid is the server's.
	# shellcheck disable=SC2016 # $$, $0 and $@ are the inner shell's
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >"$log" 2>&1 9>&- &
	for _ in $(seq 50); do
		[[ -s $pidfile ]] && return 0
		sleep 0.1
	done
	echo "no pid file $pidfile after 5 s" >&2
	return 1
}

prepare_postgres_dir() {
	[[ -d $PG_DIR ]] || mkdir -p "$PG_DIR"
	((EUID == 0)) || return 0
	chown postgres:postgres "$PG_DIR"
	if runuser -u postgres -- test -w "$PG_DIR"; then
		return 0
	fi
	# The postgres user cannot reach the checkout: keep the cluster where it can (see lib.sh).
	local real
	real="/var/tmp/piazza-infra-$(printf '%s' "$REPO_ROOT" | cksum | cut -d' ' -f1)/postgres"
	rmdir "$PG_DIR" 2>/dev/null || true
	mkdir -p "$real"
	chmod 755 "$(dirname "$real")"
	chown postgres:postgres "$real"
	ln -sfn "$real" "$INFRA_DIR/postgres"
	PG_DIR="$real"
	PG_DATA="$PG_DIR/data"
	PG_LOG="$PG_DIR/postgres.log"
}

start_postgres() {
	prepare_postgres_dir
	if [[ ! -s $PG_DATA/PG_VERSION ]]; then
		rm -rf "$PG_DATA"
		# Trust authentication on loopback: the tests connect as the superuser without a password.
		as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 \
			--no-locale --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
			log_tail "$PG_DIR/initdb.log" 20
			return 1
		}
		echo "include_if_exists = 'piazza.conf'" >>"$PG_DATA/postgresql.conf"
	fi
	# Rewritten at every start so a port override takes effect.
	cat >"$PG_DATA/piazza.conf" <<EOF
# Written by scripts/infra/up.sh at every start.
listen_addresses = '$INFRA_HOST'
port = $PG_PORT
# TCP only: a socket path under a deep checkout could exceed the 107-byte limit.
unix_socket_directories = ''
max_connections = 300
# A throwaway test cluster: durability is not worth the fsyncs (CREATE DATABASE per test).
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
	((EUID != 0)) || chown postgres:postgres "$PG_DATA/piazza.conf"
	as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_TIMEOUT" start \
		</dev/null >/dev/null 2>&1 9>&-
}

start_redis() {
	mkdir -p "$REDIS_DIR"
	rm -f "$REDIS_PID"
	[[ -f $REDIS_LOG ]] && mv -f "$REDIS_LOG" "$REDIS_LOG.1"
	# No persistence: test data dies with the server.
	redis-server --daemonize yes --bind "$INFRA_HOST" --port "$REDIS_PORT" --save "" \
		--appendonly no --dir "$REDIS_DIR" --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
		</dev/null >/dev/null 2>&1 9>&-
}

start_kafka() {
	mkdir -p "$KAFKA_DATA"
	render_template "$INFRA_SCRIPTS/kafka/server.properties.in" "$KAFKA_CONFIG" \
		INFRA_HOST KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_DATA
	if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
		"$JAVA17_HOME/bin/java" -cp "$KAFKA_LIB/*" kafka.tools.StorageTool format \
			-t "$KAFKA_CLUSTER_ID" -c "$KAFKA_CONFIG" --ignore-formatted \
			</dev/null >"$KAFKA_DIR/format.log" 2>&1 9>&- || {
			log_tail "$KAFKA_DIR/format.log" 20
			return 1
		}
	fi
	launch "$KAFKA_PID" "$KAFKA_LOG" "$JAVA17_HOME/bin/java" \
		-Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
		-Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
		-Dorg.slf4j.simpleLogger.showDateTime=true \
		-cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_CONFIG"
}

start_cassandra() {
	local jamm
	mkdir -p "$CASSANDRA_CONF" "$CASSANDRA_DATA"
	render_template "$INFRA_SCRIPTS/cassandra/cassandra.yaml.in" "$CASSANDRA_CONF/cassandra.yaml" \
		INFRA_HOST CASSANDRA_PORT CASSANDRA_STORAGE_PORT
	cp "$INFRA_SCRIPTS/cassandra/logback.xml" "$CASSANDRA_CONF/logback.xml"
	jamm="$(find "$CASSANDRA_LIB" -maxdepth 1 -name 'jamm-*.jar' | head -n 1)"
	[[ -n $jamm ]] || {
		echo "no jamm jar in $CASSANDRA_LIB" >&2
		return 1
	}
	# JVM flags: those of Cassandra's conf/jvm17-server.options (G1, JPMS, Netty) plus the
	# exports/opens it needs when run from plain jars; no JMX port (nothing here uses nodetool).
	launch "$CASSANDRA_PID" "$CASSANDRA_LOG" "$JAVA17_HOME/bin/java" \
		-Xms1g -Xmx1g -javaagent:"$jamm" \
		-XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 \
		-XX:G1HeapRegionSize=16m -XX:G1RSetUpdatingPauseTimePercent=5 -XX:MaxGCPauseMillis=300 \
		-XX:InitiatingHeapOccupancyPercent=70 -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError \
		-Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true \
		--add-exports java.base/jdk.internal.misc=ALL-UNNAMED \
		--add-exports java.base/jdk.internal.ref=ALL-UNNAMED \
		--add-exports java.base/sun.nio.ch=ALL-UNNAMED \
		--add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED \
		--add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED \
		--add-exports java.rmi/sun.rmi.server=ALL-UNNAMED \
		--add-exports java.sql/java.sql=ALL-UNNAMED \
		--add-exports java.base/java.lang.ref=ALL-UNNAMED \
		--add-exports jdk.unsupported/sun.misc=ALL-UNNAMED \
		--add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED \
		--add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED \
		--add-opens java.base/java.lang.module=ALL-UNNAMED \
		--add-opens java.base/jdk.internal.loader=ALL-UNNAMED \
		--add-opens java.base/jdk.internal.ref=ALL-UNNAMED \
		--add-opens java.base/jdk.internal.reflect=ALL-UNNAMED \
		--add-opens java.base/jdk.internal.math=ALL-UNNAMED \
		--add-opens java.base/jdk.internal.module=ALL-UNNAMED \
		--add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED \
		--add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED \
		--add-opens java.base/sun.nio.ch=ALL-UNNAMED \
		--add-opens java.base/java.io=ALL-UNNAMED \
		--add-opens java.base/java.lang.reflect=ALL-UNNAMED \
		--add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED \
		--add-opens java.base/java.lang=ALL-UNNAMED \
		--add-opens java.base/java.util=ALL-UNNAMED \
		--add-opens java.base/java.util.concurrent=ALL-UNNAMED \
		-Dio.netty.tryReflectionSetAccessible=true \
		-Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11 \
		-Dcassandra-foreground=yes \
		-Dcassandra.config="file://$CASSANDRA_CONF/cassandra.yaml" \
		-Dcassandra.storagedir="$CASSANDRA_DATA" \
		-Dcassandra.logdir="$CASSANDRA_DIR" \
		-Dlogback.configurationFile="$CASSANDRA_CONF/logback.xml" \
		-Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000 \
		-Dcassandra.skip_sync=true \
		-cp "$CASSANDRA_LIB/*" org.apache.cassandra.service.CassandraDaemon
}

server_timeout() {
	case "$1" in
	postgres) echo "$PG_TIMEOUT" ;;
	redis) echo "$REDIS_TIMEOUT" ;;
	kafka) echo "$KAFKA_TIMEOUT" ;;
	cassandra) echo "$CASSANDRA_TIMEOUT" ;;
	esac
}

# wait_ready NAME: polls until the server answers, failing early when its process is gone.
wait_ready() {
	local name="$1" timeout deadline started=$SECONDS
	timeout="$(server_timeout "$name")"
	deadline=$((SECONDS + timeout))
	until server_answers "$name"; do
		if ! server_pid "$name" >/dev/null && ((SECONDS - started >= 5)); then
			echo "$name exited during startup" >&2
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "$name did not answer on $INFRA_HOST:$(server_port "$name") within ${timeout}s" >&2
			return 1
		fi
		sleep 0.5
	done
}

# bring_up NAME ACTION: runs in the background; ACTION is start (install done, start it) or
# wait (our process is alive but did not answer yet). Leaves RUN_DIR/NAME.ok with the seconds
# it took, or RUN_DIR/NAME.err with the reason.
bring_up() {
	local name="$1" action="$2" t0
	t0="$(now_us)"
	if [[ $action == start ]] && ! "start_$name" 2>>"$RUN_DIR/$name.err"; then
		echo "$name failed to start" >>"$RUN_DIR/$name.err"
		return 1
	fi
	wait_ready "$name" 2>>"$RUN_DIR/$name.err" || return 1
	rm -f "$RUN_DIR/$name.err"
	seconds_since "$t0" >"$RUN_DIR/$name.ok"
}

# --- main -------------------------------------------------------------------------------------

command -v python3 >/dev/null || apt_install python3-minimal || die "python3 is needed for readiness probes"

# A port inside the ephemeral range can be taken by any outgoing connection (see lib.sh).
if read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then
	for port in "$PG_PORT" "$REDIS_PORT" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" "$CASSANDRA_PORT" "$CASSANDRA_STORAGE_PORT"; do
		if ((port >= eph_lo && port <= eph_hi)); then
			info "warning: port $port lies in the ephemeral range $eph_lo-$eph_hi; a bind may fail at random"
		fi
	done
fi

declare -A ACTION=() NOTE=()
FAILED=()
for s in "${SERVERS[@]}"; do
	port="$(server_port "$s")"
	if server_answers "$s"; then
		ACTION[$s]='reuse'
		if server_pid "$s" >/dev/null; then NOTE[$s]="reused"; else NOTE[$s]="reused, not started by these scripts"; fi
	elif server_pid "$s" >/dev/null; then
		ACTION[$s]='wait'
	elif port_open "$port"; then
		printf 'infra: error: %s: port %s:%s is taken by something that does not answer as %s\n' \
			"$s" "$INFRA_HOST" "$port" "$s" >&2
		FAILED+=("$s")
		ACTION[$s]=none
	else
		ACTION[$s]='start'
	fi
done

starting() { [[ ${ACTION[$1]:-} == start ]]; }

# Install in parallel: Debian packages in one apt run, jars in one Maven run after another
# (Maven's local repository is not safe for concurrent writers).
APT_PKGS=()
if starting postgres && [[ ! -x $PG_BIN/initdb ]]; then APT_PKGS+=(postgresql); fi
if starting redis && ! command -v redis-server >/dev/null; then APT_PKGS+=(redis-server); fi
if { starting kafka || starting cassandra; } && [[ ! -x $JAVA17_HOME/bin/java ]]; then
	APT_PKGS+=(openjdk-17-jre-headless)
fi
NEED_FETCH=0
if starting cassandra && ! jars_ready "$CASSANDRA_LIB" "$CASSANDRA_STAMP"; then NEED_FETCH=1; fi
if starting kafka && ! jars_ready "$KAFKA_LIB" "$KAFKA_STAMP"; then NEED_FETCH=1; fi
if ((NEED_FETCH)) && ! command -v mvn >/dev/null; then APT_PKGS+=(maven); fi

fetch_all() {
	if starting cassandra; then
		fetch_jars cassandra "$CASSANDRA_LIB" "$CASSANDRA_STAMP" -Dcassandra.version="$CASSANDRA_VERSION" || return 1
	fi
	if starting kafka; then
		fetch_jars kafka "$KAFKA_LIB" "$KAFKA_STAMP" -Dkafka.version="$KAFKA_VERSION" \
			-Dslf4j.version="$SLF4J_VERSION" || return 1
	fi
}

APT_OK=1 FETCH_OK=1
if ((${#APT_PKGS[@]})) && [[ " ${APT_PKGS[*]} " == *" maven "* ]]; then
	apt_install "${APT_PKGS[@]}" || APT_OK=0
	((APT_OK)) && { fetch_all || FETCH_OK=0; }
else
	apt_pid="" fetch_pid=""
	if ((${#APT_PKGS[@]})); then
		apt_install "${APT_PKGS[@]}" &
		apt_pid=$!
	fi
	if ((NEED_FETCH)); then
		fetch_all &
		fetch_pid=$!
	fi
	if [[ -n $apt_pid ]]; then wait "$apt_pid" || APT_OK=0; fi
	if [[ -n $fetch_pid ]]; then wait "$fetch_pid" || FETCH_OK=0; fi
fi
if ((!APT_OK)); then
	for s in postgres redis kafka cassandra; do
		if starting "$s"; then FAILED+=("$s") && ACTION[$s]=none; fi
	done
elif ((!FETCH_OK)); then
	if starting cassandra && ! jars_ready "$CASSANDRA_LIB" "$CASSANDRA_STAMP"; then FAILED+=(cassandra) && ACTION[cassandra]=none; fi
	if starting kafka && ! jars_ready "$KAFKA_LIB" "$KAFKA_STAMP"; then FAILED+=(kafka) && ACTION[kafka]=none; fi
fi

# Start everything that needs it at once; Cassandra dominates the wall time.
declare -A JOB=()
for s in "${SERVERS[@]}"; do
	case "${ACTION[$s]}" in
	start | wait)
		bring_up "$s" "${ACTION[$s]}" &
		JOB[$s]=$!
		;;
	esac
done
for s in "${!JOB[@]}"; do
	wait "${JOB[$s]}" || true
done

for s in "${SERVERS[@]}"; do
	port="$(server_port "$s")"
	if [[ -n ${JOB[$s]:-} ]]; then
		if [[ -f $RUN_DIR/$s.ok ]]; then
			NOTE[$s]="started in $(cat "$RUN_DIR/$s.ok")s"
		else
			FAILED+=("$s")
			sed 's/^/infra: error: /' "$RUN_DIR/$s.err" >&2 2>/dev/null || true
			log_tail "$(server_log "$s")" 40
		fi
	fi
	if [[ -n ${NOTE[$s]:-} ]]; then
		printf 'infra: %-9s ready on %s:%s (%s)\n' "$s" "$INFRA_HOST" "$port" "${NOTE[$s]}" >&2
	fi
done
rm -rf "$RUN_DIR"

if ((${#FAILED[@]})); then
	printf 'infra: FAILED: %s (after %ss; logs under %s; stop with scripts/infra/down.sh %s)\n' \
		"${FAILED[*]}" "$(seconds_since "$START_US")" "$INFRA_DIR" "${FAILED[*]}" >&2
	exit 1
fi
info "ready in $(seconds_since "$START_US")s; next: eval \"\$(scripts/infra/env.sh)\""
