"""The grouping: rollup rows computed in DuckDB from the facts read as Arrow.

One pass computes every grouping set (hour and day x all, model, agent, agent_type, user,
session), much faster than PostgreSQL's ordered-set aggregates over the same sets
(BENCHMARKS.md). Percentiles are ``quantile_cont``: linear interpolation between closest
ranks, numpy's default and PostgreSQL's percentile_cont, over every call of the group (failed
ones included). Memory is bounded by the facts of the touched days (all facts on a full
rebuild, ~150 B a row). Buckets are UTC.

DuckDB's SQL cannot be composed with ``psycopg.sql`` (that renders for PostgreSQL, through a
PostgreSQL connection). It is written here as ``string.Template`` texts, filled one way:
``_fill`` (``Template.substitute``, which fails on a missing name), with fragments that the
small functions below build from this module's constants only, never from data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from string import Template
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

__all__ = [
    "EXEC_GROUPING",
    "LLM_DAY_ROWS",
    "LLM_GROUPING",
    "DayRows",
    "Grouping",
    "aggregate",
    "duckdb_connection",
]

PERCENTILES = (0.5, 0.9, 0.95, 0.99)
# Time to first token: what streaming users watch, at the percentiles the report shows.
TTFT_PERCENTILES = (0.5, 0.95, 0.99)

DIMENSIONS = ("all", "model", "agent", "agent_type", "user", "session")
EXEC_DIMENSIONS = ("all", "agent", "agent_type", "user", "session")

# The column each dimension groups by (added to the bucket's grouping set).
_SETS = {
    "all": "",
    "model": ", model",
    "agent": ", agent",
    "agent_type": ", agent_type_key",
    "user": ", user_key",
    "session": ", session",
}


def _fill(template: str, **parts: str) -> str:
    """The one way DuckDB SQL is filled in: ``$name`` placeholders, every one required."""
    return Template(template).substitute(parts)


def _grouping_sets(dimensions: tuple[str, ...], buckets: tuple[str, ...]) -> str:
    return ", ".join(f"({bucket}{_SETS[d]})" for bucket in buckets for d in dimensions)


def _dimension_case(dimensions: tuple[str, ...]) -> str:
    """SQL naming the grouping set of a row from GROUPING() over the dimension columns, and
    its key as text (ids are grouped as they were read, uuids or text, and cast once per
    group here; a NULL agent, agent type or user is the key '(none)')."""
    cols = [_SETS[d].lstrip(", ") for d in dimensions if d != "all"]
    full = (1 << len(cols)) - 1
    grouping = f"GROUPING({', '.join(cols)})"
    names, keys = [f"WHEN {full} THEN 'all'"], [f"WHEN {full} THEN ''"]
    for i, d in enumerate(d for d in dimensions if d != "all"):
        mask = full & ~(1 << (len(cols) - 1 - i))
        names.append(f"WHEN {mask} THEN '{d}'")
        keys.append(f"WHEN {mask} THEN coalesce(CAST({cols[i]} AS VARCHAR), '(none)')")
    return (
        f"CASE {grouping} {' '.join(names)} END AS dimension, "
        f"CASE {grouping} {' '.join(keys)} END AS key"
    )


def _quantiles(column: str, prefix: str, percentiles: tuple[float, ...] = PERCENTILES) -> str:
    """All ``percentiles`` of ``column`` as one DuckDB list: one sort per group, not four."""
    return f"quantile_cont({column}, [{', '.join(map(str, percentiles))}]) AS {prefix}_q"


def _quantile_columns(prefix: str, percentiles: tuple[float, ...] = PERCENTILES) -> str:
    """That list spread over the rollup table's columns (latency_p50, latency_p90, ...)."""
    return ", ".join(
        f"{prefix}_q[{i + 1}] AS {prefix}_p{round(q * 100)}" for i, q in enumerate(percentiles)
    )


def _money(column: str) -> str:
    """Picodollars (a non-negative integer) as the exact decimal text of dollars. The sums
    are HUGEINTs, which printf formats much slower than BIGINTs: dollars and picodollars
    each fit a BIGINT."""
    return (
        f"printf('%d.%012d', (({column}) // 1000000000000)::BIGINT,"
        f" (({column}) % 1000000000000)::BIGINT)"
    )


