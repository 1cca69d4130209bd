#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker+controller), run straight
# from its Maven Central jars: no Docker, no release tarball.
#
#   scripts/kafka.sh start    start a broker at AGENTSTREAM_KAFKA_BOOTSTRAP, or reuse one
#                             that already answers there
#   scripts/kafka.sh stop     stop the broker this checkout started (nobody else's)
#   scripts/kafka.sh status   is a broker answering? is ours running?
#   scripts/kafka.sh logs [-f] [-n N]   tail the broker log
#
# Environment:
#   AGENTSTREAM_KAFKA_BOOTSTRAP        host:port (default 127.0.0.1:9092); "kafka://h:p"
#                                      and comma lists are accepted, the first entry is used
#   AGENTSTREAM_KAFKA_VERSION          Kafka version (default 4.1.1; 4.1.2, 4.1.0 are fallbacks)
#   AGENTSTREAM_KAFKA_LIBS             jar cache dir (default
#                                      ${XDG_CACHE_HOME:-$HOME/.cache}/agentstream/kafka-<ver>/libs,
#                                      outside the repo so fresh clones reuse it)
#   AGENTSTREAM_KAFKA_CONTROLLER_PORT  KRaft controller port (default: broker port + 1)
#   AGENTSTREAM_KAFKA_SASL_PORT        a second listener, SASL_PLAINTEXT with mechanism PLAIN
#                                      and the one user agentstream/agentstream-local (default:
#                                      broker port + 2), so that the clients' SASL settings
#                                      are tested against a real broker; 0 turns it off
#   AGENTSTREAM_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   KAFKA_HEAP_OPTS                    JVM heap flags (default -Xmx1G -Xms1G)
#
# State (data, config, log, pid) lives in <repo>/.services/kafka (git-ignored).
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
# shellcheck source=scripts/_log.sh
source "$SCRIPT_DIR/_log.sh"
ROOT="$(cd -- "$SCRIPT_DIR/.." && pwd -P)"
KDIR="$ROOT/.services/kafka"
DATA_DIR="$KDIR/data"
CONFIG="$KDIR/server.properties"
LOG4J_CONFIG="$KDIR/log4j2.properties"
LOG_FILE="$KDIR/kafka.log"      # written by log4j2
OUT_FILE="$KDIR/kafka.out"      # JVM stdout/stderr (crashes, bind errors before log4j is up)
PID_FILE="$KDIR/kafka.pid"

LOG4J_VERSION=2.24.3
MAVEN_DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
START_TIMEOUT="${AGENTSTREAM_KAFKA_START_TIMEOUT:-90}"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"

