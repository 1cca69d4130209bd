"""``SyncAgentStream``: the async client for code that is not async.

An :class:`~producers.client.AgentStream` runs on its own event loop in a background daemon
thread; every call here hands a coroutine to that loop and blocks until it is done. The
helpers mirror the async ones with ``with`` instead of ``async with``::

    with SyncAgentStream() as stream:
        session = stream.start_session(user_id="u1")
        agent = session.register_agent(name="planner", type="react")
        with agent.execute(input_data={"task": "..."}) as run:
            with run.llm_call(model="gpt-4o", prompt="...") as call:
                call.record(response="...", prompt_tokens=12, response_tokens=40)
            run.event("tool.call", payload={"tool": "search"})

Each call costs a thread hand-off (tens of microseconds): for bulk loads prefer
``publish_many`` or the async client. Do not call it from inside the stream's own callbacks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from pydantic import JsonValue

from agentstream.contract.entities import (
    AgentExecution,
    AgentStatus,
    Document,
    Event,
    LLMInteraction,
    Record,
)
from agentstream.contract.settings import Settings
from agentstream.producers.client import AgentStream, DeliveryReport, ProducerStats
from agentstream.producers.errors import DeliveryError, StreamClosed
from agentstream.producers.helpers import AgentHandle, ExecutionRun, LLMCall, SessionHandle
from agentstream.producers.records import RecordBuilder, Usage

__all__ = [
    "SyncAgentHandle",
    "SyncAgentStream",
    "SyncExecutionRun",
    "SyncLLMCall",
    "SyncSessionHandle",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
# The async side bounds every wait by the send timeout; this margin only guards against a
# bug there turning into a hung caller thread.
_GRACE_S = 10.0


class SyncAgentStream:
    """Blocking producer client; ``with SyncAgentStream(settings) as stream:``.

    Takes the same arguments as :class:`~producers.client.AgentStream`.
    """

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        self._settings = settings
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stream: AgentStream | None = None

    # ------------------------------------------------------------------ plumbing

    def _run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        if self._loop is None or self._stream is None:
            coro.close()
            raise StreamClosed(
                "SyncAgentStream is not running: call start() or use `with SyncAgentStream():`"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        limit = (timeout_s or self._stream.settings.producer_send_timeout_s) * 2 + _GRACE_S
        try:
            return future.result(limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"the producer thread did not answer within {limit:g}s; this is a bug"
            ) from None

    @property
    def stream(self) -> AgentStream:
        """The underlying async client (its methods must run on its loop)."""
        if self._stream is None:
            raise StreamClosed("SyncAgentStream is not running")
        return self._stream

    @property
    def records(self) -> RecordBuilder:
        return self.stream.records

    @property
    def stats(self) -> ProducerStats:
        return self.stream.stats

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the background loop and connect; raises BrokerUnavailable within the bound."""
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="agentstream-producer", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread

        async def create() -> AgentStream:
            stream = AgentStream(self._settings, **self._options)
            await stream.start()
            return stream

        try:
            self._stream = asyncio.run_coroutine_threadsafe(create(), loop).result()
        except BaseException:
            self._stop_loop()
            raise

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        self._stream = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def close(
        self, timeout_s: float | None = None, *, raise_on_failure: bool = True
    ) -> DeliveryReport:
        """Flush, stop, and report what could not be delivered (see ``AgentStream.close``)."""
        if self._stream is None:
            return DeliveryReport(0, 0, ())
        stream = self._stream
        try:
            return self._run(stream.close(timeout_s, raise_on_failure=raise_on_failure), timeout_s)
        finally:
            self._stop_loop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        # The body failed: deliver what we can, but never mask the body's exception.
        bootstrap = self._stream.bootstrap if self._stream else "Kafka"
        report = self.close(raise_on_failure=False)
        if report.failures:
            log.error("%s", DeliveryError(list(report.failures), bootstrap=bootstrap))

    # ------------------------------------------------------------------ publishing

    def publish(self, record: Record) -> uuid.UUID:
        return self._run(self.stream.publish(record))

    def publish_many(self, records: Iterable[Record]) -> list[uuid.UUID]:
        return self._run(self.stream.publish_many(list(records)))

    def publish_mapping(self, entity: str, data: Mapping[str, Any]) -> uuid.UUID:
        return self._run(self.stream.publish_mapping(entity, data))

    def flush(self, timeout_s: float | None = None) -> None:
        self._run(self.stream.flush(timeout_s), timeout_s)

    def start_session(
        self,
        *,
        user_id: str,
        metadata: Mapping[str, JsonValue] | None = None,
        session_id: uuid.UUID | None = None,
    ) -> SyncSessionHandle:
        handle = self._run(
            self.stream.start_session(user_id=user_id, metadata=metadata, session_id=session_id)
        )
        return SyncSessionHandle(self, handle)


