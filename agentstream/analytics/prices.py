"""The price table: load the shipped file and the user's overrides, resolve a model's price.

Prices are USD per 1M tokens, effective-dated: a row is in force for
``effective_from <= t < effective_to`` (no ``effective_to``: still in force). A row names a
model exactly, or by a glob pattern (``fnmatch``: ``*``, ``?``, ``[seq]``, case-sensitive)
when ``"pattern": true``. Precedence at a time t, among the rows in force at t:

1. an exact match beats any pattern;
2. among patterns, the most specific wins: the most non-wildcard characters;
3. a tie between equally specific patterns goes to the one that sorts first (stable, but
   better avoided: give one of them an exact row).

A model with no row in force at t is *unpriced* at t: its cost is NULL and it is counted
as unpriced, never costed at $0.

The user's file (``AGENTSTREAM_PRICES_FILE``) has the shipped file's format. Its rows are
merged over the shipped ones: a row with the same model, pattern flag and effective_from
replaces the shipped row; any other row is added. Within one model, a row without
effective_to is closed by the next row's effective_from, so adding a new price from a date
on is one row; explicitly overlapping periods are an error.

A row prices calls of one service tier (``"service_tier"``, absent: ``"default"``): the
table is resolved per (model, tier) as above. A call whose tier has no row in force for its
model at its time is priced at the default tier's row and *flagged* (``tier_fallback``): the
data team sees how many calls that is and can add the tier's row. ``"standard"`` and
``"auto"`` (the names Anthropic and OpenAI report for the default tier) are the default tier.

Rates (USD per 1M tokens): ``input``, ``output``, ``cached_input`` (cache reads),
``cache_write`` (cache writes), ``reasoning`` (absent: the output rate). ``tiers`` lists
``{"above_prompt_tokens": N, ...rates}``: a call whose prompt_tokens is greater than N is
priced *whole* at that tier's rates (the highest N it passes), as the providers bill long
prompts. A tier states its own rates: none is inherited from the row but ``reasoning``
(absent: the tier's output rate).

One call costs (counts as OpenTelemetry means them: cache reads and writes are part of
prompt_tokens, reasoning part of response_tokens)::

    (prompt - cache_read - cache_write) * input + cache_read * cached_input
      + cache_write * cache_write + (response - reasoning) * output + reasoning * reasoning

A call that reports cache tokens its row has no price for is costed at the input rate for
them (what the provider bills without a cache discount) and *flagged* (``cache_unpriced``).
A call without details costs ``prompt * input + response * output``, as before. Money is
``Decimal`` in the table; a cost is an exact integer of picodollars (10^-12 USD: prices
have at most 6 decimals, so a rate is a whole number of picodollars per token), the same
in Python (``price_call``) and in SQL (analytics/rollup/costs.py).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TIER",
    "SHIPPED_PRICES",
    "CallCost",
    "Period",
    "PriceError",
    "PriceRow",
    "Rates",
    "call_cost",
    "fingerprint",
    "load_price_file",
    "load_prices",
    "merge_prices",
    "price_call",
    "resolve_call",
    "resolve_model",
    "service_tier_of",
]

# Shipped inside the package; importlib.resources finds it in a wheel as in a checkout.
SHIPPED_PRICES: Traversable = files("agentstream.analytics") / "data" / "prices.json"
DEFAULT_TIER = "default"
# What providers report for their default tier: Anthropic "standard", OpenAI "auto" (when
# the request asked for it and the response does not say which tier served it).
_DEFAULT_TIER_NAMES = frozenset({DEFAULT_TIER, "standard", "auto"})
_MILLION = Decimal(1_000_000)
_PICO_PER_MTOK = Decimal(1_000_000)  # USD per 1M tokens -> picodollars per token
_PICO = Decimal(10**12)
_WILDCARDS = set("*?[]")
_RATE_FIELDS = ("input", "output", "cached_input", "cache_write", "reasoning")


class PriceError(ValueError):
    """A price file is malformed or contradicts itself; the message says where."""


@dataclass(frozen=True)
class Rates:
    """The rates of one price band, USD per 1M tokens; None: no price (see the module doc)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None


