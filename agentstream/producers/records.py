"""Building correct records: the pure part of the helpers (no I/O, no Kafka).

:class:`RecordBuilder` makes entity models with producer-side validation on by default
(``Model(**fields)``) or, for trusted hot paths with ``producer_validate=False``, without it
(``Model.model_construct``). The ``*State`` classes hold what a helper must remember between
records — a session's or agent's last ``updated_at`` (the latest state wins downstream, so
each new state must carry a strictly newer one), an execution's lifecycle and timings, an LLM
call's start on a monotonic clock — and return the next record to publish. The async helpers
(helpers.py) and the load generator publish what these return.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, TypeVar, Unpack, cast

from pydantic import JsonValue

from agentstream.contract.entities import (
    ENTITY_MODELS,
    INT4_MAX,
    Agent,
    AgentExecution,
    AgentStatus,
    Document,
    Event,
    LLMInteraction,
    Record,
    Session,
    usage_problem,
)
from agentstream.producers.ids import uuid7

__all__ = [
    "AgentState",
    "ExecutionState",
    "LLMCallState",
    "RecordBuilder",
    "SessionState",
    "Usage",
    "describe_exception",
    "utcnow",
]

R = TypeVar("R", bound=Record)
_TICK = timedelta(microseconds=1)
# Error messages land in TEXT columns and in reports; a multi-megabyte traceback helps nobody.
MAX_ERROR_CHARS = 4000


def utcnow() -> datetime:
    """Aware UTC now: the contract refuses naive timestamps."""
    return datetime.now(UTC)


def _after(previous: datetime, now: datetime) -> datetime:
    """``now``, or a microsecond after ``previous`` if the clock has not moved past it."""
    return now if now > previous else previous + _TICK


def describe_exception(exc: BaseException) -> str:
    """``ValueError: bad input`` — storable in a TEXT column (no NUL), bounded in length."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _clean_text(text)


def _clean_text(text: str) -> str:
    text = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


