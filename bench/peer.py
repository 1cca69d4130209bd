"""Peer benchmark: agentstream's worker against Kafka Connect + Debezium's JDBC sink.

One run, the same records (events and LLM interactions as bench/ingest.py generates them,
one record per Kafka message: Kafka's convention), on the same Kafka and PostgreSQL:

  (p) the peer: Kafka Connect (standalone, from Maven Central's connect-runtime and
      connect-json) with Debezium's JDBC sink connector, JsonConverter WITH schemas (each
      message is a {"schema": ..., "payload": ...} envelope: what Connect's JDBC sinks need
      to know the columns' types), upsert on id, batch.size 5000, max.poll.records 5000;
  (w) `agentstream worker` on the same records in agentstream's wire format (one JSON
      object per message, no envelope), its default settings (5,000-record flushes).

Each side drains its own topics (published in full before it starts) into its own fresh,
migrated database whose sessions are loaded beforehand with COPY (the peer cannot insert an
event before its session: the seed's foreign keys; agentstream would infer the missing
ones). rows/s from the first row committed to the last, measured the same way for both; the
two run one after the other (2 cores shared with Kafka and PostgreSQL). Every record must
land: the final count(*) is checked. Prints one JSON line.

The jars are fetched once with Maven into ${XDG_CACHE_HOME:-~/.cache}/agentstream/ (outside
the repository, like scripts/kafka.sh): connect-runtime and connect-json with their runtime
dependencies plus the log4j2 binding, and the connector's plugin archive
io.debezium:debezium-connector-jdbc:<version>:tar.gz:plugin fetched alone (-Dtransitive=false:
its parent POM names a repository that cannot be reached).

    .venv/bin/python bench/peer.py                 # 300k events + 60k LLM interactions
    .venv/bin/python bench/peer.py --scale 0.05    # quick, while developing
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from psycopg.conninfo import conninfo_to_dict

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # bench/ is not a package: ingest.py's generator and helpers

from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from agentstream.streams.runner import CONSUMER_MAX_FETCH_BYTES, ensure_topics

CONNECT_VERSION = os.environ.get("AGENTSTREAM_CONNECT_VERSION", "4.1.1")
DEBEZIUM_JDBC = "io.debezium:debezium-connector-jdbc:3.6.0.Final:tar.gz:plugin"
LOG4J_VERSION = "2.24.3"  # scripts/kafka.sh's
MAVEN_DEP_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
JAVA = str(Path(os.environ["JAVA_HOME"], "bin", "java")) if "JAVA_HOME" in os.environ else "java"
ENTITIES = ("llm_interactions", "events")  # sessions are loaded before timing (see above)
TABLES = ENTITIES

# --- jars --------------------------------------------------------------------------------------


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "agentstream" / f"connect-{CONNECT_VERSION}"


def _mvn(args: list[str], cwd: Path) -> None:
    log = cwd / "mvn.log"
    with log.open("ab") as out:
        rc = subprocess.call(["mvn", "-B", "-q", *args], cwd=cwd, stdout=out, stderr=out)
    if rc:
        tail = log.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(f"mvn {args[0]} failed (rc {rc}):\n" + "\n".join(tail))


def connect_jars() -> tuple[Path, Path]:
    """(libs, plugins): Connect's classpath directory and its plugin.path, fetched once.

    The cache is shared by every clone on the machine: a lock serialises fetches and a
    marker file says a directory is complete (it is moved into place whole).
    """
    root = cache_dir()
    libs, plugins, done = root / "libs", root / "plugins", root / ".complete"
    root.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return libs, plugins
        print(f"peer: fetching Connect {CONNECT_VERSION} and {DEBEZIUM_JDBC} ...", file=sys.stderr)
        work = Path(tempfile.mkdtemp(prefix=".fetch.", dir=root))
        try:
            deps = [
                ("org.apache.kafka", "connect-runtime", CONNECT_VERSION),
                ("org.apache.kafka", "connect-json", CONNECT_VERSION),
                # SLF4J 1.7 -> log4j2 binding: Connect logs nothing without one
                ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
                ("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
                ("org.apache.logging.log4j", "log4j-api", LOG4J_VERSION),
            ]
            (work / "pom.xml").write_text(
                '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0'
                "</modelVersion><groupId>local.agentstream</groupId>"
                "<artifactId>connect-runtime</artifactId><version>1</version>"
                "<packaging>pom</packaging><dependencies>"
                + "".join(
                    f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                    f"<version>{v}</version></dependency>"
                    for g, a, v in deps
                )
                + "</dependencies></project>"
            )
            _mvn(
                [
                    f"{MAVEN_DEP_PLUGIN}:copy-dependencies",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={work / 'libs'}",
                ],
                work,
            )
            _mvn(
                [
                    f"{MAVEN_DEP_PLUGIN}:copy",
                    f"-Dartifact={DEBEZIUM_JDBC}",
                    "-Dtransitive=false",
                    f"-DoutputDirectory={work / 'archive'}",
                ],
                work,
            )
            (archive,) = (work / "archive").glob("*.tar.gz")
            with tarfile.open(archive) as tar:
                tar.extractall(work / "plugins", filter="data")
            shutil.rmtree(libs, ignore_errors=True)
            shutil.rmtree(plugins, ignore_errors=True)
            (work / "libs").rename(libs)
            (work / "plugins").rename(plugins)
            done.touch()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return libs, plugins


def versions(libs: Path, plugins: Path) -> dict[str, str]:
    java = subprocess.run([JAVA, "-version"], capture_output=True, text=True, check=True)
    jar = re.compile(r"-(\d[\w.]*)\.jar$")

    def version_of(directory: Path, prefix: str) -> str:
        for path in directory.rglob(f"{prefix}-*.jar"):
            m = jar.search(path.name)
            if m and path.name == f"{prefix}-{m.group(1)}.jar":
                return m.group(1)
        return "?"

    return {
        "jvm": java.stderr.splitlines()[0] if java.stderr else "?",
        "connect_runtime": version_of(libs, "connect-runtime"),
        "debezium_connector_jdbc": version_of(plugins, "debezium-connector-jdbc"),
        "postgresql_jdbc": version_of(plugins, "postgresql"),
    }


# --- the Connect envelope ----------------------------------------------------------------------

# A column's seed type -> (Connect schema type, Debezium semantic name): the names make the
# JDBC sink bind uuid, jsonb and timestamptz parameters as such (a plain string would be bound
# as varchar, which PostgreSQL refuses for those columns).
CONNECT_TYPES: dict[str, tuple[str, str | None]] = {
    "uuid": ("string", "io.debezium.data.Uuid"),
    "varchar": ("string", None),
    "text": ("string", None),
    "int8": ("int64", None),
    "int4": ("int32", None),
    "bool": ("boolean", None),
    "jsonb": ("string", "io.debezium.data.Json"),
    "timestamptz": ("string", "io.debezium.time.ZonedTimestamp"),
}


def connect_schema(entity: str) -> dict[str, Any]:
    fields = []
    for col, typ in zip(ingest.COLUMNS[entity], ingest.TYPES[entity], strict=True):
        kind, name = CONNECT_TYPES[typ]
        field: dict[str, Any] = {"field": col, "type": kind, "optional": col != "id"}
        if name:
            field["name"] = name
        fields.append(field)
    return {"type": "struct", "name": entity, "optional": False, "fields": fields}


def enveloped(entity: str) -> Callable[[dict[str, Any]], bytes]:
    """The peer's message value: the record under JsonConverter's schema envelope."""
    schema = connect_schema(entity)
    json_cols = [
        c for c, t in zip(ingest.COLUMNS[entity], ingest.TYPES[entity], strict=True) if t == "jsonb"
    ]

    def encode(record: dict[str, Any]) -> bytes:
        payload = dict(record)
        for col in json_cols:
            if payload.get(col) is not None:
                payload[col] = json.dumps(payload[col], separators=(",", ":"))
        return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()

    return encode


def wire(entity: str) -> Callable[[dict[str, Any]], bytes]:
    """agentstream's message value: the record itself, one JSON object (contract/codec.py)."""
    return lambda record: json.dumps(record, separators=(",", ":")).encode()


