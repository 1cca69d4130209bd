"""Ingest benchmark: the worker draining Kafka vs raw COPY (the database's limit) vs naive inserts.

One run, the same generated records (events with their sessions, plus LLM interactions):

  (a) raw COPY of the rows straight into the seed schema (binary COPY, one transaction);
  (b) a naive consumer: one INSERT and one commit per record, on a sample;
  (c) `agentstream worker` draining the records from Kafka, published beforehand as batch
      messages of 200 records: rows/s from the first row committed to the last, and the
      worker's CPU time per record over that span (process user + system seconds / records);
  (d) the same records sent one per message (Kafka's convention: one JSON object each),
      drained the same way; d/c compares the two message shapes;
  latency: at a steady 2,000 records/s, produce time -> row visible (committed), p50/p99,
      for array messages and for one-record messages;
  memory: the worker's RSS while draining (c) and while draining a backlog `--memory-factor`
      times larger.

For (a) and (c), what PostgreSQL's backends did over the same span (/proc/PID/schedstat of
the bench's and the worker's connections): CPU µs per row (``*_pg_cpu_us_per_row``: the
database's own work, far steadier than rates on a shared machine), and the share of the
span they ran (``*_pg_run_share``) or were runnable but waiting for a CPU
(``*_pg_cpu_wait_share``); the rest they sat idle, waiting for their client or the disk.

Every phase gets its own scratch database (bench_*, dropped at the end) on the same server,
with the server's durable settings (fsync and synchronous_commit untouched), and its own
topic prefix. Prints one JSON line.

    .venv/bin/python bench/ingest.py              # the issue's size: 300k events + ...
    .venv/bin/python bench/ingest.py --scale 0.05 --memory-factor 0   # quick, while developing
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from agentstream.migrations import apply_migrations
from agentstream.topic_admin import delete_topics

EVENTS_PER_SESSION = 30
LLM_PER_SESSION = 6
RECORDS_PER_MESSAGE = 200
MODELS = ("gpt-4o", "claude-3-5-sonnet", "llama-3-70b")
AGENTSTREAM = str(Path(sys.executable).with_name("agentstream"))
WORKER_ARGS = ["worker"]  # ["-v", "worker"] with --verbose-worker: a flush log per batch
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def generate(n_events: int, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Wire-format dicts (ids and timestamps included, as the SDK sends them)."""
    n_sessions = max(1, n_events // EVENTS_PER_SESSION)
    rnd = uuid.UUID(int=seed)
    sessions, events, llms = [], [], []
    for s in range(n_sessions):
        sid = str(uuid.uuid5(rnd, f"s{s}"))
        t = (T0 + timedelta(seconds=s)).isoformat()
        sessions.append(
            {
                "id": sid,
                "user_id": f"user-{s % 997}",
                "created_at": t,
                "updated_at": t,
                "metadata": {"plan": "pro", "region": "eu"},
            }
        )
        for e in range(EVENTS_PER_SESSION):
            events.append(
                {
                    "id": str(uuid.uuid5(rnd, f"e{s}.{e}")),
                    "event_type": f"step.{e % 12}",
                    "trace_id": sid,
                    "session_id": sid,
                    "user_id": f"user-{s % 997}",
                    "timestamp_ms": 1_000_000 + s * 100 + e,
                    "payload": {"tool": "search", "n": e, "ok": True},
                    "created_at": t,
                }
            )
        for i in range(LLM_PER_SESSION):
            llms.append(
                {
                    "id": str(uuid.uuid5(rnd, f"l{s}.{i}")),
                    "session_id": sid,
                    "agent_id": None,
                    "prompt": "Summarise the findings so far. " * 4,
                    "response": "Here is a concise summary of the findings. " * 3,
                    "model": MODELS[i % 3],
                    "prompt_tokens": 120 + i,
                    "response_tokens": 80 + i,
                    "latency_ms": 400 + 10 * i,
                    "success": True,
                    "error_message": None,
                    "created_at": t,
                }
            )
    return {"sessions": sessions, "events": events[:n_events], "llm_interactions": llms}


# --- rows for COPY / INSERT (built outside the timers) -----------------------------------

COLUMNS = {
    "sessions": ("id", "user_id", "created_at", "updated_at", "metadata"),
    "events": (
        "id",
        "event_type",
        "trace_id",
        "session_id",
        "user_id",
        "timestamp_ms",
        "payload",
        "created_at",
    ),
    "llm_interactions": (
        "id",
        "session_id",
        "agent_id",
        "prompt",
        "response",
        "model",
        "prompt_tokens",
        "response_tokens",
        "latency_ms",
        "success",
        "error_message",
        "created_at",
    ),
}
TYPES = {
    "sessions": ("uuid", "varchar", "timestamptz", "timestamptz", "jsonb"),
    "events": ("uuid", "varchar", "uuid", "uuid", "varchar", "int8", "jsonb", "timestamptz"),
    "llm_interactions": (
        "uuid",
        "uuid",
        "uuid",
        "text",
        "text",
        "varchar",
        "int4",
        "int4",
        "int4",
        "bool",
        "text",
        "timestamptz",
    ),
}


def to_row(entity: str, d: dict[str, Any]) -> tuple[Any, ...]:
    out = []
    for col, typ in zip(COLUMNS[entity], TYPES[entity], strict=True):
        v = d.get(col)
        if v is not None and typ == "uuid":
            v = uuid.UUID(v)
        elif v is not None and typ == "timestamptz":
            v = datetime.fromisoformat(v)
        out.append(v)
    return tuple(out)


# --- scratch databases and topics ----------------------------------------------------------


class Scratch:
    def __init__(self, settings: Settings) -> None:
        self.admin = make_conninfo(settings.database_conninfo(), dbname="postgres")
        self.names: list[str] = []
        self.settings = settings
        self.prefixes: list[str] = []

    def prefix(self) -> str:
        """A topic prefix of this run's own; its topics are deleted at the end."""
        prefix = f"bench.{uuid.uuid4().hex[:8]}."
        self.prefixes.append(prefix)
        return prefix

    def database(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.names.append(name)
        conninfo = make_conninfo(self.admin, dbname=name)
        apply_migrations(conninfo)
        return conninfo

    def drop_all(self) -> None:
        if self.prefixes:
            prefixes = tuple(self.prefixes)
            asyncio.run(delete_topics(self.settings, lambda t: t.startswith(prefixes)))
        with psycopg.connect(self.admin, autocommit=True) as conn:
            for name in self.names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def inserted(conninfo: str, tables: tuple[str, ...]) -> int:
    """Rows inserted per the statistics: cheap to poll, unlike count(*) over millions of rows.

    Backends report at most once a second (the last report can wait for a 10 s idle timeout),
    so drain() uses count(*) for the first and last rows. (Aborted inserts count too; a drain
    of new rows has none.)
    """
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables"
            " WHERE schemaname = 'public' AND relname = ANY(%s)",
            (list(tables),),
        ).fetchone()
        return int(row[0]) if row else 0


def count(conninfo: str, tables: tuple[str, ...]) -> int:
    with psycopg.connect(conninfo) as conn:
        q = " + ".join(f"(SELECT count(*) FROM {t})" for t in tables)
        row = conn.execute(f"SELECT {q}").fetchone()
        return int(row[0]) if row else 0


# --- (a) raw COPY ------------------------------------------------------------------------------


def raw_copy(conninfo: str, rows: dict[str, list[tuple[Any, ...]]]) -> tuple[float, Backend]:
    """rows/s, and what the server backend did (its CPU per row is the database's own work,
    which the load of the shared machine moves far less than wall-clock rates)."""
    total = sum(len(r) for r in rows.values())
    with psycopg.connect(conninfo) as conn:
        backend = [conn.info.backend_pid]
        before = [sched_s(backend[0])]
        started = time.perf_counter()
        with conn.cursor() as cur:
            for entity in ("sessions", "llm_interactions", "events"):
                cols = sql.SQL(", ").join(map(sql.Identifier, COLUMNS[entity]))
                stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                    sql.Identifier(entity), cols
                )
                with cur.copy(stmt) as copy:
                    copy.set_types(list(TYPES[entity]))
                    for r in rows[entity]:
                        copy.write_row(r)
        conn.commit()
        seconds = time.perf_counter() - started
        return total / seconds, Backend.over(backend, before, seconds, total)


