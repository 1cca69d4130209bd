"""Parquet exports: a table's rows in a date range, Hive-partitioned by UTC date, zstd.

Layout: ``OUT/TABLE/date=YYYY-MM-DD/part-0.parquet`` (rows whose partition column is NULL
go to ``date=__HIVE_DEFAULT_PARTITION__``, only on an export without ``--since``), plus
``OUT/TABLE/_state.json``. Schemas are fixed per table (``analytics/export_schema.py``).

- Streaming: one query over the range, read by the ADBC PostgreSQL driver (binary COPY
  straight into Arrow record batches, in C; analytics/adbc.py) on a reader thread, handed
  through a bounded queue; batches are split by date into per-date buffers that are
  written out as row groups when they reach ``PART_BUFFER_BYTES``, or the largest when all
  buffers together reach ``TOTAL_BUFFER_BYTES``. Memory therefore stays flat whatever the
  table size.
- Idempotent: every partition of the range is written to a temporary file and moved over
  the old one with an atomic rename at the end, so a re-run rewrites exactly those
  partitions, a reader never sees half a file, and a failed run leaves the old files.
  Partitions of the range that no longer have rows are removed.
- Incremental: without ``--since`` the export starts at the last date the previous run
  wrote (kept in ``_state.json``): that day may have been partial then.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from agentstream.analytics.adbc import AdbcSession
from agentstream.analytics.arrow_numpy import int64_array, int64_values
from agentstream.analytics.export_schema import JSON, TABLES, UUID, ExportTable

__all__ = ["ExportError", "ExportResult", "export_table"]

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# Per-date buffer written as one row group when full: big enough for efficient row groups
# (readers skip whole groups), small enough that memory stays flat.
PART_BUFFER_BYTES = 32 << 20
TOTAL_BUFFER_BYTES = 128 << 20
_DAY_US = 86_400_000_000
_NULL_DAY = int(np.iinfo(np.int64).min)  # the partition key of rows whose date is NULL
LOW_CARDINALITY = frozenset(
    (
        "model",
        "status",
        "event_type",
        "content_type",
        "type",
        "user_id",
        "granularity",
        "dimension",
        "error_message",
    )
)
# Each byte value's two hex digits, as the uint16 whose memory holds them in order.
_HEX_PAIRS = np.array(
    [int.from_bytes(f"{b:02x}".encode(), sys.byteorder) for b in range(256)], dtype=np.uint16
)
# The canonical form's groups: (start in the 36 characters, start in the 32 digits, length).
_GROUPS = ((0, 0, 8), (9, 8, 4), (14, 12, 4), (19, 16, 4), (24, 20, 12))


class ExportError(RuntimeError):
    """An export cannot run; the message says what to change."""


@dataclass
class ExportResult:
    table: str
    rows: int = 0
    partitions: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    since: date | None = None
    until: date | None = None
    seconds: float = 0.0


def uuid_strings(arr: pa.Array) -> pa.Array:
    """16-byte UUIDs (ADBC's arrow.uuid) to canonical strings, vectorised with numpy."""
    storage = arr.storage if isinstance(arr, pa.ExtensionArray) else arr
    if storage.offset:  # a compact copy: the buffers below are read from their start
        storage = pa.concat_arrays([storage])
    n = len(storage)
    raw = np.frombuffer(storage.buffers()[1], dtype=np.uint8, count=16 * n).reshape(n, 16)
    digits = _HEX_PAIRS[raw].view(np.uint8)  # (n, 32): one lookup per byte, not per digit
    out = np.empty((n, 36), dtype=np.uint8)
    for at, start, length in _GROUPS:
        out[:, at : at + length] = digits[:, start : start + length]
        if at:
            out[:, at - 1] = ord("-")
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(out), storage.buffers()[0], storage.null_count
    )


def _conform(batch: pa.RecordBatch, spec: ExportTable) -> pa.RecordBatch:
    """Cast what the driver returned to the table's fixed schema."""
    arrays = []
    for (name, kind), target in zip(spec.columns, spec.schema, strict=True):
        col = batch.column(name)
        if kind == UUID:
            col = uuid_strings(col)
        elif kind == JSON or isinstance(col.type, pa.ExtensionType):
            col = col.storage if isinstance(col, pa.ExtensionArray) else col
        if col.type != target.type:
            col = col.cast(target.type)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=spec.schema)


def _partition_keys(batch: pa.RecordBatch, column: str) -> np.ndarray[Any, Any]:
    """The UTC day (days since 1970-01-01) of each row's ``column``; NULL_DAY for NULL.

    Read straight from the values buffer (analytics/arrow_numpy.py says why)."""
    micros = batch.column(column).cast(pa.int64())
    values = int64_values(micros) // _DAY_US
    if micros.null_count:
        values = np.where(micros.is_null().to_numpy(zero_copy_only=False), _NULL_DAY, values)
    return values


