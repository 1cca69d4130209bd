"""Costs as providers bill them: every rule against a cost computed by hand to the
picodollar, the regressions of other tools' cost bugs, and the SQL of the rollup against the
Python function that costs one call (analytics/prices.py ``price_call``)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentstream.analytics.prices import (
    CallCost,
    PriceError,
    call_cost,
    load_prices,
    price_call,
    resolve_model,
)
from agentstream.analytics.rollup import run_rollup
from agentstream.producers.records import LLMCallState, RecordBuilder
from agentstream.sinks.postgres import PostgresSink
from tests.analytics_data import add_agent, add_call, add_session
from tests.sink_records import items, session
from tests.test_analytics_rollup import snapshot

T = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
M = 1_000_000  # picodollars per token of a rate of $1 per 1M tokens

# Rates chosen so that every part of a cost is told apart: per 1M tokens.
PRICES: list[dict[str, Any]] = [
    {
        "model": "acme-*",
        "pattern": True,
        "effective_from": "2026-01-01",
        "input": "2.00",
        "output": "8.00",
        "cached_input": "0.20",
        "cache_write": "2.50",
        "tiers": [
            {
                "above_prompt_tokens": 1000,
                "input": "4.00",
                "output": "12.00",
                "cached_input": "0.40",
                "cache_write": "5.00",
            }
        ],
    },
    {
        "model": "acme-*",
        "pattern": True,
        "service_tier": "batch",
        "effective_from": "2026-01-01",
        "input": "1.00",
        "output": "4.00",
        "cached_input": "0.10",
        "cache_write": "1.25",
    },
    {
        "model": "acme-*",
        "pattern": True,
        "service_tier": "priority",
        "effective_from": "2026-01-01",
        "input": "3.50",
        "output": "14.00",
        "cached_input": "0.35",
        "cache_write": "3.50",
    },
    {"model": "nocache", "effective_from": "2026-01-01", "input": "1.00", "output": "2.00"},
    {
        "model": "thinker",
        "effective_from": "2026-01-01",
        "input": "1.00",
        "output": "4.00",
        "reasoning": "5.00",
    },
]


@pytest.fixture
def price_file(tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"checked": "2026-06-01", "prices": PRICES}))
    return path


def cost(price_file: Path, model: str, prompt: int, response: int, **details: Any) -> CallCost:
    found = price_call(load_prices(price_file), model, T, prompt, response, **details)
    assert found is not None
    return found


def parts(c: CallCost) -> tuple[int, int, int, int, int]:
    return (c.input_pico, c.cached_input_pico, c.cache_write_pico, c.output_pico, c.total_pico)


def test_a_cache_read_is_billed_at_the_cached_rate_and_only_once(price_file: Path) -> None:
    c = cost(price_file, "acme-1", 1000, 100, cache_read_tokens=600)
    # 400 uncached x $2 + 600 cached x $0.20 + 100 x $8 (per 1M)
    assert parts(c) == (400 * 2 * M, 600 * M // 5, 0, 100 * 8 * M, 1_720_000_000)
    assert c.usd == Decimal("0.00172") and not c.cache_unpriced


def test_cached_tokens_are_not_subtracted_twice(price_file: Path) -> None:
    # litellm#6215: the cached tokens were taken off the prompt once by the provider's count
    # and again by the cost. Here prompt_tokens includes them (OpenTelemetry's meaning), so
    # the uncached part is prompt - cached, and all 1000 prompt tokens are billed once.
    c = cost(price_file, "acme-1", 1000, 0, cache_read_tokens=600)
    billed_tokens = c.input_pico // (2 * M) + c.cached_input_pico * 5 // M
    assert billed_tokens == 1000
    assert c.total_pico == 800_000_000 + 120_000_000
    assert c.total_pico != (1000 - 2 * 600) * 2 * M + 600 * M // 5  # twice subtracted
    assert c.total_pico != 1000 * 2 * M + 600 * M // 5  # not subtracted at all


def test_a_cache_write_is_billed_at_the_write_rate(price_file: Path) -> None:
    c = cost(price_file, "acme-1", 1000, 0, cache_write_tokens=400)
    assert parts(c) == (600 * 2 * M, 0, 400 * 5 * M // 2, 0, 2_200_000_000)


def test_reasoning_tokens_are_output_at_the_reasoning_rate(price_file: Path) -> None:
    c = cost(price_file, "thinker", 100, 50, reasoning_tokens=30)
    assert (c.output_pico, c.reasoning_pico, c.total_pico) == (
        20 * 4 * M + 30 * 5 * M,
        150_000_000,
        100 * M + 230_000_000,
    )
    # No reasoning rate in the row: the output rate, and the output costs the same.
    c = cost(price_file, "acme-1", 100, 100, reasoning_tokens=40)
    assert (c.output_pico, c.reasoning_pico) == (800_000_000, 320_000_000)
    assert c.total_pico == cost(price_file, "acme-1", 100, 100).total_pico


def test_a_prompt_at_the_threshold_is_the_base_rate_and_one_past_it_the_tier(
    price_file: Path,
) -> None:
    at_threshold = cost(price_file, "acme-1", 1000, 10)
    assert at_threshold.total_pico == 1000 * 2 * M + 10 * 8 * M == 2_080_000_000
    past = cost(price_file, "acme-1", 1001, 10)
    assert past.total_pico == 1001 * 4 * M + 10 * 12 * M == 4_124_000_000


def test_a_tier_applies_to_the_whole_request(price_file: Path) -> None:
    # langfuse#8482: only the tokens past 200k were priced higher (or none were). Every
    # token of a request past the threshold, cached, written and output ones included, is
    # priced at the tier.
    c = cost(price_file, "acme-1", 5000, 100, cache_read_tokens=3000, cache_write_tokens=1000)
    assert parts(c) == (
        1000 * 4 * M,
        3000 * 2 * M // 5,
        1000 * 5 * M,
        100 * 12 * M,
        4_000_000_000 + 1_200_000_000 + 5_000_000_000 + 1_200_000_000,
    )


@pytest.mark.parametrize(
    ("tier", "expected", "fallback"),
    [
        (None, 50 * 2 * M + 50 * M // 5 + 10 * 8 * M, False),
        ("default", 50 * 2 * M + 50 * M // 5 + 10 * 8 * M, False),
        ("standard", 50 * 2 * M + 50 * M // 5 + 10 * 8 * M, False),  # Anthropic's name
        ("batch", 50 * M + 50 * M // 10 + 10 * 4 * M, False),
        ("priority", 50 * 7 * M // 2 + 50 * 35 * M // 100 + 10 * 14 * M, False),
        # No flex row: the default tier's rates, flagged.
        ("flex", 50 * 2 * M + 50 * M // 5 + 10 * 8 * M, True),
    ],
)
def test_each_service_tier(
    price_file: Path, tier: str | None, expected: int, fallback: bool
) -> None:
    c = cost(price_file, "acme-1", 100, 10, cache_read_tokens=50, service_tier=tier)
    assert (c.total_pico, c.tier_fallback) == (expected, fallback)


def test_a_row_without_cache_prices_bills_cache_tokens_as_input_and_flags_it(
    price_file: Path,
) -> None:
    c = cost(price_file, "nocache", 100, 10, cache_read_tokens=60)
    assert parts(c) == (40 * M, 60 * M, 0, 20 * M, 120_000_000) and c.cache_unpriced
    c = cost(price_file, "nocache", 100, 10, cache_write_tokens=60)
    assert c.total_pico == 120_000_000 and c.cache_unpriced
    assert not cost(price_file, "nocache", 100, 10).cache_unpriced


def test_unpriced_model_or_time_is_none_never_zero(price_file: Path) -> None:
    prices = load_prices(price_file)
    assert price_call(prices, "in-house-llm-7b", T, 10, 10) is None
    assert price_call(prices, "acme-1", datetime(2025, 1, 1, tzinfo=UTC), 10, 10) is None


def test_without_details_a_call_costs_what_it_cost_before() -> None:
    # The formula before usage details: prompt x input + response x output, at the row in
    # force (prompts under any tier threshold), for every shipped default-tier row.
    prices = load_prices()
    rng = random.Random(3)
    checked = 0
    for row in prices:
        if row.service_tier != "default" or row.is_pattern:
            continue
        for period in resolve_model(row.model, prices):
            prompt, response = rng.randrange(0, 150_000), rng.randrange(0, 20_000)
            c = price_call(prices, row.model, period.valid_from, prompt, response)
            assert c is not None
            old = (
                prompt * period.price.input_per_mtok + response * period.price.output_per_mtok
            ) / 1_000_000
            assert c.usd == old == call_cost(prompt, response, period.price)
            checked += 1
    assert checked > 10


def test_tier_rows_and_tiers_are_validated(tmp_path: Path) -> None:
    bad = [
        {"model": "x", "effective_from": "2026-01-01", "input": "1", "output": "1",
         "tiers": [{"above_prompt_tokens": -1, "input": "1", "output": "1"}]},
        {"model": "x", "effective_from": "2026-01-01", "input": "1.0000001", "output": "1"},
        {"model": "x", "service_tier": "standard", "effective_from": "2026-01-01",
         "input": "1", "output": "1"},
    ]  # fmt: skip
    for entry, message in zip(bad, ("non-negative", "6 decimals", "default tier"), strict=True):
        path = tmp_path / "p.json"
        path.write_text(json.dumps({"checked": "2026-01-01", "prices": [entry]}))
        with pytest.raises(PriceError, match=message):
            load_prices(path)


def test_shipped_table_encodes_the_providers_rules() -> None:
    prices = load_prices()
    t = datetime(2026, 12, 1, tzinfo=UTC)

    def rate(model: str, tier: str | None = None, prompt: int = 1000) -> CallCost:
        found = price_call(prices, model, t, prompt, 0, service_tier=tier, cache_read_tokens=0)
        assert found is not None, model
        return found

    sonnet = next(p.price for p in resolve_model("claude-sonnet-4-5", prices) if p.valid_to is None)
    # Anthropic: 5-minute cache writes 1.25x input, reads 0.1x.
    assert sonnet.cache_write_per_mtok == sonnet.input_per_mtok * Decimal("1.25")
    assert sonnet.cached_input_per_mtok == sonnet.input_per_mtok / 10
    # Gemini 2.5 Pro past 200k: the whole request at the higher rates.
    assert rate("gemini-2.5-pro", prompt=200_001).input_pico == 200_001 * 5 * M // 2
    assert rate("gemini-2.5-pro", prompt=200_000).input_pico == 200_000 * 5 * M // 4
    # Batch: half price.
    assert rate("gpt-5", "batch").total_pico * 2 == rate("gpt-5").total_pico
    assert rate("claude-haiku-4-5", "batch").total_pico * 2 == rate("claude-haiku-4-5").total_pico
    assert not rate("gpt-5", "priority").tier_fallback
    assert rate("gpt-5", "priority").total_pico == 2 * rate("gpt-5").total_pico


# --- the rollup's SQL ----------------------------------------------------------------------


def fact_costs(conninfo: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT id, cost_pico, cached_cost_pico, cache_write_cost_pico, output_cost_pico,"
            " reasoning_cost_pico, price_flags FROM analytics.llm_facts"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def expected_fact(c: CallCost | None) -> tuple[Any, ...]:
    if c is None:
        return (None,) * 6

    def stored(value: int) -> int | None:
        return value or None

    flags = (1 if c.tier_fallback else 0) | (2 if c.cache_unpriced else 0)
    return (
        c.total_pico,
        stored(c.cached_input_pico),
        stored(c.cache_write_pico),
        c.output_pico,
        stored(c.reasoning_pico),
        flags or None,
    )


def random_details(rng: random.Random, prompt: int, response: int) -> dict[str, Any] | None:
    if rng.random() < 0.3:
        return None
    read = rng.randrange(0, prompt + 1) if rng.random() < 0.6 else 0
    details: dict[str, Any] = {
        "cache_read_tokens": read,
        "cache_write_tokens": rng.randrange(0, prompt - read + 1) if rng.random() < 0.3 else 0,
        "reasoning_tokens": rng.randrange(0, response + 1) if rng.random() < 0.4 else None,
        "time_to_first_token_ms": rng.randrange(50, 900) if rng.random() < 0.5 else None,
        "service_tier": rng.choice([None, "default", "standard", "batch", "priority", "flex"]),
    }
    return {k: v for k, v in details.items() if v is not None}


@pytest.mark.integration
def test_sql_costs_equal_python_costs_on_generated_calls(database: str, price_file: Path) -> None:
    rng = random.Random(14)
    models = ["acme-1", "acme-2", "nocache", "thinker", "in-house-llm-7b"]
    calls: dict[uuid.UUID, tuple[Any, ...]] = {}
    with psycopg.connect(database) as conn:
        sid = add_session(conn, "u", T)
        aid = add_agent(conn, sid, "coder", T)
        for _ in range(400):
            model = rng.choice(models)
            prompt = rng.choice([rng.randrange(0, 3000), 1000, 1001])
            response = rng.randrange(0, 500)
            details = random_details(rng, prompt, response)
            at = T + timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
            lid = add_call(
                conn, sid, aid, model, at, prompt_tokens=prompt, response_tokens=response,
                details=details,
            )  # fmt: skip
            calls[lid] = (model, at, prompt, response, details or {})
    result = run_rollup(database, prices_file=price_file)
    assert result.unpriced_models == ["in-house-llm-7b"]

    prices = load_prices(price_file)

    def python_cost(model: str, at: datetime, prompt: int, response: int, d: Any) -> Any:
        return price_call(prices, model, at, prompt, response, **_detail_args(d))

    stored = fact_costs(database)
    assert stored == {lid: expected_fact(python_cost(*call)) for lid, call in calls.items()}
    flags = {row[5] for row in stored.values()}
    assert {1, 2} <= flags  # both flags were exercised

    # The rollup sums the parts; input is what the total leaves.
    with psycopg.connect(database) as conn:
        day = conn.execute(
            "SELECT sum(cost), sum(input_cost), sum(cached_input_cost), sum(cache_write_cost),"
            " sum(output_cost), sum(reasoning_cost), sum(tier_fallback_calls),"
            " sum(cache_unpriced_calls), sum(cache_read_tokens), sum(prompt_tokens)"
            " FROM analytics.llm_rollup WHERE granularity = 'day' AND dimension = 'all'"
        ).fetchone()
    assert day is not None
    costs = [c for c in (python_cost(*call) for call in calls.values()) if c is not None]
    pico = Decimal(10**12)
    assert day[:6] == (
        sum(c.total_pico for c in costs) / pico,
        sum(c.input_pico for c in costs) / pico,
        sum(c.cached_input_pico for c in costs) / pico,
        sum(c.cache_write_pico for c in costs) / pico,
        sum(c.output_pico for c in costs) / pico,
        sum(c.reasoning_pico for c in costs) / pico,
    )
    assert day[6:8] == (
        sum(c.tier_fallback for c in costs),
        sum(c.cache_unpriced for c in costs),
    )
    assert day[8] == sum(call[4].get("cache_read_tokens", 0) for call in calls.values())


def _detail_args(details: dict[str, Any]) -> dict[str, Any]:
    names = ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "service_tier")
    return {k: details[k] for k in names if k in details}


@pytest.mark.integration
def test_incremental_rollup_with_details_equals_full_rebuild_and_recost(
    database: str, price_file: Path, tmp_path: Path
) -> None:
    rng = random.Random(8)
    models = ["acme-1", "nocache", "thinker"]

    def add(conn: psycopg.Connection[Any], sid: uuid.UUID, n: int, hours: int) -> None:
        for _ in range(n):
            prompt, response = rng.randrange(0, 2500), rng.randrange(0, 400)
            at = T + timedelta(minutes=rng.randrange(hours * 60))
            add_call(
                conn, sid, None, rng.choice(models), at, prompt_tokens=prompt,
                response_tokens=response, latency_ms=rng.randint(900, 3000),
                details=random_details(rng, prompt, response),
            )  # fmt: skip

    with psycopg.connect(database) as conn:
        sid = add_session(conn, "u", T)
        add(conn, sid, 150, 48)
    assert run_rollup(database, prices_file=price_file).full
    with psycopg.connect(database) as conn:
        add(conn, sid, 60, 72)
    assert not run_rollup(database, prices_file=price_file).full
    incremental = rollup_snapshot(database)
    run_rollup(database, full=True, prices_file=price_file)
    assert rollup_snapshot(database) == incremental
    with psycopg.connect(database) as conn:
        ttft = conn.execute(
            "SELECT ttft_p50, ttft_p95, ttft_p99 FROM analytics.llm_rollup"
            " WHERE granularity = 'day' AND dimension = 'model' AND key = 'acme-1' LIMIT 1"
        ).fetchone()
    assert ttft is not None and ttft[0] is not None and ttft[0] <= ttft[1] <= ttft[2]

    # A change of a cache price re-costs (the flagged cache-less model gains one) as a
    # full rebuild would.
    changed = tmp_path / "changed.json"
    rows = [dict(r) for r in PRICES]
    rows[3] = {**rows[3], "cached_input": "0.10", "cache_write": "1.50"}
    changed.write_text(json.dumps({"checked": "2026-06-02", "prices": rows}))
    recost = run_rollup(database, prices_file=changed)
    assert recost.reason == "prices changed: 1 model(s) re-costed"
    recosted = rollup_snapshot(database)
    run_rollup(database, full=True, prices_file=changed)
    assert rollup_snapshot(database) == recosted != incremental


def rollup_snapshot(conninfo: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rollup tables and the LLM facts (their costs and details included)."""
    with psycopg.connect(conninfo) as conn:
        facts = conn.execute("SELECT * FROM analytics.llm_facts ORDER BY hour, id").fetchall()
    return snapshot(conninfo) | {"facts": facts}