# The columns the grouping sets group by, under the names _SETS uses; day from the hour's
# epoch seconds, so that it is exact UTC.
_SOURCE = """(SELECT *, hour - hour % 86400 AS day, agent_id AS agent,
             agent_type AS agent_type_key,
             user_id AS user_key, session_id AS session
      FROM $source)"""

# A group's counts and sums: those of a day are the sums of its hours' (days.py).
_LLM_SUMS = """count(*) AS calls,
       count(*) FILTER (WHERE NOT success) AS errors,
       sum(prompt_tokens)::BIGINT AS prompt_tokens,
       sum(response_tokens)::BIGINT AS response_tokens,
       coalesce(sum(cost), 0)::HUGEINT AS cost,
       count(*) FILTER (WHERE cost IS NULL) AS unpriced_calls,
       coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0)::BIGINT AS cache_write_tokens,
       coalesce(sum(reasoning_tokens), 0)::BIGINT AS reasoning_tokens,
       coalesce(sum(cached_cost), 0)::HUGEINT AS cached_cost,
       coalesce(sum(cache_write_cost), 0)::HUGEINT AS cache_write_cost,
       coalesce(sum(output_cost), 0)::HUGEINT AS output_cost,
       coalesce(sum(reasoning_cost), 0)::HUGEINT AS reasoning_cost,
       count(*) FILTER (WHERE price_flags & 1 = 1) AS tier_fallback_calls,
       count(*) FILTER (WHERE price_flags & 2 = 2) AS cache_unpriced_calls"""
# Those of _LLM_SUMS that are counts or token sums (the others are picodollars).
_LLM_COUNTS = (
    "calls",
    "errors",
    "prompt_tokens",
    "response_tokens",
    "unpriced_calls",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "tier_fallback_calls",
    "cache_unpriced_calls",
)
_LLM_MONEY = ("cost", "cached_cost", "cache_write_cost", "output_cost", "reasoning_cost")

# A group's means, percentiles and maxima: those of a day need every fact of it.
_LLM_STATISTICS = """avg(latency_ms)::DOUBLE AS latency_mean,
       $latency,
       max(latency_ms) AS latency_max,
       $ttft"""

_LLM_AGG = (
    """
SELECT $granularity AS granularity,
       $dimension,
       $bucket AS bucket,
       """
    + _LLM_SUMS
    + """,
       count(*) FILTER (WHERE NOT success) / count(*) AS error_rate,
       """
    + _LLM_STATISTICS
    + """
FROM $facts
GROUP BY GROUPING SETS ($sets)
"""
)

_EXEC_AGG = """
SELECT $granularity AS granularity,
       $dimension,
       $bucket AS bucket,
       count(*) AS executions,
       count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')) AS finished,
       count(*) FILTER (WHERE status = 'completed') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'completed')
         / nullif(count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')), 0)
         AS success_rate,
       avg(duration_ms) AS duration_mean,
       $duration,
       max(duration_ms) AS duration_max
FROM $facts
GROUP BY GROUPING SETS ($sets)
"""

_BUCKET_TEXT = "strftime(make_timestamp(bucket * 1000000), '%Y-%m-%d %H:%M:%S+00') AS bucket"

# The rollup tables' columns in their order (the columns of migration 0011 after
# latency_max). Input cost: what the total leaves.
_LLM_OUT = """granularity, dimension, $bucket, key, calls, errors, error_rate, prompt_tokens,
    response_tokens, $cost AS cost, unpriced_calls, latency_mean, $latency, latency_max,
    cache_read_tokens, cache_write_tokens, reasoning_tokens,
    cache_read_tokens / nullif(prompt_tokens, 0) AS cache_hit_ratio,
    $input_cost AS input_cost, $cached_cost AS cached_input_cost,
    $cache_write_cost AS cache_write_cost, $output_cost AS output_cost,
    $reasoning_cost AS reasoning_cost, tier_fallback_calls, cache_unpriced_calls, $ttft"""
