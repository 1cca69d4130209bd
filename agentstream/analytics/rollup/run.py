"""Rollups: fold new rows into the fact tables and recompute only the touched time buckets.

Data flow, under an advisory lock so that two runs serialize:

1. Prices: the shipped table merged with the user's file is synced into ``analytics.prices``
   when its fingerprint differs from the one the facts were costed with. Every model the
   facts have seen is then resolved again, and the facts of the models whose price periods
   changed are re-costed (in the first transaction); the hours where a cost changed become
   dirty, like the hours of new facts (``_recost``).
2. Changes (first transaction): the ``agentstream.change_log`` lines after the watermark
   name the llm_interactions / agent_executions rows the sink inserted or updated, and the
   sessions / agents, whose user or type the facts copy (their facts are folded again only
   where the copy differs). Their facts
   (``analytics.llm_facts``, ``analytics.exec_facts``: one narrow row per seed row, indexed
   by hour) are upserted from the seed tables, with the cost of the price in force at
   created_at, split as providers bill it (the call's usage details, agentstream.llm_usage,
   are copied beside it; analytics/prices.py says how a call is costed: the SQL here and
   ``price_call`` there compute the same); the hours those facts were in before and after go to
   ``analytics.dirty_hours``; the watermark advances to the last change_log seq before the
   first *young* gap: an identity value is taken before its transaction commits, so a
   missing seq may be a transaction still in flight. A gap older than ``GAP_GRACE`` is
   taken as a rollback. Lines past a young gap are read again next time; upserts make that
   harmless. Lines up to the new watermark are deleted in the same transaction.
3. Buckets (second transaction): the rollup rows of the dirty hours and of their days are
   deleted and rebuilt from the facts, read through a second (ADBC) connection now that
   they are committed, and the dirty hours are cleared. A run that dies between the two
   leaves its hours dirty; the next run rebuilds them.

``full=True`` (and the first run) rebuilds every fact from the seed
tables in the first transaction, which also catches rows written by anything other than the
sink, and marks the buckets stale (``rollup_state.buckets_stale``); the second rebuilds every
bucket. A run that dies in between leaves them stale, and the next run rebuilds them all.
Until then readers see the old rollup rows.

Grouping and percentiles run in DuckDB over the facts read as Arrow: one pass computes 12
grouping sets (hour and day x all, model, agent, agent_type, user, session), ~7x faster than
PostgreSQL's ordered-set aggregates over the same sets here. Percentiles are
``quantile_cont``: linear interpolation between closest ranks, numpy's default and
PostgreSQL's percentile_cont, over every call of the group (failed ones included). Memory is
bounded by the facts of the touched days (all facts on a full rebuild, ~150 B a row).
Buckets are UTC. Rows with NULL created_at (started_at for executions) have no bucket and
are left out.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pcsv

from agentstream.analytics.adbc import AdbcSession
from agentstream.analytics.arrow_numpy import int64_array, int64_values
from agentstream.analytics.prices import PriceRow, fingerprint, load_prices, resolve_call

__all__ = ["GAP_GRACE", "RollupResult", "run_rollup"]

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every agentstream process.
_LOCK_KEY = 0x616E616C79746963
# How long a hole in change_log.seq is waited for before it is taken as a rolled-back
# transaction: longer than any sink transaction runs.
GAP_GRACE = "5 minutes"
PERCENTILES = (0.5, 0.9, 0.95, 0.99)

DIMENSIONS = ("all", "model", "agent", "agent_type", "user", "session")
EXEC_DIMENSIONS = ("all", "agent", "agent_type", "user", "session")


@dataclass(frozen=True)
class RollupResult:
    full: bool
    reason: str
    changes: int
    llm_facts: int  # estimated rows in the fact tables (pg_class.reltuples)
    exec_facts: int
    hours: int
    days: int
    watermark: int
    unpriced_models: list[str]
    seconds: float


# The parts of a call's cost the facts keep beside the total (cost_pico), and its flags.
_SPLIT = ("cached_cost_pico", "cache_write_cost_pico", "output_cost_pico", "reasoning_cost_pico")
_SPLIT_UPDATE = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*_SPLIT, "price_flags"))

_LLM_FACTS = """
INSERT INTO analytics.llm_facts
SELECT l.id, l.created_at, {hour}, l.model, l.agent_id,
       a.type, s.user_id, l.session_id, coalesce(l.prompt_tokens, 0),
       coalesce(l.response_tokens, 0), coalesce(l.latency_ms, 0), coalesce(l.success, false),
       {total}, u.service_tier, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens,
       u.time_to_first_token_ms, {split}
FROM llm_interactions l
LEFT JOIN agentstream.llm_usage u ON u.id = l.id
LEFT JOIN agents a ON a.id = l.agent_id
LEFT JOIN sessions s ON s.id = l.session_id
{priced}
WHERE l.created_at IS NOT NULL {where}
{order}
{conflict}
"""
_LLM_UPDATE = (
    """ON CONFLICT (hour, id) DO UPDATE SET created_at = EXCLUDED.created_at,
    model = EXCLUDED.model, agent_id = EXCLUDED.agent_id,
    agent_type = EXCLUDED.agent_type, user_id = EXCLUDED.user_id,
    session_id = EXCLUDED.session_id, prompt_tokens = EXCLUDED.prompt_tokens,
    response_tokens = EXCLUDED.response_tokens, latency_ms = EXCLUDED.latency_ms,
    success = EXCLUDED.success, cost_pico = EXCLUDED.cost_pico,
    service_tier = EXCLUDED.service_tier, cache_read_tokens = EXCLUDED.cache_read_tokens,
    cache_write_tokens = EXCLUDED.cache_write_tokens,
    reasoning_tokens = EXCLUDED.reasoning_tokens, ttft_ms = EXCLUDED.ttft_ms,
    """
    + _SPLIT_UPDATE
)

_EXEC_FACTS = """
INSERT INTO analytics.exec_facts
SELECT e.id, e.started_at, {hour}, e.agent_id, a.type,
       s.user_id, e.session_id, coalesce(e.status, 'pending'),
       extract(epoch FROM e.completed_at - e.started_at) * 1000