@pytest.mark.integration
def test_a_streamed_call_keeps_its_cache_details(database: str, price_file: Path) -> None:
    # langfuse#13811: a streamed call's usage arrived in the last chunk and its cached tokens
    # were dropped, so the whole prompt was billed as uncached input (up to 3x). Here the
    # SDK's streamed call (first_token, then the usage) goes through the sink to the rollup.
    clock = iter([100.0, 100.2, 101.0]).__next__
    sid = uuid.uuid4()
    call = LLMCallState(
        RecordBuilder(), session_id=sid, agent_id=None, model="acme-1", prompt="p",
        provider="acme", monotonic=clock,
    )  # fmt: skip
    call.first_token()
    call.record_response(
        "streamed answer", prompt_tokens=900, response_tokens=40, cache_read_tokens=800
    )
    record = call.finish()
    sink = PostgresSink(database)
    try:
        sink.write(items("sessions", [session(sid)]))
        sink.write(items("llm_interactions", [record]))
    finally:
        sink.close()
    run_rollup(database, prices_file=price_file)
    assert record.id is not None
    with psycopg.connect(database) as conn:
        row = conn.execute(
            "SELECT cost_pico, cached_cost_pico, cache_read_tokens, ttft_ms"
            " FROM analytics.llm_facts WHERE id = %s",
            (record.id,),
        ).fetchone()
    expected = 100 * 2 * M + 800 * M // 5 + 40 * 8 * M
    assert row == (expected, 800 * M // 5, 800, 200)
    assert expected < (900 * 2 * M + 40 * 8 * M) / 2  # what dropping the details would bill


@pytest.mark.integration
def test_migration_0011_makes_the_next_rollup_cost_the_details_in_full(
    services: Any, tmp_path: Path
) -> None:
    # Facts costed before 0011 ignored the details: the migration clears the resolved prices
    # and the fingerprint, so the next run is a full rebuild that costs them.
    from agentstream.migrations import apply_migrations
    from tests.test_analytics_rollup import migrated_before

    with migrated_before(services, tmp_path, "0011") as conninfo:
        with psycopg.connect(conninfo) as conn:
            s = add_session(conn, "kim", T)
            lid = add_call(conn, s, None, "gpt-4o", T, prompt_tokens=1000, response_tokens=0,
                           details={"cache_read_tokens": 800})  # fmt: skip
            conn.execute(  # what a run before 0011 left: costed without the details
                """INSERT INTO analytics.llm_facts SELECT id, created_at, created_at, model,
                   agent_id, NULL, NULL, session_id, 1000, 0, 1, true, 2500000000
                   FROM llm_interactions WHERE id = %s""",
                (lid,),
            )
            conn.execute("INSERT INTO analytics.resolved_models VALUES ('gpt-4o')")
            conn.execute(
                "UPDATE analytics.rollup_state SET prices_fingerprint = 'old',"
                " full_rebuild_at = now(), watermark = 1"
            )
        apply_migrations(conninfo)
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT count(*) FROM analytics.resolved_models").fetchone() == (0,)
        result = run_rollup(conninfo)
        assert result.full and result.reason == "first run"
        assert fact_costs(conninfo)[lid][0] == 200 * 5 * M // 2 + 800 * 5 * M // 4
