"""Cost and latency reports over a time window, grouped by one dimension, from the rollups.

The window is widened to whole rollup buckets: hours (whole days for ``--by day``), so
every figure comes from whole buckets and the totals equal the seed tables' over that
window. Sums (calls, errors, tokens, cost, unpriced calls) add up the hourly rollup rows;
a percentile does not add up, so the percentiles of a group over the whole window are
computed from the rollups' fact table (``analytics.llm_facts``) with ``percentile_cont``,
the same definition as the rollups. ``--by hour`` and ``--by day`` read rollup rows as they
are. Unless told otherwise, the rollup is brought up to date first.

Cost is a sum over priced calls; calls of models with no price are counted in
``unpriced_calls`` and listed in ``unpriced_models``, never costed at $0. It is split as
providers bill it: input (uncached prompt tokens), cached input (cache reads), cache write
and output (reasoning included, and shown apart); the cache hit ratio is cache-read tokens
over prompt tokens. Calls priced at the default tier's row because their service tier has
no price (``tier_fallback_calls``) and calls whose cache tokens had no cache price
(``cache_unpriced_calls``) are counted and flagged. Time to first token (TTFT) percentiles
are over the calls that reported one (streamed calls).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from agentstream.analytics.rollup import RollupResult, run_rollup

__all__ = [
    "BY",
    "Report",
    "build_report",
    "price_flag_notes",
    "render_csv",
    "render_json",
    "render_table",
]

BY = ("model", "agent", "agent_type", "user", "session", "hour", "day")
_KEY = {
    "model": "model",
    "agent": "coalesce(agent_id::text, '(none)')",
    "agent_type": "coalesce(agent_type, '(none)')",
    "user": "coalesce(user_id, '(none)')",
    "session": "session_id::text",
}
# Usage details, the cost as billed (input = uncached prompt tokens) and the calls costed
# by a stand-in rate: summed over the hourly rollup rows.
_DETAIL_TOKENS = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
_COST_PARTS = (
    "input_cost",
    "cached_input_cost",
    "cache_write_cost",
    "output_cost",
    "reasoning_cost",
)
_FLAG_COUNTS = ("tier_fallback_calls", "cache_unpriced_calls")
_SUMS = (*_DETAIL_TOKENS, *_COST_PARTS, *_FLAG_COUNTS)
LLM_COLUMNS = (
    "calls",
    "errors",
    "error_rate",
    "prompt_tokens",
    "response_tokens",
    "cost",
    "unpriced_calls",
    "latency_mean",
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
    "latency_max",
    *_DETAIL_TOKENS,
    "cache_hit_ratio",
    *_COST_PARTS,
    *_FLAG_COUNTS,
    "ttft_p50",
    "ttft_p95",
    "ttft_p99",
)
# What the terminal table leaves out (CSV and JSON carry every column).
_NOT_IN_TABLE = frozenset(
    {"latency_mean", "latency_p90", "latency_max", "ttft_p99", *_DETAIL_TOKENS, *_FLAG_COUNTS}
)
EXEC_COLUMNS = ("executions", "success_rate", "duration_p50", "duration_p95")


@dataclass
class Report:
    since: datetime
    until: datetime
    by: str
    rows: list[dict[str, Any]]
    totals: dict[str, Any]
    unpriced_models: list[dict[str, Any]]
    rollup: RollupResult | None = None
    series: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # The streaming alerts (agentstream.alerts, docs/alerts.md) whose window overlaps the
    # report's; read with the series (the HTML report lists them).
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        extra = [c for c in EXEC_COLUMNS if self.rows and c in self.rows[0]]
        label = ["name"] if self.by == "agent" else []
        return ["key", *label, *LLM_COLUMNS, *extra]

    @property
    def table_columns(self) -> list[str]:
        return [c for c in self.columns if c not in _NOT_IN_TABLE]


def _window(since: datetime, until: datetime, by: str) -> tuple[datetime, datetime]:
    unit = timedelta(days=1) if by == "day" else timedelta(hours=1)
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start = epoch + ((since - epoch) // unit) * unit
    end = epoch + -((epoch - until) // unit) * unit
    return start, end


_PCT = "percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY {col})"
# Over the calls that reported a time to first token (percentile_cont skips NULLs).
_TTFT = "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ttft_ms)"
_SUMMED = ", ".join(f"sum({c}) AS {c}" for c in _SUMS)
_SUMMED_OUT = ", ".join(f"r.{c}" for c in _SUMS)
_HIT_RATIO = "r.cache_read_tokens::float8 / nullif(r.prompt_tokens, 0) AS cache_hit_ratio"
_TTFT_OUT = "p.t[1] AS ttft_p50, p.t[2] AS ttft_p95, p.t[3] AS ttft_p99"


def _by_dimension(cur: psycopg.Cursor[Any], by: str, w: dict[str, Any]) -> list[dict[str, Any]]:
    key = _KEY[by]
    rows = cur.execute(
        f"""
        WITH r AS (
            SELECT key, sum(calls)::bigint AS calls, sum(errors)::bigint AS errors,
                   sum(prompt_tokens)::bigint AS prompt_tokens,
                   sum(response_tokens)::bigint AS response_tokens,
                   sum(cost) AS cost, sum(unpriced_calls)::bigint AS unpriced_calls,
                   sum(latency_mean * calls) / sum(calls) AS latency_mean,
                   max(latency_max) AS latency_max, {_SUMMED}
            FROM analytics.llm_rollup
            WHERE granularity = 'hour' AND dimension = %(dim)s
              AND bucket >= %(since)s AND bucket < %(until)s
            GROUP BY key),
        p AS (
            SELECT {key} AS key, {_PCT.format(col="latency_ms")} AS q, {_TTFT} AS t
            FROM analytics.llm_facts WHERE hour >= %(since)s AND hour < %(until)s
            GROUP BY 1)
        SELECT r.key, r.calls, r.errors, r.errors::float8 / r.calls AS error_rate,
               r.prompt_tokens, r.response_tokens, r.cost, r.unpriced_calls, r.latency_mean,
               p.q[1] AS latency_p50, p.q[2] AS latency_p90, p.q[3] AS latency_p95,
               p.q[4] AS latency_p99, r.latency_max, {_SUMMED_OUT}, {_HIT_RATIO}, {_TTFT_OUT}
        FROM r LEFT JOIN p USING (key)
        ORDER BY r.cost DESC, r.calls DESC, r.key""",
        {**w, "dim": by},
    ).fetchall()
    if by != "model":
        execs = {
            r["key"]: r
            for r in cur.execute(
                f"""
                WITH r AS (
                    SELECT key, sum(executions)::bigint AS executions,
                           sum(finished)::bigint AS finished, sum(succeeded)::bigint AS succeeded
                    FROM analytics.exec_rollup
                    WHERE granularity = 'hour' AND dimension = %(dim)s
                      AND bucket >= %(since)s AND bucket < %(until)s GROUP BY key),
                p AS (
                    SELECT {key.replace("coalesce(agent_id::text, '(none)')", "agent_id::text")}
                           AS key, {_PCT.format(col="duration_ms")} AS q
                    FROM analytics.exec_facts WHERE hour >= %(since)s AND hour < %(until)s
                    GROUP BY 1)
                SELECT r.key, r.executions, r.succeeded::float8 / nullif(r.finished, 0)
                       AS success_rate, p.q[1] AS duration_p50, p.q[3] AS duration_p95
                FROM r LEFT JOIN p USING (key)""",
                {**w, "dim": by},
            )
        }
        for row in rows:
            e = execs.get(row["key"], {})
            for col in EXEC_COLUMNS:
                row[col] = e.get(col, 0 if col == "executions" else None)
    if by == "agent":
        names = {
            r["id"]: r["name"]
            for r in cur.execute(
                "SELECT id::text AS id, name FROM agents WHERE id::text = ANY(%s)",
                ([row["key"] for row in rows],),
            )
        }
        for row in rows:
            row["name"] = names.get(row["key"], "")
    return rows


def _by_bucket(cur: psycopg.Cursor[Any], by: str, w: dict[str, Any]) -> list[dict[str, Any]]:
    return cur.execute(
        f"""
        SELECT to_char(l.bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"') AS key,
               l.calls, l.errors, l.error_rate, l.prompt_tokens, l.response_tokens, l.cost,
               l.unpriced_calls, l.latency_mean, l.latency_p50, l.latency_p90, l.latency_p95,
               l.latency_p99, l.latency_max, {", ".join(f"l.{c}" for c in _SUMS)},
               l.cache_hit_ratio, l.ttft_p50, l.ttft_p95, l.ttft_p99,
               coalesce(e.executions, 0) AS executions,
               e.success_rate, e.duration_p50, e.duration_p95
        FROM analytics.llm_rollup l
        LEFT JOIN analytics.exec_rollup e ON e.granularity = l.granularity
             AND e.dimension = 'all' AND e.bucket = l.bucket
        WHERE l.granularity = %(g)s AND l.dimension = 'all'
          AND l.bucket >= %(since)s AND l.bucket < %(until)s
        ORDER BY l.bucket""",
        {**w, "g": by},
    ).fetchall()


def _totals(cur: psycopg.Cursor[Any], w: dict[str, Any]) -> dict[str, Any]:
    row = cur.execute(
        f"""
        SELECT {", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in _SUMS)},
               sum(cache_read_tokens)::float8 / nullif(sum(prompt_tokens), 0) AS cache_hit_ratio,
               (SELECT {_TTFT} FROM analytics.llm_facts
                WHERE hour >= %(since)s AND hour < %(until)s) AS t,
               coalesce(sum(calls), 0)::bigint AS calls, coalesce(sum(errors), 0)::bigint AS errors,
               coalesce(sum(errors)::float8 / nullif(sum(calls), 0), 0) AS error_rate,
               coalesce(sum(prompt_tokens), 0)::bigint AS prompt_tokens,
               coalesce(sum(response_tokens), 0)::bigint AS response_tokens,
               coalesce(sum(cost), 0) AS cost, coalesce(sum(unpriced_calls), 0)::bigint
               AS unpriced_calls,
               sum(latency_mean * calls) / nullif(sum(calls), 0) AS latency_mean,
               (SELECT {_PCT.format(col="latency_ms")} FROM analytics.llm_facts
                WHERE hour >= %(since)s AND hour < %(until)s) AS q,
               max(latency_max) AS latency_max
        FROM analytics.llm_rollup
        WHERE granularity = 'hour' AND dimension = 'all'
          AND bucket >= %(since)s AND bucket < %(until)s""",
        w,
    ).fetchone()
    assert row is not None
    q = row.pop("q") or [None] * 4
    for name, value in zip(
        ("latency_p50", "latency_p90", "latency_p95", "latency_p99"), q, strict=True
    ):
        row[name] = value
    t = row.pop("t") or [None] * 3
    for name, value in zip(("ttft_p50", "ttft_p95", "ttft_p99"), t, strict=True):
        row[name] = value
    return {"key": "TOTAL", **{c: row[c] for c in LLM_COLUMNS}}


def _series(cur: psycopg.Cursor[Any], w: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """What the HTML charts draw: per-bucket rows, and the top sessions and agents by cost."""
    span = w["until"] - w["since"]
    g = "hour" if span <= timedelta(days=3) else "day"
    sw = {**w, "g": g}
    if g == "day":
        sw["since"], sw["until"] = _window(w["since"], w["until"], "day")
    out: dict[str, list[dict[str, Any]]] = {"granularity": [{"value": g}]}
    out["by_model"] = cur.execute(
        """SELECT bucket, key AS model, cost, calls, unpriced_calls FROM analytics.llm_rollup
           WHERE granularity = %(g)s AND dimension = 'model'
             AND bucket >= %(since)s AND bucket < %(until)s ORDER BY bucket, key""",
        sw,
    ).fetchall()
    out["ttft_by_model"] = cur.execute(
        f"""SELECT model, {_TTFT} AS t FROM analytics.llm_facts
            WHERE hour >= %(since)s AND hour < %(until)s AND ttft_ms IS NOT NULL
            GROUP BY model ORDER BY model""",
        w,
    ).fetchall()
    out["overall"] = cur.execute(
        """SELECT bucket, calls, error_rate, latency_p50, latency_p90, latency_p95,
                  latency_p99, cost, input_cost, cached_input_cost, cache_write_cost,
                  output_cost, reasoning_cost, cache_hit_ratio FROM analytics.llm_rollup
           WHERE granularity = %(g)s AND dimension = 'all'
             AND bucket >= %(since)s AND bucket < %(until)s ORDER BY bucket""",
        sw,
    ).fetchall()
    for dim, label, parent in (
        ("session", "p.user_id", "sessions"),  # a session is labelled by its user
        ("agent", "p.name", "agents"),
    ):
        out[f"top_{dim}s"] = cur.execute(
            f"""SELECT r.key, {label} AS label, sum(r.cost) AS cost, sum(r.calls)::bigint AS calls
                FROM analytics.llm_rollup r
                LEFT JOIN {parent} p ON p.id::text = r.key
                WHERE r.granularity = 'hour' AND r.dimension = %(dim)s AND r.key <> '(none)'
                  AND r.bucket >= %(since)s AND r.bucket < %(until)s
                GROUP BY 1, 2 ORDER BY 3 DESC, 4 DESC LIMIT 10""",
            {**w, "dim": dim},
        ).fetchall()
    return out


def build_report(
    conninfo: str,
    since: datetime,
    until: datetime,
    by: str,
    *,
    refresh: bool = True,
    prices_file: Path | None = None,
    with_series: bool = False,
) -> Report:
    if by not in BY:
        raise ValueError(f"--by {by!r}: choose one of {', '.join(BY)}")
    if until <= since:
        raise ValueError(f"--until {until} must be after --since {since}")
    rollup = run_rollup(conninfo, prices_file=prices_file) if refresh else None
    start, end = _window(since, until, by)
    w = {"since": start, "until": end}
    with psycopg.connect(conninfo) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = _by_bucket(cur, by, w) if by in ("hour", "day") else _by_dimension(cur, by, w)
        totals = _totals(cur, w)
        unpriced = cur.execute(
            """SELECT key AS model, sum(unpriced_calls)::bigint AS calls FROM analytics.llm_rollup
               WHERE granularity = 'hour' AND dimension = 'model' AND unpriced_calls > 0
                 AND bucket >= %(since)s AND bucket < %(until)s
               GROUP BY key ORDER BY 2 DESC, 1""",
            w,
        ).fetchall()
        series = _series(cur, w) if with_series else {}
        alerts = _alerts(cur, w) if with_series else []
    return Report(start, end, by, rows, totals, unpriced, rollup, series, alerts)


# The most an HTML report lists (the newest first): a page, not a dump of the table.
ALERTS_SHOWN = 200


def _alerts(cur: psycopg.Cursor[dict[str, Any]], w: dict[str, datetime]) -> list[dict[str, Any]]:
    return cur.execute(
        """SELECT rule, metric, group_by, group_key, window_start, window_end, level,
                  threshold, value, record_count, fired_at
           FROM agentstream.alerts
           WHERE window_start < %(until)s AND window_end > %(since)s
           ORDER BY fired_at DESC, rule, group_key, level LIMIT %(limit)s""",
        {**w, "limit": ALERTS_SHOWN},
    ).fetchall()


def _fmt(col: str, value: Any) -> str:
    if value is None:
        return "-"
    if col.endswith("cost"):
        return f"${Decimal(value):,.4f}"
    if col in ("error_rate", "success_rate", "cache_hit_ratio"):
        return f"{float(value) * 100:.1f}%"
    if isinstance(value, float | Decimal):
        return f"{float(value):,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


_SHORT = {
    "prompt_tokens": "prompt_tok",
    "response_tokens": "resp_tok",
    "unpriced_calls": "unpriced",
    "latency_mean": "lat_mean",
    "latency_p50": "p50",
    "latency_p90": "p90",
    "latency_p95": "p95",
    "latency_p99": "p99",
    "latency_max": "max",
    "executions": "execs",
    "success_rate": "exec_ok",
    "duration_p50": "dur_p50",
    "duration_p95": "dur_p95",
    "cache_hit_ratio": "cache_hit",
    "input_cost": "input$",
    "cached_input_cost": "cached$",
    "cache_write_cost": "write$",
    "output_cost": "output$",
    "reasoning_cost": "(reason$)",
    "ttft_p50": "ttft_p50",
    "ttft_p95": "ttft_p95",
}


def price_flag_notes(totals: dict[str, Any]) -> list[str]:
    """What to say about the calls costed by a stand-in rate (analytics/prices.py)."""
    notes = []
    if totals.get("tier_fallback_calls"):
        notes.append(
            f"{totals['tier_fallback_calls']:,} calls of a service tier with no price row: "
            "priced at the default tier's rates"
        )
    if totals.get("cache_unpriced_calls"):
        notes.append(
            f"{totals['cache_unpriced_calls']:,} calls with cache tokens and no cache price: "
            "those tokens priced at the input rate"
        )
    return notes


def render_table(report: Report) -> str:
    cols = report.table_columns
    cells = [[_SHORT.get(c, c) for c in cols]]
    for row in [*report.rows, report.totals]:
        cells.append([_fmt(c, row.get(c)) if c in row else "" for c in cols])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    key_w = min(widths[0], 40)
    lines = [
        f"LLM calls {report.since:%Y-%m-%d %H:%M} .. {report.until:%Y-%m-%d %H:%M} UTC "
        f"by {report.by} (latency in ms)"
    ]
    if report.unpriced_models:
        listed = ", ".join(f"{u['model']} ({u['calls']:,} calls)" for u in report.unpriced_models)
        lines.append(f"!! UNPRICED models, not in cost: {listed}")
        lines.append("!! add them to your prices file (AGENTSTREAM_PRICES_FILE)")
    lines.extend(f"!! {note}" for note in price_flag_notes(report.totals))
    for n, r in enumerate(cells):
        key = r[0] if len(r[0]) <= key_w else r[0][: key_w - 1] + "…"
        rest = "  ".join(v.rjust(widths[i + 1]) for i, v in enumerate(r[1:]))
        lines.append(f"{key:<{key_w}}  {rest}")
        if n == 0 or n == len(cells) - 2:
            lines.append("-" * (key_w + 2 + len(rest)))
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=report.columns, extrasaction="ignore")
    writer.writeheader()
    for row in [*report.rows, report.totals]:
        writer.writerow({k: _plain(v) for k, v in row.items()})
    return out.getvalue()


def render_json(report: Report) -> str:
    doc = {
        "since": report.since.isoformat(),
        "until": report.until.isoformat(),
        "by": report.by,
        "unpriced_models": report.unpriced_models,
        "rows": [{k: _plain(v) for k, v in r.items()} for r in report.rows],
        "totals": {k: _plain(v) for k, v in report.totals.items()},
    }
    return json.dumps(doc, indent=1, default=str)
