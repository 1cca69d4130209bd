"""Prices in the database: the price table synced into ``analytics.prices``, the price periods
of every model the facts have seen resolved into ``analytics.price_periods``, and the facts
re-costed when those periods change.

analytics/prices.py resolves a model's periods (``resolve_call``); the facts' SQL joins them
(costs.py). A run syncs the table when its fingerprint differs from the one the facts were
costed with.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from agentstream.analytics.prices import PriceRow, resolve_call
from agentstream.analytics.rollup.changes import mark_dirty
from agentstream.analytics.rollup.costs import COST_PARTS, call_counts, cost_sql, price_in_force

__all__ = ["recost", "resolve_new_models", "sync_prices"]


def sync_prices(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> None:
    """Replace analytics.prices with ``prices``, and forget every resolved model (their price
    periods go with them): they are resolved again from the new table."""
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


_INSERT_PERIOD = """INSERT INTO analytics.price_periods (model, service_tier, valid_from,
    valid_to, price_model, price_is_pattern, above_prompt_tokens, up_to_prompt_tokens,
    input_per_mtok, output_per_mtok, cached_input_per_mtok, cache_write_per_mtok,
    reasoning_per_mtok, tier_fallback)
   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""


def resolve_new_models(
    cur: psycopg.Cursor[Any], prices: list[PriceRow], source: sql.Composable
) -> None:
    """Resolve the price periods of the (model, service_tier) pairs seen in the query
    ``source`` (service_tier as reported, NULL: not reported) and not yet resolved: one row
    per period and band."""
    cur.execute(
        sql.SQL(
            "SELECT DISTINCT model, coalesce(service_tier, 'default') FROM ({source}) m "
            "WHERE NOT EXISTS (SELECT 1 FROM analytics.resolved_models r "
            "WHERE r.model = m.model AND r.service_tier = coalesce(m.service_tier, 'default'))"
        ).format(source=source)
    )
    for model, tier in cur.fetchall():
        cur.execute(
            "INSERT INTO analytics.resolved_models (model, service_tier) VALUES (%s, %s)",
            (model, tier),
        )
        for p in resolve_call(model, tier, prices):
            for above, up_to, rates in p.price.bands():
                cur.execute(
                    _INSERT_PERIOD,
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
_PERIODS = sql.SQL("""SELECT model, service_tier, valid_from, valid_to, above_prompt_tokens,
    up_to_prompt_tokens, input_per_mtok, output_per_mtok, cached_input_per_mtok,
    cache_write_per_mtok, reasoning_per_mtok, tier_fallback FROM {}""")
_OLD_PERIODS = _PERIODS.format(sql.Identifier("old_periods"))
_NEW_PERIODS = _PERIODS.format(sql.Identifier("analytics", "price_periods"))
_CHANGED_MODELS = sql.SQL(
    "SELECT model FROM ({old} EXCEPT {new}) a UNION SELECT model FROM ({new} EXCEPT {old}) b"
).format(old=_OLD_PERIODS, new=_NEW_PERIODS)


def _recost_statement() -> sql.Composed:
    """Re-cost the facts of the models in the parameter (a text array) and mark dirty the
    hours where a cost or flag changed."""
    costs = cost_sql(call_counts("f", "f"))
    parts = [sql.Identifier(c) for c in COST_PARTS]
    return sql.SQL("""WITH new AS (
            SELECT f.hour, f.id, f.cost_pico AS old_cost, {total} AS cost, {computed}
            FROM analytics.llm_facts f
            {priced}
            WHERE f.model = ANY(%s)),
        recosted AS (
            UPDATE analytics.llm_facts f SET cost_pico = new.cost, {assigned}
            FROM new
            WHERE f.hour = new.hour AND f.id = new.id
              AND (new.cost, {new_parts}) IS DISTINCT FROM (new.old_cost, {old_parts})
            RETURNING f.hour)
        {dirty}""").format(
        total=costs["total"],
        computed=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(costs[c], p) for c, p in zip(COST_PARTS, parts, strict=True)
        ),
        priced=price_in_force("f", sql.SQL("f.service_tier"), sql.SQL("f.prompt_tokens")),
        assigned=sql.SQL(", ").join(sql.SQL("{} = new.{}").format(p, p) for p in parts),
        new_parts=sql.SQL(", ").join(sql.SQL("new.{}").format(p) for p in parts),
        old_parts=sql.SQL(", ").join(sql.SQL("f.{}").format(p) for p in parts),
        dirty=mark_dirty("llm", sql.Identifier("recosted")),
    )


_RECOST = _recost_statement()


def recost(cur: psycopg.Cursor[Any], prices: list[PriceRow]) -> int:
    """After a change of the price table: sync it, resolve again every model the facts have
    seen, and re-cost the facts of the models whose price periods changed, marking the hours
    where a cost changed dirty. Returns how many models were re-costed. The same costs as a
    full rebuild would store (the same formula over the same periods), without rewriting
    every fact to change the cost of a few models' calls."""
    cur.execute(
        sql.SQL("""CREATE TEMP TABLE old_periods ON COMMIT DROP AS {new};
            CREATE TEMP TABLE old_models ON COMMIT DROP AS
            SELECT model, service_tier FROM analytics.resolved_models""").format(new=_NEW_PERIODS)
    )
    sync_prices(cur, prices)
    resolve_new_models(cur, prices, sql.SQL("SELECT model, service_tier FROM old_models"))
    cur.execute(_CHANGED_MODELS)
    models = [row[0] for row in cur.fetchall()]
    if models:
        cur.execute(_RECOST, (models,))
    return len(models)
