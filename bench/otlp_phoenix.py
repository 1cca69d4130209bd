"""Arize Phoenix beside agentstream: the same spans, from the same OpenTelemetry SDK exporter,
stored end to end into the same PostgreSQL (issue 18, item 5).

Both servers get traces shaped as bench/otlp.py builds them (an ``invoke_agent`` span, four
``chat`` children with usage and messages, an ``execute_tool``), replayed through the SDK's
tracer into a ``BatchSpanProcessor`` and the OTLP/HTTP protobuf ``OTLPSpanExporter`` with the
same settings for both (default batch size 512, schedule delay 5 s, export timeout 10 s,
retries on 503 with backoff and ``Retry-After``). The processor's queue is sized to hold the
whole load (``--queue-size``), so a span is only ever dropped because the server refused it
until the exporter gave up on its batch, never because the client's queue was full. The
traces' names, attributes and times are made up before the clock starts; creating the
spans with the SDK, exporting and storing them is what is timed.

(a) agentstream: ``agentstream otlp`` and ``agentstream worker`` (subprocesses) with a
    scratch database and topic prefix; end to end = from the first span created to the last
    row in the seed tables (each span is one row: ``agent_executions``, ``llm_interactions``
    or a ``tool.call`` event).
(b) Arize Phoenix (``arize-phoenix[pg]``, pinned, installed on first run into its own
    virtualenv under .bench-cache/ so that its dependencies never touch agentstream's):
    ``phoenix serve`` with ``PHOENIX_SQL_DATABASE_URL`` on a scratch database of the same
    server, its OTLP/HTTP endpoint on a free port; end to end = from the first span created
    to the last row in its ``spans`` table.

stored = rows counted in PostgreSQL; dropped = sent - stored once nothing has arrived for
``--idle-seconds`` after the exporter finished. Sample sizes differ because the rates differ
by two orders of magnitude: Phoenix accepts spans into an in-memory queue (20,000 spans by
default) and writes them at its own pace, so ``--phoenix-spans`` only has to be large enough
for that pace to be steady (tens of seconds of writing). Its 503 answers need a full queue:
``--phoenix-spans 6000 --phoenix-queue-size 2000`` shows them in two minutes;
``--phoenix-spans 100000`` (tens of minutes) is the issue's run with Phoenix's default queue.
See BENCHMARKS.md. Prints one JSON line.

Usage: ``.venv/bin/python bench/otlp_phoenix.py [--spans 60000] [--phoenix-spans 3000]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from ingest import Scratch, cpu_s
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from otlp import (
    SPANS_PER_TRACE,
    free_port,
    start_intake,
    start_worker,
    stop,
    trace_spans,
    wait_healthy,
)
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agentstream.contract.settings import Settings, get_settings

PHOENIX = "arize-phoenix[pg]==20.26.1"
ROOT = Path(__file__).resolve().parent.parent
PHOENIX_VENV = ROOT / ".bench-cache" / "phoenix-venv"
SEED_ROWS = (
    "SELECT (SELECT count(*) FROM agent_executions) + (SELECT count(*) FROM llm_interactions)"
    " + (SELECT count(*) FROM events WHERE event_type = 'tool.call')"
)
PHOENIX_ROWS = "SELECT count(*) FROM spans"


# --- Phoenix's own virtualenv and server ----------------------------------------------------


def phoenix_venv() -> Path:
    """The venv's python, with the pinned Phoenix; created on the first run, then reused."""
    python = PHOENIX_VENV / "bin" / "python"
    wanted = PHOENIX.split("==")[1]
    if python.exists():
        have = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('arize-phoenix'))"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        if have == wanted:
            return python
    print(f"installing {PHOENIX} into {PHOENIX_VENV} (once)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", PHOENIX_VENV], check=True)
    # uv (in agentstream's dev tools) resolves Phoenix's ~140 packages in seconds; pip in minutes.
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    install = [uv, "pip", "install", "--python", python] if uv else [python, "-m", "pip", "install"]
    subprocess.run([*install, "-q", PHOENIX], check=True)
    return python