FROM agent_executions e
LEFT JOIN agents a ON a.id = e.agent_id
LEFT JOIN sessions s ON s.id = e.session_id
WHERE e.started_at IS NOT NULL {where}
{order}
{conflict}
"""
_EXEC_UPDATE = """ON CONFLICT (id) DO UPDATE SET started_at = EXCLUDED.started_at,
    hour = EXCLUDED.hour, agent_id = EXCLUDED.agent_id, agent_type = EXCLUDED.agent_type,
    user_id = EXCLUDED.user_id, session_id = EXCLUDED.session_id, status = EXCLUDED.status,
    duration_ms = EXCLUDED.duration_ms"""

# The price periods with their prices in picodollars per token: USD per 1M tokens x 10^12 /
# 10^6, an exact integer (prices have 6 decimals), so a call's cost is bigint arithmetic
# (numeric arithmetic on every call was ~0.3 s of a full rebuild's 2M). Overflows only past
# $9.2M for one call. A missing reasoning rate is the output rate; a missing cache rate
# stays NULL here, so that the call can be flagged, and is the input rate in the cost.
_PRICED = """(SELECT model, service_tier, valid_from, valid_to, above_prompt_tokens,
                     up_to_prompt_tokens, tier_fallback,
                     (input_per_mtok * 1000000)::bigint AS input_pico,
                     (output_per_mtok * 1000000)::bigint AS output_pico,
                     (cached_input_per_mtok * 1000000)::bigint AS cached_pico,
                     (cache_write_per_mtok * 1000000)::bigint AS write_pico,
                     (coalesce(reasoning_per_mtok, output_per_mtok) * 1000000)::bigint
                       AS reasoning_pico
              FROM analytics.price_periods)"""


def _price_in_force(alias: str, tier: str, prompt: str) -> str:
    """The join of ``alias``'s calls (model, created_at, reported service tier ``tier``, prompt
    tokens ``prompt``) to the price band in force at their time, as ``pp`` (NULLs where the
    model is unpriced then). A band is (above, up_to]: the whole call is priced at it."""
    return f"""LEFT JOIN {_PRICED} pp
       ON pp.model = {alias}.model AND pp.service_tier = coalesce({tier}, 'default')
      AND pp.valid_from <= {alias}.created_at
      AND (pp.valid_to IS NULL OR {alias}.created_at < pp.valid_to)
      AND {prompt} > pp.above_prompt_tokens
      AND (pp.up_to_prompt_tokens IS NULL OR {prompt} <= pp.up_to_prompt_tokens)"""


def _cost_sql(prompt: str, response: str, read: str, write: str, thinking: str) -> dict[str, str]:
    """A call's cost in picodollars from its counts (SQL expressions, never NULL) and the
    band ``pp``: the total, its parts (NULL when 0: most calls have no cache or reasoning
    tokens, and a NULL is not stored) and the price flags (analytics/prices.py's
    ``price_call`` computes the same; tests/test_analytics_costs.py checks they agree)."""
    return {
        "total": f"""({prompt} - {read} - {write}) * pp.input_pico
            + {read} * coalesce(pp.cached_pico, pp.input_pico)
            + {write} * coalesce(pp.write_pico, pp.input_pico)
            + ({response} - {thinking}) * pp.output_pico + {thinking} * pp.reasoning_pico""",
        "cached_cost_pico": f"nullif({read} * coalesce(pp.cached_pico, pp.input_pico), 0)",
        "cache_write_cost_pico": f"nullif({write} * coalesce(pp.write_pico, pp.input_pico), 0)",
        "output_cost_pico": f"""({response} - {thinking}) * pp.output_pico
            + {thinking} * pp.reasoning_pico""",
        "reasoning_cost_pico": f"nullif({thinking} * pp.reasoning_pico, 0)",
        "price_flags": f"""nullif(CASE WHEN pp.tier_fallback THEN 1 ELSE 0 END
            + CASE WHEN pp.input_pico IS NOT NULL
                    AND (({read} > 0 AND pp.cached_pico IS NULL)
                         OR ({write} > 0 AND pp.write_pico IS NULL)) THEN 2 ELSE 0 END,
            0)::smallint""",
    }


def _counts(tokens: str, details: str) -> tuple[str, str, str, str, str]:
    """A call's prompt, response, cache read, cache write and reasoning tokens in SQL, from
    the rows aliased ``tokens`` (prompt and response) and ``details`` (the others)."""
    return (
        f"coalesce({tokens}.prompt_tokens, 0)",
        f"coalesce({tokens}.response_tokens, 0)",
        f"coalesce({details}.cache_read_tokens, 0)",
        f"coalesce({details}.cache_write_tokens, 0)",
        f"coalesce({details}.reasoning_tokens, 0)",
    )


# The UTC hour of a time, by arithmetic: date_trunc('hour', t, 'UTC') goes through the time
# zone's rules for every row (~0.45 s of a full rebuild's 2M facts; equal on all of them).
_HOUR = "date_bin('1 hour', {}, '2000-01-01 00:00+00')"
_FACT_COSTS = _cost_sql(*_counts("l", "u"))
_LLM_FACTS = (
    _LLM_FACTS.replace("{hour}", _HOUR.format("l.created_at"))
    .replace("{priced}", _price_in_force("l", "u.service_tier", "coalesce(l.prompt_tokens, 0)"))
    .replace("{total}", _FACT_COSTS["total"])
    .replace("{split}", ", ".join(_FACT_COSTS[c] for c in (*_SPLIT, "price_flags")))
)
_EXEC_FACTS = _EXEC_FACTS.replace("{hour}", _HOUR.format("e.started_at"))

# Read as stored (no expression: PostgreSQL's numeric arithmetic was half of the read's
# server time); the hour becomes epoch seconds once read (_epoch_seconds), so that DuckDB's
# day is exact UTC.
_LLM_READ = """SELECT hour, model, agent_id, agent_type, user_id, session_id, prompt_tokens,
    response_tokens, latency_ms, success, cost_pico, cache_read_tokens, cache_write_tokens,
    reasoning_tokens, ttft_ms, cached_cost_pico, cache_write_cost_pico, output_cost_pico,
    reasoning_cost_pico, price_flags FROM analytics.llm_facts {where}"""
_LLM_COLUMNS = (
    "hour",
    "model",
    "agent_id",
    "agent_type",
    "user_id",
    "session_id",
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
)
_EXEC_READ = """SELECT hour, agent_id, agent_type, user_id, session_id, status, duration_ms
    FROM analytics.exec_facts {where}"""
_EXEC_COLUMNS = ("hour", "agent_id", "agent_type", "user_id", "session_id", "status", "duration_ms")

# The facts' primary keys and other indexes (migrations 0003, 0007, 0009), the indexes as
# ``{table}_{name}`` on ``column``: dropped before a full rebuild loads the facts, and built
# after. LLM facts are keyed by hour first (0009), which serves the reads by hour.
_FACT_KEYS = {"llm_facts": "hour, id", "exec_facts": "id"}
_FACT_INDEXES = {
    "llm_facts": {"session": "session_id", "agent": "agent_id"},
    "exec_facts": {"hour": "hour", "session": "session_id", "agent": "agent_id"},
}

_SETS = {
    "all": "",
    "model": ", model",
    "agent": ", agent",
    "agent_type": ", agent_type_key",
    "user": ", user_key",
    "session": ", session",
}


def _grouping_sets(dimensions: Iterable[str], buckets: Iterable[str]) -> str:
    sets = [f"({bucket}{_SETS[d]})" for bucket in buckets for d in dimensions]
    return ", ".join(sets)


def _grouping_query(template: str, dimensions: tuple[str, ...], hours: list[int] | None) -> str:
    """The grouping query over the registered ``facts``: every bucket (``hours`` None), or
    the day buckets of all facts plus the hour buckets of ``hours`` only (computing the
    other hours of a touched day and dropping them was half of an incremental run's
    grouping)."""

    def fill(granularity: str, bucket: str, buckets: tuple[str, ...], source: str) -> str:
        return (
            template.replace("@GRANULARITY@", granularity)
            .replace("@BUCKET@", bucket)
            .replace("@SETS@", _grouping_sets(dimensions, buckets))
            .replace("@SOURCE@", source)
        )

    if hours is None:
        both = "CASE WHEN GROUPING(hour) = 0 THEN 'hour' ELSE 'day' END"
        return fill(both, "coalesce(hour, day)", ("hour", "day"), "facts")
    # Inlined (at most 24 a day): an Arrow array built from a Python list makes pyarrow
    # import pandas, ~1 s of a CLI run for nothing.
    touched = f"(SELECT * FROM facts WHERE hour IN ({', '.join(map(str, hours))}))"
    return (
        fill("'hour'", "hour", ("hour",), touched)
        + " UNION ALL "
        + fill("'day'", "day", ("day",), "facts")
    )


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


# Time to first token: what streaming users watch, at the percentiles the report shows.
TTFT_PERCENTILES = (0.5, 0.95, 0.99)


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
    are HUGEINTs, which printf formats ~3x slower than BIGINTs (an incremental run's 5.5k
    rows x 6 amounts: 0.13 s against 0.04 s): dollars and picodollars each fit a BIGINT."""
    return (
        f"printf('%d.%012d', (({column}) // 1000000000000)::BIGINT,"
        f" (({column}) % 1000000000000)::BIGINT)"
    )