say() { printf 'kafka: %s\n' "$*"; }
die() { printf 'kafka: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- address ----------------------------------------------------------------------
parse_bootstrap() {
    local b="${AGENTSTREAM_KAFKA_BOOTSTRAP:-127.0.0.1:9092}"
    b="${b%%,*}"        # first entry of a comma list
    b="${b#*://}"       # faust style kafka://host:port
    if [[ "$b" =~ ^\[([0-9a-fA-F:]+)\]:([0-9]+)$ ]]; then   # [::1]:9092
        HOST="${BASH_REMATCH[1]}"; PORT="${BASH_REMATCH[2]}"; LISTEN_HOST="[$HOST]"
    elif [[ "$b" =~ ^([^:]+):([0-9]+)$ ]]; then
        HOST="${BASH_REMATCH[1]}"; PORT="${BASH_REMATCH[2]}"; LISTEN_HOST="$HOST"
    elif [[ "$b" =~ ^[^:]+$ ]]; then
        HOST="$b"; PORT=9092; LISTEN_HOST="$HOST"
    else
        die "cannot parse AGENTSTREAM_KAFKA_BOOTSTRAP='${AGENTSTREAM_KAFKA_BOOTSTRAP:-}' (want host:port)"
    fi
    CONTROLLER_PORT="${AGENTSTREAM_KAFKA_CONTROLLER_PORT:-$((PORT + 1))}"
    SASL_PORT="${AGENTSTREAM_KAFKA_SASL_PORT:-$((PORT + 2))}"
}

# --- readiness probe ----------------------------------------------------------------
# A bound port is not a ready broker: Kafka binds its listeners before it serves
# requests. So speak the protocol: ApiVersions v0, then Metadata v4 (no topics), and
# require at least one registered broker. Python stdlib only, no client library.
# Exit 0 = a ready Kafka answers; 1 = nothing usable there (reason on stderr).
probe() {
    python3 - "$HOST" "$PORT" "${1:-3}" <<'PY'
import socket, struct, sys

host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

def recvn(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by peer")
        buf += chunk
    return buf

def call(sock, api_key, version, corr, body=b""):
    client = b"agentstream-probe"
    # request header v1: api_key, api_version, correlation_id, client_id (string)
    msg = struct.pack(">hhih", api_key, version, corr, len(client)) + client + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    (size,) = struct.unpack(">i", recvn(sock, 4))
    data = recvn(sock, size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise ValueError("correlation id mismatch")
    return data[4:]

def string(data, off):
    (n,) = struct.unpack_from(">h", data, off)
    off += 2
    if n < 0:
        return None, off
    return data[off:off + n].decode(), off + n

try:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        r = call(s, 18, 0, 1)                                  # ApiVersions v0
        err, n = struct.unpack_from(">hi", r, 0)
        if err != 0:
            raise ValueError(f"ApiVersions error code {err}")
        apis = {k: (lo, hi) for k, lo, hi in (struct.unpack_from(">hhh", r, 6 + 6 * i) for i in range(n))}
        lo, hi = apis.get(3, (1, 0))                           # Metadata
        if not lo <= 4 <= hi:
            print(f"kafka answers at {host}:{port} (Metadata v{lo}-v{hi})")
            sys.exit(0)
        # Metadata v4: topics = [] (none), allow_auto_topic_creation = false
        r = call(s, 3, 4, 2, struct.pack(">ib", 0, 0))
        off = 4                                                # throttle_time_ms
        (nb,) = struct.unpack_from(">i", r, off); off += 4
        brokers = []
        for _ in range(nb):
            (node,) = struct.unpack_from(">i", r, off); off += 4
            bhost, off = string(r, off)
            (bport,) = struct.unpack_from(">i", r, off); off += 4
            _rack, off = string(r, off)
            brokers.append(f"{node}@{bhost}:{bport}")
        cluster, off = string(r, off)
        if not brokers:
            raise ValueError("no broker registered yet")
        print(f"kafka answers at {host}:{port}: cluster {cluster}, brokers {', '.join(brokers)}")
except Exception as e:  # refused, timeout, garbage, not ready: all mean "not usable"
    print(f"no ready kafka at {host}:{port}: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
PY
}

port_in_use() {  # is anything listening on $1:$2 (any protocol)?
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# --- our own broker's process ---------------------------------------------------------
# The pid file only counts if that pid is still a kafka.Kafka running *our* config;
# a recycled pid or someone else's broker is never touched.
our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid cmd
    pid="$(cat "$PID_FILE" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    cmd="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
    [[ "$cmd" == *kafka.Kafka*"$CONFIG"* ]] || return 1
    echo "$pid"
}

# --- jars --------------------------------------------------------------------------------
# Resolves kafka_2.13 + kafka-tools (the console producer and consumer) + runtime deps + the
# log4j2 SLF4J binding into LIBS once; a marker file records completion, so later starts (and
# fresh clones, since the default cache is outside the repo) download nothing. The marker is
# named for the set of artifacts: a cache made for a smaller set is fetched again, once.
COMPLETE=.complete-server-tools
ensure_jars() {
    local candidates=() v
    if [[ -n "${AGENTSTREAM_KAFKA_VERSION:-}" ]]; then
        candidates=("$AGENTSTREAM_KAFKA_VERSION")
    else
        candidates=(4.1.1 4.1.2 4.1.0)
    fi
    # Already cached?
    for v in "${candidates[@]}"; do
        libs_for "$v"
        if [[ -f "$LIBS/$COMPLETE" ]]; then
            KAFKA_VERSION="$v"
            say "jars: cached, Kafka $v ($LIBS)"
            return 0
        fi
    done
    command -v mvn >/dev/null || die "Maven (mvn) is needed once to fetch the Kafka jars; apt-get install -y maven"
    local t0; t0="$(now)"
    for v in "${candidates[@]}"; do
        libs_for "$v"
        if fetch_jars "$v"; then
            KAFKA_VERSION="$v"
            say "jars: downloaded Kafka $v + log4j $LOG4J_VERSION into $LIBS in $(since "$t0") s"
            return 0
        fi
        say "jars: Kafka $v did not resolve, trying the next version"
    done
    die "could not fetch Kafka jars from Maven Central (tried ${candidates[*]}); see the Maven output above"
}

libs_for() {
    if [[ -n "${AGENTSTREAM_KAFKA_LIBS:-}" ]]; then
        LIBS="$AGENTSTREAM_KAFKA_LIBS"
    else
        LIBS="${XDG_CACHE_HOME:-$HOME/.cache}/agentstream/kafka-$1/libs"
    fi
}

fetch_jars() {
    local v="$1" parent work rc=0
    parent="$(dirname -- "$LIBS")"
    mkdir -p "$parent"
    # The cache is shared by every clone on the machine: serialise concurrent fetches.
    exec 8>"$LIBS.lock"
    flock 8
    if [[ -f "$LIBS/$COMPLETE" ]]; then      # somebody else finished it while we waited
        exec 8>&-; return 0
    fi
    work="$(mktemp -d "$parent/.fetch.XXXXXX")"
    cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.agentstream</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$v</version></dependency>
    <!-- the console producer/consumer of the README's wire-contract example -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$v</version></dependency>
    <!-- SLF4J 1.7 -> log4j2 binding; the broker logs nothing without one -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
    say "jars: fetching org.apache.kafka:kafka_2.13:$v (runtime scope) + log4j $LOG4J_VERSION via Maven ..."
    # copy-dependencies copies the declared artifacts themselves too (kafka_2.13-<v>.jar).
    mvn -B -q -f "$work/pom.xml" "$MAVEN_DEP_PLUGIN:copy-dependencies" \
        -DincludeScope=runtime -DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1 || rc=$?
    if [[ $rc -ne 0 || ! -f "$work/libs/kafka_2.13-$v.jar" ]]; then
        tail -n 20 "$work/mvn.log" >&2 || true
        rm -rf "$work"; exec 8>&-
        return 1
    fi
    touch "$work/libs/$COMPLETE"
    rm -rf "$LIBS"
    mv "$work/libs" "$LIBS"     # appears complete or not at all
    rm -rf "$work"
    exec 8>&-
}

# --- config ------------------------------------------------------------------------------
write_config() {
    mkdir -p "$DATA_DIR"
    SASL_LISTENER="" SASL_ADVERTISED="" SASL_CONFIG=""
    if [[ "$SASL_PORT" != 0 ]]; then
        port_in_use 127.0.0.1 "$SASL_PORT" &&
            die "SASL listener port 127.0.0.1:$SASL_PORT is taken; set AGENTSTREAM_KAFKA_SASL_PORT (0: no SASL listener)"
        SASL_LISTENER=",SASL_PLAINTEXT://$LISTEN_HOST:$SASL_PORT"
        SASL_ADVERTISED="$SASL_LISTENER"
        # A local test credential, not a secret: the listener exists so that tests run the
        # clients' SASL settings against a real broker (tests/test_kafka_sasl.py).
        SASL_CONFIG="sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_agentstream=\"agentstream-local\";"
    fi
    cat >"$CONFIG" <<EOF
# Generated by scripts/kafka.sh on every start; edit the script, not this file.
# Single-node KRaft: this process is both broker and controller.
process.roles=broker,controller
node.id=1
# Static voter set => format WITHOUT --standalone.
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://$LISTEN_HOST:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT$SASL_LISTENER
advertised.listeners=PLAINTEXT://$LISTEN_HOST:$PORT$SASL_ADVERTISED
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
$SASL_CONFIG

log.dirs=$DATA_DIR
num.partitions=4
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1

# One node: every internal topic has replication factor 1. The internal topics get
# few partitions too: 50 __consumer_offsets partitions make the first group join slow.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers (faust workers, tests) join a group immediately instead of after 3 s.
group.initial.rebalance.delay.ms=0

# Records up to 8 MiB plus batch overhead.
message.max.bytes=10485760
replica.fetch.max.bytes=10485760

# A 2-core machine: keep thread pools small.
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
log.cleaner.threads=1
group.coordinator.threads=1
share.coordinator.threads=1

# Local development data: a week, at most 1 GiB per partition.
log.retention.hours=168
log.retention.bytes=1073741824
log.segment.bytes=268435456
EOF

    cat >"$LOG4J_CONFIG" <<'EOF'
# log4j2 config for the local broker (scripts/kafka.sh). ${sys:kafka.logs.dir} is set on the JVM command line.
status = warn
name = agentstream-kafka

appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/kafka.log
appender.file.filePattern = ${sys:kafka.logs.dir}/kafka.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3

rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE

# The chattiest loggers, as in Kafka's own config.
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
EOF
}

jvm_flags() {
    # Same flags as Kafka's kafka-server-start.sh / kafka-run-class.sh.
    # shellcheck disable=SC2206
    JVM_FLAGS=(${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true
        "-Dkafka.logs.dir=$KDIR" "-Dlog4j2.configurationFile=$LOG4J_CONFIG"
        -cp "$LIBS/*")
}

format_storage() {
    [[ -f "$DATA_DIR/meta.properties" ]] && return 0
    local cluster_id
    # 16 random bytes, URL-safe base64 without padding (22 chars). Kafka's own tool
    # (kafka-storage random-uuid) avoids ids starting with '-': they look like flags.
    while :; do
        cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        [[ "$cluster_id" != -* ]] && break
    done
    say "formatting storage in $DATA_DIR (cluster id $cluster_id)"
    "$JAVA" -Xmx256m "-Dkafka.logs.dir=$KDIR" "-Dlog4j2.configurationFile=$LOG4J_CONFIG" \
        -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" \
        >>"$OUT_FILE" 2>&1 || { tail -n 40 "$OUT_FILE" >&2; die "kafka-storage format failed"; }
}

show_failure() {
    printf 'kafka: ---- last 40 lines of %s ----\n' "$LOG_FILE" >&2
    tail -n 40 "$LOG_FILE" >&2 2>/dev/null || echo "(no log yet)" >&2
    if [[ -s "$OUT_FILE" ]]; then
        printf 'kafka: ---- last 15 lines of %s ----\n' "$OUT_FILE" >&2
        tail -n 15 "$OUT_FILE" >&2
    fi
    # The tail is often the bottom of a stack trace; put the actual errors last.
    printf 'kafka: ---- errors ----\n' >&2
    { tail -c "+$((${LOG_OFFSET:-0} + 1))" "$LOG_FILE"; cat "$OUT_FILE"; } 2>/dev/null | grep -E '^\[[^]]*\] (ERROR|FATAL)|^Caused by:' |
        cut -c1-300 | awk '!seen[$0]++' | tail -n 8 >&2 || echo "(none logged)" >&2
}

# --- commands --------------------------------------------------------------------------
cmd_start() {
    parse_bootstrap
    mkdir -p "$KDIR"
    # Two `start`s at once (e.g. parallel make targets) must not launch two brokers.
    exec 9>"$KDIR/.lock"
    flock 9

    local msg pid t0 t_start
    if msg="$(probe 3 2>/dev/null)"; then
        if pid="$(our_pid)"; then
            say "already running (pid $pid); $msg"
        else
            say "reusing the broker that already answers; $msg"
        fi
        return 0
    fi

    t0="$(now)"
    if ! pid="$(our_pid)"; then
        if port_in_use "$HOST" "$PORT"; then
            # Maybe a broker that is still starting up (another checkout); give it a moment.
            say "$HOST:$PORT is in use but no Kafka answers yet; waiting up to 20 s"
            local wait_until=$((SECONDS + 20))
            while ((SECONDS < wait_until)); do
                sleep 1
                if msg="$(probe 2 2>/dev/null)"; then say "reusing: $msg"; return 0; fi
            done
            die "$HOST:$PORT is taken by something that is not a ready Kafka broker; free the port or set AGENTSTREAM_KAFKA_BOOTSTRAP"
        fi
        port_in_use 127.0.0.1 "$CONTROLLER_PORT" &&
            die "controller port 127.0.0.1:$CONTROLLER_PORT is taken; set AGENTSTREAM_KAFKA_CONTROLLER_PORT"
        command -v python3 >/dev/null || die "python3 is needed for the readiness probe"
        command -v "$JAVA" >/dev/null || die "java (17+) not found; apt-get install -y openjdk-17-jre-headless"
        ensure_jars
        write_config
        format_storage
        jvm_flags
        t_start="$(now)"
        say "starting Kafka $KAFKA_VERSION at $HOST:$PORT (controller 127.0.0.1:$CONTROLLER_PORT), state in $KDIR"
        : >"$OUT_FILE"
        LOG_OFFSET="$(stat -c %s "$LOG_FILE" 2>/dev/null || echo 0)"   # errors of this run start here
        # setsid: own session, so the broker survives the calling shell/make and a
        # Ctrl-C there. bash writes its pid, then exec's java under that same pid.
        # 9>&- 8>&-: the broker must not inherit (and hold forever) our lock fds.
        # shellcheck disable=SC2016  # $$ and $@ belong to the inner bash
        PIDF="$PID_FILE" setsid bash -c 'echo $$ >"$PIDF"; exec "$@"' kafka \
            "$JAVA" "${JVM_FLAGS[@]}" kafka.Kafka "$CONFIG" \
            </dev/null >>"$OUT_FILE" 2>&1 9>&- 8>&- &
        sleep 0.5
        pid="$(our_pid)" || { show_failure; die "the broker exited right away"; }
    else
        t_start="$t0"
        say "our broker (pid $pid) is running but not ready yet; waiting"
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if msg="$(probe 2 2>/dev/null)"; then
            say "ready in $(since "$t_start") s (pid $pid); $msg"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            # Lost a race for the port against another checkout's broker? Then use that one.
            if msg="$(probe 3 2>/dev/null)"; then
                say "our broker exited, but another one answers; reusing it: $msg"
                rm -f "$PID_FILE"; return 0
            fi
            show_failure
            rm -f "$PID_FILE"
            die "the broker process exited during startup (see above; full log: $LOG_FILE)"
        fi
        sleep 0.5
    done
    show_failure
    die "no ready broker at $HOST:$PORT after ${START_TIMEOUT} s (pid $pid still running; 'scripts/kafka.sh stop' to stop it)"
}

cmd_stop() {
    parse_bootstrap
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        say "no broker started from this checkout is running (others, if any, are left alone)"
        return 0
    fi
    say "stopping broker pid $pid (SIGTERM; controlled shutdown)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "still running after 30 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$PID_FILE"
    say "stopped"
}

cmd_status() {
    parse_bootstrap
    local pid msg rc=0
    if pid="$(our_pid)"; then
        say "this checkout's broker: running, pid $pid (state in $KDIR)"
    else
        say "this checkout's broker: not running"
    fi
    if msg="$(probe 3 2>&1)"; then say "$msg"; else say "$msg"; rc=3; fi
    return "$rc"
}

cmd_logs() {
    tail_log "$LOG_FILE" "$@"
}

# `classpath`: fetch the jars if needed (progress on stderr) and print the classpath, for
# Kafka's own tools: java -cp "$(scripts/kafka.sh classpath)" org.apache.kafka.tools.ConsoleProducer
cmd_classpath() {
    ensure_jars >&2
    printf '%s/*\n' "$LIBS"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    classpath) cmd_classpath ;;
    *) echo "usage: $0 {start|stop|status|logs [-f] [-n N]|classpath}" >&2; exit 2 ;;
esac
