"""The entity contract: what the models accept and, field by field, what they refuse."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from agentstream.contract.codec import describe_error
from agentstream.contract.entities import (
    ENTITY_MODELS,
    Agent,
    AgentExecution,
    Document,
    Event,
    LLMInteraction,
    Record,
    Session,
)

SID = str(uuid.uuid4())
AID = str(uuid.uuid4())
TS = "2026-11-26T16:00:00+01:00"

VALID: dict[str, dict[str, Any]] = {
    "sessions": {"user_id": "u-1"},
    "events": {
        "event_type": "tool.call",
        "trace_id": str(uuid.uuid4()),
        "session_id": SID,
        "user_id": "u-1",
        "timestamp_ms": 1_764_172_800_000,
        "payload": {"tool": "search", "args": ["x", 1, None, True, 1.5]},
    },
    "agents": {"name": "planner", "type": "react", "session_id": SID},
    "agent_executions": {"agent_id": AID, "session_id": SID, "input_data": {"q": "hi"}},
    "llm_interactions": {"session_id": SID, "prompt": "Hello", "model": "gpt-4o"},
    "documents": {"session_id": SID, "title": "Doc", "content": "body"},
}


R = TypeVar("R", bound=Record)


def validate(model: type[R], data: dict[str, Any]) -> R:
    """Validate as the worker does: from the JSON text of a message."""
    return model.model_validate_json(json.dumps(data))


@pytest.mark.parametrize("entity", list(ENTITY_MODELS))
def test_minimal_valid_records_are_accepted(entity: str) -> None:
    record = validate(ENTITY_MODELS[entity], VALID[entity])
    assert record.id is None  # filled at ingest, deterministically


def test_schema_defaults_apply_when_omitted_or_null() -> None:
    llm = validate(LLMInteraction, {**VALID["llm_interactions"], "prompt_tokens": None})
    assert (llm.prompt_tokens, llm.response_tokens, llm.latency_ms, llm.success) == (0, 0, 0, False)
    agent = validate(Agent, {**VALID["agents"], "status": None})
    assert agent.status == "inactive" and agent.configuration == {}
    execution = validate(AgentExecution, VALID["agent_executions"])
    assert execution.status == "pending" and execution.output_data is None
    doc = validate(Document, {**VALID["documents"], "metadata": None})
    assert doc.content_type == "text/plain" and doc.metadata == {}


def test_timestamps_are_normalised_to_utc() -> None:
    session = validate(Session, {"user_id": "u", "created_at": TS})
    assert session.created_at == datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def test_ingest_defaults_are_deterministic() -> None:
    record = validate(Session, VALID["sessions"])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    a = record.with_ingest_defaults(id_key="t/0/5/2", ingest_time=now)
    b = record.with_ingest_defaults(id_key="t/0/5/2", ingest_time=now)
    c = record.with_ingest_defaults(id_key="t/0/5/3", ingest_time=now)
    assert isinstance(a, Session)
    assert a.id == b.id != c.id
    assert a.created_at == a.updated_at == now
    # The same record model_copy would give: equal, serialised alike, original untouched.
    expected = record.model_copy(update={"id": a.id, "created_at": now, "updated_at": now})
    assert a == expected and a.model_dump_json() == expected.model_dump_json()
    assert a.model_fields_set == expected.model_fields_set
    assert record.id is None and record.created_at is None
    assert record.with_ingest_defaults(id_key="x", ingest_time=now) is not record
    full = a.with_ingest_defaults(id_key="x", ingest_time=now)
    assert full is a  # nothing to fill: the record itself


def test_timestamps_out_of_range_are_refused_when_built_in_python_too() -> None:
    far = datetime(9999, 12, 31, 20, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(ValidationError, match="created_at"):
        Session(user_id="u", created_at=far)
    assert Session(user_id="u", created_at=datetime(9999, 12, 29, tzinfo=UTC)).created_at


def test_values_postgres_accepts_at_the_edges() -> None:
    edge = {
        **VALID["llm_interactions"],
        "model": "m" * 100,
        "prompt": "emoji 🧠 and accents é",
        "prompt_tokens": 2**31 - 1,
    }
    assert validate(LLMInteraction, edge).prompt_tokens == 2**31 - 1
    assert validate(Session, {"user_id": "x" * 255}).user_id == "x" * 255
    big = validate(Event, {**VALID["events"], "payload": [1, "two", {"3": [4]}], "timestamp_ms": 0})
    assert big.payload == [1, "two", {"3": [4]}]


# (entity, change to the valid record, the field the error must name, words of the reason)
MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    ("sessions", {"user_id": None}, "user_id", "valid string"),
    ("sessions", {"user_id": 42}, "user_id", "valid string"),
    ("sessions", {"user_id": "x" * 256}, "user_id", "at most 255"),
    ("sessions", {"user_id": "a\x00b"}, "user_id", "NUL"),
    ("sessions", {"metadata": [1, 2]}, "metadata", "an object"),
    ("sessions", {"metadata": "{}"}, "metadata", "an object"),
    ("sessions", {"metadata": {"k": "v\x00"}}, "metadata", "NUL"),
    ("sessions", {"metadata": {"k\x00": 1}}, "metadata", "NUL"),
    ("sessions", {"created_at": "2026-11-26T16:00:00"}, "created_at", "offset"),
    ("sessions", {"created_at": "yesterday"}, "created_at", "datetime"),
    ("sessions", {"created_at": 1764172800}, "created_at", "valid datetime"),
    ("sessions", {"created_at": "2026-13-40T25:00:00Z"}, "created_at", "datetime"),
    # Valid RFC 3339, but before year 1 / after year 9999 in UTC: unreadable in Python.
    ("sessions", {"created_at": "0001-01-01T00:00:00+01:00"}, "created_at", "greater than"),
    ("sessions", {"updated_at": "9999-12-31T23:00:00-05:00"}, "updated_at", "less than"),
    ("sessions", {"id": "not-a-uuid"}, "id", "UUID"),
    ("sessions", {"id": 12345}, "id", "UUID"),
    ("sessions", {"surprise": 1}, "surprise", "Extra inputs"),
    ("events", {"trace_id": "1234"}, "trace_id", "UUID"),
    ("events", {"session_id": None}, "session_id", "UUID"),
    ("events", {"timestamp_ms": "1764172800000"}, "timestamp_ms", "valid integer"),
    ("events", {"timestamp_ms": 1.5}, "timestamp_ms", "valid integer"),
    ("events", {"timestamp_ms": 2**63}, "timestamp_ms", "less than or equal"),
    ("events", {"timestamp_ms": -1}, "timestamp_ms", "greater than or equal"),
    ("events", {"payload": None}, "payload", "NOT NULL"),
    ("events", {"event_type": "e" * 101}, "event_type", "at most 100"),
    ("events", {"payload": {"deep": "x\x00"}}, "payload", "NUL"),
    ("agents", {"status": "sleeping"}, "status", "Input should be"),
    ("agents", {"configuration": 7}, "configuration", "an object"),
    ("agents", {"name": ""} | {"type": ["react"]}, "type", "valid string"),
    ("agent_executions", {"status": "done"}, "status", "Input should be"),
    ("agent_executions", {"input_data": None}, "input_data", "NOT NULL"),
    ("agent_executions", {"agent_id": "zzz"}, "agent_id", "UUID"),
    ("agent_executions", {"completed_at": "2026-02-30T00:00:00Z"}, "completed_at", "datetime"),
    ("llm_interactions", {"prompt_tokens": -5}, "prompt_tokens", "greater than or equal"),
    ("llm_interactions", {"prompt_tokens": 2**31}, "prompt_tokens", "less than or equal"),
    ("llm_interactions", {"latency_ms": "fast"}, "latency_ms", "valid integer"),
    ("llm_interactions", {"success": "yes"}, "success", "valid boolean"),
    ("llm_interactions", {"success": 1}, "success", "valid boolean"),
    ("llm_interactions", {"model": "m" * 101}, "model", "at most 100"),
    ("llm_interactions", {"prompt": None}, "prompt", "valid string"),
    ("llm_interactions", {"response": "ok\x00"}, "response", "NUL"),
    ("documents", {"title": "t" * 501}, "title", "at most 500"),
    ("documents", {"content_type": "c" * 101}, "content_type", "at most 100"),
    ("documents", {"source_url": 5}, "source_url", "valid string"),
    ("documents", {"metadata": ["a"]}, "metadata", "an object"),
]


@pytest.mark.parametrize(
    ("entity", "change", "field", "words"),
    MALFORMED,
    ids=[f"{e}-{f}-{i}" for i, (e, _, f, _) in enumerate(MALFORMED)],
)
def test_malformed_records_are_rejected_naming_the_field(
    entity: str, change: dict[str, Any], field: str, words: str
) -> None:
    data = {**VALID[entity], **change}
    with pytest.raises(ValidationError) as info:
        validate(ENTITY_MODELS[entity], data)
    message = describe_error(info.value)
    assert message.startswith(field) or f"; {field}" in message, message
    assert words in message, message


@pytest.mark.parametrize("entity", list(ENTITY_MODELS))
def test_each_required_field_missing_is_named(entity: str) -> None:
    model = ENTITY_MODELS[entity]
    required = [name for name, f in model.model_fields.items() if f.is_required()]
    assert required, entity
    for name in required:
        data = {k: v for k, v in VALID[entity].items() if k != name}
        with pytest.raises(ValidationError) as info:
            validate(model, data)
        assert describe_error(info.value) == f"{name}: Field required"


def test_lone_surrogate_in_json_is_rejected() -> None:
    raw = b'{"user_id": "bad \\ud800 text"}'
    with pytest.raises(ValidationError):
        Session.model_validate_json(raw)


def test_nan_and_infinity_in_jsonb_are_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        Event.model_validate({**VALID["events"], "payload": {"x": float("nan")}})
    assert "payload" in describe_error(info.value)
