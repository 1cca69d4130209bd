"""An incremental run's day rows, from the day's hour rows and a narrow read of its facts.

A day row's counts and sums are the sums of the day's hour rows: the clean hours' as the
rollup table holds them (up to date: only a run's last transaction writes them), the dirty
hours' from the facts the run has just rebuilt them from. Its ratios are ratios of those
sums: exact integers and picodollars, the same as summing the facts. Its means,
percentiles and maxima need every fact of the day, but only a few of their columns. DuckDB
computes the whole row (grouping.DayRows), which is copied into the rollup table like the
hour rows. A full rebuild groups every column of the facts directly;
tests/test_analytics_rollup.py and test_analytics_costs.py check that both give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg import sql

from agentstream.analytics.rollup.grouping import LLM_DAY_ROWS, DayRows

__all__ = [
    "LLM_DAYS",
    "DaysFromHours",
    "changed_call_days",
    "facts_of_days",
    "facts_of_hours",
]


@dataclass(frozen=True)
class DaysFromHours:
    """How one rollup kind's day rows are made from its hour rows and a narrow read of its
    facts: the two reads (``facts`` and ``hours``, with the placeholder ``{where}``, a
    condition on the column ``hour``: facts_of_hours / facts_of_days), and the grouping
    that puts them together."""

    rows: DayRows
    facts: sql.SQL  # the facts' columns the day rows need: ``{columns}``, ``rows.columns``
    # The hour rows' sums (``rows.hour_columns``), with the placeholder ``{dimensions}``.
    hours: sql.SQL

    def facts_query(self, where: sql.Composable) -> sql.Composed:
        columns = sql.SQL(", ").join(map(sql.Identifier, self.rows.columns))
        return self.facts.format(columns=columns, where=where)

    def hours_query(self, where: sql.Composable) -> sql.Composed:
        dimensions = sql.Literal("{" + ",".join(self.rows.grouping.dimensions) + "}")
        return self.hours.format(where=where, dimensions=dimensions)


LLM_DAYS = DaysFromHours(
    rows=LLM_DAY_ROWS,
    facts=sql.SQL("SELECT {columns} FROM analytics.llm_facts {where}"),
    # Every dimension is listed, so that the primary key (granularity, dimension, bucket,
    # key) finds them.
    hours=sql.SQL("""SELECT hour, dimension, key, calls, errors, prompt_tokens,
    response_tokens, unpriced_calls, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    tier_fallback_calls, cache_unpriced_calls, cost, cached_input_cost, cache_write_cost,
    output_cost, reasoning_cost
    FROM (SELECT *, bucket AS hour FROM analytics.llm_rollup
          WHERE granularity = 'hour' AND dimension = ANY({dimensions}::text[])) r {where}"""),
)


def facts_of_hours(hours: list[int]) -> sql.Composed:
    """The condition on the facts' hour matching ``hours`` (epoch seconds), as a literal
    list so that the planner sees it and scans the hour index."""
    listed = ",".join(f'"{datetime.fromtimestamp(h, UTC).isoformat()}"' for h in hours)
    return sql.SQL("WHERE hour = ANY({}::timestamptz[])").format(sql.Literal(f"{{{listed}}}"))


def facts_of_days(days: list[int]) -> sql.Composed:
    return facts_of_hours([h for day in days for h in range(day, day + 86400, 3600)])


def changed_call_days(watermark: int) -> sql.Composed:
    """The query of the days (as UTC midnights) of a sample of the LLM calls logged after
    ``watermark``: days whose day rows an incremental run will rebuild. A sample, because
    every call's time is a random read of the calls' table (BENCHMARKS.md); a day it
    misses is read after the fold, as a day that other changes touch is. In ``seq`` order,
    so that the change log's primary key finds the lines (not a scan of its dead pages)."""
    return sql.SQL(
        """SELECT DISTINCT date_bin('1 day', l.created_at, '2000-01-01 00:00+00')
           FROM (SELECT id FROM agentstream.change_log
                 WHERE seq > {} AND entity = 'llm_interactions' ORDER BY seq LIMIT 256) c
           JOIN llm_interactions l ON l.id = c.id WHERE l.created_at IS NOT NULL"""
    ).format(sql.Literal(watermark))