_EXEC_OUT = """granularity, dimension, $bucket, key, executions, finished, succeeded, failed,
    success_rate, duration_mean, $duration, duration_max"""

# In the rollup table's key order: its primary key then takes the rows left to right.
_ORDERED = "SELECT $out FROM ($query) ORDER BY granularity, dimension, bucket, key"


@dataclass(frozen=True)
class Grouping:
    """How one rollup kind's facts are grouped into its rollup table's rows."""

    dimensions: tuple[str, ...]
    # A query over the facts with the placeholders $granularity, $bucket, $facts and $sets
    # (filled by ``query``), and ``fixed``'s.
    template: str
    fixed: dict[str, str]
    output: str  # the rollup table's columns from the query's (an ORDER BY-free select list)

    def query(self, hours: list[int] | None) -> str:
        """The grouping query over the registered ``facts``: every bucket (``hours`` None),
        or the hour buckets of ``hours`` only (the other hours of a touched day need not be
        computed) and the day buckets of all facts; in key order."""
        return _fill(_ORDERED, out=self.output, query=self.grouped(hours))

    def grouped(self, hours: list[int] | None, *, days: bool = True) -> str:
        """``query``'s rows, unordered and before ``output``."""

        def part(granularity: str, bucket: str, buckets: tuple[str, ...], source: str) -> str:
            return _fill(
                self.template,
                **self.fixed,
                dimension=_dimension_case(self.dimensions),
                granularity=granularity,
                bucket=bucket,
                facts=_fill(_SOURCE, source=source),
                sets=_grouping_sets(self.dimensions, buckets),
            )

        if hours is None:
            both = "CASE WHEN GROUPING(hour) = 0 THEN 'hour' ELSE 'day' END"
            grouped = part(both, "coalesce(hour, day)", ("hour", "day"), "facts")
        else:
            # Inlined (at most 24 a day): an Arrow array built from a Python list makes
            # pyarrow import pandas, slow and needless in a CLI run.
            touched = f"(SELECT * FROM facts WHERE hour IN ({', '.join(map(str, hours))}))"
            grouped = part("'hour'", "hour", ("hour",), touched)
            if days:
                grouped += " UNION ALL " + part("'day'", "day", ("day",), "facts")
        return grouped


@dataclass(frozen=True)
class DayRows:
    """An incremental run's rows of a kind (days.py): those of its dirty hours, from their
    facts (``grouping``), and those of their days. A day row's counts and sums are the sums
    of the day's hour rows: the clean hours' as the rollup table holds them (read as
    ``hour_columns``: the bucket, as ``hour``, first; money as the exact decimal text of
    dollars), the dirty hours' as just grouped. Its means, percentiles and maxima need every
    fact of the day, but only a few of their columns (``columns``, the hour first)."""

    grouping: Grouping
    columns: tuple[str, ...]
    hour_columns: tuple[str, ...]
    statistics: str  # the aggregates over the facts, after the dimension and the bucket
    counts: tuple[str, ...]  # the sums that are integers; the others are picodollars

    def query(self, hours: list[int], days: list[int]) -> str:
        """The rows of the dirty ``hours`` and of their ``days`` (epoch seconds), in key
        order, over the registered ``facts`` of ``hours``, ``narrow`` facts (``columns``)
        and ``hour_rows`` (``hour_columns``) of the days' other hours."""
        days_in, hours_in = ", ".join(map(str, days)), ", ".join(map(str, hours))
        narrow = _fill(
            """(SELECT $columns FROM narrow WHERE hour - hour % 86400 IN ($days)
                 AND hour NOT IN ($hours)
               UNION ALL SELECT $columns FROM facts)""",
            columns=", ".join(self.columns),
            days=days_in,
            hours=hours_in,
        )
        sums = self.hour_columns[3:]
        # Money from the hour rows' text: numeric(30,12) always prints 12 decimals, so the
        # digits without the point are the picodollars, exactly.
        picos = ", ".join(
            c if c in self.counts else f"CAST(replace({c}, '.', '') AS HUGEINT) AS {c}"
            for c in sums
        )
        grouped = _fill(
            _DAY_ROWS,
            hourly=self.grouping.grouped(hours, days=False),
            statistics=_fill(
                _DAY_AGG,
                dimension=_dimension_case(self.grouping.dimensions),
                aggregates=self.statistics,
                facts=_fill(_SOURCE, source=narrow),
                sets=_grouping_sets(self.grouping.dimensions, ("day",)),
            ),
            picos=picos,
            columns=", ".join(sums),
            summed=", ".join(
                f"sum({c})::{'BIGINT' if c in self.counts else 'HUGEINT'} AS {c}" for c in sums
            ),
            days=days_in,
            hours=hours_in,
        )
        return _fill(_ORDERED, out=self.grouping.output, query=grouped)