async def publish(
    settings: Settings,
    data: dict[str, list[dict[str, Any]]],
    encoder: Callable[[str], Callable[[dict[str, Any]], bytes]],
) -> tuple[int, int]:
    """One message per record, keyed by session id as the SDK keys them: (messages, bytes)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20
    )
    await producer.start()
    n = size = 0
    try:
        pending = []
        for entity in ENTITIES:
            topic = topic_for(entity, settings.topic_prefix)
            encode = encoder(entity)
            for record in data[entity]:
                value = encode(record)
                key = record["session_id"].encode()
                pending.append(await producer.send(topic, value, key=key))
                n, size = n + 1, size + len(value)
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n, size


# --- measuring a drain ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drained:
    rate: float  # rows/s from the first row committed to the last
    cpu_us_per_record: float  # the process's user + system CPU over that span, per row


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch(conninfo: str, total: int, proc: subprocess.Popen[bytes], logs: Path) -> Drained:
    """Time a drain the way ingest.drain does, for any process that writes the rows."""
    first_t, first_n, first_cpu = 0.0, 0, 0.0
    deadline = time.monotonic() + 3600
    n, stats, stats_changed = 0, -1, time.monotonic()
    while time.monotonic() < deadline:
        # count(*) for the first and last rows, the cheap statistics in between while they
        # move (they lag by up to a second; stale for 1.2 s -> count(*)).
        if 0 < n < 0.9 * total:
            new = ingest.inserted(conninfo, TABLES)
            if new != stats:
                stats, stats_changed = new, time.monotonic()
            n = new
        if n == 0 or n >= 0.9 * total or time.monotonic() - stats_changed > 1.2:
            n = ingest.count(conninfo, TABLES)
        now = time.perf_counter()
        if n > 0 and not first_t:
            first_t, first_n, first_cpu = now, n, cpu_s(proc.pid)
        if n >= total:
            rows = max(1, total - first_n)
            cpu = cpu_s(proc.pid) - first_cpu
            return Drained(rows / max(now - first_t, 1e-9), 1e6 * cpu / rows)
        if proc.poll() is not None:
            raise RuntimeError(f"the process exited early (rc {proc.returncode}); see {logs}")
        time.sleep(0.1)
    raise RuntimeError(f"not drained within an hour: {n} of {total} rows; see {logs}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# --- (p) Kafka Connect + Debezium JDBC sink ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def properties(path: Path, values: dict[str, object]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


# pgjdbc's multi-row INSERTs for JDBC batches: what a tuned JDBC sink runs with.
JDBC_PARAMS = "reWriteBatchedInserts=true"


def jdbc(conninfo: str, params: str) -> tuple[str, str, str]:
    """(url, user, password) of a libpq conninfo."""
    d = conninfo_to_dict(conninfo)
    host, port = d.get("host", "127.0.0.1"), d.get("port", 5432)
    url = f"jdbc:postgresql://{host}:{port}/{d['dbname']}" + (f"?{params}" * bool(params))
    return url, str(d.get("user", "postgres")), str(d.get("password", ""))


LOG4J2 = """\
status = warn
name = agentstream-bench-connect
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:connect.log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""


