"""The PostgreSQL sink: one flush = one transaction writing every entity, parents first.

``PostgresSink.write(items)`` is blocking (call it from a thread in async code); it is
``encode_batch`` (pure Python: the worker runs it on its event loop) then ``write_encoded`` (the
database work: the worker's flush thread). Per entity, in the order sessions, agents,
agent_executions, llm_interactions, events, documents:

1. keep one record per id (upsert.dedupe: the winner by the entity's rule) and join their
   encoded rows into one binary COPY stream (and their change_log rows into another);
2. fast path: binary COPY straight into the table after a savepoint; new rows whose
   parents exist land at the database's own speed;
3. if that COPY hits a unique violation (a replay, or a new state of a mutable record), roll
   back to the savepoint and take the slow path: COPY into a temporary staging table,
   insert the missing parents as inferred members, then one set-based upsert /
   insert-do-nothing (upsert.py);
   if it hits a foreign-key violation (a parent not there yet: children read before their
   parents), stage and insert the inferred parents the same way, then COPY the rows into
   the table again: new rows need no upsert, whose heap inserts and speculative index
   insertions one row at a time cost PostgreSQL more than COPY's inserts of many rows at
   once. Only if that COPY meets a row already there does it fall back to the upsert;
4. a data error (errors.classify == "data") rolls back that entity's savepoint and bisects
   its records until the offending ones are isolated: they are returned as rejected (for
   the dead-letter topic) and the rest is written.

The transaction runs at REPEATABLE READ: if another worker concurrently commits a row this
flush decides about (an inferred parent it is replacing, an execution it is ranking), the
flush fails with a serialization error and is retried on a fresh snapshot instead of
deciding on a stale one. Transient errors raise TransientSinkError (nothing was committed;
the caller retries); anything else raises TerminalSinkError with advice.
"""

from __future__ import annotations

import enum
import logging
import operator
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from agentstream.contract.topics import ENTITIES
from agentstream.sinks.postgres.copy import (
    RowEncoder,
    change_log_rows,
    copy_payload,
    payload,
    sink_adapters,
)
from agentstream.sinks.postgres.errors import (
    TerminalSinkError,
    TransientSinkError,
    classify,
    terminal_advice,
)
from agentstream.sinks.postgres.inferred import inference_statements
from agentstream.sinks.postgres.items import Rejected, SinkItem, WriteResult
from agentstream.sinks.postgres.tables import Table, load_tables
from agentstream.sinks.postgres.upsert import CHANGE_LOGGED, dedupe, write_statement

__all__ = ["EncodedBatch", "PostgresSink"]

log = logging.getLogger(__name__)

# After the fast path failed for an entity, skip it for this many flushes of that entity: a
# COPY that fails costs the rows it already sent (a foreign-key violation is only raised
# once the whole COPY is in the table, at the end of the statement).
FAST_PATH_PAUSE = 8


# A flush's transaction (see the module docstring on REPEATABLE READ).
_BEGIN = sql.SQL("BEGIN ISOLATION LEVEL REPEATABLE READ")


class _Path(enum.Enum):
    """How a table's part of a flush is written (see the module docstring)."""

    COPY = "copy"  # straight into the table
    PARENTS_THEN_COPY = "parents then copy"  # stage, infer missing parents, COPY the rows
    UPSERT = "upsert"  # stage, infer missing parents, set-based upsert from the stage


_CHANGE_LOG = sql.Identifier("agentstream", "change_log")
_RECORD = operator.attrgetter("record")  # an item's record, in C (dedupe calls it per item)


def _stage(entity: str) -> sql.Identifier:
    return sql.Identifier(f"agentstream_stage_{entity}")


def _shape(tables: dict[str, Table]) -> dict[str, tuple[object, ...]]:
    return {
        e: (t.columns, t.types, t.details and (t.details.columns, t.details.types))
        for e, t in tables.items()
    }


def _describe(exc: BaseException) -> str:
    """SQLSTATE and the primary message only: DETAIL lines may echo row contents."""
    if isinstance(exc, psycopg.Error):
        text = str(exc).strip()
        primary = exc.diag.message_primary or (text.splitlines()[0] if text else "")
        return f"{exc.sqlstate or 'no SQLSTATE'}: {primary}"
    return f"{type(exc).__name__}: {exc}"