@dataclass(frozen=True)
class Tier:
    """Rates for a whole call whose prompt_tokens is greater than ``above_prompt_tokens``."""

    above_prompt_tokens: int
    rates: Rates


@dataclass(frozen=True)
class PriceRow:
    provider: str
    model: str
    is_pattern: bool
    effective_from: datetime
    effective_to: datetime | None
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None
    checked: date
    source: str
    cache_write_per_mtok: Decimal | None = None
    reasoning_per_mtok: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    service_tier: str = DEFAULT_TIER

    @property
    def key(self) -> tuple[str, bool, str, datetime]:
        return (self.model, self.is_pattern, self.service_tier, self.effective_from)

    @property
    def base_rates(self) -> Rates:
        return Rates(
            self.input_per_mtok,
            self.output_per_mtok,
            self.cached_input_per_mtok,
            self.cache_write_per_mtok,
            self.reasoning_per_mtok,
        )

    def bands(self) -> list[tuple[int, int | None, Rates]]:
        """(above, up_to, rates): the rates for prompts of above < prompt_tokens <= up_to
        (None: no upper bound); the base band's ``above`` is -1 (every prompt >= 0)."""
        lows = [-1] + [t.above_prompt_tokens for t in self.tiers]
        rates = [self.base_rates] + [t.rates for t in self.tiers]
        return [
            (low, lows[i + 1] if i + 1 < len(lows) else None, rates[i])
            for i, low in enumerate(lows)
        ]

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The band a call's prompt falls in: the whole call is priced at it."""
        chosen = self.base_rates
        for tier in self.tiers:  # sorted by above_prompt_tokens when loaded
            if prompt_tokens > tier.above_prompt_tokens:
                chosen = tier.rates
        return chosen

    def in_force(self, t: datetime) -> bool:
        return self.effective_from <= t and (self.effective_to is None or t < self.effective_to)

    def matches(self, model: str) -> bool:
        return fnmatch.fnmatchcase(model, self.model) if self.is_pattern else model == self.model

    def specificity(self) -> tuple[int, int, str]:
        """Sort key, smallest wins: exact first, then most literal characters, then name."""
        if not self.is_pattern:
            return (0, 0, self.model)
        literal = sum(1 for ch in self.model if ch not in _WILDCARDS)
        return (1, -literal, self.model)


@dataclass(frozen=True)
class Period:
    """Where one price row is the one in force for a model: ``valid_from <= t < valid_to``.
    ``fallback``: the row is the default tier's, standing in for a tier with no row."""

    valid_from: datetime
    valid_to: datetime | None
    price: PriceRow
    fallback: bool = False


