"""Producer throughput: the SDK against two naive aiokafka producers, same broker, same records.

(a) ``AgentStream`` with its defaults, publishing pre-built (validated) Event models; the
    timing includes serialization, batching, compression and waiting for every ack (close()).
    ``a_build`` also times building the models from dicts (validation) in the loop.
(b) aiokafka ``send_and_wait`` per record (pre-serialized bytes), on a sample of records.
(c) aiokafka ``send`` per record with pre-serialized bytes, then ``flush``.
All three use acks="all" with idempotence and key records by session id.

``--wire`` picks the SDK's message shape (AGENTSTREAM_PRODUCER_WIRE): ``batch`` (the default:
(a) as above), ``record`` (one keyed JSON object per message: ``a_record``), or ``both`` in
the same run, so that the two shapes are compared on the same machine load.

Prints one JSON line. Usage: ``.venv/bin/python bench/produce.py [--records N] [--wire W]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from agentstream.contract import Event, encode_record, get_settings, topic_for
from agentstream.producers import AgentStream, ensure_topics, uuid7
from agentstream.producers.client import DEFAULT_COMPRESSION
from agentstream.topic_admin import delete_topics


def make_events(n: int, sessions: int) -> list[dict[str, Any]]:
    ids = [uuid7() for _ in range(sessions)]
    base = int(time.time() * 1000)
    out = []
    for i in range(n):
        sid = ids[i % sessions]
        out.append(
            {
                "id": uuid7(),
                "event_type": ("tool.call", "tool.result", "agent.step")[i % 3],
                "trace_id": sid,
                "session_id": sid,
                "user_id": f"user-{i % sessions:04d}",
                "timestamp_ms": base + i,
                "payload": {"tool": "web_search", "step": i % 12, "query": f"query number {i}"},
                "created_at": datetime.now(UTC),
            }
        )
    return out


async def bench_sdk(settings: Any, events: list[Event], compression: str | None) -> float:
    stream = AgentStream(settings, compression=compression)
    await stream.start()
    await stream.ensure_partitions("events")
    t0 = time.perf_counter()
    for e in events:
        await stream.publish(e)
    report = await stream.close()
    elapsed = time.perf_counter() - t0
    assert report.delivered_records == len(events), report
    return elapsed


async def bench_sdk_build(
    settings: Any, rows: list[dict[str, Any]], compression: str | None
) -> float:
    stream = AgentStream(settings, compression=compression)
    await stream.start()
    await stream.ensure_partitions("events")
    t0 = time.perf_counter()
    for row in rows:
        await stream.publish(Event(**row))
    report = await stream.close()
    elapsed = time.perf_counter() - t0
    assert report.delivered_records == len(rows), report
    return elapsed


def naive_producer(settings: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        **settings.kafka_client_options(),
    )


async def bench_send_and_wait(settings: Any, payloads: list[tuple[bytes, bytes]]) -> float:
    topic = topic_for("events", settings.topic_prefix)
    producer = naive_producer(settings)
    await producer.start()
    await producer.partitions_for(topic)
    try:
        t0 = time.perf_counter()
        for key, value in payloads:
            await producer.send_and_wait(topic, value, key=key)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


async def bench_send(settings: Any, payloads: list[tuple[bytes, bytes]]) -> float:
    topic = topic_for("events", settings.topic_prefix)
    producer = naive_producer(settings)
    await producer.start()
    await producer.partitions_for(topic)
    try:
        t0 = time.perf_counter()
        futures = [await producer.send(topic, value, key=key) for key, value in payloads]
        await producer.flush()
        elapsed = time.perf_counter() - t0
        assert all(f.done() and f.exception() is None for f in futures)
        return elapsed
    finally:
        await producer.stop()


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gb": round(ram_gb, 1)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--naive-records", type=int, default=5_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument(
        "--compression",
        default=DEFAULT_COMPRESSION,
        help=f"the SDK's codec: zstd, lz4, gzip or none (default {DEFAULT_COMPRESSION})",
    )
    parser.add_argument(
        "--wire",
        choices=("batch", "record", "both"),
        default="batch",
        help="the SDK's message shape (AGENTSTREAM_PRODUCER_WIRE), or both in one run",
    )
    args = parser.parse_args()
    compression = None if args.compression == "none" else args.compression

    base = get_settings()
    run = uuid.uuid4().hex[:8]
    # The SDK's variants per shape: "a"/"a_build" in batch shape, "a_record"/... in record.
    shapes = {"batch": "a", "record": "a_record"}
    wires = list(shapes) if args.wire == "both" else [args.wire]
    sdk_names = {
        name: wire
        for wire in wires
        for name in (shapes[wire], shapes[wire].replace("a", "a_build", 1))
    }
    variants = {
        name: base.model_copy(
            update={
                "topic_prefix": f"bench.produce.{run}.{name}.",
                "producer_wire": sdk_names.get(name, base.producer_wire),
            }
        )
        for name in (*sdk_names, "b", "c")
    }
    for settings in variants.values():
        await ensure_topics(settings, ["events"])

    rows = make_events(args.records, args.sessions)
    events = [Event(**row) for row in rows]
    payloads = [(str(e.session_id).encode(), encode_record(e)) for e in events]
    sample = payloads[: args.naive_records]

    c_s = await bench_send(variants["c"], payloads)
    sdk_s: dict[str, float] = {}
    for wire in wires:
        name = shapes[wire]
        build = name.replace("a", "a_build", 1)
        sdk_s[name] = await bench_sdk(variants[name], events, compression)
        sdk_s[build] = await bench_sdk_build(variants[build], rows, compression)
    b_s = await bench_send_and_wait(variants["b"], sample)

    # The bench's own topics only: ~70 MB per run need not stay on a shared broker.
    own = {topic_for("events", v.topic_prefix) for v in variants.values()}
    await delete_topics(base, own.__contains__)

    n = len(events)
    c_rps = n / c_s
    b_rps = len(sample) / b_s
    figures: dict[str, Any] = {}
    for name, seconds in sdk_s.items():
        rps = n / seconds
        figures[f"{name}_sdk_rps"] = round(rps)
        if not name.startswith("a_build"):
            figures[f"ratio_{name}_b"] = round(rps / b_rps, 1)
            figures[f"ratio_{name}_c"] = round(rps / c_rps, 2)
            figures[f"{name}_seconds"] = round(seconds, 3)
    if len(wires) == 2:
        figures["ratio_a_record_a"] = round(sdk_s["a"] / sdk_s["a_record"], 2)
    print(
        json.dumps(
            {
                "bench": "produce",
                "records": n,
                "naive_records": len(sample),
                "bytes_per_record": round(sum(len(v) for _, v in payloads) / n, 1),
                **figures,
                "b_send_and_wait_rps": round(b_rps),
                "c_send_bytes_rps": round(c_rps),
                "c_seconds": round(c_s, 3),
                "b_seconds": round(b_s, 3),
                "sdk": {
                    "wire": args.wire,
                    "compression": args.compression,
                    "batch_bytes": base.producer_batch_bytes,
                    "linger_ms": base.producer_linger_ms,
                    "validate": base.producer_validate,
                },
                "load_average": [round(x, 2) for x in os.getloadavg()],
                "bootstrap": base.kafka_bootstrap,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
