"""An incremental run's day rows, from the day's hour rows and a narrow read of its facts.

A day row's counts and sums are the sums of the day's hour rows (the run has just rebuilt
those of its dirty hours; the others are up to date), and its ratios are ratios of those
sums: exact integers and numerics, the same as summing the facts. Its means, percentiles and
maxima need every fact of the day, but only a few of their columns: DuckDB computes them
(grouping.DayStatistics) from those columns alone, and they are copied into a temporary
table and joined to the sums here. A full rebuild groups every column of the facts directly;
tests/test_analytics_rollup.py and test_analytics_costs.py check that both give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from agentstream.analytics.rollup.grouping import LLM_DAY_STATISTICS, DayStatistics

__all__ = [
    "LLM_DAYS",
    "DaysFromHours",
    "changed_call_days",
    "facts_of_days",
    "facts_of_hours",
    "insert_days",
]


@dataclass(frozen=True)
class DaysFromHours:
    """How one rollup kind's day rows are made from its hour rows and day statistics."""

    statistics: DayStatistics
    temporary: str  # the name of the statistics' temporary table
    # The facts' columns the statistics need (``statistics.columns``), with the placeholder
    # ``{where}``.
    read: sql.SQL
    # The statistics' columns and their types, in the order of ``statistics.output``.
    statistic_columns: tuple[tuple[str, str], ...]
    sums: tuple[str, ...]  # the rollup columns that are sums of the hour rows
    # (column, numerator, denominator): a ratio of two of ``sums``, NULL when the
    # denominator is 0; as DuckDB computes it from the facts' sums (double division).
    ratios: tuple[tuple[str, str, str], ...]


LLM_DAYS = DaysFromHours(
    statistics=LLM_DAY_STATISTICS,
    temporary="llm_day_statistics",
    read=sql.SQL("""SELECT hour, model, agent_id, agent_type, user_id, session_id, latency_ms,
    ttft_ms FROM analytics.llm_facts {where}"""),
    statistic_columns=(
        ("latency_mean", "double precision"),
        ("latency_p50", "double precision"),
        ("latency_p90", "double precision"),
        ("latency_p95", "double precision"),
        ("latency_p99", "double precision"),
        ("latency_max", "integer"),
        ("ttft_p50", "double precision"),
        ("ttft_p95", "double precision"),
        ("ttft_p99", "double precision"),
    ),
    sums=(
        "calls",
        "errors",
        "prompt_tokens",
        "response_tokens",
        "cost",
        "unpriced_calls",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "input_cost",
        "cached_input_cost",
        "cache_write_cost",
        "output_cost",
        "reasoning_cost",
        "tier_fallback_calls",
        "cache_unpriced_calls",
    ),
    ratios=(
        ("error_rate", "errors", "calls"),
        ("cache_hit_ratio", "cache_read_tokens", "prompt_tokens"),
    ),
)


def facts_of_hours(hours: list[int]) -> sql.Composed:
    """The condition on the facts' hour matching ``hours`` (epoch seconds), as a literal
    list so that the planner sees it and scans the hour index."""
    listed = ",".join(f'"{datetime.fromtimestamp(h, UTC).isoformat()}"' for h in hours)
    return sql.SQL("WHERE hour = ANY({}::timestamptz[])").format(sql.Literal(f"{{{listed}}}"))


def facts_of_days(days: list[int]) -> sql.Composed:
    return facts_of_hours([h for day in days for h in range(day, day + 86400, 3600)])


def changed_call_days(cur: psycopg.Cursor[Any]) -> list[int]:
    """The days (epoch seconds) of a sample of the LLM calls in the temp table ``changed``
    (changes.read_changes): days whose day rows an incremental run will rebuild. A sample,
    because every call's time is a random read of the calls' table (10k calls: ~60 ms of
    server CPU); a day it misses is read after the fold, as a day that other changes
    touch is."""
    cur.execute(
        """SELECT DISTINCT extract(epoch FROM
               date_bin('1 day', l.created_at, '2000-01-01 00:00+00'))::bigint
           FROM (SELECT id FROM changed WHERE entity = 'llm_interactions' LIMIT 256) c
           JOIN llm_interactions l ON l.id = c.id WHERE l.created_at IS NOT NULL"""
    )
    return sorted(row[0] for row in cur.fetchall())


_INSERT = """INSERT INTO {table} (granularity, dimension, bucket, key, {sums}, {ratios},
    {statistics})
SELECT 'day', d.dimension, d.bucket, d.key, {h_sums}, {h_ratios}, {d_statistics}
FROM {temp} d JOIN (
    SELECT dimension, date_bin('1 day', bucket, '2000-01-01 00:00+00') AS bucket, key,
           {summed}
    FROM {table}
    WHERE (granularity, dimension, bucket) IN (
        SELECT 'hour', d, to_timestamp(h)
        FROM unnest(%(hours)s::bigint[]) h, unnest(%(dims)s::text[]) d)
    GROUP BY 1, 2, 3) h ON h.dimension = d.dimension AND h.bucket = d.bucket AND h.key = d.key
ORDER BY d.dimension, d.bucket, d.key"""


def _names(names: tuple[str, ...], alias: str = "") -> sql.Composed:
    if alias:
        return sql.SQL(", ").join(sql.Identifier(alias, n) for n in names)
    return sql.SQL(", ").join(map(sql.Identifier, names))


def insert_days(
    cur: psycopg.Cursor[Any],
    table: sql.Identifier,
    days_spec: DaysFromHours,
    dimensions: tuple[str, ...],
    statistics: bytes,
    days: list[int],
) -> None:
    """Insert the day rows of ``days`` (epoch seconds) into ``table``: the sums of their hour
    rows joined to ``statistics`` (the CSV of ``days_spec.statistics``' query)."""
    temp = sql.Identifier(days_spec.temporary)
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE {} (dimension text, bucket timestamptz, key text, {}) ON COMMIT DROP"
        ).format(
            temp,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                for n, t in days_spec.statistic_columns
            ),
        )
    )
    with cur.copy(sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(temp)) as copy:
        copy.write(statistics)
    stats = tuple(n for n, _ in days_spec.statistic_columns)
    ratios = tuple(r for r, _, _ in days_spec.ratios)
    cur.execute(
        sql.SQL(_INSERT).format(
            table=table,
            temp=temp,
            sums=_names(days_spec.sums),
            ratios=_names(ratios),
            statistics=_names(stats),
            h_sums=_names(days_spec.sums, "h"),
            h_ratios=sql.SQL(", ").join(
                sql.SQL("h.{}::float8 / nullif(h.{}, 0)::float8").format(
                    sql.Identifier(num), sql.Identifier(den)
                )
                for _, num, den in days_spec.ratios
            ),
            d_statistics=_names(stats, "d"),
            summed=sql.SQL(", ").join(
                sql.SQL("sum({0}) AS {0}").format(sql.Identifier(s)) for s in days_spec.sums
            ),
        ),
        {
            "hours": [h for day in days for h in range(day, day + 86400, 3600)],
            "dims": list(dimensions),
        },
    )
