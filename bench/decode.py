"""Decode benchmark: the worker's CPU per record from message bytes to binary COPY rows, in-process.

The same records as bench/ingest.py (events with their sessions, plus LLM interactions),
as 500-record arrays and as one record per message, through ``processor.decode_items``
(what the worker runs per message, ingest defaults and row encoding included) two ways:

  fast       msgspec into the rows (streams/fastdecode.py), pydantic where it is not sure;
  reference  the pydantic models alone (``fast=False``): the path before the fast decoder.

No Kafka and no database writes (the column types are read once from a scratch database),
so the figure is the decoder's own and moves little when the machine is shared: process
CPU time (time.process_time) per record, best of ``--repeat`` rounds. Prints one JSON line.

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

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import Scratch, batches, generate

from agentstream.contract.settings import Settings
from agentstream.sinks.postgres import Source
from agentstream.sinks.postgres.copy import RowEncoder, sink_adapters
from agentstream.sinks.postgres.tables import load_tables
from agentstream.streams.processor import decode_items

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000, help="events (sessions etc. scale)")
    parser.add_argument("--per-message", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    settings = Settings()
    scratch = Scratch(settings)
    try:
        with psycopg.connect(scratch.database()) as conn:
            tables = load_tables(conn)
    finally:
        scratch.drop_all()
    adapters = sink_adapters()
    encoders = {entity: RowEncoder(table, adapters) for entity, table in tables.items()}
    data = generate(args.events)
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
    print(json.dumps(out))


if __name__ == "__main__":
    main()