_LLM_AGG = f"""
SELECT @GRANULARITY@ AS granularity,
       {_dimension_case(DIMENSIONS)},
       @BUCKET@ AS bucket,
       count(*) AS calls,
       count(*) FILTER (WHERE NOT success) AS errors,
       count(*) FILTER (WHERE NOT success) / count(*) AS error_rate,
       sum(prompt_tokens)::BIGINT AS prompt_tokens,
       sum(response_tokens)::BIGINT AS response_tokens,
       coalesce(sum(cost), 0)::HUGEINT AS cost,
       count(*) FILTER (WHERE cost IS NULL) AS unpriced_calls,
       avg(latency_ms)::DOUBLE AS latency_mean,
       {_quantiles("latency_ms", "latency")},
       max(latency_ms) AS latency_max,
       coalesce(sum(cache_read_tokens), 0)::BIGINT AS cache_read_tokens,
       coalesce(sum(cache_write_tokens), 0)::BIGINT AS cache_write_tokens,
       coalesce(sum(reasoning_tokens), 0)::BIGINT AS reasoning_tokens,
       coalesce(sum(cached_cost), 0)::HUGEINT AS cached_cost,
       coalesce(sum(cache_write_cost), 0)::HUGEINT AS cache_write_cost,
       coalesce(sum(output_cost), 0)::HUGEINT AS output_cost,
       coalesce(sum(reasoning_cost), 0)::HUGEINT AS reasoning_cost,
       count(*) FILTER (WHERE price_flags & 1 = 1) AS tier_fallback_calls,
       count(*) FILTER (WHERE price_flags & 2 = 2) AS cache_unpriced_calls,
       {_quantiles("ttft_ms", "ttft", TTFT_PERCENTILES)}
FROM (SELECT *, hour - hour % 86400 AS day, agent_id AS agent,
             agent_type AS agent_type_key,
             user_id AS user_key, session_id AS session
      FROM @SOURCE@)
GROUP BY GROUPING SETS (@SETS@)
"""

