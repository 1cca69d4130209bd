"""A call's cost in PostgreSQL, from its token counts and the price band in force at its time.

The facts are costed with these expressions when they are written (facts.py) and again when
the price table changes (pricing.py). analytics/prices.py's ``price_call`` computes the same
in Python; tests/test_analytics_costs.py checks that they agree.
"""

from __future__ import annotations

from psycopg import sql

__all__ = ["COST_PARTS", "call_counts", "cost_sql", "price_in_force"]

# The parts of a call's cost the facts keep beside the total (cost_pico), and its flags.
COST_PARTS = (
    "cached_cost_pico",
    "cache_write_cost_pico",
    "output_cost_pico",
    "reasoning_cost_pico",
    "price_flags",
)

# The price periods with their prices in picodollars per token: USD per 1M tokens x 10^12 /
# 10^6, an exact integer (prices have 6 decimals), so that a call's cost is bigint arithmetic
# rather than numeric arithmetic on every call. Overflows only past $9.2M for one call. A
# missing reasoning rate is the output rate; a missing cache rate stays NULL here, so that
# the call can be flagged, and is the input rate in the cost.
_PRICED = sql.SQL("""(SELECT model, service_tier, valid_from, valid_to, above_prompt_tokens,
                     up_to_prompt_tokens, tier_fallback,
                     (input_per_mtok * 1000000)::bigint AS input_pico,
                     (output_per_mtok * 1000000)::bigint AS output_pico,
                     (cached_input_per_mtok * 1000000)::bigint AS cached_pico,
                     (cache_write_per_mtok * 1000000)::bigint AS write_pico,
                     (coalesce(reasoning_per_mtok, output_per_mtok) * 1000000)::bigint
                       AS reasoning_pico
              FROM analytics.price_periods)""")


def price_in_force(alias: str, tier: sql.Composable, prompt: sql.Composable) -> sql.Composed:
    """The join of ``alias``'s calls (model, created_at, reported service tier ``tier``, prompt
    tokens ``prompt``) to the price band in force at their time, as ``pp`` (NULLs where the
    model is unpriced then). A band is (above, up_to]: the whole call is priced at it."""
    return sql.SQL("""LEFT JOIN {priced} pp
       ON pp.model = {calls}.model AND pp.service_tier = coalesce({tier}, 'default')
      AND pp.valid_from <= {calls}.created_at
      AND (pp.valid_to IS NULL OR {calls}.created_at < pp.valid_to)
      AND {prompt} > pp.above_prompt_tokens
      AND (pp.up_to_prompt_tokens IS NULL OR {prompt} <= pp.up_to_prompt_tokens)""").format(
        priced=_PRICED, calls=sql.Identifier(alias), tier=tier, prompt=prompt
    )


def call_counts(tokens: str, details: str) -> dict[str, sql.Composed]:
    """A call's prompt, response, cache read, cache write and reasoning tokens in SQL (never
    NULL), from the rows aliased ``tokens`` (prompt and response) and ``details`` (the
    others)."""
    column = sql.SQL("coalesce({}.{}, 0)")
    t, d = sql.Identifier(tokens), sql.Identifier(details)
    return {
        "prompt": column.format(t, sql.Identifier("prompt_tokens")),
        "response": column.format(t, sql.Identifier("response_tokens")),
        "read": column.format(d, sql.Identifier("cache_read_tokens")),
        "write": column.format(d, sql.Identifier("cache_write_tokens")),
        "thinking": column.format(d, sql.Identifier("reasoning_tokens")),
    }


_COSTS = {
    "total": """({prompt} - {read} - {write}) * pp.input_pico
            + {read} * coalesce(pp.cached_pico, pp.input_pico)
            + {write} * coalesce(pp.write_pico, pp.input_pico)
            + ({response} - {thinking}) * pp.output_pico + {thinking} * pp.reasoning_pico""",
    "cached_cost_pico": "nullif({read} * coalesce(pp.cached_pico, pp.input_pico), 0)",
    "cache_write_cost_pico": "nullif({write} * coalesce(pp.write_pico, pp.input_pico), 0)",
    "output_cost_pico": """({response} - {thinking}) * pp.output_pico
            + {thinking} * pp.reasoning_pico""",
    "reasoning_cost_pico": "nullif({thinking} * pp.reasoning_pico, 0)",
    "price_flags": """nullif(CASE WHEN pp.tier_fallback THEN 1 ELSE 0 END
            + CASE WHEN pp.input_pico IS NOT NULL
                    AND (({read} > 0 AND pp.cached_pico IS NULL)
                         OR ({write} > 0 AND pp.write_pico IS NULL)) THEN 2 ELSE 0 END,
            0)::smallint""",
}


def cost_sql(counts: dict[str, sql.Composed]) -> dict[str, sql.Composed]:
    """A call's cost in picodollars from its ``counts`` (call_counts) and the band ``pp``:
    the total and each of COST_PARTS (NULL when 0: most calls have no cache or reasoning
    tokens, and a NULL is not stored)."""
    return {name: sql.SQL(text).format(**counts) for name, text in _COSTS.items()}