class PostgresSink:
    """Writes batches of records into the seed schema; see the module docstring."""

    def __init__(self, conninfo: str, *, application_name: str = "agentstream-worker") -> None:
        self._conninfo = conninfo
        self._application_name = application_name
        self._conn: psycopg.Connection[Any] | None = None
        self._tables: dict[str, Table] = {}
        self._adapters = sink_adapters()
        # The worker's decoding encodes with these (encoder()); encode_batch() encodes what came
        # without a row with encoders of its own, as its caller may be on another thread: a
        # psycopg Transformer is not meant to be shared between threads.
        self._encoders: dict[str, RowEncoder] = {}
        # Per entity: the path its flushes take while the fast path is paused, and for how
        # many more flushes.
        self._paused: dict[str, tuple[_Path, int]] = {}

    # --- connection -------------------------------------------------------------------

    def connect(self) -> None:
        """(Re)connect, check durability, describe the tables and create the staging tables."""
        self.close()
        try:
            conn = psycopg.connect(
                self._conninfo,
                application_name=self._application_name,
                connect_timeout=10,
                keepalives=1,
                keepalives_idle=30,
                keepalives_interval=10,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            raise self._translate(exc, "connecting to PostgreSQL") from exc
        try:
            # DESIGN: a Kafka offset committed for a transaction the database could still
            # lose is data loss. 'off' is the only non-durable setting; leave the others.
            if conn.execute("SHOW synchronous_commit").fetchone() == ("off",):
                conn.execute("SET synchronous_commit TO on")
            tables = load_tables(conn)
            stages = [(_stage(e), sql.Identifier("public", e)) for e in ENTITIES]
            stages += [
                (_stage(t.details.entity), sql.Identifier("agentstream", t.details.entity))
                for t in tables.values()
                if t.details is not None
            ]
            for stage, like in stages:
                conn.execute(
                    sql.SQL(
                        "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
                    ).format(stage, like)
                )
            conn.commit()
            # Each flush opens its transaction itself (_BEGIN), in the round trip of its first
            # savepoint: psycopg's own BEGIN would be one more round trip per flush, and one
            # more wait for the GIL while the event loop decodes.
            conn.autocommit = True
        except psycopg.Error as exc:
            conn.close()
            raise self._translate(exc, "preparing the connection") from exc
        if self._tables and _shape(tables) != _shape(self._tables):
            # Rows already encoded for the old columns would be refused or, worse, misread.
            conn.close()
            raise TerminalSinkError(
                "the entity tables' columns changed while the worker ran (after a reconnect "
                "they differ from what the worker started with); restart the worker after a "
                "migration"
            )
        self._tables = tables
        self._encoders = {e: RowEncoder(t, self._adapters) for e, t in tables.items()}
        self._conn = conn

    def encoder(self, entity: str) -> RowEncoder:
        """The binary COPY row encoder of ``entity``'s table (after :meth:`connect`)."""
        return self._encoders[entity]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- writing ---------------------------------------------------------------------

    def write(self, items: Sequence[SinkItem]) -> WriteResult:
        """Write ``items`` in one transaction; returns what was accepted and what was refused."""
        if self._conn is None or self._conn.closed:
            self.connect()
        return self.write_encoded(self.encode_batch(items))

    def encode_batch(
        self, items: Sequence[SinkItem], *, distinct: Collection[str] = ()
    ) -> EncodedBatch:
        """Group ``items`` by table, one per record id, with their COPY data built.
        ``distinct``: entities whose items the caller knows to have distinct ids (no
        :func:`dedupe` for them).

        Pure Python and no database: the worker runs it on its event-loop thread, so that
        the flush thread (:meth:`write_encoded`) holds the GIL as little as possible while
        decoding goes on. Needs the tables, i.e. one :meth:`connect` before.
        """
        by_entity: dict[str, list[SinkItem]] = defaultdict(list)
        rejected: list[Rejected] = []
        encoders: dict[str, RowEncoder] = {}
        for item in items:
            if item.row is None:
                encoded = self._encode(item, encoders, rejected)
                if encoded is None:
                    continue
                item = encoded
            by_entity[item.entity].append(item)
        groups = []
        for entity in ENTITIES:
            group = by_entity.get(entity)
            if group:
                unique = group if entity in distinct else dedupe(entity, group, _RECORD)
                if self._tables[entity].details is not None:
                    self._encode_details(entity, unique)
                groups.append(_group(entity, unique, len(group)))
        return EncodedBatch(groups, rejected)

    def _encode_details(self, entity: str, items: list[SinkItem]) -> None:
        """Set the details row of the items whose records have details (on the caller's
        thread, like the rows: one encoder per call, as for :meth:`_encode`)."""
        encoder: RowEncoder | None = None
        for item in items:
            if item.detail_row is None and item.record.has_details():
                if encoder is None:
                    details = self._tables[entity].details
                    assert details is not None
                    encoder = RowEncoder(details, self._adapters)
                item.detail_row = encoder(item.record)

    def write_encoded(self, encoded: EncodedBatch) -> WriteResult:
        """Write a batch made by :meth:`encode_batch` in one transaction, parents first. Can be
        called again with the same batch after a TransientSinkError (nothing was committed)."""
        result = WriteResult(rejected=list(encoded.rejected))
        if not encoded.groups:
            return result
        if self._conn is None or self._conn.closed:
            self.connect()
        conn = self._conn
        assert conn is not None
        try:
            with conn.cursor() as cur:
                begin: sql.Composable | None = _BEGIN
                for group in encoded.groups:
                    before = len(result.rejected)
                    self._write_isolating(cur, group, result, begin)
                    begin = None
                    result.accepted[group.entity] = group.received - (len(result.rejected) - before)
            conn.commit()
        except (psycopg.Error, OSError) as exc:
            raise self._translate(exc, "writing a batch") from exc  # closes the connection
        except BaseException:
            self.close()  # the transaction goes with the connection: nothing half-written stays
            raise
        return result

    def _encode(
        self, item: SinkItem, encoders: dict[str, RowEncoder], rejected: list[Rejected]
    ) -> SinkItem | None:
        """``item`` with its COPY row; None (and a rejection) if its values cannot be."""
        encoder = encoders.get(item.entity)
        if encoder is None:
            encoder = encoders[item.entity] = RowEncoder(self._tables[item.entity], self._adapters)
        try:
            row = encoder(item.record)
        except (psycopg.Error, ValueError, TypeError, OverflowError) as exc:
            rejected.append(Rejected(item, f"cannot be encoded for PostgreSQL: {exc}"))
            return None
        # A copy with the row: the caller's item stays as it was given.
        encoded = SinkItem(item.entity, item.record, item.source, item.index, row)
        encoded.detail_row = item.detail_row
        return encoded

    def _translate(self, exc: BaseException, doing: str) -> TransientSinkError | TerminalSinkError:
        outcome = classify(exc)
        if outcome == "transient" or (self._conn is not None and self._conn.broken):
            self.close()
            return TransientSinkError(f"{doing} failed, will retry: {_describe(exc)}")
        self.close()
        return TerminalSinkError(f"{doing} failed: {_describe(exc)}; {terminal_advice(exc)}")

    def _write_isolating(
        self,
        cur: psycopg.Cursor[Any],
        group: _Group,
        result: WriteResult,
        begin: sql.Composable | None = None,
    ) -> None:
        """Write ``group`` after a savepoint; on a data error, bisect to isolate the bad ones.

        The savepoint is left for the COMMIT to release (a RELEASE is one more round trip,
        and one more wait for the GIL, per table and flush); ROLLBACK TO keeps it usable.
        ``begin``, for a flush's first table, goes in the same round trip.
        """
        savepoint = sql.Identifier(f"agentstream_{group.entity}")
        statement = sql.SQL("SAVEPOINT {}").format(savepoint)
        if begin is not None:
            statement = sql.SQL("{}; {}").format(begin, statement)
        cur.execute(statement, prepare=False)  # two statements cannot be a prepared one
        try:
            self._write_group(cur, group, savepoint)
        except psycopg.Error as exc:
            if classify(exc) != "data":
                raise
            cur.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(savepoint))
            if len(group.items) == 1:
                result.rejected.append(Rejected(group.items[0], _describe(exc)))
                return
            mid = len(group.items) // 2
            for half in (group.items[:mid], group.items[mid:]):
                self._write_isolating(cur, _group(group.entity, half, len(half)), result)

    def _path(self, entity: str) -> _Path:
        path, flushes = self._paused.pop(entity, (_Path.COPY, 0))
        if flushes > 1:
            self._paused[entity] = (path, flushes - 1)
        return path

    def _write_group(
        self, cur: psycopg.Cursor[Any], group: _Group, savepoint: sql.Identifier
    ) -> None:
        entity = group.entity
        table = self._tables[entity]
        path = self._path(entity)
        if path is _Path.COPY:
            try:
                self._copy_into_table(cur, group, table)
                return
            except psycopg.errors.UniqueViolation:
                path = _Path.UPSERT
            except psycopg.errors.ForeignKeyViolation:
                path = _Path.PARENTS_THEN_COPY
            cur.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(savepoint))
            self._paused[entity] = (path, FAST_PATH_PAUSE)
        stage = _stage(entity)
        cur.execute(sql.SQL("TRUNCATE {}").format(stage))
        copy_payload(cur, stage, table.columns, group.data)
        details_stage = None
        if group.details is not None and table.details is not None:
            details_stage = _stage(table.details.entity)
            cur.execute(sql.SQL("TRUNCATE {}").format(details_stage))
            copy_payload(cur, details_stage, table.details.columns, group.details)
        for statement in inference_statements(entity, stage):
            cur.execute(statement)
        if path is _Path.PARENTS_THEN_COPY:
            # The parents are there now; a row already in the table (a replay, or another
            # worker's write) sends this part, and the next flushes, to the upsert.
            parents = sql.Identifier(f"agentstream_{entity}_parents")
            cur.execute(sql.SQL("SAVEPOINT {}").format(parents))
            try:
                self._copy_into_table(cur, group, table)
                return
            except psycopg.errors.UniqueViolation:
                cur.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(parents))
                self._paused[entity] = (_Path.UPSERT, FAST_PATH_PAUSE)
        cur.execute(write_statement(table, stage, details_stage))

    @staticmethod
    def _copy_into_table(cur: psycopg.Cursor[Any], group: _Group, table: Table) -> None:
        """COPY ``group``'s rows (all new) into the table, with their change_log and details."""
        copy_payload(cur, sql.Identifier("public", group.entity), table.columns, group.data)
        if group.change_log is not None:
            copy_payload(cur, _CHANGE_LOG, ("entity", "id"), group.change_log)
        if group.details is not None and table.details is not None:
            # Every interaction of this COPY was new: so are its details.
            target = sql.Identifier("agentstream", table.details.entity)
            copy_payload(cur, target, table.details.columns, group.details)


