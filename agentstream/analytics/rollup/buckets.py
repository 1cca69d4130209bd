"""The buckets: the rollup rows of the dirty hours and of their days (or of every bucket)
deleted and rebuilt from the committed facts, in the run's second transaction.

The hour rows are rebuilt for the dirty hours only, from their facts. A day's percentiles
need all its facts, so every fact of a touched day is read back: for the LLM calls, only the
columns of those percentiles and means, the day's sums coming from its hour rows (days.py);
for executions (few columns), all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from agentstream.analytics.rollup.days import LLM_DAYS, DaysFromHours, insert_days
from agentstream.analytics.rollup.facts import DIMENSION_COLUMNS
from agentstream.analytics.rollup.grouping import EXEC_GROUPING, LLM_GROUPING, Grouping, aggregate
from agentstream.analytics.rollup.reader import _CommittedReader

__all__ = ["EXEC_ROLLUP", "LLM_ROLLUP", "Rollup", "recompute"]


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


def _facts_of_hours(hours: list[int]) -> sql.Composed:
    """The condition on the facts' hour matching ``hours`` (epoch seconds), as a literal
    list so that the planner sees it and scans the hour index."""
    listed = ",".join(f'"{datetime.fromtimestamp(h, UTC).isoformat()}"' for h in hours)
    return sql.SQL("WHERE hour = ANY({}::timestamptz[])").format(sql.Literal(f"{{{listed}}}"))


def _facts_of_days(days: list[int]) -> sql.Composed:
    return _facts_of_hours([day + 3600 * i for day in days for i in range(24)])


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


def _rebuild_touched(
    cur: psycopg.Cursor[Any],
    read: _CommittedReader,
    rollup: Rollup,
    hours: list[int],
    days: list[int],
) -> None:
    """The rows of the dirty ``hours`` and of their ``days``, whose old rows are deleted."""
    if rollup.days is None:
        facts = read(rollup.read.format(where=_facts_of_days(days)).as_string(cur), rollup.columns)
        if facts.num_rows:
            _copy_rows(cur, rollup, aggregate(read.duck, facts, rollup.grouping.query(hours)))
        return
    facts = read(rollup.read.format(where=_facts_of_hours(hours)).as_string(cur), rollup.columns)
    if facts.num_rows:
        hour_rows = rollup.grouping.query(hours, days=False)
        _copy_rows(cur, rollup, aggregate(read.duck, facts, hour_rows))
    spec = rollup.days
    narrow = read(spec.read.format(where=_facts_of_days(days)).as_string(cur), spec.columns)
    if narrow.num_rows:
        statistics = aggregate(read.duck, narrow, spec.statistics.query())
        insert_days(cur, rollup.identifier, spec, rollup.grouping.dimensions, statistics, days)


def recompute(
    cur: psycopg.Cursor[Any], read: _CommittedReader, *, all_buckets: bool
) -> tuple[int, int]:
    """Rebuild the rollup rows of every bucket, or of the hours in analytics.dirty_hours
    (and their days), from the committed facts ``read`` returns; clears the hours it
    rebuilt. Returns the numbers of hours and days rebuilt."""
    hours_total = days_total = 0
    read.wait()  # connected (and DuckDB opened) on its thread
    for rollup in _ROLLUPS:
        if all_buckets:
            _clear_all(cur, rollup)
            facts = read(rollup.read.format(where=sql.SQL("")).as_string(cur), rollup.columns)
            if facts.num_rows:
                _copy_rows(cur, rollup, aggregate(read.duck, facts, rollup.grouping.query(None)))
            continue
        hours = _take_dirty_hours(cur, rollup)
        if not hours:
            continue
        days = sorted({h - h % 86400 for h in hours})
        hours_total += len(hours)
        days_total += len(days)
        _clear_buckets(cur, rollup, hours, days)
        _rebuild_touched(cur, read, rollup, hours, days)
    if all_buckets:
        hours_total, days_total = _count_buckets(cur)
    return hours_total, days_total