class RecordBuilder:
    """Makes entity models, validated (the default) or trusted (``validate=False``)."""

    def __init__(
        self,
        *,
        validate: bool = True,
        new_id: Callable[[], uuid.UUID] = uuid7,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.validate = validate
        self.new_id = new_id
        self.clock = clock

    def build(self, entity_model: type[R], /, **fields: Any) -> R:
        """One record; with validation on, a bad field raises pydantic's ValidationError."""
        if self.validate:
            return entity_model(**fields)
        return cast(R, entity_model.model_construct(**fields))

    def from_mapping(self, entity: str, data: Mapping[str, Any]) -> Record:
        """A record of ``entity`` (e.g. ``"events"``) from a plain mapping, id filled if absent."""
        try:
            model = ENTITY_MODELS[entity]
        except KeyError:
            raise KeyError(
                f"unknown entity {entity!r}; expected one of {', '.join(ENTITY_MODELS)}"
            ) from None
        fields = dict(data)
        if fields.get("id") is None:
            fields["id"] = self.new_id()
        return self.build(model, **fields)

    def event(
        self,
        *,
        session_id: uuid.UUID,
        user_id: str,
        event_type: str,
        payload: JsonValue,
        trace_id: uuid.UUID | None = None,
    ) -> Event:
        now = self.clock()
        return self.build(
            Event,
            id=self.new_id(),
            event_type=event_type,
            trace_id=trace_id or self.new_id(),
            session_id=session_id,
            user_id=user_id,
            timestamp_ms=int(now.timestamp() * 1000),
            payload=payload,
            created_at=now,
        )

    def document(
        self,
        *,
        session_id: uuid.UUID,
        agent_id: uuid.UUID | None,
        title: str,
        content: str,
        content_type: str = "text/plain",
        source_url: str | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
    ) -> Document:
        return self.build(
            Document,
            id=self.new_id(),
            session_id=session_id,
            agent_id=agent_id,
            title=title,
            content=content,
            content_type=content_type,
            source_url=source_url,
            metadata=dict(metadata or {}),
            created_at=self.clock(),
        )


class SessionState:
    """A session's current state; each change yields a record with a newer ``updated_at``."""

    def __init__(
        self,
        builder: RecordBuilder,
        *,
        user_id: str,
        metadata: Mapping[str, JsonValue] | None = None,
        session_id: uuid.UUID | None = None,
    ) -> None:
        self._builder = builder
        self.id = session_id or builder.new_id()
        self.user_id = user_id
        self.metadata: dict[str, JsonValue] = dict(metadata or {})
        self.created_at = builder.clock()
        self.updated_at = self.created_at

    def record(self) -> Session:
        return self._builder.build(
            Session,
            id=self.id,
            user_id=self.user_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
            metadata=self.metadata,
        )

    def update(self, metadata: Mapping[str, JsonValue]) -> Session:
        """Merge ``metadata`` into the session's and return the new state."""
        self.metadata = {**self.metadata, **metadata}
        self.updated_at = _after(self.updated_at, self._builder.clock())
        return self.record()


class AgentState:
    """An agent's current state; a status change yields a record with a newer ``updated_at``."""

    def __init__(
        self,
        builder: RecordBuilder,
        *,
        session_id: uuid.UUID,
        name: str,
        type: str,
        configuration: Mapping[str, JsonValue] | None = None,
        status: AgentStatus = "active",
        agent_id: uuid.UUID | None = None,
    ) -> None:
        self._builder = builder
        self.id = agent_id or builder.new_id()
        self.session_id = session_id
        self.name = name
        self.type = type
        self.configuration: dict[str, JsonValue] = dict(configuration or {})
        self.status: AgentStatus = status
        self.created_at = builder.clock()
        self.updated_at = self.created_at

    def record(self) -> Agent:
        return self._builder.build(
            Agent,
            id=self.id,
            name=self.name,
            type=self.type,
            configuration=self.configuration,
            status=self.status,
            session_id=self.session_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def with_status(self, status: AgentStatus) -> Agent:
        self.status = status
        self.updated_at = _after(self.updated_at, self._builder.clock())
        return self.record()


class ExecutionState:
    """One agent execution: pending -> running -> completed | failed | cancelled."""

    def __init__(
        self,
        builder: RecordBuilder,
        *,
        session_id: uuid.UUID,
        agent_id: uuid.UUID,
        input_data: JsonValue,
        trace_id: uuid.UUID | None = None,
        execution_id: uuid.UUID | None = None,
    ) -> None:
        self._builder = builder
        self.id = execution_id or builder.new_id()
        # One trace id per execution: every event emitted inside it carries this one.
        self.trace_id = trace_id or builder.new_id()
        self.session_id = session_id
        self.agent_id = agent_id
        self.input_data = input_data
        self.output_data: JsonValue = None
        self.status = "pending"
        self.started_at = builder.clock()
        self.completed_at: datetime | None = None
        self.error_message: str | None = None

    def _record(self) -> AgentExecution:
        fields: dict[str, Any] = {
            "id": self.id,
            "agent_id": self.agent_id,
            "session_id": self.session_id,
            "input_data": self.input_data,
            "status": self.status,
            "started_at": self.started_at,
        }
        if self.status in ("completed", "failed", "cancelled"):
            fields["output_data"] = self.output_data
            fields["completed_at"] = self.completed_at
            fields["error_message"] = self.error_message
        return self._builder.build(AgentExecution, **fields)

    def pending(self) -> AgentExecution:
        return self._record()

    def running(self) -> AgentExecution:
        self.status = "running"
        self.started_at = _after(self.started_at, self._builder.clock())
        return self._record()

    def finish(self, error: BaseException | None = None) -> AgentExecution:
        """The terminal state: completed, failed (an Exception) or cancelled (anything else)."""
        if error is None:
            self.status = "completed"
        elif isinstance(error, Exception):
            self.status = "failed"
            self.error_message = describe_exception(error)
        else:  # CancelledError, KeyboardInterrupt, SystemExit: stopped, not broken
            self.status = "cancelled"
            self.error_message = describe_exception(error)
        self.completed_at = _after(self.started_at, self._builder.clock())
        return self._record()

    @property
    def duration_ms(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds() * 1000


class Usage(TypedDict, total=False):
    """What an LLM API reported about a call's tokens (keyword arguments of ``call.record``).

    As the OpenTelemetry GenAI conventions count them: ``cache_read_tokens`` (served from
    the prompt cache) and ``cache_write_tokens`` (written to it) are part of
    ``prompt_tokens``; ``reasoning_tokens`` are part of ``response_tokens``.
    """

    prompt_tokens: int
    response_tokens: int
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    finish_reason: str | None


class LLMCallState:
    """One LLM call, timed on a monotonic clock from construction to :meth:`finish`."""

    def __init__(
        self,
        builder: RecordBuilder,
        *,
        session_id: uuid.UUID,
        agent_id: uuid.UUID | None,
        model: str,
        prompt: str,
        provider: str | None = None,
        service_tier: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._builder = builder
        self._monotonic = monotonic
        self.id = builder.new_id()
        self.session_id = session_id
        self.agent_id = agent_id
        self.model = model
        self.prompt = prompt
        self.provider = provider
        self.service_tier = service_tier
        self.response: str | None = None
        self.usage = Usage()
        self.error_message: str | None = None
        self.created_at = builder.clock()
        self._start = monotonic()
        self.time_to_first_token_ms: int | None = None
        self.latency_ms: int | None = None

    def _elapsed_ms(self) -> int:
        return max(0, round((self._monotonic() - self._start) * 1000))

    def record_response(self, response: str | None = None, **usage: Unpack[Usage]) -> None:
        """Raises ValueError naming the rule if the counts contradict each other (e.g. more
        cached tokens than prompt tokens): the record would be refused downstream."""
        problem = usage_problem(
            prompt_tokens=usage.get("prompt_tokens", 0),
            response_tokens=usage.get("response_tokens", 0),
            latency_ms=INT4_MAX,  # not known yet; the SDK's own clock orders TTFT and latency
            cache_read_tokens=usage.get("cache_read_tokens"),
            cache_write_tokens=usage.get("cache_write_tokens"),
            reasoning_tokens=usage.get("reasoning_tokens"),
        )
        if problem is not None:
            raise ValueError(problem)
        self.response = response
        self.usage = usage

    def first_token(self) -> None:
        """Mark the first streamed token: time to first token, measured once, on the clock
        that measures the latency (so it can never exceed it)."""
        if self.time_to_first_token_ms is None:
            self.time_to_first_token_ms = self._elapsed_ms()

    def fail(self, error_message: str) -> None:
        """Mark the call failed without an exception (e.g. the API returned an error body)."""
        self.error_message = _clean_text(error_message)

    def finish(self, error: BaseException | None = None) -> LLMInteraction:
        self.latency_ms = self._elapsed_ms()
        if error is not None:
            self.error_message = describe_exception(error)
        return self._builder.build(
            LLMInteraction,
            id=self.id,
            session_id=self.session_id,
            agent_id=self.agent_id,
            prompt=self.prompt,
            response=self.response,
            model=self.model,
            latency_ms=self.latency_ms,
            success=self.error_message is None,
            error_message=self.error_message,
            created_at=self.created_at,
            **self._details(),
        )

    def _details(self) -> dict[str, Any]:
        """The fields reported, the rest omitted: a call without details stays the record it
        was before they existed (same bytes on the wire, no details row)."""
        found: dict[str, Any] = {
            "time_to_first_token_ms": self.time_to_first_token_ms,
            "provider": self.provider,
            "service_tier": self.service_tier,
            **self.usage,
        }
        return {k: v for k, v in found.items() if v is not None}