def phoenix_db_url(settings: Settings, dbname: str) -> str:
    """A postgresql:// URL (Phoenix takes no key=value conninfo) for ``dbname`` on our server."""
    p = conninfo_to_dict(settings.database_conninfo())
    auth = quote(str(p.get("user", "postgres")), safe="")
    if p.get("password"):
        auth += ":" + quote(str(p["password"]), safe="")
    host, port = p.get("host", "127.0.0.1"), p.get("port", "5432")
    return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}"


def create_database(scratch: Scratch, prefix: str) -> str:
    """An empty scratch database (no agentstream migrations), dropped with the others."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    with psycopg.connect(scratch.admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    scratch.names.append(name)
    return name


def start_phoenix(
    python: Path, db_url: str, workdir: Path, queue_size: int | None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    # Phoenix's default queue (20,000 spans) unless --phoenix-queue-size says otherwise.
    queue = {"PHOENIX_MAX_SPANS_QUEUE_SIZE": str(queue_size)} if queue_size else {}
    env = {
        **os.environ,
        **queue,
        "PHOENIX_SQL_DATABASE_URL": db_url,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),  # UI, REST and OTLP/HTTP (/v1/traces)
        "PHOENIX_GRPC_PORT": str(free_port()),  # not 4317: another session may hold it
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = workdir / "phoenix.log"
    proc = subprocess.Popen(
        [python, "-m", "phoenix.server.main", "serve"], cwd=workdir, env=env,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    # Migrations and imports: ~60 s on a loaded machine.
    wait_healthy(proc, port, log, timeout_s=300, what="Phoenix")
    return proc, port


def stop_phoenix(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)  # uvicorn's graceful stop
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the exporter ------------------------------------------------------------------------------


@dataclass
class Exported:
    sent: int = 0
    failed_batches: int = 0
    failed_spans: int = 0  # batches the exporter gave up on (after its retries)
    retries: int = 0  # e.g. 503 answers the exporter retried after
    started: float = 0.0
    finished: float = 0.0
    errors: list[str] = field(default_factory=list)


class CountingExporter(OTLPSpanExporter):
    """The SDK's exporter, counting the spans of the batches it gave up on."""

    def __init__(self, endpoint: str, out: Exported, lock: threading.Lock) -> None:
        super().__init__(endpoint=endpoint)
        self.out, self.lock = out, lock

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        if result is not SpanExportResult.SUCCESS:
            with self.lock:
                self.out.failed_batches += 1
                self.out.failed_spans += len(spans)
        return result


class RetryCounter(logging.Handler):
    """The exporter logs each retry (503, 429, connection errors) as a warning: count them."""

    def __init__(self, out: Exported) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "retrying" in message:
            self.out.retries += 1
        elif len(self.out.errors) < 5:
            self.out.errors.append(message[:300])


def _attributes(span: PbSpan) -> dict[str, Any]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


# One span to create: (name, attributes, start ns, end ns).
Planned = tuple[str, dict[str, Any], int, int]


def plan(n_traces: int, start_ns: int) -> list[tuple[Planned, list[Planned]]]:
    """bench/otlp.py's traces as the SDK's inputs: (the agent span, its children) a trace.

    Built before the clock starts: making up the test's input is neither the SDK's work nor
    the server's, and in the timed loop it cost a quarter of the bench process's CPU, on the
    same two cores as the servers."""

    def planned(span: PbSpan) -> Planned:
        return (
            span.name,
            _attributes(span),
            span.start_time_unix_nano,
            span.end_time_unix_nano,
        )

    traces = []
    for n in range(n_traces):
        agent, children = trace_spans(start_ns + n * 1000, n)
        traces.append((planned(agent), [planned(c) for c in children]))
    return traces