def _partition_name(day: int) -> str:
    if day == _NULL_DAY:
        return NULL_PARTITION
    return (date(1970, 1, 1) + timedelta(days=int(day))).isoformat()


class _PartitionWriter:
    """Per-date buffers and ParquetWriters on temporary files, with the memory bounds.

    Full buffers are encoded and compressed on a writer thread (pyarrow releases the GIL
    there), so that writing overlaps reading and converting the next batches. The job
    queue is bounded: at most two flushed buffers wait, on top of the buffer bound.
    """

    def __init__(self, spec: ExportTable, tmp_dir: Path) -> None:
        self.spec = spec
        self.tmp_dir = tmp_dir
        self.buffers: dict[str, list[pa.RecordBatch]] = {}
        self.sizes: dict[str, int] = {}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.jobs: queue.Queue[tuple[str, list[pa.RecordBatch]] | None] = queue.Queue(2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write_loop, name="export-writer")
        self.thread.start()

    def add(self, part: str, batch: pa.RecordBatch) -> None:
        if self.error is not None:
            raise self.error
        self.buffers.setdefault(part, []).append(batch)
        self.sizes[part] = self.sizes.get(part, 0) + batch.nbytes
        if self.sizes[part] >= PART_BUFFER_BYTES:
            self.flush(part)
        while sum(self.sizes.values()) >= TOTAL_BUFFER_BYTES:
            self.flush(max(self.sizes, key=lambda p: self.sizes[p]))

    def flush(self, part: str) -> None:
        batches = self.buffers.pop(part, [])
        self.sizes.pop(part, None)
        if batches:
            self.jobs.put((part, batches))

    def _write_loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is not None:
                continue  # drain: the main thread raises it
            part, batches = job
            try:
                writer = self.writers.get(part)
                if writer is None:
                    writer = pq.ParquetWriter(
                        self.tmp_dir / f"{part}.parquet",
                        self.spec.schema,
                        compression="zstd",
                        # Dictionaries only where values repeat: on ids and free text they
                        # cost time and are dropped for plain encoding anyway.
                        use_dictionary=[n for n, _ in self.spec.columns if n in LOW_CARDINALITY],
                    )
                    self.writers[part] = writer
                writer.write_table(pa.Table.from_batches(batches, schema=self.spec.schema))
            except BaseException as exc:  # handed to the main thread
                self.error = exc

    def close(self) -> list[str]:
        """Write what is buffered, wait for the writer thread; the partitions written."""
        try:
            if self.error is None:
                for part in list(self.buffers):
                    self.flush(part)
        finally:
            self.jobs.put(None)
            self.thread.join()
            for writer in self.writers.values():
                writer.close()
        if self.error is not None:
            raise self.error
        return sorted(self.writers)