def start_connect(
    settings: Settings,
    conninfo: str,
    workdir: Path,
    libs: Path,
    plugins: Path,
    tasks: int,
    jdbc_params: str,
) -> subprocess.Popen[bytes]:
    worker = properties(
        workdir / "connect-standalone.properties",
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "true",
            "offset.storage.file.filename": workdir / "connect.offsets",
            "plugin.path": plugins,
            "plugin.discovery": "service_load",
            "listeners": f"http://127.0.0.1:{free_port()}",
            "connector.client.config.override.policy": "All",
        },
    )
    url, user, password = jdbc(conninfo, jdbc_params)
    prefix = re.escape(settings.topic_prefix)
    connector = properties(
        workdir / "jdbc-sink.properties",
        {
            "name": f"{settings.topic_prefix}peer",
            "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
            "tasks.max": tasks,
            "topics": ",".join(topic_for(e, settings.topic_prefix) for e in ENTITIES),
            "connection.url": url,
            "connection.username": user,
            "connection.password": password,
            "insert.mode": "upsert",
            "primary.key.mode": "record_value",
            "primary.key.fields": "id",
            "schema.evolution": "none",
            "batch.size": 5000,
            # the topic's entity is the table's name
            "transforms": "table",
            "transforms.table.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.table.regex": f"{prefix}(.*)",
            "transforms.table.replacement": "$1",
            # The worker's own consumer settings: 5,000 records a poll (its flush size, and
            # the sink's batch.size: a put() writes what one poll returned), 4 MiB a partition.
            "consumer.override.group.id": f"{settings.topic_prefix}peer",
            "consumer.override.max.poll.records": 5000,
            "consumer.override.max.partition.fetch.bytes": CONSUMER_MAX_FETCH_BYTES,
            "consumer.override.auto.offset.reset": "earliest",
        },
    )
    (workdir / "log4j2.properties").write_text(LOG4J2)
    log = workdir / "connect.out"
    # Connect's own scripts: connect-standalone.sh's heap, kafka-run-class.sh's flags.
    cmd = [
        JAVA,
        *os.environ.get("KAFKA_HEAP_OPTS", "-Xms256M -Xmx2G").split(),
        "-server",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:MaxInlineLevel=15",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={workdir / 'log4j2.properties'}",
        f"-Dconnect.log.file={workdir / 'connect.log'}",
        "-cp",
        f"{libs}/*",
        "org.apache.kafka.connect.cli.ConnectStandalone",
        str(worker),
        str(connector),
    ]
    (workdir / "connect.cmd").write_text(" ".join(cmd) + "\n")
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)


# --- one run -------------------------------------------------------------------------------------