def _parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise PriceError(f"{where}: expected a date or RFC 3339 timestamp string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PriceError(f"{where}: {value!r} is not a date (YYYY-MM-DD) or timestamp") from None
    if parsed.tzinfo is None:  # a bare date or naive time means UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_money(value: Any, where: str, *, optional: bool = False) -> Decimal | None:
    if value is None and optional:
        return None
    if isinstance(value, float):
        raise PriceError(f'{where}: write prices as strings ("2.50"), floats are inexact')
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise PriceError(f"{where}: {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise PriceError(f"{where}: {value!r} must be a non-negative number")
    if (amount * _PICO_PER_MTOK) % 1:
        # A rate is then a whole number of picodollars per token: costs stay exact integers.
        raise PriceError(f"{where}: {value!r} has more than 6 decimals")
    return amount


def _parse_rates(entry: dict[str, Any], where: str) -> Rates:
    input_price = _parse_money(entry.get("input"), f"{where} input")
    output_price = _parse_money(entry.get("output"), f"{where} output")
    assert input_price is not None and output_price is not None
    optional = {
        name: _parse_money(entry.get(name), f"{where} {name}", optional=True)
        for name in ("cached_input", "cache_write", "reasoning")
    }
    return Rates(input_price, output_price, **optional)


def _parse_tiers(value: Any, where: str) -> tuple[Tier, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PriceError(f'{where} tiers: expected a list of {{"above_prompt_tokens": N, ...}}')
    tiers: list[Tier] = []
    for j, entry in enumerate(value):
        at = f"{where} tiers[{j}]"
        if not isinstance(entry, dict):
            raise PriceError(f"{at}: expected an object")
        unknown = set(entry) - {"above_prompt_tokens", *_RATE_FIELDS}
        if unknown:
            raise PriceError(f"{at}: unknown field(s) {sorted(unknown)}")
        above = entry.get("above_prompt_tokens")
        if not isinstance(above, int) or isinstance(above, bool) or above < 0:
            raise PriceError(f"{at}: above_prompt_tokens must be a non-negative integer")
        tiers.append(Tier(above, _parse_rates(entry, at)))
    thresholds = [t.above_prompt_tokens for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        raise PriceError(f"{where} tiers: two tiers start above the same prompt_tokens")
    return tuple(sorted(tiers, key=lambda t: t.above_prompt_tokens))


_ROW_FIELDS = {
    "provider",
    "model",
    "pattern",
    "effective_from",
    "effective_to",
    "checked",
    "tiers",
    "service_tier",
    *_RATE_FIELDS,
}


def load_price_file(path: Traversable, *, source: str | None = None) -> list[PriceRow]:
    """Parse one price file (the shipped format); raise PriceError naming the bad entry."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PriceError(f"price file {path} not found (check AGENTSTREAM_PRICES_FILE)") from None
    except json.JSONDecodeError as exc:
        raise PriceError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("prices"), list):
        raise PriceError(f'{path}: expected an object with a "prices" list')
    if doc.get("currency", "USD") != "USD" or doc.get("unit", "per 1M tokens") != "per 1M tokens":
        raise PriceError(
            f'{path}: only "currency": "USD" and "unit": "per 1M tokens" are supported'
        )
    try:
        checked = date.fromisoformat(str(doc.get("checked")))
    except ValueError:
        raise PriceError(f'{path}: "checked" must be the date the prices were checked') from None
    rows: list[PriceRow] = []
    for i, entry in enumerate(doc["prices"]):
        where = f"{path} prices[{i}]"
        if not isinstance(entry, dict):
            raise PriceError(f"{where}: expected an object")
        unknown = set(entry) - _ROW_FIELDS
        if unknown:
            raise PriceError(f"{where}: unknown field(s) {sorted(unknown)}")
        model = entry.get("model")
        if not isinstance(model, str) or not model:
            raise PriceError(f"{where}: model must be a non-empty string")
        where = f"{where} ({model})"
        is_pattern = entry.get("pattern", False)
        if not isinstance(is_pattern, bool):
            raise PriceError(f"{where}: pattern must be true or false")
        if not is_pattern and _WILDCARDS & set(model):
            raise PriceError(f'{where}: model has glob characters; add "pattern": true')
        tier_name = entry.get("service_tier", DEFAULT_TIER)
        if not isinstance(tier_name, str) or not tier_name:
            raise PriceError(f"{where}: service_tier must be a non-empty string")
        if tier_name in _DEFAULT_TIER_NAMES and tier_name != DEFAULT_TIER:
            raise PriceError(f"{where}: service_tier {tier_name!r} is the default tier: omit it")
        start = _parse_time(entry.get("effective_from"), f"{where} effective_from")
        end_raw = entry.get("effective_to")
        end = None if end_raw is None else _parse_time(end_raw, f"{where} effective_to")
        if end is not None and end <= start:
            raise PriceError(f"{where}: effective_to must be after effective_from")
        rates = _parse_rates(entry, where)
        row_checked = entry.get("checked")
        rows.append(
            PriceRow(
                provider=str(entry.get("provider") or ""),
                model=model,
                is_pattern=is_pattern,
                effective_from=start,
                effective_to=end,
                input_per_mtok=rates.input,
                output_per_mtok=rates.output,
                cached_input_per_mtok=rates.cached_input,
                checked=date.fromisoformat(row_checked) if row_checked else checked,
                source=source or str(path),
                cache_write_per_mtok=rates.cache_write,
                reasoning_per_mtok=rates.reasoning,
                tiers=_parse_tiers(entry.get("tiers"), where),
                service_tier=tier_name,
            )
        )
    return rows


def merge_prices(base: list[PriceRow], overrides: list[PriceRow]) -> list[PriceRow]:
    """Overrides replace base rows with the same key; open ends are closed by the next row
    of the same model, pattern flag and service tier."""
    by_key = {row.key: row for row in base}
    seen: set[tuple[str, bool, str, datetime]] = set()
    for row in overrides:
        if row.key in seen:
            raise PriceError(f"{row.source}: {row.model} from {row.effective_from} listed twice")
        seen.add(row.key)
        by_key[row.key] = row
    merged: list[PriceRow] = []
    rows = sorted(by_key.values(), key=lambda r: r.key)
    for i, row in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if nxt is not None and nxt.key[:3] == row.key[:3]:
            if row.effective_to is None:
                row = replace(row, effective_to=nxt.effective_from)
            elif row.effective_to > nxt.effective_from:
                raise PriceError(
                    f"{row.model}: the price from {row.effective_from:%Y-%m-%d} "
                    f"({row.source}) runs to {row.effective_to:%Y-%m-%d}, past the start of "
                    f"the next one on {nxt.effective_from:%Y-%m-%d} ({nxt.source}); "
                    "fix effective_to so that periods do not overlap"
                )
        merged.append(row)
    return merged


def load_prices(override_file: Path | None = None) -> list[PriceRow]:
    """The shipped table, with the user's file (if any) merged over it."""
    shipped = load_price_file(SHIPPED_PRICES, source="shipped")
    user = load_price_file(override_file) if override_file is not None else []
    return merge_prices(shipped, user)


def service_tier_of(reported: str | None) -> str:
    """The price table's name for a call's reported service tier (None: not reported)."""
    if reported is None or reported in _DEFAULT_TIER_NAMES:
        return DEFAULT_TIER
    return reported


def resolve_model(
    model: str, prices: list[PriceRow], service_tier: str = DEFAULT_TIER
) -> list[Period]:
    """The winning price row of ``service_tier`` over time for ``model``; gaps are times it
    has none."""
    candidates = [row for row in prices if row.service_tier == service_tier and row.matches(model)]
    if not candidates:
        return []
    cuts = sorted(
        {row.effective_from for row in candidates}
        | {row.effective_to for row in candidates if row.effective_to is not None}
    )
    periods: list[Period] = []
    for i, start in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else None
        in_force = [row for row in candidates if row.in_force(start)]
        if not in_force:
            continue
        winner = min(in_force, key=PriceRow.specificity)
        last = periods[-1] if periods else None
        if last is not None and last.price == winner and last.valid_to == start:
            periods[-1] = Period(last.valid_from, end, winner)
        else:
            periods.append(Period(start, end, winner))
    return periods


def resolve_call(model: str, reported_tier: str | None, prices: list[PriceRow]) -> list[Period]:
    """The price periods of calls of ``model`` that reported ``reported_tier``: the tier's
    own rows where it has one in force, else the default tier's (``fallback``)."""
    tier = service_tier_of(reported_tier)
    default = resolve_model(model, prices)
    if tier == DEFAULT_TIER:
        return default
    own = resolve_model(model, prices, tier)
    cuts = sorted(
        {p.valid_from for p in own + default}
        | {p.valid_to for p in own + default if p.valid_to is not None}
    )
    periods: list[Period] = []
    for i, start in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else None
        found = next((p for p in own if _covers(p, start)), None)
        fallback = found is None
        if found is None:
            found = next((p for p in default if _covers(p, start)), None)
        if found is None:
            continue
        last = periods[-1] if periods else None
        if (
            last is not None
            and (last.price, last.fallback) == (found.price, fallback)
            and last.valid_to == start
        ):
            periods[-1] = Period(last.valid_from, end, found.price, fallback)
        else:
            periods.append(Period(start, end, found.price, fallback))
    return periods


def _covers(period: Period, t: datetime) -> bool:
    return period.valid_from <= t and (period.valid_to is None or t < period.valid_to)


def call_cost(prompt_tokens: int, response_tokens: int, price: PriceRow) -> Decimal:
    """The cost in USD of a call without usage details, at ``price``'s band for its prompt."""
    rates = price.rates_for(prompt_tokens)
    return (prompt_tokens * rates.input + response_tokens * rates.output) / _MILLION


def pico_rate(rate: Decimal) -> int:
    """USD per 1M tokens as picodollars per token (exact: rates have at most 6 decimals)."""
    return int(rate * _PICO_PER_MTOK)


@dataclass(frozen=True)
class CallCost:
    """One call's cost in picodollars, split as providers bill it. ``output_pico`` includes
    ``reasoning_pico`` (reasoning is part of the response); the total is input + cached
    input + cache write + output."""

    input_pico: int
    cached_input_pico: int
    cache_write_pico: int
    output_pico: int
    reasoning_pico: int
    tier_fallback: bool  # priced at the default tier's row: the call's tier has none
    cache_unpriced: bool  # cache tokens priced at the input rate: the row has no cache price

    @property
    def total_pico(self) -> int:
        return self.input_pico + self.cached_input_pico + self.cache_write_pico + self.output_pico

    @property
    def usd(self) -> Decimal:
        return Decimal(self.total_pico) / _PICO


def price_call(
    prices: list[PriceRow],
    model: str,
    at: datetime,
    prompt_tokens: int,
    response_tokens: int,
    *,
    service_tier: str | None = None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    periods: list[Period] | None = None,
) -> CallCost | None:
    """The cost of one call from its counts, model, service tier, time and details, exactly
    as the rollup's SQL computes it; None when the model is unpriced at ``at``.
    ``periods``: ``resolve_call(model, service_tier, prices)``, when the caller keeps it."""
    if periods is None:
        periods = resolve_call(model, service_tier, prices)
    period = next((p for p in periods if _covers(p, at)), None)
    if period is None:
        return None
    rates = period.price.rates_for(prompt_tokens)
    read, write, thinking = cache_read_tokens or 0, cache_write_tokens or 0, reasoning_tokens or 0
    input_rate = pico_rate(rates.input)
    output_rate = pico_rate(rates.output)
    read_rate = input_rate if rates.cached_input is None else pico_rate(rates.cached_input)
    write_rate = input_rate if rates.cache_write is None else pico_rate(rates.cache_write)
    thinking_rate = output_rate if rates.reasoning is None else pico_rate(rates.reasoning)
    return CallCost(
        input_pico=(prompt_tokens - read - write) * input_rate,
        cached_input_pico=read * read_rate,
        cache_write_pico=write * write_rate,
        output_pico=(response_tokens - thinking) * output_rate + thinking * thinking_rate,
        reasoning_pico=thinking * thinking_rate,
        tier_fallback=period.fallback,
        cache_unpriced=(read > 0 and rates.cached_input is None)
        or (write > 0 and rates.cache_write is None),
    )


def _canon_rates(rates: Rates) -> list[str]:
    return [
        "" if value is None else str(value.normalize())
        for value in (
            rates.input,
            rates.output,
            rates.cached_input,
            rates.cache_write,
            rates.reasoning,
        )
    ]


def fingerprint(prices: list[PriceRow]) -> str:
    """A digest of the table: when it changes, every stored cost must be recomputed."""
    canon = sorted(
        [
            r.model,
            r.is_pattern,
            r.service_tier,
            r.effective_from.isoformat(),
            r.effective_to.isoformat() if r.effective_to else "",
            [[low, _canon_rates(rates)] for low, _, rates in r.bands()],
        ]
        for r in prices
    )
    return hashlib.sha256(json.dumps(canon).encode()).hexdigest()