def _read_batches(
    conninfo: str, query: str, conform: Callable[[pa.RecordBatch], pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Batches of ``query`` through ``conform``, on a thread so that reading overlaps writing."""
    done = object()
    q: queue.Queue[Any] = queue.Queue(maxsize=4)  # bounds memory: at most 4 batches ahead
    stop = threading.Event()

    def produce() -> None:
        try:
            with (
                contextlib.closing(AdbcSession(conninfo)) as session,
                contextlib.closing(session.stream(query)) as batches,  # runs when iterated
            ):
                session.execute("SET TIME ZONE 'UTC'")
                for batch in batches:
                    if stop.is_set():
                        return
                    q.put(conform(batch))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)
        finally:
            q.put(done)

    thread = threading.Thread(target=produce, name="export-reader", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()
        thread.join(timeout=30)


def _state_path(out_dir: Path, table: str) -> Path:
    return out_dir / table / "_state.json"


def last_exported(out_dir: Path, table: str) -> date | None:
    path = _state_path(out_dir, table)
    if not path.exists():
        return None
    return date.fromisoformat(json.loads(path.read_text())["last_date"])


def export_table(
    conninfo: str,
    table: str,
    out_dir: Path,
    *,
    since: date | None = None,
    until: date | None = None,
    full: bool = False,
    progress: bool = True,
) -> ExportResult:
    """Export ``table`` rows with partition date in [since, until) to ``out_dir``."""
    spec = _spec(table)
    since = _check_range(out_dir, table, since, until, full)
    started = time.perf_counter()
    result = ExportResult(table=table, since=since, until=until)
    base = out_dir / table
    base.mkdir(parents=True, exist_ok=True)
    tmp_dir = base / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp_dir.mkdir()
    try:
        parts = _write_partitions(
            conninfo, spec, _query(spec, since, until), tmp_dir, result, progress
        )
        result.removed = _publish(base, tmp_dir, parts, since, until)
        result.partitions = parts
        _save_state(out_dir, table, parts, result.rows)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def _spec(table: str) -> ExportTable:
    spec = TABLES.get(table)
    if spec is None:
        raise ExportError(f"unknown table {table!r}; choose one of: {', '.join(TABLES)}")
    return spec


def _check_range(
    out_dir: Path, table: str, since: date | None, until: date | None, full: bool
) -> date | None:
    """The range's start: ``since``, or where the previous run stopped (unless ``full``)."""
    if since is None and not full:
        since = last_exported(out_dir, table)
    if since is not None and until is not None and until <= since:
        raise ExportError(f"--until {until} must be after --since {since}")
    return since


def _query(spec: ExportTable, since: date | None, until: date | None) -> str:
    """The rows of the range. The bounds are inlined as literals, not bound as parameters:
    the ADBC driver streams a plain query through COPY but reads a parameterised one whole
    into memory (BENCHMARKS.md). They come from date objects, and sql.Literal quotes them."""
    column = sql.Identifier(spec.partition_by)
    conds = []
    if since is not None:
        conds.append(sql.SQL("{} >= {}").format(column, sql.Literal(_midnight(since))))
    if until is not None:
        conds.append(sql.SQL("{} < {}").format(column, sql.Literal(_midnight(until))))
    where = sql.SQL(" WHERE {}").format(sql.SQL(" AND ").join(conds)) if conds else sql.SQL("")
    return (
        sql.SQL("SELECT {} FROM {}{}")
        .format(
            sql.SQL(", ").join(sql.Identifier(name) for name, _ in spec.columns),
            sql.Identifier(*spec.relation.split(".")),
            where,
        )
        .as_string(None)
    )


def _midnight(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _write_partitions(
    conninfo: str,
    spec: ExportTable,
    query: str,
    tmp_dir: Path,
    result: ExportResult,
    progress: bool,
) -> list[str]:
    """Read ``query``'s rows and write them into one temporary file per date in ``tmp_dir``;
    the dates written. Counts the rows in ``result``."""
    from tqdm import tqdm

    writer = _PartitionWriter(spec, tmp_dir)
    bar = tqdm(desc=f"export {spec.name}", unit=" rows", unit_scale=True, disable=not progress)
    try:
        for batch in _read_batches(conninfo, query, lambda b: _conform(b, spec)):
            _add_by_date(writer, batch, spec.partition_by)
            result.rows += batch.num_rows
            bar.update(batch.num_rows)
        return writer.close()
    finally:
        bar.close()
        if writer.thread.is_alive():  # an error before close(): stop the writer thread
            with contextlib.suppress(BaseException):
                writer.close()


def _add_by_date(writer: _PartitionWriter, batch: pa.RecordBatch, column: str) -> None:
    days = _partition_keys(batch, column)
    first = int(days[0]) if len(days) else 0
    if len(days) and bool((days == first).all()):  # the common case: one date
        writer.add(_partition_name(first), batch)
        return
    # A compact copy per date (not slices of one sorted batch: a slice keeps its whole
    # parent buffer alive, which defeats the memory bound).
    order = np.argsort(days, kind="stable")
    sorted_days = days[order]
    bounds = np.flatnonzero(np.diff(sorted_days)) + 1
    starts = [0, *bounds.tolist()]
    ends = [*bounds.tolist(), len(sorted_days)]
    for lo, hi in zip(starts, ends, strict=True):
        part = _partition_name(int(sorted_days[lo]))
        writer.add(part, batch.take(int64_array(order[lo:hi])))


def _publish(
    base: Path, tmp_dir: Path, parts: list[str], since: date | None, until: date | None
) -> list[str]:
    """Move each written file over its partition's (an atomic rename), then remove the
    partitions of the range left without rows; returns those."""
    for part in parts:
        final = base / f"date={part}"
        final.mkdir(exist_ok=True)
        os.replace(tmp_dir / f"{part}.parquet", final / "part-0.parquet")
    removed = []
    for existing in sorted(base.glob("date=*")):
        part = existing.name.removeprefix("date=")
        if part in parts or not _in_range(part, since, until):
            continue
        shutil.rmtree(existing)
        removed.append(part)
    return removed


def _save_state(out_dir: Path, table: str, parts: list[str], rows: int) -> None:
    """Remember the newest date written: the next run without --since starts there."""
    dated = [p for p in parts if p != NULL_PARTITION]
    if not dated:
        return
    previous = last_exported(out_dir, table)
    newest = max(date.fromisoformat(dated[-1]), previous or date.min)
    _state_path(out_dir, table).write_text(
        json.dumps({"last_date": newest.isoformat(), "rows_last_run": rows})
    )


def _in_range(part: str, since: date | None, until: date | None) -> bool:
    if part == NULL_PARTITION:
        return since is None and until is None
    try:
        day = date.fromisoformat(part)
    except ValueError:
        return False
    return (since is None or day >= since) and (until is None or day < until)
