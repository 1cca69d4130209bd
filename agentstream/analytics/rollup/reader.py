"""The committed reader: facts read back, after the run's first transaction commits them,
on a second connection through ADBC (analytics/adbc.py): binary COPY straight into Arrow,
several times faster than rows handed over one at a time by psycopg (BENCHMARKS.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from agentstream.analytics.adbc import AdbcSession
from agentstream.analytics.arrow_numpy import int64_array, int64_values
from agentstream.analytics.rollup.grouping import duckdb_connection

__all__ = ["Early", "EarlyPlan", "_CommittedReader"]


def _epoch_seconds(hours: pa.ChunkedArray) -> pa.Array:
    """timestamp('us') hours (never NULL) as int64 epoch seconds, in numpy from the buffers
    (int64 microseconds): a pyarrow cast would import pyarrow.compute, slow to import in a
    CLI run (BENCHMARKS.md), and arrow_numpy.py says why pa.array is avoided."""
    chunks = [int64_values(chunk) for chunk in hours.chunks if len(chunk)]
    micros = np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64)
    return int64_array(micros // 1_000_000)


@dataclass(frozen=True)
class Early:
    """Facts and hour rows of some days, read while the first transaction runs: as
    committed before it, so only those of the hours it leaves clean are as after it."""

    days: list[int]  # epoch seconds of the days read
    facts: pa.Table
    hour_rows: pa.Table


# The early reads: given the reader (query, columns -> rows), the Early read, or None.
EarlyPlan = Callable[[Callable[[str, tuple[str, ...]], pa.Table]], Early | None]


class _CommittedReader:
    """Committed facts read on a second connection. ``start()`` connects on a thread as
    the run starts, and opens the DuckDB connection that groups the facts (the first query
    of a process pays DuckDB's set-up): both are ready when the facts are. Given a plan
    (``read_early``), it then reads some facts early, on that thread (``early``): the first
    transaction keeps the other core busy meanwhile."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._session: AdbcSession | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._plan: EarlyPlan | None = None
        self._planned = threading.Event()
        self.early: Early | None = None
        self.duck: Any = None

    def start(self) -> None:
        """Connect on a thread, then wait there for ``read_early``."""
        self._thread = threading.Thread(target=self._connect, name="rollup-adbc", daemon=True)
        self._thread.start()

    def read_early(self, plan: EarlyPlan | None) -> None:
        """What the thread reads once connected (None: nothing)."""
        self._plan = plan
        self._planned.set()

    def _join(self) -> None:
        """The thread joined, told first that there is nothing to read early if no plan
        came (it waits for one)."""
        assert self._thread is not None
        if not self._planned.is_set():
            self.read_early(None)
        self._thread.join()

    def _connect(self) -> None:
        # DuckDB opens on a thread of its own: the ADBC connection (which reads the server's
        # types) and the early read need not wait for it.
        duck = threading.Thread(target=self._open_duckdb, name="rollup-duckdb", daemon=True)
        duck.start()
        try:
            self._session = AdbcSession(self._conninfo)
            self._planned.wait()
            if self._plan is not None:
                self.early = self._plan(self._read)
        except BaseException as exc:  # raised where the connection is used
            self._error = exc
        duck.join()

    def _open_duckdb(self) -> None:
        try:
            duck = duckdb_connection()
            duck.sql("SELECT 1").fetchall()
            self.duck = duck
        except BaseException as exc:  # raised where the connection is used
            self._error = self._error or exc

    def wait(self) -> None:
        if self._thread is None:
            self.start()
        self._join()
        if self._error is not None:
            raise self._error

    def __call__(self, query: str, columns: tuple[str, ...]) -> pa.Table:
        """The rows ``query`` returns, renamed ``columns``, with the hour (the first column)
        as epoch seconds so that DuckDB's day is exact UTC, and the columns of a type only
        PostgreSQL knows (numeric) as their text."""
        self.wait()
        return self._read(query, columns)

    def _read(self, query: str, columns: tuple[str, ...]) -> pa.Table:
        assert self._session is not None
        # Types as the server sent them, but for numerics (an opaque extension type, whose
        # storage is the text). A uuid stays one (arrow.uuid): DuckDB reads it as UUID and
        # the rollup keys are its text; its storage alone would be a BLOB, keyed by the
        # escaped bytes.
        rows = self._session.read(query).rename_columns(list(columns))
        for i, column in enumerate(rows.columns):
            if isinstance(column.type, pa.BaseExtensionType) and not isinstance(
                column.type, pa.UuidType
            ):
                storage = [chunk.storage for chunk in column.chunks]
                rows = rows.set_column(
                    i, columns[i], pa.chunked_array(storage, column.type.storage_type)
                )
        return rows.set_column(0, "hour", _epoch_seconds(rows.column(0)))

    def close(self) -> None:
        if self._thread is not None:
            self._join()
        for handle in (self.duck, self._session):
            if handle is not None:
                handle.close()
        self.duck = self._session = None