def export(
    endpoint: str, traces: list[tuple[Planned, list[Planned]]], exporters: int, queue_size: int
) -> Exported:
    """Replay ``traces`` through the SDK's tracer into ``exporters`` processors."""
    out = Exported()
    lock = threading.Lock()
    handler = RetryCounter(out)
    exporter_logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http")
    exporter_logger.addHandler(handler)
    # Counted and kept in the JSON line instead of printed; WARNING is where retries show.
    exporter_logger.setLevel(logging.WARNING)
    exporter_logger.propagate = False
    providers = []
    for _ in range(exporters):
        provider = TracerProvider(resource=Resource.create({"service.name": "bench-agent"}))
        provider.add_span_processor(
            BatchSpanProcessor(CountingExporter(endpoint, out, lock), max_queue_size=queue_size)
        )
        providers.append(provider)
    tracers = [p.get_tracer("bench.otlp_phoenix") for p in providers]
    out.started = time.perf_counter()
    for n, ((name, attributes, start, end), children) in enumerate(traces):
        tracer = tracers[n % exporters]
        root = tracer.start_span(name, attributes=attributes, start_time=start)
        ctx = trace.set_span_in_context(root)
        for c_name, c_attributes, c_start, c_end in children:
            # children end, and are exported, before their parent
            child = tracer.start_span(
                c_name, context=ctx, attributes=c_attributes, start_time=c_start
            )
            child.end(end_time=c_end)
        root.end(end_time=end)
        out.sent += SPANS_PER_TRACE
    for p in providers:
        p.force_flush()  # blocks until every batch was answered or given up on
        p.shutdown()
    out.finished = time.perf_counter()
    exporter_logger.removeHandler(handler)
    return out


# --- counting rows -----------------------------------------------------------------------------


@dataclass
class Stored:
    rows: int = 0
    last_row: float = 0.0  # perf_counter when the count last grew
    first_row: float = 0.0


