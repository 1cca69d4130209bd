"""The cost of one LLM call in picodollars, as the rollups compute it: the alerts' one door
to the price table.

``agentstream.analytics.prices.price_call`` is the function that costs a call exactly as
the rollup's SQL does (the price in force at ``created_at`` for the call's service tier,
long-prompt bands, cache read/write and reasoning rates). A model unpriced at that time
costs nothing and is counted as unpriced (None here), never as $0.

The price periods of a (model, reported tier) are resolved once (``resolve_call``, what
price_call does per call) and kept: the table does not change while the process runs.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from agentstream.analytics.prices import Period, PriceRow, load_prices, price_call, resolve_call
from agentstream.contract.entities import LLMInteraction

__all__ = ["Coster"]


class Coster:
    """Costs calls with the price table (shipped, with the user's file merged over it)."""

    def __init__(self, prices_file: Path | None = None, prices: list[PriceRow] | None = None):
        self._prices = prices if prices is not None else load_prices(prices_file)
        self._periods: dict[tuple[str, str | None], list[Period]] = {}

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
        periods = self._periods.get((model, service_tier))
        if periods is None:
            periods = resolve_call(model, service_tier, self._prices)
            self._periods[(model, service_tier)] = periods
        cost = price_call(
            self._prices,
            model,
            created_at,
            prompt_tokens,
            response_tokens,
            service_tier=service_tier,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            reasoning_tokens=reasoning_tokens,
            periods=periods,
        )
        return None if cost is None else cost.total_pico

    def call_pico(self, call: LLMInteraction, at: datetime) -> int | None:
        """``cost_pico`` of ``call`` with its counts, tier and usage details, at ``at`` (its
        event time)."""
        return self.cost_pico(
            call.model,
            at,
            call.prompt_tokens,
            call.response_tokens,
            service_tier=call.service_tier,
            cache_read_tokens=call.cache_read_tokens,
            cache_write_tokens=call.cache_write_tokens,
            reasoning_tokens=call.reasoning_tokens,
        )
