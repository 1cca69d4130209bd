"""Record factories shared by the sink and worker tests: small, valid, explicit ids and times."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from agentstream.contract.entities import (
    Agent,
    AgentExecution,
    Document,
    Event,
    LLMInteraction,
    Record,
    Session,
)
from agentstream.sinks.postgres import SinkItem, Source

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def items(entity: str, records: Sequence[Record], offset: int = 0) -> list[SinkItem]:
    """``records`` as the sink is given them, from made-up Kafka coordinates."""
    return [
        SinkItem(
            entity, r, Source(f"t.{entity}", 0, offset + i, r.model_dump_json().encode()), None
        )
        for i, r in enumerate(records)
    ]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def session(sid: uuid.UUID, *, updated: float = 0, user: str = "user-1", **kw: Any) -> Session:
    return Session(id=sid, user_id=user, created_at=at(0), updated_at=at(updated), **kw)


def agent(aid: uuid.UUID, sid: uuid.UUID, *, updated: float = 0, **kw: Any) -> Agent:
    kw.setdefault("name", "planner")
    kw.setdefault("type", "llm")
    return Agent(id=aid, session_id=sid, created_at=at(0), updated_at=at(updated), **kw)


def execution(xid: uuid.UUID, aid: uuid.UUID, sid: uuid.UUID, status: str) -> AgentExecution:
    return AgentExecution(
        id=xid,
        agent_id=aid,
        session_id=sid,
        input_data={"q": "x"},
        output_data={"status": status},
        status=status,
        started_at=at(1),
    )


def llm(iid: uuid.UUID, sid: uuid.UUID, aid: uuid.UUID | None = None, **kw: Any) -> LLMInteraction:
    kw.setdefault("prompt", "hello")
    kw.setdefault("model", "gpt-test")
    return LLMInteraction(id=iid, session_id=sid, agent_id=aid, created_at=at(2), **kw)


def event(
    eid: uuid.UUID, sid: uuid.UUID, *, event_type: str = "click", user: str = "u-ev"
) -> Event:
    return Event(
        id=eid,
        event_type=event_type,
        trace_id=uuid.UUID(int=1),
        session_id=sid,
        user_id=user,
        timestamp_ms=1_700_000_000_000,
        payload={"k": [1, 2]},
        created_at=at(3),
    )


def sdk_event(
    sid: uuid.UUID, i: int, *, event_type: str = "e", payload: dict[str, Any] | None = None
) -> Event:
    """An event as an agent hands it to the SDK: no id and no created_at (the SDK gives it a
    uuid7, the worker the Kafka time), ``i`` as its timestamp_ms."""
    return Event(
        event_type=event_type,
        trace_id=sid,
        session_id=sid,
        user_id="u",
        timestamp_ms=i,
        payload={} if payload is None else payload,
    )


def document(did: uuid.UUID, sid: uuid.UUID, aid: uuid.UUID | None = None) -> Document:
    return Document(id=did, session_id=sid, agent_id=aid, title="t", content="c", created_at=at(4))