_EXEC_AGG = f"""
SELECT @GRANULARITY@ AS granularity,
       {_dimension_case(EXEC_DIMENSIONS)},
       @BUCKET@ AS bucket,
       count(*) AS executions,
       count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')) AS finished,
       count(*) FILTER (WHERE status = 'completed') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'completed')
         / nullif(count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')), 0)
         AS success_rate,
       avg(duration_ms) AS duration_mean,
       {_quantiles("duration_ms", "duration")},
       max(duration_ms) AS duration_max
FROM (SELECT *, hour - hour % 86400 AS day, agent_id AS agent,
             agent_type AS agent_type_key,
             user_id AS user_key, session_id AS session
      FROM @SOURCE@)
GROUP BY GROUPING SETS (@SETS@)
"""


_LLM_OUT = (
    "granularity, dimension, strftime(make_timestamp(bucket * 1000000), '%Y-%m-%d %H:%M:%S+00') "
    "AS bucket, key, calls, errors, error_rate, prompt_tokens, response_tokens, "
    f"{_money('cost')} AS cost, "
    "unpriced_calls, latency_mean, " + _quantile_columns("latency") + ", latency_max, "
    # The columns of migration 0011, in its order. Input cost: what the total leaves.
    "cache_read_tokens, cache_write_tokens, reasoning_tokens, "
    "cache_read_tokens / nullif(prompt_tokens, 0) AS cache_hit_ratio, "
    f"{_money('cost - cached_cost - cache_write_cost - output_cost')} AS input_cost, "
    f"{_money('cached_cost')} AS cached_input_cost, "
    f"{_money('cache_write_cost')} AS cache_write_cost, {_money('output_cost')} AS output_cost, "
    f"{_money('reasoning_cost')} AS reasoning_cost, tier_fallback_calls, cache_unpriced_calls, "
    + _quantile_columns("ttft", TTFT_PERCENTILES)
)
_EXEC_OUT = (
    "granularity, dimension, strftime(make_timestamp(bucket * 1000000), '%Y-%m-%d %H:%M:%S+00') "
    "AS bucket, key, executions, finished, succeeded, failed, success_rate, duration_mean, "
    + _quantile_columns("duration")
    + ", duration_max"
)


# Per rollup: kind (in dirty_hours), table, facts query, its columns, grouping, output.
_ROLLUPS = (
    ("llm", "llm_rollup", _LLM_READ, _LLM_COLUMNS, _LLM_AGG, _LLM_OUT, DIMENSIONS),
    ("exec", "exec_rollup", _EXEC_READ, _EXEC_COLUMNS, _EXEC_AGG, _EXEC_OUT, EXEC_DIMENSIONS),
)


