"""The load generator's traffic (producers/loadgen.py), without Kafka: valid, coherent, seeded."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

import pytest

from agentstream.contract import (
    EXECUTION_STATUS_RANK,
    AgentExecution,
    Event,
    LLMInteraction,
    Record,
    Session,
    decode,
    encode_record,
)
from agentstream.producers.loadgen import LoadOptions, TrafficGenerator

START = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def generate(seed: int, sessions: int, **kw: object) -> list[Record]:
    gen = TrafficGenerator(seed=seed, start=START, **kw)  # type: ignore[arg-type]
    return list(gen.records(lambda started: started < sessions))


def entity_of(record: Record) -> str:
    from agentstream.producers.client import _ENTITY_OF

    return _ENTITY_OF[type(record)]


def test_same_seed_and_start_give_byte_identical_records() -> None:
    a = [encode_record(r) for r in generate(7, 20)]
    b = [encode_record(r) for r in generate(7, 20)]
    c = [encode_record(r) for r in generate(8, 20)]
    assert a == b
    assert a != c


def test_every_record_passes_the_consumer_side_decoder() -> None:
    for record in generate(1, 30):
        decoded = decode(entity_of(record), encode_record(record))
        assert decoded.invalid == [], decoded.invalid


def test_sessions_are_coherent_stories() -> None:
    records = generate(3, 40)
    sessions = {r.id for r in records if isinstance(r, Session)}
    assert len(sessions) == 40
    seen_session: set[object] = set()
    executions: dict[object, list[str]] = defaultdict(list)
    traces: dict[object, object] = {}
    for r in records:
        if isinstance(r, Session):
            seen_session.add(r.id)
            continue
        session_id = r.session_id  # type: ignore[attr-defined]
        assert session_id in seen_session, "a child came before its session"
        if isinstance(r, AgentExecution):
            executions[r.id].append(r.status)
        if isinstance(r, Event):
            traces.setdefault(r.trace_id, r.session_id)
            assert traces[r.trace_id] == r.session_id
    for statuses in executions.values():
        ranks = [EXECUTION_STATUS_RANK[s] for s in statuses]
        assert ranks == sorted(ranks) and statuses[0] == "pending"
        assert statuses[-1] in ("completed", "failed")


def test_llm_traffic_is_plausible() -> None:
    calls = [r for r in generate(11, 300, error_rate=0.03) if isinstance(r, LLMInteraction)]
    assert len(calls) > 500
    models = Counter(c.model for c in calls)
    assert len(models) == 6
    errors = sum(not c.success for c in calls) / len(calls)
    assert 0.005 < errors < 0.08
    ok = [c for c in calls if c.success]
    assert all(c.prompt_tokens > 0 and c.response_tokens > 0 and c.latency_ms > 0 for c in ok)
    assert all(c.error_message and c.response_tokens == 0 for c in calls if not c.success)
    # Latency grows with the response: the longest responses are slower on average.
    ok.sort(key=lambda c: c.response_tokens)
    short, long = ok[: len(ok) // 4], ok[-len(ok) // 4 :]
    assert sum(c.latency_ms for c in long) / len(long) > 2 * sum(c.latency_ms for c in short) / len(
        short
    )


def test_models_option_is_respected() -> None:
    calls = [r for r in generate(5, 20, models=["m-1"]) if isinstance(r, LLMInteraction)]
    assert {c.model for c in calls} == {"m-1"}


def test_options_need_a_bound_and_sane_values() -> None:
    with pytest.raises(ValueError, match="bound"):
        LoadOptions()
    with pytest.raises(ValueError, match="error rate"):
        LoadOptions(sessions=1, error_rate=2)
    with pytest.raises(ValueError, match="rate"):
        LoadOptions(sessions=1, rate=0)


def test_default_models_are_priced_except_the_self_hosted_one() -> None:
    from agentstream.analytics.prices import load_prices, resolve_model
    from agentstream.cli.produce_cmd import MODELS_HELP
    from agentstream.producers.loadgen import DEFAULT_MODELS

    prices = load_prices()
    unpriced = {m for m in DEFAULT_MODELS if not resolve_model(m, prices)}
    assert unpriced == {"llama-3.1-70b-selfhosted"}  # the demo shows how it is flagged
    assert all(m in MODELS_HELP for m in DEFAULT_MODELS)


def test_session_gap_spreads_sessions_over_simulated_time() -> None:
    def span_hours(gap: float) -> float:
        gen = TrafficGenerator(seed=3, start=START, session_gap_s=gap)
        records = gen.records(lambda n: n < 200)
        starts = [r.created_at for r in records if isinstance(r, Session) and r.created_at]
        return (max(starts) - min(starts)).total_seconds() / 3600

    # 200 sessions ~2 s apart: minutes; ~60 s apart: about 200 minutes (Poisson: roughly).
    assert span_hours(2.0) < 0.25
    assert 2.0 < span_hours(60.0) < 5.0
    with pytest.raises(ValueError, match="session gap"):
        LoadOptions(sessions=1, session_gap_s=0)