@dataclass(slots=True)
class _Group:
    """One table's part of a flush: one item per record id, and its COPY data."""

    entity: str
    items: list[SinkItem]
    received: int  # items of this table in the batch, duplicates included
    data: bytes  # the items' rows, one binary COPY stream
    change_log: bytes | None  # their change_log rows (CHANGE_LOGGED tables), same format
    details: bytes | None  # their details rows (Table.details), if any has details


@dataclass(slots=True)
class EncodedBatch:
    """Records grouped by table with their COPY data, made by :meth:`PostgresSink.encode_batch`
    and written by :meth:`PostgresSink.write_encoded`."""

    groups: list[_Group]
    rejected: list[Rejected]  # items whose values cannot be encoded


def _group(entity: str, items: list[SinkItem], received: int) -> _Group:
    """``items`` (encoded, one per id) with their COPY data: a table's part of a flush, or
    a half of one being bisected."""
    rows = [i.row for i in items if i.row is not None]
    assert len(rows) == len(items), "encode_batch() encodes every item first"
    log_rows = None
    if entity in CHANGE_LOGGED:
        ids = (i.record.id for i in items if i.record.id is not None)
        log_rows = payload(change_log_rows(entity, ids))
    detail_rows = [i.detail_row for i in items if i.detail_row is not None]
    details = payload(detail_rows) if detail_rows else None
    return _Group(entity, items, received, payload(rows), log_rows, details)
