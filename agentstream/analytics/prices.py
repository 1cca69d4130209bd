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

Money is ``Decimal`` here and ``numeric`` in PostgreSQL; cost is
``(prompt_tokens * input + response_tokens * output) / 1_000_000``. Cached-input prices are
kept in the table for reference: the seed schema records no cached-token count, so no
call is costed with them.
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
    "SHIPPED_PRICES",
    "Period",
    "PriceError",
    "PriceRow",
    "call_cost",
    "fingerprint",
    "load_price_file",
    "load_prices",
    "merge_prices",
    "resolve_model",
]

# Shipped inside the package; importlib.resources finds it in a wheel as in a checkout.
SHIPPED_PRICES: Traversable = files("agentstream.analytics") / "data" / "prices.json"
_MILLION = Decimal(1_000_000)
_WILDCARDS = set("*?[]")


class PriceError(ValueError):
    """A price file is malformed or contradicts itself; the message says where."""


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

    @property
    def key(self) -> tuple[str, bool, datetime]:
        return (self.model, self.is_pattern, self.effective_from)

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
    """Where one price row is the one in force for a model: ``valid_from <= t < valid_to``."""

    valid_from: datetime
    valid_to: datetime | None
    price: PriceRow


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
    return amount


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
        unknown = set(entry) - {
            "provider",
            "model",
            "pattern",
            "effective_from",
            "effective_to",
            "input",
            "output",
            "cached_input",
            "checked",
        }
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
        start = _parse_time(entry.get("effective_from"), f"{where} effective_from")
        end_raw = entry.get("effective_to")
        end = None if end_raw is None else _parse_time(end_raw, f"{where} effective_to")
        if end is not None and end <= start:
            raise PriceError(f"{where}: effective_to must be after effective_from")
        input_price = _parse_money(entry.get("input"), f"{where} input")
        output_price = _parse_money(entry.get("output"), f"{where} output")
        assert input_price is not None and output_price is not None
        row_checked = entry.get("checked")
        rows.append(
            PriceRow(
                provider=str(entry.get("provider") or ""),
                model=model,
                is_pattern=is_pattern,
                effective_from=start,
                effective_to=end,
                input_per_mtok=input_price,
                output_per_mtok=output_price,
                cached_input_per_mtok=_parse_money(
                    entry.get("cached_input"), f"{where} cached_input", optional=True
                ),
                checked=date.fromisoformat(row_checked) if row_checked else checked,
                source=source or str(path),
            )
        )
    return rows


def merge_prices(base: list[PriceRow], overrides: list[PriceRow]) -> list[PriceRow]:
    """Overrides replace base rows with the same key; open ends are closed by the next row."""
    by_key = {row.key: row for row in base}
    seen: set[tuple[str, bool, datetime]] = set()
    for row in overrides:
        if row.key in seen:
            raise PriceError(f"{row.source}: {row.model} from {row.effective_from} listed twice")
        seen.add(row.key)
        by_key[row.key] = row
    merged: list[PriceRow] = []
    rows = sorted(by_key.values(), key=lambda r: (r.model, r.is_pattern, r.effective_from))
    for i, row in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if nxt is not None and (nxt.model, nxt.is_pattern) == (row.model, row.is_pattern):
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


def resolve_model(model: str, prices: list[PriceRow]) -> list[Period]:
    """The winning price row over time for ``model``; gaps are times it is unpriced."""
    candidates = [row for row in prices if row.matches(model)]
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


def call_cost(prompt_tokens: int, response_tokens: int, price: PriceRow) -> Decimal:
    """The cost of one call in USD, exact (the same formula the SQL uses)."""
    return (
        prompt_tokens * price.input_per_mtok + response_tokens * price.output_per_mtok
    ) / _MILLION


def fingerprint(prices: list[PriceRow]) -> str:
    """A digest of the table: when it changes, every stored cost must be recomputed."""
    canon = sorted(
        (
            r.model,
            r.is_pattern,
            r.effective_from.isoformat(),
            r.effective_to.isoformat() if r.effective_to else "",
            str(r.input_per_mtok.normalize()),
            str(r.output_per_mtok.normalize()),
        )
        for r in prices
    )
    return hashlib.sha256(json.dumps(canon).encode()).hexdigest()
