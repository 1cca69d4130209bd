"""Instrumentation helpers: sessions, agents, executions, LLM calls, events, documents.

They fill the records correctly so that agent code does not have to: uuid7 ids, aware UTC
timestamps, newer ``updated_at`` on every state change, the execution lifecycle
(pending -> running -> completed | failed | cancelled) with its timings, LLM latency on a
monotonic clock, and the execution's trace id on every event emitted inside it::

    async with AgentStream() as stream:
        session = await stream.start_session(user_id="u1")
        agent = await session.register_agent(name="planner", type="react")
        async with agent.execute(input_data={"task": "..."}) as run:
            async with run.llm_call(model="gpt-4o", prompt="...") as call:
                call.record(response="...", prompt_tokens=12, response_tokens=40)
            await run.event("tool.call", payload={"tool": "search"})
            run.set_output({"answer": "..."})

An exception inside ``execute``/``llm_call`` is recorded (failed, with its message), the
record is still published, and the exception propagates.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Protocol, Self, Unpack

from pydantic import JsonValue

from agentstream.contract.entities import (
    AgentExecution,
    AgentStatus,
    Document,
    Event,
    LLMInteraction,
    Record,
)
from agentstream.producers.records import (
    AgentState,
    ExecutionState,
    LLMCallState,
    RecordBuilder,
    SessionState,
    Usage,
)

__all__ = ["AgentHandle", "ExecutionRun", "LLMCall", "Publisher", "SessionHandle"]


class Publisher(Protocol):
    """What the helpers need from a client: a record builder and ``publish``."""

    @property
    def records(self) -> RecordBuilder: ...

    async def publish(self, record: Record) -> uuid.UUID: ...


class _Scope:
    """A session, agent or execution: where LLM calls, events and documents belong."""

    _stream: Publisher
    session_id: uuid.UUID
    user_id: str
    agent_id: uuid.UUID | None = None

    def _trace_id(self) -> uuid.UUID | None:
        return None  # outside an execution every event starts its own trace

    def llm_call(
        self,
        *,
        model: str,
        prompt: str,
        provider: str | None = None,
        service_tier: str | None = None,
    ) -> LLMCall:
        """Time one LLM call: ``async with scope.llm_call(model=..., prompt=...) as call:``.

        ``provider`` (e.g. ``"openai"``) and ``service_tier`` (as the provider names it:
        ``"default"``, ``"flex"``, ``"priority"``, ``"batch"`` ...) choose the price applied.
        """
        return LLMCall(
            self._stream,
            self.session_id,
            self.agent_id,
            model=model,
            prompt=prompt,
            provider=provider,
            service_tier=service_tier,
        )

    async def event(
        self,
        event_type: str,
        payload: JsonValue | None = None,
        *,
        trace_id: uuid.UUID | None = None,
    ) -> Event:
        """Publish an event; inside an execution it carries the execution's trace id."""
        record = self._stream.records.event(
            session_id=self.session_id,
            user_id=self.user_id,
            event_type=event_type,
            payload={} if payload is None else payload,
            trace_id=trace_id or self._trace_id(),
        )
        await self._stream.publish(record)
        return record

    async def document(
        self,
        *,
        title: str,
        content: str,
        content_type: str = "text/plain",
        source_url: str | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
    ) -> Document:
        """Publish a document retrieved or produced here."""
        record = self._stream.records.document(
            session_id=self.session_id,
            agent_id=self.agent_id,
            title=title,
            content=content,
            content_type=content_type,
            source_url=source_url,
            metadata=metadata,
        )
        await self._stream.publish(record)
        return record


class SessionHandle(_Scope):
    """A started session (``stream.start_session``); register agents on it."""

    def __init__(self, stream: Publisher, state: SessionState) -> None:
        self._stream = stream
        self._state = state
        self.session_id = state.id
        self.user_id = state.user_id

    @property
    def id(self) -> uuid.UUID:
        return self._state.id

    @classmethod
    async def start(
        cls,
        stream: Publisher,
        *,
        user_id: str,
        metadata: Mapping[str, JsonValue] | None = None,
        session_id: uuid.UUID | None = None,
    ) -> SessionHandle:
        state = SessionState(
            stream.records, user_id=user_id, metadata=metadata, session_id=session_id
        )
        await stream.publish(state.record())
        return cls(stream, state)

    async def update(self, metadata: Mapping[str, JsonValue]) -> None:
        """Merge ``metadata`` into the session's and publish the new state."""
        await self._stream.publish(self._state.update(metadata))

    async def register_agent(
        self,
        *,
        name: str,
        type: str,
        configuration: Mapping[str, JsonValue] | None = None,
        status: AgentStatus = "active",
        agent_id: uuid.UUID | None = None,
    ) -> AgentHandle:
        """Publish an agent of this session and return its handle."""
        state = AgentState(
            self._stream.records,
            session_id=self.session_id,
            name=name,
            type=type,
            configuration=configuration,
            status=status,
            agent_id=agent_id,
        )
        await self._stream.publish(state.record())
        return AgentHandle(self, state)