_DAY_AGG = """
SELECT $dimension, day AS bucket, $aggregates
FROM $facts
GROUP BY GROUPING SETS ($sets)
"""

# One query, so that DuckDB sets it up once, and one COPY of its rows. The ratios are of
# the sums, as _LLM_AGG computes them from the facts (double division).
_DAY_ROWS = """
WITH hourly AS MATERIALIZED ($hourly),
     statistics AS ($statistics),
     sums AS (
       SELECT dimension, bucket, key, $summed FROM (
         SELECT dimension, hour - hour % 86400 AS bucket, key, $picos
         FROM hour_rows WHERE hour - hour % 86400 IN ($days) AND hour NOT IN ($hours)
         UNION ALL
         SELECT dimension, bucket - bucket % 86400 AS bucket, key, $columns FROM hourly)
       GROUP BY dimension, bucket, key)
SELECT * FROM hourly
UNION ALL BY NAME
SELECT 'day' AS granularity, *, errors / calls AS error_rate
FROM statistics JOIN sums USING (dimension, bucket, key)
"""

LLM_GROUPING = Grouping(
    dimensions=DIMENSIONS,
    template=_LLM_AGG,
    fixed={
        "latency": _quantiles("latency_ms", "latency"),
        "ttft": _quantiles("ttft_ms", "ttft", TTFT_PERCENTILES),
    },
    output=_fill(
        _LLM_OUT,
        bucket=_BUCKET_TEXT,
        cost=_money("cost"),
        latency=_quantile_columns("latency"),
        input_cost=_money("cost - cached_cost - cache_write_cost - output_cost"),
        cached_cost=_money("cached_cost"),
        cache_write_cost=_money("cache_write_cost"),
        output_cost=_money("output_cost"),
        reasoning_cost=_money("reasoning_cost"),
        ttft=_quantile_columns("ttft", TTFT_PERCENTILES),
    ),
)
LLM_DAY_ROWS = DayRows(
    grouping=LLM_GROUPING,
    columns=(
        "hour",
        "model",
        "agent_id",
        "agent_type",
        "user_id",
        "session_id",
        "latency_ms",
        "ttft_ms",
    ),
    hour_columns=("hour", "dimension", "key", *_LLM_COUNTS, *_LLM_MONEY),
    statistics=_fill(_LLM_STATISTICS, **LLM_GROUPING.fixed),
    counts=_LLM_COUNTS,
)
EXEC_GROUPING = Grouping(
    dimensions=EXEC_DIMENSIONS,
    template=_EXEC_AGG,
    fixed={"duration": _quantiles("duration_ms", "duration")},
    output=_fill(_EXEC_OUT, bucket=_BUCKET_TEXT, duration=_quantile_columns("duration")),
)


def duckdb_connection() -> Any:
    import duckdb

    return duckdb.connect(config={"threads": 2})


def aggregate(duck: Any, query: str, **tables: pa.Table) -> bytes:
    """Run ``query`` (a Grouping's or DayRows' query) in DuckDB over ``tables``,
    registered under their names; CSV of the rows it returns."""
    for name, table in tables.items():
        duck.register(name, table)
    try:
        result = duck.sql(query).to_arrow_table()
    finally:
        for name in tables:
            duck.unregister(name)
    out = io.BytesIO()
    pcsv.write_csv(result, out, write_options=pcsv.WriteOptions(include_header=False))
    return out.getvalue()
