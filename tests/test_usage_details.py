"""An LLM call's usage details (cache, reasoning, TTFT, provider, tier, finish reason): the
contract's rules, the SDK's way of reporting them, and their table beside llm_interactions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agentstream.contract.codec import decode, encode_batch, encode_record
from agentstream.contract.deadletter import DeadLetter
from agentstream.contract.entities import LLMInteraction
from agentstream.contract.settings import Settings
from agentstream.contract.topics import dlq_topic
from agentstream.producers.records import LLMCallState, RecordBuilder
from agentstream.sinks.postgres import PostgresSink
from tests.sink_records import items, llm, session
from tests.support.clock import FakeClock
from tests.support.kafka import read_all
from tests.support.traffic import publish
from tests.support.worker import WorkerProcess, wait_committed, wait_rows

BASE: dict[str, Any] = {
    "session_id": "0b5f3a1e-6c8e-4d0b-9a52-5d7e3a7c1f00",
    "prompt": "p",
    "model": "claude-sonnet-4-5",
    "prompt_tokens": 1000,
    "response_tokens": 200,
    "latency_ms": 900,
}
DETAILS: dict[str, Any] = {
    "cache_read_tokens": 600,
    "cache_write_tokens": 300,
    "reasoning_tokens": 150,
    "time_to_first_token_ms": 350,
    "provider": "anthropic",
    "service_tier": "priority",
    "finish_reason": "tool_calls",
}
BASE_COUNTS: dict[str, Any] = {"prompt_tokens": 1000, "response_tokens": 200, "latency_ms": 900}
USAGE_COLUMNS = "id, " + ", ".join(LLMInteraction.DETAIL_FIELDS)


def reason_of(fields: dict[str, Any]) -> str:
    out = decode("llm_interactions", json.dumps({**BASE, **fields}).encode())
    assert not out.records, f"{fields} was accepted"
    return out.invalid[0].reason


# --- the contract ---------------------------------------------------------------------------


def test_details_are_optional_and_not_seed_columns() -> None:
    plain = LLMInteraction.model_validate(BASE)
    full = LLMInteraction.model_validate({**BASE, **DETAILS})
    assert not plain.has_details() and full.has_details()
    assert full.cache_read_tokens == 600 and full.service_tier == "priority"
    assert set(LLMInteraction.columns()).isdisjoint(LLMInteraction.DETAIL_FIELDS)
    assert "cache_read_tokens" in LLMInteraction.model_json_schema()["properties"]
    # A record without details encodes exactly as before they existed.
    assert "cache" not in encode_record(plain).decode()


def test_cached_tokens_equal_to_the_prompt_and_reasoning_equal_to_the_output_are_accepted() -> None:
    edge = {"cache_read_tokens": 400, "cache_write_tokens": 600, "reasoning_tokens": 200}
    record = {**BASE, **edge, "time_to_first_token_ms": 900}
    out = decode("llm_interactions", json.dumps(record).encode())
    assert not out.invalid
    assert isinstance(rec := out.records[0][1], LLMInteraction) and rec.cache_write_tokens == 600


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"cache_read_tokens": -1}, "cache_read_tokens: Input should be greater than or equal"),
        ({"cache_write_tokens": -5}, "cache_write_tokens: Input should be greater than or equal"),
        ({"reasoning_tokens": -1}, "reasoning_tokens: Input should be greater than or equal"),
        ({"time_to_first_token_ms": -1}, "time_to_first_token_ms: Input should be greater"),
        (
            {"cache_read_tokens": 700, "cache_write_tokens": 301},
            "cache_read_tokens + cache_write_tokens (1001) exceed prompt_tokens (1000)",
        ),
        ({"cache_read_tokens": 1001}, "exceed prompt_tokens (1000)"),
        ({"reasoning_tokens": 201}, "reasoning_tokens (201) exceed response_tokens (200)"),
        ({"time_to_first_token_ms": 901}, "time_to_first_token_ms (901) exceeds latency_ms (900)"),
        ({"cache_read_tokens": "12"}, "cache_read_tokens: Input should be a valid integer"),
        ({"provider": "x" * 101}, "provider: String should have at most 100 characters"),
        ({"service_tier": "x" * 51}, "service_tier: String should have at most 50 characters"),
        ({"finish_reason": "stop\u0000"}, "finish_reason: contains a NUL character"),
    ],
)
def test_inconsistent_usage_is_refused_with_the_rule_it_breaks(
    fields: dict[str, Any], rule: str
) -> None:
    assert rule in reason_of(fields)


def test_a_batch_keeps_its_consistent_records_and_refuses_the_one_that_is_not() -> None:
    items = [{**BASE, **DETAILS}, {**BASE, "reasoning_tokens": 999}, {**BASE}]
    out = decode("llm_interactions", json.dumps(items).encode())
    assert [i for i, _ in out.records] == [0, 2]
    assert out.invalid[0].index == 1 and "reasoning_tokens (999)" in out.invalid[0].reason


# --- the SDK --------------------------------------------------------------------------------


def call_state(clock: FakeClock, **kw: Any) -> LLMCallState:
    return LLMCallState(
        RecordBuilder(),
        session_id=uuid.uuid4(),
        agent_id=None,
        model="gpt-4o",
        prompt="p",
        monotonic=clock,
        **kw,
    )


def test_the_sdk_measures_time_to_first_token_once_and_carries_the_usage() -> None:
    clock = FakeClock(100.0)
    call = call_state(clock, provider="openai", service_tier="flex")
    clock.now += 0.25
    call.first_token()
    clock.now += 0.5
    call.first_token()  # a later token changes nothing
    call.record_response(
        "answer",
        prompt_tokens=1000,
        response_tokens=300,
        cache_read_tokens=800,
        reasoning_tokens=120,
        finish_reason="stop",
    )
    clock.now += 0.25
    rec = call.finish()
    assert (rec.time_to_first_token_ms, rec.latency_ms) == (250, 1000)
    assert (rec.cache_read_tokens, rec.cache_write_tokens, rec.reasoning_tokens) == (800, None, 120)
    assert (rec.provider, rec.service_tier, rec.finish_reason) == ("openai", "flex", "stop")


def test_the_sdk_refuses_contradictory_counts_when_they_are_recorded() -> None:
    call = call_state(FakeClock(100.0))
    with pytest.raises(ValueError, match=r"exceed prompt_tokens \(10\)"):
        call.record_response("x", prompt_tokens=10, cache_read_tokens=8, cache_write_tokens=5)
    with pytest.raises(ValueError, match=r"reasoning_tokens \(11\) exceed response_tokens"):
        call.record_response("x", response_tokens=10, reasoning_tokens=11)


def test_a_call_without_details_is_the_record_it_always_was() -> None:
    call = call_state(FakeClock(100.0))
    call.record_response("x", prompt_tokens=3, response_tokens=4)
    rec = call.finish()
    assert not rec.has_details()
    assert tuple(json.loads(encode_record(rec))) == LLMInteraction.columns()


def test_the_load_generator_produces_the_mix_of_details() -> None:
    from agentstream.producers.loadgen import TrafficGenerator

    gen = TrafficGenerator(seed=7)
    calls = [
        r
        for r in gen.records(lambda started: started < 400)
        if isinstance(r, LLMInteraction) and r.success
    ]
    assert len(calls) > 500
    hits = [c for c in calls if c.cache_read_tokens]
    assert 0.1 < len(hits) / len(calls) < 0.9
    assert any(c.cache_write_tokens for c in calls)
    assert any(c.reasoning_tokens for c in calls)
    assert any(c.prompt_tokens > 200_000 for c in calls)
    assert {c.service_tier for c in calls} >= {"default", "batch"}
    assert any(c.time_to_first_token_ms is not None for c in calls)
    assert all(c.provider for c in calls)


# --- storage --------------------------------------------------------------------------------


@pytest.fixture
def sink(database: str) -> Iterator[PostgresSink]:
    s = PostgresSink(database)
    yield s
    s.close()


def usage_rows(conninfo: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(f"SELECT {USAGE_COLUMNS} FROM agentstream.llm_usage").fetchall()
    return {r[0]: r[1:] for r in rows}


def expected(record: LLMInteraction) -> tuple[Any, ...]:
    return tuple(getattr(record, f) for f in LLMInteraction.DETAIL_FIELDS)


@pytest.mark.integration
def test_details_land_beside_their_interaction_and_none_without_details(
    sink: PostgresSink, database: str
) -> None:
    sid = uuid.uuid4()
    sink.write(items("sessions", [session(sid)]))
    with_details = [llm(uuid.uuid4(), sid, **BASE_COUNTS, **DETAILS) for _ in range(3)]
    partial = llm(uuid.uuid4(), sid, **BASE_COUNTS, service_tier="batch")
    plain = [llm(uuid.uuid4(), sid, **BASE_COUNTS) for _ in range(2)]
    result = sink.write(
        items("llm_interactions", [*with_details, partial, *plain])
    )  # fast path (COPY)
    assert result.accepted == {"llm_interactions": 6} and not result.rejected
    got = usage_rows(database)
    assert got == {r.id: expected(r) for r in [*with_details, partial]}
    assert partial.id is not None
    assert got[partial.id] == (None, None, None, None, None, "batch", None)


@pytest.mark.integration
def test_a_replay_keeps_the_first_writes_details_or_their_absence(
    sink: PostgresSink, database: str
) -> None:
    sid = uuid.uuid4()
    first_with, first_without = uuid.uuid4(), uuid.uuid4()
    originals = [
        llm(first_with, sid, **BASE_COUNTS, **DETAILS),
        llm(first_without, sid, **BASE_COUNTS),
    ]
    # The session is missing: it is inferred, then the interactions are COPYed.
    sink.write(items("llm_interactions", originals))
    before = usage_rows(database)
    assert set(before) == {first_with}
    # The same ids again with other details, and a new interaction, in one flush: the COPY
    # hits the unique key, the set-based insert keeps the first writes.
    other = {**DETAILS, "cache_read_tokens": 1, "provider": "replayed"}
    new = llm(uuid.uuid4(), sid, **BASE_COUNTS, **other)
    replay = [llm(i, sid, **BASE_COUNTS, **other) for i in (first_with, first_without)]
    for _ in range(2):  # twice: the second time the COPY is paused (the upsert only)
        sink.write(items("llm_interactions", [*replay, new], offset=10))
    after = usage_rows(database)
    assert after == {first_with: before[first_with], new.id: expected(new)}
    with psycopg.connect(database) as conn:
        logged = conn.execute(
            "SELECT count(*) FROM agentstream.change_log WHERE id = %s", (new.id,)
        ).fetchone()
    assert logged == (1,)


# --- through Kafka and the worker --------------------------------------------------------------


@pytest.mark.integration
async def test_the_worker_writes_details_and_dead_letters_inconsistent_usage(
    settings: Settings, tmp_path: Path
) -> None:
    sid = uuid.uuid4()
    good = [llm(uuid.uuid4(), sid, **BASE_COUNTS, **DETAILS) for _ in range(5)]
    bad = {**json.loads(encode_record(good[0])), "id": str(uuid.uuid4()), "reasoning_tokens": 201}
    batch = json.dumps([json.loads(encode_record(r)) for r in good[:3]] + [bad]).encode()
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        await publish(
            settings,
            [
                ("sessions", encode_record(session(sid))),
                ("llm_interactions", batch),
                ("llm_interactions", encode_batch(good[3:])),
            ],
        )
        await wait_committed(settings)
        assert await wait_rows(settings.database_conninfo(), "llm_interactions", 5) == 5
        letters = await read_all(settings.kafka_bootstrap, dlq_topic(settings.topic_prefix), 1)
    finally:
        assert worker.terminate() == 0, worker.log()[-3000:]
    assert usage_rows(settings.database_conninfo()) == {r.id: expected(r) for r in good}
    (letter,) = [DeadLetter.from_message(m.value or b"", m.headers) for m in letters]
    assert letter.kind == "validation" and letter.index == 3
    assert "reasoning_tokens (201) exceed response_tokens (200)" in letter.reason