class AgentHandle(_Scope):
    """A registered agent: change its status, run executions, make LLM calls."""

    def __init__(self, session: SessionHandle, state: AgentState) -> None:
        self._stream = session._stream
        self._state = state
        self.session = session
        self.session_id = session.session_id
        self.user_id = session.user_id
        self.agent_id = state.id

    @property
    def id(self) -> uuid.UUID:
        return self._state.id

    @property
    def status(self) -> AgentStatus:
        return self._state.status

    async def set_status(self, status: AgentStatus) -> None:
        """Publish the agent's new status (with a newer ``updated_at``: it wins downstream)."""
        await self._stream.publish(self._state.with_status(status))

    def execute(
        self, input_data: JsonValue | None = None, *, trace_id: uuid.UUID | None = None
    ) -> ExecutionRun:
        """An execution: ``async with agent.execute(input_data={...}) as run:``."""
        return ExecutionRun(self, {} if input_data is None else input_data, trace_id)


class ExecutionRun(_Scope):
    """One execution; publishes pending and running on entry, the outcome on exit."""

    def __init__(
        self, agent: AgentHandle, input_data: JsonValue, trace_id: uuid.UUID | None
    ) -> None:
        self._stream = agent._stream
        self.agent = agent
        self.session_id = agent.session_id
        self.user_id = agent.user_id
        self.agent_id = agent.agent_id
        self._state = ExecutionState(
            self._stream.records,
            session_id=agent.session_id,
            agent_id=agent.id,
            input_data=input_data,
            trace_id=trace_id,
        )
        self.record: AgentExecution | None = None  # the terminal record, after exit

    @property
    def id(self) -> uuid.UUID:
        return self._state.id

    @property
    def trace_id(self) -> uuid.UUID:
        return self._state.trace_id

    def _trace_id(self) -> uuid.UUID | None:
        return self._state.trace_id

    def set_output(self, output_data: JsonValue) -> None:
        """The execution's result, published with the completed (or failed) state."""
        self._state.output_data = output_data

    async def __aenter__(self) -> Self:
        await self._stream.publish(self._state.pending())
        await self._stream.publish(self._state.running())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.record = self._state.finish(exc)
        await self._stream.publish(self.record)


class LLMCall:
    """One LLM call: latency from entry to exit; ``record(...)`` what the model returned,
    ``first_token()`` when a streamed answer's first token arrives."""

    def __init__(
        self,
        stream: Publisher,
        session_id: uuid.UUID,
        agent_id: uuid.UUID | None,
        *,
        model: str,
        prompt: str,
        provider: str | None = None,
        service_tier: str | None = None,
    ) -> None:
        self._stream = stream
        self._args = (session_id, agent_id, model, prompt, provider, service_tier)
        self._state: LLMCallState | None = None
        self.interaction: LLMInteraction | None = None  # the published record, after exit

    def record(self, response: str | None = None, **usage: Unpack[Usage]) -> None:
        """What the model returned and the usage the API reported: ``prompt_tokens``,
        ``response_tokens``, and where reported ``cache_read_tokens``, ``cache_write_tokens``
        (both within prompt_tokens), ``reasoning_tokens`` (within response_tokens) and
        ``finish_reason``. Raises ValueError if the counts contradict each other."""
        self._require().record_response(response, **usage)

    def first_token(self) -> None:
        """Mark the first streamed token (time to first token); later calls change nothing."""
        self._require().first_token()

    def fail(self, error_message: str) -> None:
        """Mark the call failed without raising (e.g. the API answered with an error)."""
        self._require().fail(error_message)

    def _require(self) -> LLMCallState:
        if self._state is None:
            raise RuntimeError("use the LLM call as a context manager: `with ... as call:`")
        return self._state

    def begin(self) -> None:
        """Start the clock (``__aenter__`` does; the sync facade calls it in its own thread)."""
        session_id, agent_id, model, prompt, provider, service_tier = self._args
        self._state = LLMCallState(
            self._stream.records,
            session_id=session_id,
            agent_id=agent_id,
            model=model,
            prompt=prompt,
            provider=provider,
            service_tier=service_tier,
        )

    def end(self, exc: BaseException | None) -> LLMInteraction:
        """Stop the clock and build the record to publish."""
        self.interaction = self._require().finish(exc)
        return self.interaction

    async def __aenter__(self) -> Self:
        self.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stream.publish(self.end(exc))
