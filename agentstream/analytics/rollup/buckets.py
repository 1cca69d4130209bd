"""The buckets: the rollup rows of the dirty hours and of their days (or of every bucket)
deleted and rebuilt from the committed facts, in the run's last transaction.

The hour rows are rebuilt for the dirty hours only, from their facts. A day's percentiles
need all its facts, so every fact of a touched day is read back: for the LLM calls, only the
columns of those percentiles and means, the day's sums coming from its hour rows (days.py);
for executions (few columns), all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from agentstream.analytics.rollup.days import (
    LLM_DAYS,
    DaysFromHours,
    changed_call_days,
    facts_of_days,
    facts_of_hours,
)
from agentstream.analytics.rollup.facts import DIMENSION_COLUMNS
from agentstream.analytics.rollup.grouping import EXEC_GROUPING, LLM_GROUPING, Grouping, aggregate
from agentstream.analytics.rollup.reader import Early, EarlyPlan, _CommittedReader

__all__ = [
    "EXEC_ROLLUP",
    "LLM_ROLLUP",
    "Behind",
    "Grouped",
    "Rollup",
    "early_read",
    "group_calls",
    "recompute",
]


@dataclass(frozen=True)
class Rollup:
    """One rollup kind: its rollup table, the facts it reads and how it groups them."""

    kind: str  # in analytics.dirty_hours
    table: str  # in schema analytics
    # The facts' columns read as stored (no expression: the read stays a plain COPY), with
    # the placeholder ``{where}``; ``columns`` names them for the grouping.
    read: sql.SQL
    columns: tuple[str, ...]
    grouping: Grouping
    # An incremental run's day rows from the hour rows and a narrow read (None: grouped
    # from every column of the day's facts, like the hour rows).
    days: DaysFromHours | None

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier("analytics", self.table)


LLM_ROLLUP = Rollup(
    kind="llm",
    table="llm_rollup",
    read=sql.SQL("""SELECT hour, model, agent_id, agent_type, user_id, session_id,
    prompt_tokens, response_tokens, latency_ms, success, cost_pico, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, ttft_ms, cached_cost_pico, cache_write_cost_pico,
    output_cost_pico, reasoning_cost_pico, price_flags FROM analytics.llm_facts {where}"""),
    columns=(
        "hour",
        "model",
        *DIMENSION_COLUMNS,
        "prompt_tokens",
        "response_tokens",
        "latency_ms",
        "success",
        "cost",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "ttft_ms",
        "cached_cost",
        "cache_write_cost",
        "output_cost",
        "reasoning_cost",
        "price_flags",
    ),
    grouping=LLM_GROUPING,
    days=LLM_DAYS,
)
EXEC_ROLLUP = Rollup(
    kind="exec",
    table="exec_rollup",
    read=sql.SQL("""SELECT hour, agent_id, agent_type, user_id, session_id, status,
    duration_ms FROM analytics.exec_facts {where}"""),
    columns=("hour", *DIMENSION_COLUMNS, "status", "duration_ms"),
    grouping=EXEC_GROUPING,
    days=None,
)
_ROLLUPS = (LLM_ROLLUP, EXEC_ROLLUP)


def _clear_all(cur: psycopg.Cursor[Any], rollup: Rollup) -> None:
    cur.execute(sql.SQL("TRUNCATE {}").format(rollup.identifier))
    cur.execute("DELETE FROM analytics.dirty_hours WHERE kind = %s", (rollup.kind,))


def _take_dirty_hours(cur: psycopg.Cursor[Any], rollup: Rollup) -> list[int]:
    """The dirty hours of ``rollup`` (epoch seconds, sorted), cleared."""
    cur.execute(
        "DELETE FROM analytics.dirty_hours WHERE kind = %s"
        " RETURNING extract(epoch FROM hour)::bigint",
        (rollup.kind,),
    )
    return sorted(row[0] for row in cur.fetchall())


def _clear_buckets(
    cur: psycopg.Cursor[Any], rollup: Rollup, hours: list[int], days: list[int]
) -> None:
    """Delete the rollup rows of ``hours`` and ``days``, spelled as (granularity, dimension,
    bucket) rows so that the primary key finds them instead of a scan of the whole table."""
    cur.execute(
        sql.SQL("""DELETE FROM {} WHERE (granularity, dimension, bucket) IN (
              SELECT 'hour', d, to_timestamp(h) FROM unnest(%(hours)s::bigint[]) h,
                     unnest(%(dims)s::text[]) d
              UNION ALL
              SELECT 'day', d, to_timestamp(h) FROM unnest(%(days)s::bigint[]) h,
                     unnest(%(dims)s::text[]) d)""").format(rollup.identifier),
        {"hours": hours, "days": days, "dims": list(rollup.grouping.dimensions)},
    )


def _count_buckets(cur: psycopg.Cursor[Any]) -> tuple[int, int]:
    """Every bucket's hours and days, counted from the rollup's own 'all' rows (the primary
    key's prefix)."""
    row = cur.execute(
        "SELECT count(*) FILTER (WHERE granularity = 'hour'),"
        " count(*) FILTER (WHERE granularity = 'day')"
        " FROM analytics.llm_rollup WHERE dimension = 'all'"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _copy_rows(cur: psycopg.Cursor[Any], rollup: Rollup, rows: bytes) -> None:
    with cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(rollup.identifier)) as c:
        c.write(rows)


def _read_facts(read: _CommittedReader, rollup: Rollup, where: sql.Composable) -> pa.Table:
    """The facts ``where`` selects, every column ``rollup`` groups."""
    return read(rollup.read.format(where=where).as_string(None), rollup.columns)


def _group_facts(
    read: _CommittedReader, rollup: Rollup, where: sql.Composable, hours: list[int] | None
) -> bytes | None:
    """The rows grouped from every column of the facts ``where`` selects: of every bucket
    (``hours`` None), or of ``hours`` and of the facts' days; None without facts. (The
    query runs on the reader's connection: it is composed without the run's, which may be
    busy with a COPY on another thread.)"""
    facts = _read_facts(read, rollup, where)
    if not facts.num_rows:
        return None
    return aggregate(read.duck, rollup.grouping.query(hours), facts=facts)


def early_read(watermark: int) -> EarlyPlan:
    """What the reader may read while the first transaction runs (``_CommittedReader``):
    the narrow facts and the hour rows of the days of a sample of the LLM calls logged
    after ``watermark`` (none without such calls). The reader finds those days itself,
    on its thread: the run's connection goes straight on to the fold."""

    def plan(read: Callable[[str, tuple[str, ...]], pa.Table]) -> Early | None:
        sampled = read(changed_call_days(watermark).as_string(None), ("hour",))
        days = sorted(set(sampled.column(0).to_pylist()))
        if not days:
            return None
        where = facts_of_days(days)
        return Early(
            days,
            read(LLM_DAYS.facts_query(where).as_string(None), LLM_DAYS.rows.columns),
            read(LLM_DAYS.hours_query(where).as_string(None), LLM_DAYS.rows.hour_columns),
        )

    return plan


def _of_days(
    read: _CommittedReader,
    spec: DaysFromHours,
    hours: list[int],
    days: list[int],
) -> tuple[pa.Table, pa.Table]:
    """The narrow facts and the hour rows of ``days``: read early where the reader did
    (those of the dirty ``hours`` among them are as they were before the first
    transaction, and the grouping leaves them out), read now for the other days (without
    the dirty hours)."""
    early = read.early
    facts, hour_rows = ([early.facts], [early.hour_rows]) if early is not None else ([], [])
    late = [d for d in days if early is None or d not in early.days]
    if late:
        dirty = set(hours)
        where = facts_of_hours(
            [h for d in late for h in range(d, d + 86400, 3600) if h not in dirty]
        )
        facts.append(read(spec.facts_query(where).as_string(None), spec.rows.columns))
        hour_rows.append(read(spec.hours_query(where).as_string(None), spec.rows.hour_columns))
    return pa.concat_tables(facts), pa.concat_tables(hour_rows)


def _rebuild_touched(
    read: _CommittedReader, rollup: Rollup, hours: list[int], days: list[int]
) -> bytes | None:
    """The rows of the dirty ``hours`` and of their ``days`` (None: there are none). The
    reads run on the reader's connection, and are composed without the run's, which may be
    busy on another thread meanwhile."""
    if rollup.days is None:
        return _group_facts(read, rollup, facts_of_days(days), hours)
    facts = _read_facts(read, rollup, facts_of_hours(hours))
    spec = rollup.days
    narrow, hour_rows = _of_days(read, spec, hours, days)
    if not (narrow.num_rows or facts.num_rows):
        return None
    query = spec.rows.query(hours, days)
    return aggregate(read.duck, query, facts=facts, narrow=narrow, hour_rows=hour_rows)


@dataclass(frozen=True)
class Grouped:
    """The calls' rows of the dirty ``hours``, grouped before the last transaction."""

    hours: list[int]
    rows: bytes | None


def _days_of(hours: list[int]) -> list[int]:
    return sorted({h - h % 86400 for h in hours})


def group_calls(read: _CommittedReader, hours: list[int]) -> Grouped:
    """The calls' rows of the dirty ``hours`` (epoch seconds, sorted) and of their days,
    from the committed facts: grouped while the run's connection finishes the first
    transaction's other work (run.py), and copied by ``recompute``."""
    read.wait()
    read.duck.execute("SET threads = 1")  # as recompute does, below
    return Grouped(hours, _rebuild_touched(read, LLM_ROLLUP, hours, _days_of(hours)))


class Behind:
    """``target`` run on a thread while the caller goes on; its error is raised by
    ``join`` (or dropped with ``quiet``, when the caller has its own to raise)."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target = target
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:  # raised by join()
            self._error = exc

    def join(self, *, quiet: bool = False) -> None:
        self._thread.join()
        if self._error is not None and not quiet:
            raise self._error


def _copy_behind(cur: psycopg.Cursor[Any], rollup: Rollup, rows: bytes | None) -> Behind | None:
    """A COPY of rollup rows on a thread: the server inserts one kind's rows while this
    process groups the next kind's (the run's connection is not used meanwhile)."""
    if rows is None:
        return None
    return Behind(lambda: _copy_rows(cur, rollup, rows), "rollup-copy")


def _wait(behind: Behind | None) -> None:
    if behind is not None:
        behind.join()


def recompute(
    cur: psycopg.Cursor[Any],
    read: _CommittedReader,
    *,
    all_buckets: bool,
    calls: Grouped | None = None,
) -> tuple[int, int]:
    """Rebuild the rollup rows of every bucket, or of the hours in analytics.dirty_hours
    (and their days), from the committed facts ``read`` returns; clears the hours it
    rebuilt. ``calls``: the calls' rows, grouped already (``group_calls``), used if its
    hours are the calls' dirty hours. Returns the numbers of hours and days rebuilt."""
    read.wait()  # connected (and DuckDB opened) on its thread
    if all_buckets:
        for rollup in _ROLLUPS:
            _clear_all(cur, rollup)
            rows = _group_facts(read, rollup, sql.SQL(""), None)
            if rows is not None:
                _copy_rows(cur, rollup, rows)
        return _count_buckets(cur)
    # An incremental run's groupings are small: a second DuckDB thread costs more CPU than
    # it saves time, and takes it from the server on a small machine.
    read.duck.execute("SET threads = 1")
    touched: list[tuple[Rollup, list[int], list[int]]] = []
    for rollup in _ROLLUPS:  # every statement first: the COPYs then run behind the groupings
        hours = _take_dirty_hours(cur, rollup)
        if hours:
            days = _days_of(hours)
            _clear_buckets(cur, rollup, hours, days)
            touched.append((rollup, hours, days))
    behind: Behind | None = None
    try:
        for rollup, hours, days in touched:
            if rollup is LLM_ROLLUP and calls is not None and calls.hours == hours:
                rows = calls.rows
            else:
                rows = _rebuild_touched(read, rollup, hours, days)
            _wait(behind)
            behind = _copy_behind(cur, rollup, rows)
        read.close()  # nothing more to read: closed while the last COPY runs
        _wait(behind)
        behind = None
    finally:
        if behind is not None:  # an error stopped the loop: that one is raised
            behind.join(quiet=True)
    return sum(len(h) for _, h, _ in touched), sum(len(d) for _, _, d in touched)