def fresh(scratch: ingest.Scratch, sessions: list[tuple[Any, ...]]) -> tuple[str, Settings]:
    """A migrated database holding the sessions, and settings with a topic prefix of its own."""
    conninfo = scratch.database()
    ingest.raw_copy(conninfo, {"sessions": sessions, "llm_interactions": [], "events": []})
    settings = scratch.settings.model_copy(update={"topic_prefix": scratch.prefix()})
    asyncio.run(ensure_topics(settings))
    return conninfo, settings


Starter = Callable[[Settings, str, Path], subprocess.Popen[bytes]]


def run(
    side: str,
    scratch: ingest.Scratch,
    data: dict[str, list[dict[str, Any]]],
    sessions: list[tuple[Any, ...]],
    workdir: Path,
    encoder: Callable[[str], Callable[[dict[str, Any]], bytes]],
    start: Starter,
) -> dict[str, Any]:
    """Publish the records, start one side's process on them, time the drain, check the rows."""
    workdir.mkdir(parents=True)
    conninfo, settings = fresh(scratch, sessions)
    messages, size = asyncio.run(publish(settings, data, encoder))
    total = sum(len(data[e]) for e in ENTITIES)
    proc = start(settings, conninfo, workdir)
    try:
        drained = watch(conninfo, total, proc, workdir)
    finally:
        rc = stop(proc)
    landed = ingest.count(conninfo, TABLES)
    if landed != total:
        raise RuntimeError(f"{side} landed {landed} of {total} rows; see {workdir}")
    return {
        "rows_s": round(drained.rate),
        "cpu_us_per_record": round(drained.cpu_us_per_record, 1),
        "messages": messages,
        "bytes_per_message": round(size / messages),
        "rows": landed,
        "exit_code": rc,
    }


def run_peer(
    scratch: ingest.Scratch,
    data: dict[str, list[dict[str, Any]]],
    sessions: list[tuple[Any, ...]],
    workdir: Path,
    tasks: int,
    jdbc_params: str,
) -> dict[str, Any]:
    libs, plugins = connect_jars()

    def start(settings: Settings, conninfo: str, logs: Path) -> subprocess.Popen[bytes]:
        return start_connect(settings, conninfo, logs, libs, plugins, tasks, jdbc_params)

    out = run("the peer", scratch, data, sessions, workdir, enveloped, start)
    return out | {"tasks": tasks, "jdbc_params": jdbc_params, **versions(libs, plugins)}


def run_worker(
    scratch: ingest.Scratch,
    data: dict[str, list[dict[str, Any]]],
    sessions: list[tuple[Any, ...]],
    workdir: Path,
) -> dict[str, Any]:
    def start(settings: Settings, conninfo: str, logs: Path) -> subprocess.Popen[bytes]:
        return ingest.start_worker(settings, conninfo, logs / "worker.log", "peer-bench")

    out = run("agentstream", scratch, data, sessions, workdir, wire, start)
    return out | {"batch_records": scratch.settings.worker_batch_records}


def per_round(results: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {k: [r[k] for r in results] for k in ("rows_s", "cpu_us_per_record")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 300k events")
    parser.add_argument("--rounds", type=int, default=1, help="peer then worker, this many times")
    parser.add_argument("--tasks", type=int, default=1, help="the connector's tasks.max")
    parser.add_argument("--only", choices=("peer", "worker"), default=None)
    parser.add_argument(
        "--jdbc-params", default=JDBC_PARAMS, help="the peer's JDBC URL query ('' for none)"
    )
    args = parser.parse_args()

    scratch = ingest.Scratch(Settings())
    workdir = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    out: dict[str, Any] = {
        "bench": "peer",
        "scale": args.scale,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        # the machine is shared: the 1-minute load average says how quiet it was
        "loadavg_start": round(os.getloadavg()[0], 1),
    }
    try:
        data = ingest.generate(int(300_000 * args.scale))
        out["records"] = {e: len(data[e]) for e in ENTITIES}
        sessions = [ingest.to_row("sessions", d) for d in data["sessions"]]
        peers: list[dict[str, Any]] = []
        workers: list[dict[str, Any]] = []
        for r in range(1, args.rounds + 1):
            if args.only != "worker":
                peer = run_peer(
                    scratch, data, sessions, workdir / f"p{r}", args.tasks, args.jdbc_params
                )
                peers.append(peer)
            if args.only != "peer":
                workers.append(run_worker(scratch, data, sessions, workdir / f"w{r}"))
        if peers:
            out["peer"] = peers[0] | per_round(peers)
        if workers:
            out["agentstream"] = workers[0] | per_round(workers)
        if peers and workers:
            out["ratio_agentstream_over_peer"] = [
                round(w["rows_s"] / p["rows_s"], 2) for p, w in zip(peers, workers, strict=True)
            ]
        out["loadavg_end"] = round(os.getloadavg()[0], 1)
        out["logs"] = str(workdir)
    finally:
        scratch.drop_all()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