def _epoch_seconds(hours: pa.ChunkedArray) -> pa.Array:
    """timestamp('us') hours (never NULL) as int64 epoch seconds, in numpy (not a pyarrow
    compute call: analytics/arrow_numpy.py says why)."""
    return int64_array(int64_values(hours.combine_chunks().cast(pa.int64())) // 1_000_000)


class _CommittedReader:
    """Committed facts read by ADBC on a second connection (analytics/adbc.py): binary COPY
    straight into Arrow, several times faster than the rows psycopg hands over one at a
    time (a full rebuild's 2.2M facts: 2.2 s, against 2.5 s as CSV inside the first
    transaction, which also had to compute numerics to be read fast). ``start()``
    connects on a thread while the first transaction runs (~50 ms saved), and opens the
    DuckDB connection that groups the facts (its first query in a process pays ~30 ms of
    set-up)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._session: AdbcSession | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.duck: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._connect, name="rollup-adbc", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        try:
            self._session = AdbcSession(self._conninfo)
            self.duck = _duckdb_connection()
            self.duck.sql("SELECT 1").fetchall()
        except BaseException as exc:  # raised where the connection is used
            self._error = exc

    def wait(self) -> None:
        if self._thread is None:
            self.start()
        assert self._thread is not None
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __call__(self, query: str, columns: tuple[str, ...]) -> pa.Table:
        self.wait()
        assert self._session is not None
        # Types as the server sent them (uuids as UUID): the grouping query takes either.
        facts = self._session.read(query).rename_columns(list(columns))
        if facts.num_rows == 0:
            return facts
        return facts.set_column(0, "hour", _epoch_seconds(facts.column(0)))

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join()
        for handle in (self.duck, self._session):
            if handle is not None:
                handle.close()
        self.duck = self._session = None


def _duckdb_connection() -> Any:
    import duckdb

    return duckdb.connect(config={"threads": 2})


def _aggregate(
    duck: Any,
    facts: pa.Table,
    template: str,
    dims: tuple[str, ...],
    out_sql: str,
    hours: list[int] | None,
) -> bytes:
    """Run the grouping query in DuckDB; CSV of the rows to insert (hour rows: touched only)."""
    duck.register("facts", facts)
    try:
        query = _grouping_query(template, dims, hours)
        # In the rollup table's key order: its primary key then takes the rows left to right
        # (measured on 186k rows: 0.47 s in key order, 1.09 s in any order).
        result = duck.sql(
            f"SELECT {out_sql} FROM ({query}) ORDER BY granularity, dimension, bucket, key"
        ).to_arrow_table()
    finally:
        duck.unregister("facts")
    out = io.BytesIO()
    pcsv.write_csv(result, out, write_options=pcsv.WriteOptions(include_header=False))
    return out.getvalue()


def _sync_prices(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> None:
    cur.execute("DELETE FROM analytics.prices")
    cur.execute("DELETE FROM analytics.resolved_models")  # cascades to price_periods
    with cur.copy(
        "COPY analytics.prices (provider, model, is_pattern, service_tier, effective_from, "
        "effective_to, input_per_mtok, output_per_mtok, cached_input_per_mtok, "
        "cache_write_per_mtok, reasoning_per_mtok, tiers, checked, source) FROM STDIN"
    ) as copy:
        for r in prices:
            tiers = [
                {
                    "above_prompt_tokens": low,
                    **{k: str(v) for k, v in vars(rates).items() if v is not None},
                }
                for low, _, rates in r.bands()[1:]
            ]
            copy.write_row(
                (
                    r.provider,
                    r.model,
                    r.is_pattern,
                    r.service_tier,
                    r.effective_from,
                    r.effective_to,
                    r.input_per_mtok,
                    r.output_per_mtok,
                    r.cached_input_per_mtok,
                    r.cache_write_per_mtok,
                    r.reasoning_per_mtok,
                    json.dumps(tiers),
                    r.checked,
                    r.source,
                )
            )


def _resolve_new_models(cur: psycopg.Cursor[Any], prices: list[PriceRow], source: str) -> None:
    """Resolve the price periods of the (model, service_tier) pairs seen in ``source`` (SQL;
    service_tier as reported, NULL: not reported) and not yet resolved: one row per period
    and band."""
    cur.execute(
        f"SELECT DISTINCT model, coalesce(service_tier, 'default') FROM ({source}) m "
        "WHERE NOT EXISTS (SELECT 1 FROM analytics.resolved_models r WHERE r.model = m.model "
        "AND r.service_tier = coalesce(m.service_tier, 'default'))"
    )
    pairs = cur.fetchall()
    for model, tier in pairs:
        cur.execute(
            "INSERT INTO analytics.resolved_models (model, service_tier) VALUES (%s, %s)",
            (model, tier),
        )
        for p in resolve_call(model, tier, prices):
            for above, up_to, rates in p.price.bands():
                cur.execute(
                    """INSERT INTO analytics.price_periods (model, service_tier, valid_from,
                        valid_to, price_model, price_is_pattern, above_prompt_tokens,
                        up_to_prompt_tokens, input_per_mtok, output_per_mtok,
                        cached_input_per_mtok, cache_write_per_mtok, reasoning_per_mtok,
                        tier_fallback)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    (
                        model,
                        tier,
                        p.valid_from,
                        p.valid_to,
                        p.price.model,
                        p.price.is_pattern,
                        above,
                        up_to,
                        rates.input,
                        rates.output,
                        rates.cached_input,
                        rates.cache_write,
                        rates.reasoning,
                        p.fallback,
                    ),
                )


# What the re-cost compares: a model whose rows here changed has its facts re-costed.
_PERIODS = """SELECT model, service_tier, valid_from, valid_to, above_prompt_tokens,
    up_to_prompt_tokens, input_per_mtok, output_per_mtok, cached_input_per_mtok,
    cache_write_per_mtok, reasoning_per_mtok, tier_fallback FROM {}"""
_RECOST_COSTS = _cost_sql(*_counts("f", "f"))


