"""Price table: shipped file, overrides, precedence of exact over pattern, effective dates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agentstream.analytics.prices import (
    SHIPPED_PRICES,
    PriceError,
    call_cost,
    load_price_file,
    load_prices,
    resolve_model,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def price_at(model: str, when: str, override: Path | None = None) -> tuple[Decimal, Decimal]:
    for p in resolve_model(model, load_prices(override)):
        t = at(when)
        if p.valid_from <= t and (p.valid_to is None or t < p.valid_to):
            return p.price.input_per_mtok, p.price.output_per_mtok
    raise LookupError(model)


def write(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"checked": "2026-01-01", "prices": rows}))
    return path


def test_shipped_file_has_checked_date_and_major_providers() -> None:
    doc = json.loads(SHIPPED_PRICES.read_text())
    assert doc["checked"]
    providers = {row.provider for row in load_price_file(SHIPPED_PRICES)}
    assert {"openai", "anthropic", "google", "mistral", "deepseek"} <= providers


def test_price_change_is_effective_dated() -> None:
    assert price_at("gpt-4o", "2024-10-01T23:59:59") == (Decimal("5.00"), Decimal("15.00"))
    assert price_at("gpt-4o", "2024-10-02T00:00:00") == (Decimal("2.50"), Decimal("10.00"))


def test_exact_beats_pattern_and_longer_pattern_beats_shorter(tmp_path: Path) -> None:
    override = write(
        tmp_path,
        [
            {
                "model": "acme-*",
                "pattern": True,
                "effective_from": "2024-01-01",
                "input": "1",
                "output": "2",
            },
            {
                "model": "acme-large-*",
                "pattern": True,
                "effective_from": "2024-01-01",
                "input": "3",
                "output": "4",
            },
            {"model": "acme-large-v2", "effective_from": "2024-06-01", "input": "5", "output": "6"},
        ],
    )
    assert price_at("acme-small", "2025-01-01", override) == (Decimal(1), Decimal(2))
    assert price_at("acme-large-v1", "2025-01-01", override) == (Decimal(3), Decimal(4))
    assert price_at("acme-large-v2", "2025-01-01", override) == (Decimal(5), Decimal(6))
    # Before the exact row starts, the pattern is what is in force.
    assert price_at("acme-large-v2", "2024-02-01", override) == (Decimal(3), Decimal(4))


def test_unknown_model_has_no_price() -> None:
    assert resolve_model("in-house-llm-7b", load_prices()) == []


def test_override_replaces_same_row_and_closes_open_end(tmp_path: Path) -> None:
    override = write(
        tmp_path,
        [
            {
                "model": "gpt-4o-mini",
                "effective_from": "2024-07-18",
                "input": "0.20",
                "output": "0.80",
            },
            {
                "model": "gpt-4o-mini",
                "effective_from": "2026-01-01",
                "input": "0.10",
                "output": "0.40",
            },
        ],
    )
    assert price_at("gpt-4o-mini", "2025-01-01", override) == (Decimal("0.20"), Decimal("0.80"))
    assert price_at("gpt-4o-mini", "2026-02-01", override) == (Decimal("0.10"), Decimal("0.40"))


def test_overlapping_periods_are_refused(tmp_path: Path) -> None:
    override = write(
        tmp_path,
        [
            {
                "model": "x",
                "effective_from": "2024-01-01",
                "effective_to": "2024-06-01",
                "input": "1",
                "output": "1",
            },
            {"model": "x", "effective_from": "2024-03-01", "input": "2", "output": "2"},
        ],
    )
    with pytest.raises(PriceError, match="overlap"):
        load_prices(override)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"model": "x", "effective_from": "2024-01-01", "input": 1.5, "output": "1"}, "strings"),
        ({"model": "x*", "effective_from": "2024-01-01", "input": "1", "output": "1"}, "pattern"),
        ({"model": "x", "effective_from": "soon", "input": "1", "output": "1"}, "not a date"),
        ({"model": "x", "effective_from": "2024-01-01", "input": "-1", "output": "1"}, "negative"),
    ],
)
def test_bad_entries_are_named(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    with pytest.raises(PriceError, match=message) as err:
        load_prices(write(tmp_path, [entry]))
    assert "prices[0]" in str(err.value)


def test_call_cost_is_exact() -> None:
    (period,) = [p for p in resolve_model("gpt-4o", load_prices()) if p.valid_to is None]
    assert call_cost(2000, 1000, period.price) == Decimal("0.015")
