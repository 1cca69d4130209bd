"""Decode benchmark: the worker's CPU per record from message bytes to binary COPY rows, in-process.

The same records as bench/ingest.py (events with their sessions, plus LLM interactions),
as 500-record arrays and as one record per message, through ``processor.decode_items``
(what the worker runs per message, ingest defaults and row encoding included) two ways:

  fast       msgspec into the rows (streams/fastdecode.py), pydantic where it is not sure;
  reference  the pydantic models alone (``fast=False``): the path before the fast decoder.

and, as ``worker``, through what the consume loop calls on a fetch: ``Processor.decode_messages``
on aiokafka ``ConsumerRecord``s (runs of one-record messages decoded in one msgspec call).

No Kafka and no database writes (the column types are read from a scratch database),
so the figure is the decoder's own and moves little when the machine is shared: process
CPU time (time.process_time) per record, best of ``--repeat`` rounds, with the worker's
garbage-collector settings (streams/interpreter.py). Prints one JSON line.

    .venv/bin/python bench/decode.py
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.structs import ConsumerRecord

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import Scratch, batches, generate

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, topic_for
from agentstream.sinks.postgres import PostgresSink, Source
from agentstream.sinks.postgres.copy import RowEncoder
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.health import HealthState
from agentstream.streams.interpreter import tune_interpreter
from agentstream.streams.metrics import WorkerMetrics
from agentstream.streams.processor import Processor, decode_items

INGEST_TIME = datetime(2026, 12, 4, tzinfo=UTC)


def cpu_us_per_record(
    messages: list[tuple[str, bytes]], encoders: dict[str, RowEncoder], fast: bool, repeat: int
) -> float:
    records = 0
    for entity, value in messages:
        items, _ = decode_items(entity, Source("t", 0, 0, value), INGEST_TIME, encoders[entity])
        records += len(items)
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        for offset, (entity, value) in enumerate(messages):
            source = Source("t", 0, offset, value)
            decode_items(entity, source, INGEST_TIME, encoders[entity], fast=fast)
        best = min(best, time.process_time() - started)
    return round(best / records * 1e6, 2)


def worker_cpu_us_per_record(
    messages: list[tuple[str, bytes]], processor: Processor, repeat: int
) -> float:
    """CPU per record of Processor.decode_messages over the messages as one fetch each
    topic (the loop calls it per partition's messages, with room for a whole batch)."""
    by_topic: dict[str, list[ConsumerRecord[Any, Any]]] = {}
    ts = int(INGEST_TIME.timestamp() * 1000)
    for entity, value in messages:
        topic = topic_for(entity, "bench.")
        fetched = by_topic.setdefault(topic, [])
        fetched.append(
            ConsumerRecord(topic, 0, len(fetched), ts, 0, None, value, None, -1, len(value), ())
        )
    best, records = float("inf"), 0
    for round_ in range(repeat + 1):
        gc.collect()
        started = time.process_time()
        n = 0
        for fetched in by_topic.values():
            i, end = 0, len(fetched)
            while i < end:
                run, i = processor.decode_messages(fetched, i, end, 5000)
                n += run.size
        if round_:  # the first round warms up
            best = min(best, time.process_time() - started)
        records = n
    return round(best / records * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000, help="events (sessions etc. scale)")
    parser.add_argument("--per-message", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    settings = Settings(topic_prefix="bench.")
    scratch = Scratch(settings)
    sink = PostgresSink(scratch.database())
    try:
        sink.connect()  # its row encoders (the scratch database's columns), kept after close
        sink.close()
    finally:
        scratch.drop_all()
    encoders = {entity: sink.encoder(entity) for entity in ENTITIES}
    processor = Processor(
        settings, sink, DeadLetterPublisher(settings), WorkerMetrics(), HealthState()
    )
    data = generate(args.events)
    # The worker's collector settings (few collections, start-up frozen): without them,
    # collections walking the generated records and messages weigh on every figure.
    tune_interpreter(5000)
    out: dict[str, Any] = {
        "bench": "decode",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "records": {k: len(v) for k, v in data.items()},
    }
    for shape, size in (("arrays", args.per_message), ("single", 0)):
        messages = [(e, v) for e, records in data.items() for v in batches(records, size)]
        for way, fast in (("reference", False), ("fast", True)):
            out[f"{shape}_{way}_cpu_us_per_record"] = cpu_us_per_record(
                messages, encoders, fast, args.repeat
            )
        ref, fast_us = (
            out[f"{shape}_reference_cpu_us_per_record"],
            out[f"{shape}_fast_cpu_us_per_record"],
        )
        out[f"{shape}_speedup"] = round(ref / fast_us, 2)
        out[f"{shape}_worker_cpu_us_per_record"] = worker_cpu_us_per_record(
            messages, processor, args.repeat
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
