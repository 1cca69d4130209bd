"""PostgreSQL's work per statement: the sink's flushes against raw COPY of the same rows.

No Kafka and no worker: the ingest bench's records (bench/ingest.py's generator) are handed
to ``PostgresSink`` in flushes of ``--batch`` records, in the order ``--order`` says, already
encoded (as the worker hands them), and every statement the sink sends is timed: wall
seconds, and the CPU seconds of its PostgreSQL backend (/proc/PID/schedstat). The same run
COPYs the same rows the way bench/ingest.py's (a) does, in one transaction, per table.

``--order children-first`` is what the ingest bench's worker often sees at its start (LLM
interactions fetched before their sessions: the sink infers the sessions, then the real
ones replace them); ``parents-first`` is raw COPY's order.

    .venv/bin/python bench/sink_statements.py --scale 0.5 --order children-first

Prints a table, then the figures as one JSON line; the scratch databases are dropped at the
end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).parent))
import ingest  # bench/ingest.py: generator, raw COPY, scratch databases

from agentstream.contract.entities import ENTITY_MODELS
from agentstream.contract.settings import Settings
from agentstream.sinks.postgres import PostgresSink, SinkItem, Source

ORDERS = {
    "children-first": ("llm_interactions", "sessions", "events"),
    "parents-first": ("sessions", "llm_interactions", "events"),
}


class StatementTimer:
    """Wall and backend CPU seconds per kind of statement, while :meth:`installed`."""

    def __init__(self) -> None:
        self.backend: int | None = None
        self.stats: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])

    def cpu(self) -> float:
        return ingest.sched_s(self.backend)[0] if self.backend else 0.0

    @staticmethod
    def kind(query: Any) -> str:
        text = re.sub(r"\s+", " ", query.as_string(None) if hasattr(query, "as_string") else query)
        if text.startswith("COPY"):
            return text.split(" (")[0]
        if text.startswith("WITH ins AS (INSERT INTO public."):
            return "infer " + text.split("public.")[1].split(" ")[0]
        if text.startswith(("WITH up AS", 'INSERT INTO "public"')):
            return "upsert " + text.split('"')[3]
        return text.split('"')[0].strip()

    def add(self, kind: str, wall: float, cpu: float) -> None:
        entry = self.stats[kind]
        entry[0] += 1
        entry[1] += wall
        entry[2] += cpu

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        execute, copy = psycopg.Cursor.execute, psycopg.Cursor.copy
        timer = self

        def timed_execute(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            t, c = time.perf_counter(), timer.cpu()
            try:
                return execute(cur, query, *args, **kwargs)
            finally:
                timer.add(timer.kind(query), time.perf_counter() - t, timer.cpu() - c)

        @contextlib.contextmanager
        def timed_copy(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            t, c = time.perf_counter(), timer.cpu()
            failed = ""
            try:
                with copy(cur, query, *args, **kwargs) as cp:
                    yield cp
            except BaseException as exc:
                failed = f" (failed: {type(exc).__name__})"
                raise
            finally:
                timer.add(timer.kind(query) + failed, time.perf_counter() - t, timer.cpu() - c)

        psycopg.Cursor.execute = timed_execute  # type: ignore[method-assign]
        psycopg.Cursor.copy = timed_copy  # type: ignore[method-assign,assignment]
        try:
            yield
        finally:
            psycopg.Cursor.execute = execute  # type: ignore[method-assign]
            psycopg.Cursor.copy = copy  # type: ignore[method-assign]


def raw_per_table(conninfo: str, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """bench/ingest.py's (a), one transaction, with each table's backend CPU per row."""
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        backend = conn.info.backend_pid
        for entity in ("sessions", "llm_interactions", "events"):
            cols = sql.SQL(", ").join(map(sql.Identifier, ingest.COLUMNS[entity]))
            stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(entity), cols
            )
            c0, t0 = ingest.sched_s(backend)[0], time.perf_counter()
            with cur.copy(stmt) as copy:
                copy.set_types(list(ingest.TYPES[entity]))
                for r in rows[entity]:
                    copy.write_row(r)
            n = len(rows[entity])
            cpu_us = 1e6 * (ingest.sched_s(backend)[0] - c0) / n
            wall_us = 1e6 * (time.perf_counter() - t0) / n
            print(f"  raw COPY {entity}: backend {cpu_us:.2f} µs/row, wall {wall_us:.2f} µs/row")
        conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--scale", type=float, default=0.5, help="1.0 = 300k events")
    parser.add_argument("--order", choices=sorted(ORDERS), default="children-first")
    parser.add_argument("--batch", type=int, default=5000, help="records per flush")
    args = parser.parse_args()

    scratch = ingest.Scratch(Settings())
    try:
        data = ingest.generate(int(300_000 * args.scale))
        total = sum(len(v) for v in data.values())
        rows = {e: [ingest.to_row(e, d) for d in v] for e, v in data.items()}
        rate, backend = ingest.raw_copy(scratch.database(), rows)
        print(
            f"raw COPY (a): {rate:,.0f} rows/s, backend {backend.cpu_us_per_row:.2f} µs/row,"
            f" ran {backend.run_share:.0%} of the time"
        )
        raw_per_table(scratch.database(), rows)

        records = {
            e: [ENTITY_MODELS[e].model_validate_json(json.dumps(d)) for d in v]
            for e, v in data.items()
        }
        stream = [(e, r) for e in ORDERS[args.order] for r in records[e]]
        source = Source("bench", 0, 0, b"")
        sink = PostgresSink(scratch.database())
        sink.connect()
        encoded = [
            sink.encode_batch([SinkItem(e, r, source, 0) for e, r in stream[i : i + args.batch]])
            for i in range(0, len(stream), args.batch)
        ]
        timer = StatementTimer()
        conn = sink._conn  # its backend is what is measured
        assert conn is not None
        timer.backend = conn.info.backend_pid
        c0, t0 = timer.cpu(), time.perf_counter()
        with timer.installed():
            for batch in encoded:
                sink.write_encoded(batch)
        wall, cpu = time.perf_counter() - t0, timer.cpu() - c0
        sink.close()
        print(
            f"sink, {args.order}, {len(encoded)} flushes: {total / wall:,.0f} rows/s, backend"
            f" {1e6 * cpu / total:.2f} µs/row, ran {cpu / wall:.0%} of the time"
        )
        for kind, (n, w, c) in sorted(timer.stats.items(), key=lambda kv: -kv[1][2]):
            print(f"  {int(n):4d}x  wall {w:6.3f} s  backend {c:6.3f} s  {kind}")
        rest_w = wall - sum(v[1] for v in timer.stats.values())
        rest_c = cpu - sum(v[2] for v in timer.stats.values())
        print(f"        wall {rest_w:6.3f} s  backend {rest_c:6.3f} s  the rest (COMMIT, client)")
        out = {
            "bench": "sink_statements",
            "order": args.order,
            "records": total,
            "a_raw_copy_rows_s": round(rate),
            "a_pg_cpu_us_per_row": round(backend.cpu_us_per_row, 2),
            "sink_rows_s": round(total / wall),
            "sink_pg_cpu_us_per_row": round(1e6 * cpu / total, 2),
            "statements": {
                k: {"n": int(n), "wall_s": round(w, 4), "pg_cpu_s": round(c, 4)}
                for k, (n, w, c) in timer.stats.items()
            },
        }
        print(json.dumps(out))
    finally:
        scratch.drop_all()


if __name__ == "__main__":
    main()