class _SyncScope:
    _owner: SyncAgentStream
    _inner: SessionHandle | AgentHandle | ExecutionRun

    def llm_call(
        self,
        *,
        model: str,
        prompt: str,
        provider: str | None = None,
        service_tier: str | None = None,
    ) -> SyncLLMCall:
        inner = self._inner.llm_call(
            model=model, prompt=prompt, provider=provider, service_tier=service_tier
        )
        return SyncLLMCall(self._owner, inner)

    def event(
        self,
        event_type: str,
        payload: JsonValue | None = None,
        *,
        trace_id: uuid.UUID | None = None,
    ) -> Event:
        return self._owner._run(self._inner.event(event_type, payload, trace_id=trace_id))

    def document(
        self,
        *,
        title: str,
        content: str,
        content_type: str = "text/plain",
        source_url: str | None = None,
        metadata: Mapping[str, JsonValue] | None = None,
    ) -> Document:
        return self._owner._run(
            self._inner.document(
                title=title,
                content=content,
                content_type=content_type,
                source_url=source_url,
                metadata=metadata,
            )
        )


class SyncSessionHandle(_SyncScope):
    def __init__(self, owner: SyncAgentStream, inner: SessionHandle) -> None:
        self._owner = owner
        self._inner = self.handle = inner
        self.id = inner.id
        self.user_id = inner.user_id

    def update(self, metadata: Mapping[str, JsonValue]) -> None:
        self._owner._run(self.handle.update(metadata))

    def register_agent(
        self,
        *,
        name: str,
        type: str,
        configuration: Mapping[str, JsonValue] | None = None,
        status: AgentStatus = "active",
        agent_id: uuid.UUID | None = None,
    ) -> SyncAgentHandle:
        inner = self._owner._run(
            self.handle.register_agent(
                name=name, type=type, configuration=configuration, status=status, agent_id=agent_id
            )
        )
        return SyncAgentHandle(self._owner, inner)


class SyncAgentHandle(_SyncScope):
    def __init__(self, owner: SyncAgentStream, inner: AgentHandle) -> None:
        self._owner = owner
        self._inner = self.handle = inner
        self.id = inner.id
        self.session_id = inner.session_id

    @property
    def status(self) -> AgentStatus:
        return self.handle.status

    def set_status(self, status: AgentStatus) -> None:
        self._owner._run(self.handle.set_status(status))

    def execute(
        self, input_data: JsonValue | None = None, *, trace_id: uuid.UUID | None = None
    ) -> SyncExecutionRun:
        return SyncExecutionRun(self._owner, self.handle.execute(input_data, trace_id=trace_id))


class SyncExecutionRun(_SyncScope):
    def __init__(self, owner: SyncAgentStream, inner: ExecutionRun) -> None:
        self._owner = owner
        self._inner = self.run = inner
        self.id = inner.id
        self.trace_id = inner.trace_id

    @property
    def record(self) -> AgentExecution | None:
        return self.run.record

    def set_output(self, output_data: JsonValue) -> None:
        self.run.set_output(output_data)

    def __enter__(self) -> Self:
        self._owner._run(self.run.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner._run(self.run.__aexit__(exc_type, exc, tb))


class SyncLLMCall:
    """Timed in the caller's thread, so the thread hand-off is not counted as latency."""

    def __init__(self, owner: SyncAgentStream, inner: LLMCall) -> None:
        self._owner = owner
        self.call = inner

    @property
    def interaction(self) -> LLMInteraction | None:
        return self.call.interaction

    def record(self, response: str | None = None, **usage: Unpack[Usage]) -> None:
        self.call.record(response, **usage)

    def first_token(self) -> None:
        self.call.first_token()

    def fail(self, error_message: str) -> None:
        self.call.fail(error_message)

    def __enter__(self) -> Self:
        self.call.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        record = self.call.end(exc)
        self._owner._run(self._publish(record))

    async def _publish(self, record: LLMInteraction) -> None:
        await self._owner.stream.publish(record)
