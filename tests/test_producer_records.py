"""Record building (producers/records.py): lifecycle, timings, newer updated_at, validation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from agentstream.contract import AgentExecution, Event, decode, encode_record
from agentstream.producers.records import (
    AgentState,
    ExecutionState,
    LLMCallState,
    RecordBuilder,
    SessionState,
    describe_exception,
)

FROZEN = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)


def frozen_builder(validate: bool = True) -> RecordBuilder:
    return RecordBuilder(validate=validate, clock=lambda: FROZEN)


def roundtrip(entity: str, record: object) -> None:
    decoded = decode(entity, encode_record(record))  # type: ignore[arg-type]
    assert decoded.invalid == [], decoded.invalid
    assert decoded.records[0][1] == record


def test_state_changes_get_strictly_newer_updated_at_even_on_a_stopped_clock() -> None:
    b = frozen_builder()
    session = SessionState(b, user_id="u1", metadata={"a": 1})
    first = session.record()
    second = session.update({"b": 2})
    assert second.updated_at is not None and first.updated_at is not None
    assert second.updated_at > first.updated_at
    assert second.metadata == {"a": 1, "b": 2}
    agent = AgentState(b, session_id=session.id, name="planner", type="react")
    a1 = agent.record()
    a2 = agent.with_status("busy")
    a3 = agent.with_status("idle")
    assert a1.updated_at < a2.updated_at < a3.updated_at  # type: ignore[operator]
    assert (a1.status, a2.status, a3.status) == ("active", "busy", "idle")
    for rec in (a1, a2, a3):
        roundtrip("agents", rec)
    roundtrip("sessions", second)


def test_execution_lifecycle_completed() -> None:
    b = RecordBuilder()
    ex = ExecutionState(b, session_id=uuid.uuid4(), agent_id=uuid.uuid4(), input_data={"q": 1})
    pending, running = ex.pending(), ex.running()
    ex.output_data = {"answer": 42}
    done = ex.finish()
    assert [r.status for r in (pending, running, done)] == ["pending", "running", "completed"]
    assert len({r.id for r in (pending, running, done)}) == 1
    assert done.output_data == {"answer": 42}
    assert done.completed_at is not None and done.started_at is not None
    assert done.completed_at > done.started_at
    assert done.error_message is None
    assert "completed_at" not in pending.model_fields_set  # omitted until terminal
    for rec in (pending, running, done):
        roundtrip("agent_executions", rec)


def test_execution_failed_and_cancelled_carry_the_reason() -> None:
    b = RecordBuilder()
    ids = {"session_id": uuid.uuid4(), "agent_id": uuid.uuid4(), "input_data": {}}
    failed = ExecutionState(b, **ids).finish(ValueError("bad \x00 input"))  # type: ignore[arg-type]
    assert failed.status == "failed"
    assert failed.error_message == "ValueError: bad \ufffd input"
    roundtrip("agent_executions", failed)
    cancelled = ExecutionState(b, **ids).finish(KeyboardInterrupt())  # type: ignore[arg-type]
    assert (cancelled.status, cancelled.error_message) == ("cancelled", "KeyboardInterrupt")


def test_llm_call_latency_comes_from_the_monotonic_clock() -> None:
    ticks = iter([100.0, 100.250])
    call = LLMCallState(
        RecordBuilder(),
        session_id=uuid.uuid4(),
        agent_id=None,
        model="gpt-4o",
        prompt="hi",
        monotonic=lambda: next(ticks),
    )
    call.record_response("hello", prompt_tokens=3, response_tokens=5)
    rec = call.finish()
    assert (rec.latency_ms, rec.success, rec.response_tokens) == (250, True, 5)
    roundtrip("llm_interactions", rec)


def test_llm_call_error_marks_failure() -> None:
    call = LLMCallState(
        RecordBuilder(), session_id=uuid.uuid4(), agent_id=None, model="m", prompt="p"
    )
    rec = call.finish(TimeoutError("30s"))
    assert (rec.success, rec.error_message) == (False, "TimeoutError: 30s")


def test_validation_on_by_default_and_skippable() -> None:
    with pytest.raises(ValidationError, match="event_type"):
        RecordBuilder().event(
            session_id=uuid.uuid4(), user_id="u", event_type="x" * 101, payload={}
        )
    trusted = RecordBuilder(validate=False).event(
        session_id=uuid.uuid4(), user_id="u", event_type="x" * 101, payload={}
    )
    assert isinstance(trusted, Event)  # built without validation: the caller vouches for it


def test_from_mapping_fills_a_uuid7_id_and_validates() -> None:
    b = RecordBuilder()
    rec = b.from_mapping(
        "agent_executions",
        {"agent_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()), "input_data": {}},
    )
    assert isinstance(rec, AgentExecution) and rec.id is not None and rec.id.version == 7
    with pytest.raises(KeyError, match="unknown entity"):
        b.from_mapping("nope", {})
    with pytest.raises(ValidationError, match="input_data"):
        b.from_mapping("agent_executions", {"agent_id": str(uuid.uuid4())})


def test_event_timestamp_matches_created_at() -> None:
    ev = frozen_builder().event(
        session_id=uuid.uuid4(), user_id="u", event_type="x", payload={"k": [1]}
    )
    assert ev.timestamp_ms == int(FROZEN.timestamp() * 1000)
    assert ev.created_at == FROZEN
    assert ev.trace_id is not None


def test_describe_exception_is_bounded() -> None:
    text = describe_exception(RuntimeError("y" * 10_000))
    assert len(text) <= 4000 and text.startswith("RuntimeError: yyy")