def watch(conninfo: str, query: str, expected: int, stop_: threading.Event, out: Stored) -> None:
    """Poll the row count until ``expected`` rows are in or ``stop_`` is set."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while True:
            row = conn.execute(query).fetchone()
            rows = int(row[0]) if row else 0
            now = time.perf_counter()
            if rows > out.rows:
                if out.rows == 0:
                    out.first_row = now
                out.rows, out.last_row = rows, now
            if rows >= expected or stop_.is_set():
                return
            time.sleep(0.2)


def run_one(
    conninfo: str,
    query: str,
    endpoint: str,
    args: argparse.Namespace,
    n_spans: int,
    servers: Sequence[subprocess.Popen[bytes]],
) -> dict[str, Any]:
    """Export ``n_spans`` to ``endpoint`` and count rows; CPU of the ``servers`` processes."""
    traces = plan(n_spans // SPANS_PER_TRACE, time.time_ns())
    cpu_before = sum(cpu_s(p.pid) for p in servers)
    client_before = cpu_s(os.getpid())
    stored, done = Stored(), threading.Event()
    watcher = threading.Thread(target=watch, args=(conninfo, query, n_spans, done, stored))
    watcher.start()
    exported = export(endpoint, traces, args.exporters, args.queue_size)
    # After the exporter is done, the server may still be writing what it accepted.
    while watcher.is_alive():
        watcher.join(0.5)
        if time.perf_counter() - max(stored.last_row, exported.finished) > args.idle_seconds:
            done.set()
    watcher.join()
    cpu = sum(cpu_s(p.pid) for p in servers) - cpu_before
    client_cpu = cpu_s(os.getpid()) - client_before
    seconds = stored.last_row - exported.started if stored.rows else float("nan")
    return {
        "spans_sent": exported.sent,
        "spans_stored": stored.rows,
        "dropped": exported.sent - stored.rows,
        "exporter_failed_spans": exported.failed_spans,
        "exporter_retries": exported.retries,
        "export_s": round(exported.finished - exported.started, 2),
        "end_to_end_s": round(seconds, 2),
        "spans_per_s": round(stored.rows / seconds, 1) if stored.rows else 0,
        # Steady state: first row to last, without the server's start-up of the pipeline.
        "first_to_last_row_spans_per_s": (
            round(stored.rows / (stored.last_row - stored.first_row), 1)
            if stored.last_row > stored.first_row
            else None
        ),
        # What the server processes spent (PostgreSQL's own work not included, for either).
        "server_cpu_us_per_span": round(cpu / stored.rows * 1e6) if stored.rows else None,
        # This process: the SDK creating the spans and the exporter encoding and posting
        # them (and the row counting, a query every 0.2 s), on the same cores as the server.
        "client_cpu_us_per_span": round(client_cpu / exported.sent * 1e6)
        if exported.sent
        else None,
        "exporter_errors": exported.errors,
    }


def run_agentstream(args: argparse.Namespace, scratch: Scratch, tmp: Path) -> dict[str, Any]:
    settings = get_settings().model_copy(update={"topic_prefix": scratch.prefix()})
    conninfo = scratch.database()
    port = free_port()
    intake = start_intake(settings, port, tmp / "intake.log")
    worker = start_worker(settings, conninfo, tmp / "worker.log")
    try:
        time.sleep(5)  # the worker joins its group
        url = f"http://127.0.0.1:{port}/v1/traces"
        return run_one(conninfo, SEED_ROWS, url, args, args.spans, (intake, worker))
    finally:
        for p in (intake, worker):
            stop(p)


def run_phoenix(args: argparse.Namespace, scratch: Scratch, tmp: Path) -> dict[str, Any]:
    python = phoenix_venv()
    settings = get_settings()
    dbname = create_database(scratch, "bench_phoenix_")
    workdir = tmp / "phoenix"
    workdir.mkdir()
    proc, port = start_phoenix(
        python, phoenix_db_url(settings, dbname), workdir, args.phoenix_queue_size
    )
    try:
        conninfo = make_conninfo(scratch.admin, dbname=dbname)
        url = f"http://127.0.0.1:{port}/v1/traces"
        out = run_one(conninfo, PHOENIX_ROWS, url, args, args.phoenix_spans, (proc,))
    finally:
        stop_phoenix(proc)
    log = (workdir / "phoenix.log").read_text(errors="replace")
    out["http_503_logged"] = log.count('" 503')
    return out


def _loadavg() -> float:
    return round(os.getloadavg()[0], 1)


def _commit() -> str:
    return subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
        check=False,
    ).stdout.strip()  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--spans", type=int, default=60_000, help="to agentstream")
    parser.add_argument("--phoenix-spans", type=int, default=3_000, help="to Phoenix")
    parser.add_argument(
        "--exporters", type=int, default=1,
        help="BatchSpanProcessors (one request in flight each), for both servers",
    )  # fmt: skip
    parser.add_argument("--queue-size", type=int, default=200_000, help="each processor's queue")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--skip-agentstream", action="store_true")
    parser.add_argument("--skip-phoenix", action="store_true")
    parser.add_argument(
        "--phoenix-queue-size", type=int, help="PHOENIX_MAX_SPANS_QUEUE_SIZE (default: its own)"
    )
    args = parser.parse_args()
    out: dict[str, Any] = {
        "bench": "otlp_phoenix",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "loadavg_start": _loadavg(),
        "exporters": args.exporters,
        "queue_size": args.queue_size,
    }
    scratch = Scratch(get_settings())
    tmp = Path(tempfile.mkdtemp(prefix="bench-otlp-phoenix-"))
    try:
        if not args.skip_phoenix:
            out["phoenix"] = run_phoenix(args, scratch, tmp)
        if not args.skip_agentstream:
            out["agentstream"] = run_agentstream(args, scratch, tmp)
    finally:
        scratch.drop_all()
    if "agentstream" in out and out.get("phoenix", {}).get("spans_per_s"):
        out["ratio_agentstream_over_phoenix"] = round(
            out["agentstream"]["spans_per_s"] / out["phoenix"]["spans_per_s"], 1
        )
    out["loadavg_end"] = _loadavg()
    out["versions"] = {
        "arize_phoenix": PHOENIX.split("==")[1],
        "opentelemetry_sdk": version("opentelemetry-sdk"),
        "opentelemetry_exporter_otlp_proto_http": version("opentelemetry-exporter-otlp-proto-http"),
        "python": platform.python_version(),
    }
    out["logs"] = str(tmp)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