# --- (b) naive: one INSERT and commit per record -------------------------------------------


def naive(conninfo: str, rows: dict[str, list[tuple[Any, ...]]], sample: int) -> float:
    picked: list[tuple[str, tuple[Any, ...]]] = []
    n_sessions = max(1, sample // (EVENTS_PER_SESSION + LLM_PER_SESSION))
    picked += [("sessions", r) for r in rows["sessions"][:n_sessions]]
    sids = {r[0] for _, r in picked}
    picked += [("events", r) for r in rows["events"] if r[3] in sids]
    picked += [("llm_interactions", r) for r in rows["llm_interactions"] if r[1] in sids]
    picked = picked[:sample]
    with psycopg.connect(conninfo, autocommit=False) as conn:
        started = time.perf_counter()
        for entity, r in picked:
            cols = COLUMNS[entity]
            values = [
                Jsonb(v) if t == "jsonb" else v for v, t in zip(r, TYPES[entity], strict=True)
            ]
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(entity),
                    sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                ),
                values,
            )
            conn.commit()
        return len(picked) / (time.perf_counter() - started)


# --- (c) the worker -----------------------------------------------------------------------------


def batches(records: list[dict[str, Any]], size: int) -> Iterator[bytes]:
    """Message values: arrays of ``size`` records, or one JSON object each when ``size`` is 0."""
    if size == 0:
        for record in records:
            yield json.dumps(record, separators=(",", ":")).encode()
        return
    for i in range(0, len(records), size):
        yield json.dumps(records[i : i + size], separators=(",", ":")).encode()


