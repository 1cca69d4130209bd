"""The cost of one LLM call in picodollars, as the rollups compute it: the alerts' one door
to the price table (agentstream.analytics.prices).

The rollup joins each call to the price period in force at its ``created_at``
(``resolve_model``; ``_price_in_force`` in analytics/rollup.py) and costs it as
``prompt_tokens * input_pico + response_tokens * output_pico``, with the per-token prices in
picodollars (USD per 1M tokens x 10^6, an exact integer). A model unpriced at that time
costs nothing and is counted as unpriced (None here), never as $0.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from agentstream.analytics.prices import Period, PriceRow, load_prices, resolve_model

__all__ = ["Coster"]

_PICO_PER_MTOK_USD = Decimal(1_000_000)


def _pico(per_mtok: Decimal) -> int:
    # PostgreSQL's numeric -> bigint cast rounds half away from zero; prices have at most 6
    # decimals, so this is exact.
    return int((per_mtok * _PICO_PER_MTOK_USD).to_integral_value(ROUND_HALF_UP))


class Coster:
    """Costs calls with the price table (shipped, with the user's file merged over it)."""

    def __init__(self, prices_file: Path | None = None, prices: list[PriceRow] | None = None):
        self._prices = prices if prices is not None else load_prices(prices_file)
        self._periods: dict[str, tuple[list[datetime], list[Period]]] = {}

    def _resolved(self, model: str) -> tuple[list[datetime], list[Period]]:
        found = self._periods.get(model)
        if found is None:
            periods = resolve_model(model, self._prices)
            found = self._periods[model] = ([p.valid_from for p in periods], periods)
        return found

    def cost_pico(
        self, model: str, created_at: datetime, prompt_tokens: int, response_tokens: int
    ) -> int | None:
        """Picodollars, or None when ``model`` has no price in force at ``created_at``."""
        starts, periods = self._resolved(model)
        i = bisect_right(starts, created_at) - 1
        if i < 0:
            return None
        period = periods[i]
        if period.valid_to is not None and created_at >= period.valid_to:
            return None
        price = period.price
        return prompt_tokens * _pico(price.input_per_mtok) + response_tokens * _pico(
            price.output_per_mtok
        )
