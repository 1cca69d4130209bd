"""OpenTelemetry intake: spans/s through one ``agentstream otlp`` process to records Kafka
acknowledged, against the SDK publishing the same records already built; and export-to-row
latency at a steady rate, through the intake, the resolver and the worker into PostgreSQL.

Traces are shaped as instrumented agents send them: an ``invoke_agent`` span with four
``chat`` children (usage details, messages) and an ``execute_tool``. In the throughput run a
trace's spans share a request; in the latency run half the traces are split, children
first and the agent span 100 ms later in the next request, so half the calls go through the
resolver (docs/otel.md).

(a) intake: protobuf ExportTraceServiceRequests of ``--spans-per-request`` spans, posted by
    ``--concurrency`` clients; timed until every request was answered 200 (i.e. acked).
    Also the intake process's CPU time per span (user + system, its resolver included).
(b) sdk: ``AgentStream`` publishing the records the intake derives from the same spans,
    built in advance; timed until close() (every ack), and its CPU time (this process's).
(c) latency: ``--rate`` spans/s for ``--seconds``; time from the request's send to the row.

Arize Phoenix runs beside it in bench/otlp_phoenix.py. Prints one JSON line.
Usage: ``.venv/bin/python bench/otlp.py [--spans N] [--rate 1000 --seconds 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from ingest import Scratch, cpu_s, percentile
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from agentstream.contract.entities import Record
from agentstream.contract.settings import Settings, get_settings
from agentstream.otlp.decode import decode_request, spans_of
from agentstream.otlp.pipeline import map_spans
from agentstream.producers import AgentStream, ensure_topics

SPANS_PER_TRACE = 6
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
OUTPUT = '[{"role":"assistant","parts":[{"type":"text","content":"ok"}]}]'


def _attr(span: PbSpan, key: str, value: Any) -> None:
    a = span.attributes.add()
    a.key = key
    if isinstance(value, int):
        a.value.int_value = value
    else:
        a.value.string_value = value


def trace_spans(start_ns: int, n: int) -> tuple[PbSpan, list[PbSpan]]:
    """One trace: (the agent span, its children)."""
    trace_id = uuid.uuid4().bytes
    agent_id = os.urandom(8)
    conv = f"conv-{n % 50}"
    agent = PbSpan(
        trace_id=trace_id, span_id=agent_id, name="invoke_agent planner",
        start_time_unix_nano=start_ns, end_time_unix_nano=start_ns + 5_000_000,
    )  # fmt: skip
    for k, v in (("gen_ai.operation.name", "invoke_agent"), ("gen_ai.agent.name", "planner"),
                 ("gen_ai.conversation.id", conv), ("user.id", f"user-{n % 50}")):  # fmt: skip
        _attr(agent, k, v)
    children = []
    for i in range(4):
        s = PbSpan(
            trace_id=trace_id, span_id=os.urandom(8), parent_span_id=agent_id,
            name="chat gpt-4o", start_time_unix_nano=start_ns + i * 1_000_000,
            end_time_unix_nano=start_ns + i * 1_000_000 + 900_000,
        )  # fmt: skip
        for k, v in (("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai"),
                     ("gen_ai.request.model", "gpt-4o"), ("gen_ai.usage.input_tokens", 1200),
                     ("gen_ai.usage.output_tokens", 300),
                     ("gen_ai.usage.cache_read.input_tokens", 800),
                     ("gen_ai.input.messages",
                      '[{"role":"user","parts":[{"type":"text","content":"plan step ' + str(i)
                      + '"}]}]'),
                     ("gen_ai.output.messages", OUTPUT)):  # fmt: skip
            _attr(s, k, v)
        children.append(s)
    tool = PbSpan(
        trace_id=trace_id, span_id=os.urandom(8), parent_span_id=agent_id,
        name="execute_tool search", start_time_unix_nano=start_ns + 4_000_000,
        end_time_unix_nano=start_ns + 4_500_000,
    )  # fmt: skip
    for k, v in (("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", "search"),
                 ("gen_ai.tool.call.arguments", '{"q": "x"}')):  # fmt: skip
        _attr(tool, k, v)
    children.append(tool)
    return agent, children


# What the OpenTelemetry SDK puts on every request's resource (none of it GenAI).
RESOURCE = {
    "service.name": "bench-agent",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.version": "1.45.2",
}


def request_of(spans: list[PbSpan]) -> bytes:
    req = ExportTraceServiceRequest()
    resource_spans = req.resource_spans.add()
    for key, value in RESOURCE.items():
        a = resource_spans.resource.attributes.add()
        a.key = key
        a.value.string_value = value
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "bench"
    scope.spans.extend(spans)
    return req.SerializeToString()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_intake(settings: Settings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AGENTSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "AGENTSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "AGENTSTREAM_OTLP_PORT": str(port),
        "AGENTSTREAM_OTLP_RESOLVER_GROUP": f"{settings.topic_prefix}resolver",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentstream", "otlp"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_healthy(proc, port, log, timeout_s=60, what="the intake")
    return proc


def wait_healthy(
    proc: subprocess.Popen[bytes], port: int, log: Path, *, timeout_s: float, what: str
) -> None:
    """Until ``/healthz`` on ``port`` answers 200; the process killed and its log shown if it
    does not in time (or exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{what} did not become healthy; its log:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        if proc.wait(60) != 0:
            raise SystemExit(f"{proc.args} exited {proc.returncode} on SIGTERM")
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SystemExit(f"{proc.args} did not exit within 60 s of SIGTERM") from None


def start_worker(settings: Settings, conninfo: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AGENTSTREAM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "AGENTSTREAM_DATABASE_URL": conninfo,
        "AGENTSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "AGENTSTREAM_WORKER_GROUP": f"{settings.topic_prefix}sink",
        "AGENTSTREAM_WORKER_METRICS_PORT": "0",
        "AGENTSTREAM_WORKER_BATCH_SECONDS": "0.1",
        "AGENTSTREAM_WORKER_DATA_DIR": str(log.parent / "worker-data"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "agentstream", "worker"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> float:
    queue = list(reversed(bodies))
    headers = {"Content-Type": "application/x-protobuf"}

    async def client(session: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            async with session.post(url, data=body, headers=headers) as r:
                if r.status != 200:
                    raise SystemExit(f"intake answered {r.status}: {await r.text()}")
                await r.read()

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        return time.perf_counter() - started


def prebuilt_records(bodies: list[bytes]) -> list[Record]:
    """The records the intake derives from ``bodies``, as the SDK's models."""
    records = []
    for body in bodies:
        mapped = map_spans(spans_of(decode_request(body, json_body=False)), keep_other=False)
        records.extend(row.model() for row in mapped.all_records())
    return records


async def publish_records(settings: Settings, records: list[Record]) -> tuple[float, float]:
    """``AgentStream`` publishing ``records`` until flushed: (seconds, CPU seconds)."""
    async with AgentStream(settings) as stream:
        await stream.ensure_partitions(
            "sessions", "agents", "agent_executions", "llm_interactions", "events"
        )
        started, cpu = time.perf_counter(), time.process_time()
        for r in records:
            await stream.publish(r)
        await stream.flush()
        return time.perf_counter() - started, time.process_time() - cpu


async def sdk_publish(settings: Settings, bodies: list[bytes]) -> float:
    """(b): seconds for the SDK to publish the records derived from ``bodies``."""
    seconds, _ = await publish_records(settings, prebuilt_records(bodies))
    return seconds


async def latency(url: str, conninfo: str, rate: int, seconds: float) -> tuple[list[float], int]:
    """Send ``rate`` spans/s in requests every 100 ms; export-to-row seconds per LLM call."""
    sent_at: dict[str, float] = {}  # span start (ns, as text) -> when its request was sent
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        # Rows of resolved calls arrive later than newer ones: every row is read, by id.
        seen: set[Any] = set()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not stop.is_set():
                rows = conn.execute("SELECT id, created_at FROM llm_interactions").fetchall()
                now = time.time()
                for row_id, created in rows:
                    if row_id in seen:
                        continue
                    seen.add(row_id)
                    key = str((created - EPOCH) // timedelta(microseconds=1))
                    if key in sent_at:
                        latencies.append(now - sent_at[key])
                time.sleep(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    per_tick = max(SPANS_PER_TRACE, rate // 10 // SPANS_PER_TRACE * SPANS_PER_TRACE)
    held: list[PbSpan] = []  # agent spans of split traces: sent in the next request
    n = calls = 0
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        tick = 0
        while time.perf_counter() - started < seconds:
            delay = started + tick * 0.1 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tick += 1
            spans, held = held, []
            now_ns = time.time_ns()
            for i in range(per_tick // SPANS_PER_TRACE):
                n += 1
                # Distinct microsecond starts: the poller finds a call's send time by it.
                agent, children = trace_spans(now_ns + i * 10_000_000, n)
                for c in children:
                    if c.name.startswith("chat"):
                        key = str(c.start_time_unix_nano // 1000)
                        sent_at[key] = time.time()
                        calls += 1
                spans.extend(children)
                (held if n % 2 else spans).append(agent)
            async with session.post(url, data=request_of(spans), headers=headers) as r:
                if r.status != 200:
                    raise SystemExit(f"intake answered {r.status}: {await r.text()}")
        if held:
            async with session.post(url, data=request_of(held), headers=headers) as r:
                await r.read()
    deadline = time.monotonic() + 60
    while len(latencies) < calls and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    stop.set()
    poller.join()
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM llm_interactions").fetchone()
        print(f"rows in the database: {row}; calls sent: {calls}", file=sys.stderr)
    return latencies, calls


async def run(args: argparse.Namespace, scratch: Scratch, tmp: Path) -> dict[str, Any]:
    base = get_settings()
    traces = args.spans // SPANS_PER_TRACE
    start_ns = time.time_ns()
    spans: list[PbSpan] = []
    for n in range(traces):
        agent, children = trace_spans(start_ns + n * 1000, n)
        spans.extend([*children, agent])
    k = args.spans_per_request
    bodies = [request_of(spans[i : i + k]) for i in range(0, len(spans), k)]

    intake_settings = base.model_copy(update={"topic_prefix": scratch.prefix()})
    port = free_port()
    intake = start_intake(intake_settings, port, tmp / "intake.log")
    try:
        cpu_before = cpu_s(intake.pid)
        intake_s = await post_all(f"http://127.0.0.1:{port}/v1/traces", bodies, args.concurrency)
        await asyncio.sleep(1)  # the resolver reads the spans topic's facts back: its share
        intake_cpu_s = cpu_s(intake.pid) - cpu_before
    finally:
        stop(intake)
    sdk_settings = base.model_copy(update={"topic_prefix": scratch.prefix()})
    await ensure_topics(
        sdk_settings, ["sessions", "agents", "agent_executions", "llm_interactions", "events"]
    )
    sdk_s, sdk_cpu_s = await publish_records(sdk_settings, prebuilt_records(bodies))

    out: dict[str, Any] = {
        "bench": "otlp",
        "spans": len(spans),
        "spans_per_request": k,
        "concurrency": args.concurrency,
        "a_intake_spans_per_s": round(len(spans) / intake_s),
        "b_sdk_prebuilt_spans_per_s": round(len(spans) / sdk_s),
        "a_over_b": round(sdk_s / intake_s, 2),
        # The figure that moves least with other load on the machine (BENCHMARKS.md).
        "a_intake_cpu_us_per_span": round(intake_cpu_s / len(spans) * 1e6, 1),
        "b_sdk_cpu_us_per_span": round(sdk_cpu_s / len(spans) * 1e6, 1),
    }
    if args.seconds > 0:
        lat_settings = base.model_copy(update={"topic_prefix": scratch.prefix()})
        conninfo = scratch.database()
        port = free_port()
        intake = start_intake(lat_settings, port, tmp / "intake-latency.log")
        worker = start_worker(lat_settings, conninfo, tmp / "worker.log")
        try:
            await asyncio.sleep(5)  # the worker joins its group
            lat, calls = await latency(
                f"http://127.0.0.1:{port}/v1/traces", conninfo, args.rate, args.seconds
            )
        finally:
            for p in (intake, worker):
                stop(p)
        out.update(
            rate_spans_per_s=args.rate,
            seconds=args.seconds,
            llm_calls=calls,
            llm_rows_seen=len(lat),
            c_export_to_row_p50_s=round(percentile(lat, 50), 3),
            c_export_to_row_p99_s=round(percentile(lat, 99), 3),
        )
    out["cpus"] = os.cpu_count()
    out["python"] = platform.python_version()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--spans", type=int, default=60_000)
    parser.add_argument("--spans-per-request", type=int, default=512)  # BatchSpanProcessor's
    # Several exporters (one BatchSpanProcessor sends one request at a time, each waiting for
    # Kafka's acks): what one intake process can take, not what one client can send.
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0, help="0 skips the latency run")
    args = parser.parse_args()
    scratch = Scratch(get_settings())
    tmp = Path(".services/bench-otlp")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        out = asyncio.run(run(args, scratch, tmp))
    finally:
        scratch.drop_all()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