async def publish_all(
    settings: Settings, data: dict[str, list[dict[str, Any]]], per_message: int
) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=20,
        max_request_size=8 * 2**20,
        compression_type=None,
    )
    await producer.start()
    n = 0
    try:
        pending = []
        for entity in ("sessions", "llm_interactions", "events"):
            topic = topic_for(entity, settings.topic_prefix)
            for value in batches(data[entity], per_message):
                pending.append(await producer.send(topic, value))
                n += 1
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n


def start_worker(
    settings: Settings, conninfo: str, log: Path, group: str
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        AGENTSTREAM_WORKER_BATCH_RECORDS=str(settings.worker_batch_records),
        AGENTSTREAM_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        AGENTSTREAM_DATABASE_URL=conninfo,
        AGENTSTREAM_TOPIC_PREFIX=settings.topic_prefix,
        AGENTSTREAM_WORKER_GROUP=f"{settings.topic_prefix}{group}",
        AGENTSTREAM_WORKER_METRICS_PORT="0",
        AGENTSTREAM_WORKER_DATA_DIR=str(log.parent / "worker-data"),
    )
    return subprocess.Popen(
        [AGENTSTREAM, *WORKER_ARGS], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_s(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a single-threaded process
    so far (/proc/PID/schedstat, in ns): a PostgreSQL backend's work, and how long the load
    of the machine kept it from working."""
    with open(f"/proc/{pid}/schedstat") as f:
        run, wait = f.read().split()[:2]
    return int(run) / 1e9, int(wait) / 1e9


@dataclass(frozen=True, slots=True)
class Backend:
    """What PostgreSQL's backends did over a span: CPU µs per row, and the share of the
    span they ran, waited for a CPU, or sat idle (waiting for the client, or the disk)."""

    cpu_us_per_row: float
    run_share: float
    cpu_wait_share: float

    @staticmethod
    def over(
        pids: list[int], before: list[tuple[float, float]], seconds: float, rows: int
    ) -> Backend:
        after = [sched_s(p) for p in pids]
        run = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
        wait = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
        return Backend(1e6 * run / max(1, rows), run / seconds, wait / seconds)

    def report(self, key: str, out: dict[str, Any]) -> None:
        out[f"{key}_pg_cpu_us_per_row"] = round(self.cpu_us_per_row, 2)
        out[f"{key}_pg_run_share"] = round(self.run_share, 3)
        out[f"{key}_pg_cpu_wait_share"] = round(self.cpu_wait_share, 3)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass(frozen=True, slots=True)
class Drained:
    """rows/s from the first committed row to the last; the workers' CPU over that span."""

    rate: float
    rss: list[float]
    cpu_us_per_record: float
    backend: Backend  # the workers' PostgreSQL connections, over the same span


def worker_backends(conninfo: str) -> list[int]:
    """Process ids of the workers' PostgreSQL connections (the sink's application_name)."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'agentstream-worker'"
        ).fetchall()
        return [int(r[0]) for r in rows]


def drain(
    settings: Settings, conninfo: str, total: int, log: Path, *, group: str, workers: int = 1
) -> Drained:
    """Start workers on a published backlog; rows/s from first committed row to the last."""
    tables = ("sessions", "events", "llm_interactions")
    procs = [
        start_worker(settings, conninfo, log.with_suffix(f".{i}.log"), group)
        for i in range(workers)
    ]
    rss: list[float] = []
    first_t, first_n, first_cpu = 0.0, 0, 0.0
    backends: list[int] = []
    first_pg: list[tuple[float, float]] = []
    backend = Backend(0.0, 0.0, 0.0)
    try:
        deadline = time.monotonic() + 3600
        n, stats, stats_changed = 0, -1, time.monotonic()
        while time.monotonic() < deadline:
            # count(*) to see the first and the last rows exactly; the cheap statistics in
            # between. They lag (a backend reports at most once a second, and its last report
            # may wait for a 10 s idle timeout): stale for over 1.2 s, count(*) instead.
            if n > 0 and n < 0.9 * total:
                new = inserted(conninfo, tables)
                if new != stats:
                    stats, stats_changed = new, time.monotonic()
                n = new
            if n == 0 or n >= 0.9 * total or time.monotonic() - stats_changed > 1.2:
                n = count(conninfo, tables)
            now = time.perf_counter()
            rss.append(sum(rss_mb(p.pid) for p in procs))
            if n > 0 and not first_t:
                first_t, first_n = now, n
                first_cpu = sum(cpu_s(p.pid) for p in procs)
                backends = worker_backends(conninfo)
                first_pg = [sched_s(b) for b in backends]
            if n >= total:
                backend = Backend.over(backends, first_pg, now - first_t, total - first_n)
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"a worker exited early; see {log.parent}")
            time.sleep(0.1)
        rate = (total - first_n) / (time.perf_counter() - first_t)
        cpu = sum(cpu_s(p.pid) for p in procs) - first_cpu
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(90)
    return Drained(rate, rss, 1e6 * cpu / max(1, total - first_n), backend)


# --- latency at a steady rate ----------------------------------------------------------------


async def steady(
    settings: Settings, conninfo: str, rate: int, seconds: float, *, single: bool = False
) -> list[float]:
    """Produce `rate` events/s (every 50 ms rate/20 records: one array message, or with
    `single` one message each); time from produce to visibility."""
    sid = str(uuid.uuid4())
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    session = {"id": sid, "user_id": "latency"}
    await producer.send_and_wait(
        topic_for("sessions", settings.topic_prefix), json.dumps(session).encode()
    )
    latencies: list[float] = []
    stop = threading.Event()
    base_ms = int(time.time() * 1000)

    def poll() -> None:
        last = base_ms * 1000
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute(
                    "SELECT timestamp_ms FROM events WHERE timestamp_ms > %s", (last,)
                ).fetchall()
                now_ms = time.time() * 1000
                for (ts,) in rows:
                    latencies.append((now_ms - ts / 1000) / 1000)
                    last = max(last, ts)
                time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    per_tick = max(1, rate // 20)
    topic = topic_for("events", settings.topic_prefix)
    sent = 0
    started = time.perf_counter()
    seq = 0
    while time.perf_counter() - started < seconds:
        tick = started + (sent / rate)
        delay = tick - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        now_ms = int(time.time() * 1000)
        records = []
        for _ in range(per_tick):
            seq += 1
            # timestamp_ms carries the produce time in microseconds (ms * 1000 + a sequence
            # share), above every backlog value: the poller finds new rows by it through
            # idx_events_timestamp and reads their produce time from it.
            records.append(
                {
                    "event_type": "latency",
                    "trace_id": sid,
                    "session_id": sid,
                    "user_id": "latency",
                    "timestamp_ms": now_ms * 1000 + seq % 1000,
                    "payload": {},
                }
            )
        if single:
            for r in records:
                await producer.send(topic, json.dumps(r).encode())
        else:
            await producer.send(topic, json.dumps(records).encode())
        sent += per_tick
    await producer.flush()
    await producer.stop()
    deadline = time.monotonic() + 30
    while len(latencies) < sent and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    stop.set()
    poller.join()
    return latencies


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 300k events")
    parser.add_argument("--naive-sample", type=int, default=2500)
    parser.add_argument("--latency-rate", type=int, default=2000)
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--memory-factor", type=int, default=10, help="0 = skip that phase")
    parser.add_argument(
        "--verbose-worker",
        action="store_true",
        help="workers log every flush (records, messages, seconds) into the logs kept in /tmp",
    )
    parser.add_argument("--no-two-workers", dest="two_workers", action="store_false")
    parser.add_argument(
        "--no-single",
        dest="single",
        action="store_false",
        help="skip (d): the same records drained as one-record messages",
    )
    parser.add_argument(
        "--batch-records", type=int, default=None, help="worker_batch_records (default: settings)"
    )
    args = parser.parse_args()
    if args.verbose_worker:
        WORKER_ARGS.insert(0, "-v")

    base = Settings()
    if args.batch_records:
        base = base.model_copy(update={"worker_batch_records": args.batch_records})
    scratch = Scratch(base)
    workdir = Path(f"/tmp/bench-ingest-{uuid.uuid4().hex[:6]}")
    workdir.mkdir()
    out: dict[str, Any] = {
        "bench": "ingest",
        "scale": args.scale,
        "worker_batch_records": base.worker_batch_records,
        "worker_batch_seconds": base.worker_batch_seconds,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        data = generate(int(300_000 * args.scale))
        total = sum(len(v) for v in data.values())
        out["records"] = {k: len(v) for k, v in data.items()}
        rows = {e: [to_row(e, d) for d in v] for e, v in data.items()}

        a_rate, a_backend = raw_copy(scratch.database(), rows)
        out["a_raw_copy_rows_s"] = round(a_rate)
        a_backend.report("a", out)
        out["b_naive_rows_s"] = round(naive(scratch.database(), rows, args.naive_sample))
        del rows

        prefix = scratch.prefix()
        settings = base.model_copy(update={"topic_prefix": prefix})
        conninfo = scratch.database()
        # Create the topics the way the worker does, then publish the whole backlog first.
        from agentstream.streams.runner import ensure_topics

        asyncio.run(ensure_topics(settings))
        out["messages"] = asyncio.run(publish_all(settings, data, RECORDS_PER_MESSAGE))
        c = drain(settings, conninfo, total, workdir / "worker-c.log", group="c")
        out["c_worker_rows_s"] = round(c.rate)
        out["c_over_a"] = round(out["c_worker_rows_s"] / out["a_raw_copy_rows_s"], 3)
        out["c_over_b"] = round(out["c_worker_rows_s"] / out["b_naive_rows_s"], 1)
        out["c_worker_cpu_us_per_record"] = round(c.cpu_us_per_record, 2)
        c.backend.report("c", out)
        out["c_over_a_pg_cpu"] = round(c.backend.cpu_us_per_row / a_backend.cpu_us_per_row, 3)
        out["worker_rss_mb_c"] = {
            "start": round(c.rss[0]),
            "peak": round(max(c.rss)),
            "end": round(c.rss[-1]),
        }
        if args.single:
            # Kafka's convention: the same records, one JSON object per message, on topics
            # of their own (published before the worker starts, like c).
            single = base.model_copy(update={"topic_prefix": scratch.prefix()})
            asyncio.run(ensure_topics(single))
            out["d_messages"] = asyncio.run(publish_all(single, data, 0))
            d = drain(single, scratch.database(), total, workdir / "worker-d.log", group="d")
            out["d_single_rows_s"] = round(d.rate)
            out["d_over_c"] = round(d.rate / c.rate, 3)
            out["d_worker_cpu_us_per_record"] = round(d.cpu_us_per_record, 2)
        if args.two_workers:
            # Scale-out on the same box: two workers in one group, same records (the same
            # topics read again under a new group), a fresh database.
            conninfo = scratch.database()
            c2 = drain(settings, conninfo, total, workdir / "worker-c2.log", group="c2", workers=2)
            out["c2_two_workers_rows_s"] = round(c2.rate)
            out["c2_over_a"] = round(c2.rate / out["a_raw_copy_rows_s"], 3)

        # Latency: a worker on the drained topics, records produced at a steady rate.
        # (the group that drained into `conninfo`: it starts at the end of the backlog)
        group = "c2" if args.two_workers else "c"
        worker = start_worker(settings, conninfo, workdir / "worker-lat.log", group)
        time.sleep(8)  # join the group and reach the end of the backlog before timing
        for key, single in (("latency_s", False), ("latency_single_s", True)):
            lat = asyncio.run(
                steady(settings, conninfo, args.latency_rate, args.latency_seconds, single=single)
            )
            out[key] = {
                "rate": args.latency_rate,
                "n": len(lat),
                "p50": round(percentile(lat, 50), 3),
                "p99": round(percentile(lat, 99), 3),
                "max": round(max(lat), 3) if lat else None,
            }
        worker.send_signal(signal.SIGTERM)
        out["worker_exit_code"] = worker.wait(60)
        del data

        if args.memory_factor:
            big = generate(int(300_000 * args.scale * args.memory_factor), seed=1)
            big_total = sum(len(v) for v in big.values())
            prefix = scratch.prefix()
            settings = base.model_copy(update={"topic_prefix": prefix})
            conninfo = scratch.database()
            asyncio.run(ensure_topics(settings))
            asyncio.run(publish_all(settings, big, RECORDS_PER_MESSAGE))
            del big
            m = drain(settings, conninfo, big_total, workdir / "worker-m.log", group="m")
            big_rss = m.rss
            out["memory_backlog_records"] = big_total
            out["memory_backlog_rows_s"] = round(m.rate)
            quarter = max(1, len(big_rss) // 4)
            out["worker_rss_mb_10x"] = {
                "first_quarter_peak": round(max(big_rss[:quarter])),
                "peak": round(max(big_rss)),
                "end": round(big_rss[-1]),
            }
    finally:
        scratch.drop_all()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