def _recost(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> int:
    """After a change of the price table: sync it, resolve again every model the facts have
    seen, and re-cost the facts of the models whose price periods changed, marking the hours
    where a cost changed dirty. Returns how many models were re-costed. The same costs as a
    full rebuild would store (the same formula over the same periods), without rebuilding
    2M facts to change the cost of a few models' calls."""
    cur.execute(
        f"""CREATE TEMP TABLE old_periods ON COMMIT DROP AS
            {_PERIODS.format("analytics.price_periods")};
            CREATE TEMP TABLE old_models ON COMMIT DROP AS
            SELECT model, service_tier FROM analytics.resolved_models"""
    )
    _sync_prices(cur, prices)
    _resolve_new_models(cur, prices, "SELECT model, service_tier FROM old_models")
    old, new = _PERIODS.format("old_periods"), _PERIODS.format("analytics.price_periods")
    cur.execute(
        f"SELECT model FROM ({old} EXCEPT {new}) a UNION SELECT model FROM ({new} EXCEPT {old}) b"
    )
    models = [row[0] for row in cur.fetchall()]
    if models:
        parts = (*_SPLIT, "price_flags")
        cur.execute(
            f"""WITH new AS (
                    SELECT f.hour, f.id, f.cost_pico AS old_cost,
                           {_RECOST_COSTS["total"]} AS cost,
                           {", ".join(f"{_RECOST_COSTS[c]} AS {c}" for c in parts)}
                    FROM analytics.llm_facts f
                    {_price_in_force("f", "f.service_tier", "f.prompt_tokens")}
                    WHERE f.model = ANY(%s)),
                recosted AS (
                    UPDATE analytics.llm_facts f SET cost_pico = new.cost,
                        {", ".join(f"{c} = new.{c}" for c in parts)}
                    FROM new
                    WHERE f.hour = new.hour AND f.id = new.id
                      AND (new.cost, {", ".join(f"new.{c}" for c in parts)})
                          IS DISTINCT FROM (new.old_cost, {", ".join(f"f.{c}" for c in parts)})
                    RETURNING f.hour)
                INSERT INTO analytics.dirty_hours (kind, hour)
                SELECT DISTINCT 'llm', hour FROM recosted ON CONFLICT DO NOTHING""",
            (models,),
        )
    return len(models)


def _prune_change_log(cur: psycopg.Cursor[Any], after: int, upto: int) -> None:
    """Delete the lines folded in: after ``after`` (an incremental run's old watermark; 0 for
    a full rebuild, which deletes every folded line) up to ``upto`` (the new watermark: never
    one past a young gap). The lower bound starts the primary key's scan past the lines
    earlier runs deleted: ``seq <= upto`` alone made PostgreSQL scan them all until a vacuum
    (0.3 s after a first run's 2.2M). ~6 ms for 11k lines, ~1 s for 2.2M."""
    cur.execute("DELETE FROM agentstream.change_log WHERE seq > %s AND seq <= %s", (after, upto))


def _new_watermark(cur: psycopg.Cursor[Any], watermark: int) -> int:
    cur.execute(
        f"""
        WITH c AS (
            SELECT seq, logged_at, coalesce(lag(seq) OVER (ORDER BY seq), %(wm)s) AS prev
            FROM agentstream.change_log WHERE seq > %(wm)s)
        SELECT coalesce(
            min(prev) FILTER (WHERE seq - prev > 1
                              AND logged_at > now() - interval '{GAP_GRACE}'),
            max(seq), %(wm)s)
        FROM c""",
        {"wm": watermark},
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def _recompute(
    cur: psycopg.Cursor[Any], read: _CommittedReader, *, all_buckets: bool
) -> tuple[int, int]:
    """Rebuild the rollup rows of every bucket, or of the hours in analytics.dirty_hours
    (and their days), from the committed facts ``read`` returns; clears the hours it
    rebuilt. Returns the numbers of hours and days rebuilt."""
    hours_total = days_total = 0
    read.wait()  # connected (and DuckDB opened) on its thread
    duck = read.duck
    for kind, table, query, columns, agg, out, dims in _ROLLUPS:
        hours: list[int] | None
        if all_buckets:
            cur.execute(f"TRUNCATE analytics.{table}")
            cur.execute("DELETE FROM analytics.dirty_hours WHERE kind = %s", (kind,))
            where, hours = "", None
        else:
            cur.execute(
                "DELETE FROM analytics.dirty_hours WHERE kind = %s"
                " RETURNING extract(epoch FROM hour)::bigint",
                (kind,),
            )
            hours = sorted(row[0] for row in cur.fetchall())
            if not hours:
                continue
            days = sorted({h - h % 86400 for h in hours})
            hours_total += len(hours)
            days_total += len(days)
            cur.execute(
                # Spelled as (granularity, dimension, bucket) rows so that the primary
                # key finds them instead of a scan of the whole rollup table.
                f"""DELETE FROM analytics.{table} WHERE (granularity, dimension, bucket) IN (
                      SELECT 'hour', d, to_timestamp(h) FROM unnest(%(hours)s::bigint[]) h,
                             unnest(%(dims)s::text[]) d
                      UNION ALL
                      SELECT 'day', d, to_timestamp(h) FROM unnest(%(days)s::bigint[]) h,
                             unnest(%(dims)s::text[]) d)""",
                {
                    "hours": hours,
                    "days": days,
                    "dims": list(dims),
                },
            )
            # Every hour of the touched days (a day's percentiles need all its facts), as a
            # literal list, so that the planner sees it and scans the hour index.
            listed = ",".join(
                f'"{datetime.fromtimestamp(day + 3600 * i, UTC).isoformat()}"'
                for day in days
                for i in range(24)
            )
            where = f"WHERE hour = ANY('{{{listed}}}'::timestamptz[])"
        facts = read(query.format(where=where), columns)
        if facts.num_rows == 0:
            continue
        rows = _aggregate(duck, facts, agg, dims, out, hours)
        with cur.copy(f"COPY analytics.{table} FROM STDIN (FORMAT csv)") as copy:
            copy.write(rows)
    if all_buckets:
        # Every bucket: counted from the rollup's own 'all' rows (the primary key's prefix).
        row = cur.execute(
            "SELECT count(*) FILTER (WHERE granularity = 'hour'),"
            " count(*) FILTER (WHERE granularity = 'day')"
            " FROM analytics.llm_rollup WHERE dimension = 'all'"
        ).fetchone()
        assert row is not None
        hours_total, days_total = int(row[0]), int(row[1])
    return hours_total, days_total


def _rebuild_facts(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> None:
    """Every fact, from the seed tables (the buckets are rebuilt after the commit)."""
    cur.execute("TRUNCATE analytics.llm_facts, analytics.exec_facts")
    _resolve_new_models(
        cur,
        prices,
        "SELECT l.model, u.service_tier FROM llm_interactions l"
        " LEFT JOIN agentstream.llm_usage u ON u.id = l.id",
    )
    # Loading without the indexes and building them after is 2x faster than maintaining
    # them row by row (measured on 2M rows: 8 s against 16 s).
    for table, indexes in _FACT_INDEXES.items():
        cur.execute(f"ALTER TABLE analytics.{table} DROP CONSTRAINT {table}_pkey")
        for name in indexes:
            cur.execute(f"DROP INDEX analytics.{table}_{name}")
    # In time order, so that the facts of an hour sit in few pages: an incremental run
    # reads whole days of them back (measured: 90k facts from 32k pages when unordered).
    cur.execute(_LLM_FACTS.format(where="", order="ORDER BY l.created_at", conflict=""))
    cur.execute(_EXEC_FACTS.format(where="", order="ORDER BY e.started_at", conflict=""))
    cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for table, indexes in _FACT_INDEXES.items():
        cur.execute(f"ALTER TABLE analytics.{table} ADD PRIMARY KEY ({_FACT_KEYS[table]})")
        for name, column in indexes.items():
            cur.execute(f"CREATE INDEX {table}_{name} ON analytics.{table} ({column})")
    cur.execute("ANALYZE analytics.llm_facts")
    cur.execute("ANALYZE analytics.exec_facts")


def _read_changes(cur: psycopg.Cursor[Any], watermark: int) -> int:
    """The (entity, id) of the lines after ``watermark`` into the temp table ``changed``;
    returns how many."""
    cur.execute(
        """CREATE TEMP TABLE changed ON COMMIT DROP AS
           SELECT DISTINCT entity, id FROM agentstream.change_log WHERE seq > %s""",
        (watermark,),
    )
    return cur.rowcount


# Facts copy a session's user (sessions.user_id) and an agent's type (agents.type): per
# parent table, the facts' column holding the parent's id, the copy, and the parent's column.
_PARENT_COPIES = (
    ("sessions", "session_id", "user_id", "user_id"),
    ("agents", "agent_id", "agent_type", "type"),
)


def _refresh_parent_copies(cur: psycopg.Cursor[Any], kind: str) -> None:
    """The sink logs every session and agent it writes, nearly always with the same user and
    type: only the facts whose copy differs from the logged parent's current value are
    updated, in place (found by the facts' session and agent indexes, not a scan), and
    their hours marked dirty."""
    for entity, parent, copy, source in _PARENT_COPIES:
        cur.execute(
            f"""WITH refreshed AS (
                    UPDATE analytics.{kind}_facts f SET {copy} = p.{source}
                    FROM changed c LEFT JOIN {entity} p ON p.id = c.id
                    WHERE c.entity = '{entity}' AND f.{parent} = c.id
                      AND f.{copy} IS DISTINCT FROM p.{source}
                    RETURNING f.hour)
                INSERT INTO analytics.dirty_hours (kind, hour)
                SELECT DISTINCT '{kind}', hour FROM refreshed ON CONFLICT DO NOTHING"""
        )


def _fold_changes(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> None:
    """Upsert the facts of the rows in ``changed`` (_read_changes), refresh the facts' copies
    of the sessions and agents in it; mark the hours facts left or entered in
    analytics.dirty_hours."""
    cur.execute("ANALYZE changed")  # temp tables have no statistics: plans need them
    parents = cur.execute(
        "SELECT count(*) FROM changed WHERE entity IN ('sessions', 'agents')"
    ).fetchone()
    # Per kind: the seed table and its alias in the insert, and the facts' primary key as
    # positions in the insert's select list (hour is 3rd, id 1st).
    for kind, facts, entity, alias, insert, update, key in (
        ("llm", "llm_facts", "llm_interactions", "l", _LLM_FACTS, _LLM_UPDATE, "3, 1"),
        ("exec", "exec_facts", "agent_executions", "e", _EXEC_FACTS, _EXEC_UPDATE, "1"),
    ):
        ids = f"SELECT id FROM changed WHERE entity = '{entity}'"
        if kind == "exec":  # keyed, for the lookups of `old` and `gone` below
            cur.execute(
                f"""CREATE TEMP TABLE changed_{kind} (id uuid PRIMARY KEY) ON COMMIT DROP;
                    INSERT INTO changed_{kind} {ids}"""
            )
            cur.execute(f"ANALYZE changed_{kind}")
            ids = f"SELECT id FROM changed_{kind}"
        # In key order: the inserts walk the primary key's leaves left to right (measured:
        # ~20 ms less for 10k facts into 2.2M).
        upsert = insert.format(
            where=f"AND {alias}.id IN ({ids})",
            order=f"ORDER BY {key}",
            conflict=update,
        )
        if kind == "llm":
            # An LLM interaction is immutable and logged only when the sink inserts it: its
            # fact is new, or the same after a full rebuild read it first. Its hour never
            # changes, so the hours it is in after are all there is to mark. Models not
            # priced yet are found among the upserted facts (a lookup of every changed
            # row's model beforehand cost as much as the rest of the statement's joins);
            # when there are any, they are resolved and the statement runs once more to
            # cost them.
            cur.execute(
                "CREATE TEMP TABLE new_models (model text, service_tier text) ON COMMIT DROP"
            )
            fold = f"""WITH new AS ({upsert} RETURNING hour, model, service_tier),
                models AS (
                    INSERT INTO new_models SELECT DISTINCT n.model, n.service_tier FROM new n
                    WHERE NOT EXISTS
                    (SELECT 1 FROM analytics.resolved_models r WHERE r.model = n.model
                     AND r.service_tier = coalesce(n.service_tier, 'default')))
                INSERT INTO analytics.dirty_hours (kind, hour)
                SELECT DISTINCT '{kind}', hour FROM new ON CONFLICT DO NOTHING"""
        else:
            # An execution is updated as it runs, so its fact may move: one statement (one
            # pass over the changed ids) marks the hours the rows were in before and the
            # hours they are in after. Every part sees the same snapshot, so `old` reads the
            # facts as they were before the upsert. A changed id the upsert did not write
            # (gone from the seed table, or no longer bucketed) has its fact deleted: `gone`
            # and `new` touch disjoint rows.
            fold = f"""WITH old AS (
                    SELECT f.hour FROM analytics.{facts} f JOIN changed_{kind} c ON c.id = f.id),
                new AS ({upsert} RETURNING *),
                gone AS (
                    DELETE FROM analytics.{facts} f USING changed_{kind} c WHERE f.id = c.id
                    AND NOT EXISTS (SELECT 1 FROM new WHERE new.id = c.id))
                INSERT INTO analytics.dirty_hours (kind, hour)
                SELECT '{kind}', hour FROM old UNION SELECT '{kind}', hour FROM new
                ON CONFLICT DO NOTHING"""
        cur.execute(fold)
        if kind == "llm" and cur.execute("SELECT count(*) FROM new_models").fetchone() != (0,):
            _resolve_new_models(cur, prices, "SELECT model, service_tier FROM new_models")
            cur.execute(fold)
        if parents and parents[0]:
            _refresh_parent_copies(cur, kind)


def run_rollup(
    conninfo: str, *, full: bool = False, prices_file: Path | None = None
) -> RollupResult:
    """Bring facts and rollups up to date; see the module docstring for what is recomputed."""
    started = time.perf_counter()
    prices = load_prices(prices_file)
    digest = fingerprint(prices)
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("SET work_mem = '64MB'")
        # The facts a run touches are found by index from a few thousand ids; with the
        # default page cost the planner prefers scanning all facts (0.2 s per join on 2M).
        cur.execute("SET random_page_cost = 1.1")
        # Everything a run writes is derived from the seed tables and the change log, and
        # each transaction is atomic either way: a commit lost in a crash of the server is
        # undone whole (watermark, change-log lines and facts, or dirty hours and rollup
        # rows together) and the next run does it again. No wait for the WAL flush.
        cur.execute("SET synchronous_commit = off")
        # Held across both transactions (released when the connection closes).
        cur.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        reader = _CommittedReader(conninfo)
        try:
            with conn.transaction():
                cur.execute(
                    "SELECT watermark, prices_fingerprint, full_rebuild_at"
                    " FROM analytics.rollup_state FOR UPDATE"
                )
                state = cur.fetchone()
                if state is None:
                    raise RuntimeError("analytics.rollup_state is empty: run `agentstream migrate`")
                watermark, old_digest, rebuilt_at = state
                reason = "requested" if full else ""
                if not full and (rebuilt_at is None or not old_digest):
                    reason, full = "first run", True
                if old_digest != digest and full:
                    _sync_prices(cur, prices)  # every fact is costed again below
                elif old_digest != digest:
                    reason = f"prices changed: {_recost(cur, prices)} model(s) re-costed"
                # The change log holds the lines not folded yet, so the planner expects
                # `seq > watermark` to match all of them and scans the table, whose pages
                # after a long backlog are mostly empty (46 ms for 11k lines, after a first
                # run's 2.2M were deleted); the primary key finds them in ~2 ms.
                cur.execute("SET LOCAL enable_seqscan = off")
                new_watermark = _new_watermark(cur, watermark)
                changes = 0 if full else _read_changes(cur, watermark)
                cur.execute("SET LOCAL enable_seqscan = on")
                reader.start()  # connects while the facts are rebuilt or folded in
                if full:
                    _rebuild_facts(cur, prices)
                elif changes:
                    _fold_changes(cur, prices)
                _prune_change_log(cur, 0 if full else watermark, new_watermark)
                cur.execute(
                    f"""UPDATE analytics.rollup_state SET watermark = %s, prices_fingerprint = %s,
                        updated_at = now(){
                        ", full_rebuild_at = now(), buckets_stale = true" if full else ""
                    }""",
                    (new_watermark, digest),
                )
            # Second transaction: the buckets, rebuilt from the facts the first committed (so
            # that a second connection can read them, several times faster). All of them
            # after a full rebuild of the facts, or when one died before this point.
            with conn.transaction():
                row = cur.execute(
                    "SELECT buckets_stale FROM analytics.rollup_state FOR UPDATE"
                ).fetchone()
                stale = bool(row and row[0])
                hours, days = _recompute(cur, reader, all_buckets=stale)
                if stale:
                    cur.execute("UPDATE analytics.rollup_state SET buckets_stale = false")
                    if not full:
                        reason = "every bucket: a full rebuild had stopped before them"
        finally:
            reader.close()
        cur.execute(
            """SELECT DISTINCT r.model FROM analytics.resolved_models r
               WHERE EXISTS (SELECT 1 FROM analytics.llm_rollup u WHERE u.granularity = 'day'
                 AND u.dimension = 'model' AND u.key = r.model AND u.unpriced_calls > 0)
               ORDER BY 1"""
        )
        unpriced = [row[0] for row in cur.fetchall()]
        # Estimates (kept by ANALYZE and autovacuum): an exact count scans the table.
        llm_n, exec_n = (
            cur.execute(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = %s::regclass",
                (f"analytics.{t}",),
            ).fetchone()
            or (0,)
            for t in ("llm_facts", "exec_facts")
        )
    result = RollupResult(
        full=full,
        reason=reason,
        changes=changes,
        llm_facts=int(llm_n[0]),
        exec_facts=int(exec_n[0]),
        hours=hours,
        days=days,
        watermark=new_watermark,
        unpriced_models=unpriced,
        seconds=time.perf_counter() - started,
    )
    log.debug("rollup done: %s", result)
    return result
