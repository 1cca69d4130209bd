"""The cost of one LLM call in picodollars, as the rollups compute it: the alerts' one door
to the price table.

``agentstream.analytics.prices.price_call`` is the function that costs a call exactly as
the rollup's SQL does (the price in force at ``created_at`` for the call's service tier,
long-prompt bands, cache read/write and reasoning rates). A model unpriced at that time
costs nothing and is counted as unpriced (None here), never as $0.

Per call, price_call resolves the model's price periods from the rows it is given; it is
given only the rows that name the model (matched once per model and kept), which resolves
to the same periods as the whole table and keeps a call's costing cheap.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from agentstream.analytics.prices import PriceRow, load_prices, price_call

__all__ = ["Coster"]


class Coster:
    """Costs calls with the price table (shipped, with the user's file merged over it)."""

    def __init__(self, prices_file: Path | None = None, prices: list[PriceRow] | None = None):
        self._prices = prices if prices is not None else load_prices(prices_file)
        self._rows: dict[str, list[PriceRow]] = {}

    def cost_pico(
        self,
        model: str,
        created_at: datetime,
        prompt_tokens: int,
        response_tokens: int,
        *,
        service_tier: str | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
    ) -> int | None:
        """Picodollars, or None when ``model`` has no price in force at ``created_at``."""
        rows = self._rows.get(model)
        if rows is None:
            rows = self._rows[model] = [r for r in self._prices if r.matches(model)]
        cost = price_call(
            rows,
            model,
            created_at,
            prompt_tokens,
            response_tokens,
            service_tier=service_tier,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
        )
        return None if cost is None else cost.total_pico
