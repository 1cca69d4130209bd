"""``AgentStream``: the asyncio producer client (aiokafka underneath).

What happens to a record, in order:

1. ``publish(record)`` gives it a uuid7 id if it has none, picks its partition from its
   session id (Kafka's murmur2 of the id's canonical string, as Kafka's default partitioner
   would for that key, so a single-record producer in another language that keys by session
   id lands on the same partition), serializes it, and waits for room in the bounded buffer
   (``producer_buffer_records``) for at most ``producer_send_timeout_s`` before raising
   :class:`PublishTimeout`.
2. The :class:`Batcher` packs it with its partition's other records into a batch message
   (a JSON array, docs/design.md's wire format) bounded by ``producer_batch_bytes``, a record
   count, and ``producer_linger_ms``. With ``producer_wire="record"`` the same bounds group
   it into one Kafka record batch of one-record messages instead, each the JSON object
   keyed by the session id's canonical string (Kafka's convention).
3. One sender task hands sealed batches to aiokafka in order, with ``acks="all"``,
   idempotence and compression: per partition the broker keeps them in order and without
   duplicates, so a session's records of one entity arrive in the order they were published.
   Batch messages have no key (the partition is chosen here); consumers must not rely on it.
4. When Kafka acknowledges a batch its records leave the buffer; when it does not, the batch
   becomes a :class:`DeliveryFailure`, passed to ``on_delivery_error`` if given and raised as
   :class:`DeliveryError` by the next ``flush()`` or by ``close()``. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from pydantic import JsonValue

from agentstream.contract.entities import ENTITY_MODELS, Record
from agentstream.contract.settings import Settings, get_settings
from agentstream.contract.topics import topic_for
from agentstream.producers.batcher import Batch, Batcher
from agentstream.producers.errors import (
    BrokerUnavailable,
    DeliveryError,
    DeliveryFailure,
    PublishTimeout,
    RecordTooLarge,
    StreamClosed,
)
from agentstream.producers.helpers import SessionHandle
from agentstream.producers.ids import uuid7
from agentstream.producers.records import RecordBuilder

__all__ = [
    "DEFAULT_BATCH_RECORDS",
    "DEFAULT_COMPRESSION",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "AgentStream",
    "DeliveryReport",
    "ProducerStats",
]

log = logging.getLogger(__name__)

# Kafka's own default message.max.bytes (1 MiB). Our local broker allows 10 MiB; pass
# max_message_bytes= to use more against a broker configured for it.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
# The worker handles ~175k records/s at 100 records a message (docs/design.md) and more with
# larger ones; past a few thousand records a message, the byte bound decides anyway.
DEFAULT_BATCH_RECORDS = 10_000
# zstd (via cramjam) compresses our JSON ~5-8x at hundreds of MB/s; gzip, aiokafka's only
# built-in codec, runs at level 9 and was the bottleneck (see BENCHMARKS.md).
DEFAULT_COMPRESSION = "zstd"
# Room for the Kafka record-batch header and one record's framing around a batch value.
_KAFKA_FRAMING_BYTES = 512
# Session id -> murmur2 hash; sessions are few, but bound it for long-running producers.
_HASH_CACHE_MAX = 100_000

_ENTITY_OF: dict[type[Record], str] = {model: entity for entity, model in ENTITY_MODELS.items()}


@dataclass(slots=True)
class ProducerStats:
    """Counters since start: what was accepted, delivered and lost."""

    published: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITY_MODELS, 0))
    bytes_published: int = 0
    delivered_records: int = 0
    delivered_batches: int = 0
    delivered_bytes: int = 0
    failed_records: int = 0
    failed_batches: int = 0


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What ``close()`` could and could not deliver."""

    delivered_records: int
    delivered_batches: int
    failures: tuple[DeliveryFailure, ...]

    @property
    def undelivered_records(self) -> int:
        return sum(f.records for f in self.failures)


class AgentStream:
    """Async producer of agentstream records; use as ``async with AgentStream() as stream``.

    ``settings`` defaults to :func:`get_settings` (``AGENTSTREAM_*`` environment). Sizes,
    linger, buffer bound, send timeout and validation come from ``settings.producer_*``.
    ``compression`` is any aiokafka codec (``"zstd"``, ``"lz4"``, ``"gzip"``, ``None``).
    ``on_delivery_error`` is called (on the event loop) with each batch Kafka did not take.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        compression: str | None = DEFAULT_COMPRESSION,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        batch_records: int = DEFAULT_BATCH_RECORDS,
        on_delivery_error: Callable[[DeliveryFailure], None] | None = None,
        client_id: str = "agentstream-producer",
    ) -> None:
        self.settings = settings or get_settings()
        s = self.settings
        if max_message_bytes < 4 * _KAFKA_FRAMING_BYTES:
            raise ValueError(f"max_message_bytes={max_message_bytes} is too small")
        self.compression = compression
        self.max_message_bytes = max_message_bytes
        # The largest single record: alone in its batch, framed, within the broker's limit.
        self.max_record_bytes = max_message_bytes - _KAFKA_FRAMING_BYTES - 2
        self.records = RecordBuilder(validate=s.producer_validate)
        self.stats = ProducerStats()
        self._client_id = client_id
        self._on_delivery_error = on_delivery_error
        self._timeout_s = s.producer_send_timeout_s
        self._limit = s.producer_buffer_records
        self._batcher = Batcher(
            max_bytes=min(s.producer_batch_bytes, max_message_bytes - _KAFKA_FRAMING_BYTES),
            max_records=batch_records,
            linger_s=s.producer_linger_ms / 1000,
            wire=s.producer_wire,
        )
        self._topics = {entity: topic_for(entity, s.topic_prefix) for entity in ENTITY_MODELS}
        self._partitions: dict[str, int] = {}
        # Session id -> (murmur2 hash, the canonical string's bytes: the one-record key).
        self._keys: dict[uuid.UUID, tuple[int, bytes]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._sender: asyncio.Task[None] | None = None
        self._ready: deque[Batch] = deque()
        # Batches handed to aiokafka and not yet settled, by id(batch).
        self._in_flight_batches: dict[int, Batch] = {}
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._linger: asyncio.Handle | None = None
        self._buffered = 0  # accepted records not yet acknowledged or failed
        self._failures: list[DeliveryFailure] = []  # not yet raised by flush()/close()
        self._running = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Connect to Kafka; raise :class:`BrokerUnavailable` within the send timeout if not."""
        if self._running:
            return
        if self._closed:
            raise StreamClosed("this AgentStream was closed; create a new one")
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            compression_type=self.compression,
            # Our batches are already whole messages (or whole Kafka record batches, in the
            # record shape): aiokafka need not wait for more.
            linger_ms=0,
            max_batch_size=self._batcher.max_bytes + _KAFKA_FRAMING_BYTES,
            max_request_size=self.max_message_bytes,
            # A batch Kafka has not acknowledged within the send timeout fails (and is
            # reported) instead of waiting forever: the same bound publish() waits for room.
            request_timeout_ms=max(1000, int(self._timeout_s * 1000)),
            **s.kafka_client_options(),
        )
        try:
            # aiokafka's start() can retry some connection errors for a long time: bound it.
            await asyncio.wait_for(producer.start(), self._timeout_s)
        except (TimeoutError, KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)
            raise BrokerUnavailable(
                f"cannot connect to Kafka at {s.kafka_bootstrap} within "
                f"{self._timeout_s:g}s ({type(exc).__name__}: {exc}); {s.kafka_advice()}. "
                "AGENTSTREAM_PRODUCER_SEND_TIMEOUT_S sets this bound."
            ) from exc
        self._producer = producer
        self._sender = asyncio.create_task(self._send_loop(), name="agentstream-sender")
        self._running = True

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
            return
        # The body failed: deliver what we can, but never mask the body's exception.
        report = await self.close(raise_on_failure=False)
        if report.failures:
            log.error("%s", DeliveryError(list(report.failures), bootstrap=self.bootstrap))

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def buffered(self) -> int:
        """Records accepted but not yet acknowledged by Kafka (or failed)."""
        return self._buffered

    # ------------------------------------------------------------------ publishing

    async def publish(self, record: Record) -> uuid.UUID:
        """Queue one record for delivery and return its id (a uuid7 if it had none).

        Waits while the buffer is full, up to ``producer_send_timeout_s``, then raises
        :class:`PublishTimeout`. Returning means accepted, not yet delivered: ``flush()``
        waits for delivery.
        """
        if not self._running:
            raise StreamClosed(
                "publish() on an AgentStream that is not running: call `await stream.start()` "
                "or use `async with AgentStream(...) as stream:`"
                + (" (it was closed)" if self._closed else "")
            )
        try:
            entity = _ENTITY_OF[type(record)]
        except KeyError:
            raise TypeError(
                f"publish() takes an agentstream record model (Session, Agent, ...), got "
                f"{type(record).__name__}; use publish_mapping(entity, data) for plain dicts"
            ) from None
        record_id = record.id
        if record_id is None:
            record_id = uuid7()
            record = record.model_copy(update={"id": record_id})
        topic = self._topics[entity]
        key: uuid.UUID = record_id if entity == "sessions" else record.session_id  # type: ignore[attr-defined]
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = await self._load_partitions(topic)
        known = self._keys.get(key)
        if known is None:
            if len(self._keys) >= _HASH_CACHE_MAX:
                self._keys.clear()
            key_bytes = str(key).encode()
            known = self._keys[key] = (murmur2(key_bytes) & 0x7FFFFFFF, key_bytes)
        hashed, key_bytes = known
        value: bytes = type(record).__pydantic_serializer__.to_json(record, exclude_unset=True)
        if len(value) > self.max_record_bytes:
            raise RecordTooLarge(
                f"{entity} record {record_id} is {len(value)} bytes serialized; the largest "
                f"message allowed is {self.max_message_bytes} bytes (max_message_bytes). "
                "Shrink it (e.g. store large content elsewhere and reference it) or raise "
                "max_message_bytes together with the broker's message.max.bytes."
            )
        if self._buffered >= self._limit:
            await self._wait_for_space(topic)
        if self._buffered == 0:
            self._idle.clear()
        self._buffered += 1
        stats = self.stats
        stats.published[entity] += 1
        stats.bytes_published += len(value)
        sealed = self._batcher.add(topic, hashed % partitions, value, key_bytes)
        if sealed:
            self._ready.extend(sealed)
            self._wake.set()
        if self._linger is None:
            self._arm_linger()
        return record_id

    async def publish_many(self, records: Iterable[Record]) -> list[uuid.UUID]:
        """Publish several records in order; returns their ids."""
        return [await self.publish(r) for r in records]

    async def publish_mapping(self, entity: str, data: Mapping[str, Any]) -> uuid.UUID:
        """Validate a plain mapping as ``entity`` (e.g. ``"events"``) and publish it."""
        return await self.publish(self.records.from_mapping(entity, data))

    async def start_session(
        self,
        *,
        user_id: str,
        metadata: Mapping[str, JsonValue] | None = None,
        session_id: uuid.UUID | None = None,
    ) -> SessionHandle:
        """Publish a new session and return its handle (register agents on it)."""
        return await SessionHandle.start(
            self, user_id=user_id, metadata=metadata, session_id=session_id
        )

    async def ensure_partitions(self, *entities: str) -> None:
        """Fetch topic metadata now (else on first publish to each topic)."""
        for entity in entities or tuple(ENTITY_MODELS):
            topic = self._topics[entity]
            if topic not in self._partitions:
                await self._load_partitions(topic)

    async def _load_partitions(self, topic: str) -> int:
        assert self._producer is not None
        try:
            found = await asyncio.wait_for(self._producer.partitions_for(topic), self._timeout_s)
        except (TimeoutError, KafkaError) as exc:
            raise BrokerUnavailable(
                f"no metadata for topic {topic!r} from Kafka at {self.bootstrap} within "
                f"{self._timeout_s:g}s ({type(exc).__name__}). Does the topic exist? Create "
                "it (`agentstream produce` does; or agentstream.ensure_topics) or check the broker."
            ) from exc
        if not found:
            raise BrokerUnavailable(f"topic {topic!r} has no partitions at {self.bootstrap}")
        # Partitions are numbered 0..n-1; a topic that grows later keeps its old mapping here
        # until the stream restarts (as Kafka's own producer would not).
        count = len(found)
        self._partitions[topic] = count
        return count

    async def _wait_for_space(self, topic: str) -> None:
        # Lingering makes no sense while publishers wait: send everything now.
        self._seal_all()
        deadline = time.monotonic() + self._timeout_s
        while self._buffered >= self._limit:
            if not self._running:
                raise StreamClosed("the AgentStream closed while publish() waited for room")
            self._space.clear()
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait_for(self._space.wait(), remaining)
            except TimeoutError:
                raise PublishTimeout(
                    f"publish to {topic} waited {self._timeout_s:g}s for room in the buffer "
                    f"({self._buffered} records not yet acknowledged by Kafka at "
                    f"{self.bootstrap}, limit {self._limit}): Kafka is slow or unreachable. "
                    "Check the broker; the record was not accepted. Tune "
                    "AGENTSTREAM_PRODUCER_BUFFER_RECORDS / AGENTSTREAM_PRODUCER_SEND_TIMEOUT_S.",
                    topic=topic,
                    buffered=self._buffered,
                    timeout_s=self._timeout_s,
                ) from None

    # ------------------------------------------------------------------ batching and sending

    def _arm_linger(self) -> None:
        deadline = self._batcher.next_deadline()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = deadline - time.monotonic()
        if delay <= 0:
            self._linger = loop.call_soon(self._on_linger)
        else:
            self._linger = loop.call_later(delay, self._on_linger)

    def _on_linger(self) -> None:
        self._linger = None
        due = self._batcher.due()
        if due:
            self._ready.extend(due)
            self._wake.set()
        self._arm_linger()

    def _seal_all(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        drained = self._batcher.drain()
        if drained:
            self._ready.extend(drained)
            self._wake.set()

    async def _send_loop(self) -> None:
        # One task sends every batch, in the order sealed: per partition, Kafka's order is ours.
        producer = self._producer
        assert producer is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._ready:
                batch = self._ready.popleft()
                try:
                    if batch.messages:
                        future = await producer.send_batch(
                            self._record_batch(producer, batch),
                            batch.topic,
                            partition=batch.partition,
                        )
                    else:
                        future = await producer.send(
                            batch.topic, batch.value, partition=batch.partition
                        )
                except asyncio.CancelledError:
                    self._ready.appendleft(batch)
                    raise
                except Exception as exc:  # e.g. KafkaTimeoutError: aiokafka's queue stayed full
                    self._settle(batch, exc)
                    continue
                self._in_flight_batches[id(batch)] = batch
                future.add_done_callback(lambda f, b=batch: self._on_sent(b, f))

    @staticmethod
    def _record_batch(producer: AIOKafkaProducer, batch: Batch) -> Any:
        """The record shape's batch as one Kafka record batch of one-record messages."""
        builder = producer.create_batch()
        for key, value in batch.messages:
            # The Batcher's bound counts each message's worst-case framing, and aiokafka's
            # batch size is that bound plus _KAFKA_FRAMING_BYTES: every message fits.
            if builder.append(timestamp=None, key=key, value=value) is None:
                raise RuntimeError(
                    f"a sealed batch of {batch.records} records did not fit one Kafka batch"
                )
        return builder

    def _on_sent(self, batch: Batch, future: asyncio.Future[Any]) -> None:
        if self._in_flight_batches.pop(id(batch), None) is None:
            return  # already settled as undelivered by close()
        if future.cancelled():
            self._settle(batch, asyncio.CancelledError("the send was cancelled"))
        else:
            self._settle(batch, future.exception())

    def _settle(self, batch: Batch, error: BaseException | None) -> None:
        stats = self.stats
        if error is None:
            stats.delivered_records += batch.records
            stats.delivered_batches += 1
            stats.delivered_bytes += batch.size
        else:
            failure = DeliveryFailure(
                topic=batch.topic,
                partition=batch.partition,
                records=batch.records,
                error=error,
                value=batch.as_array(),
                messages=batch.messages,
            )
            stats.failed_records += batch.records
            stats.failed_batches += 1
            self._failures.append(failure)
            log.warning("not delivered to Kafka at %s: %s", self.bootstrap, failure.describe())
            if self._on_delivery_error is not None:
                try:
                    self._on_delivery_error(failure)
                except Exception:
                    log.exception("on_delivery_error callback raised")
        self._buffered -= batch.records
        if self._buffered < self._limit:
            self._space.set()
        if self._buffered == 0:
            self._idle.set()

    # ------------------------------------------------------------------ flush and close

    async def flush(self, timeout_s: float | None = None) -> None:
        """Send everything buffered and wait until Kafka acknowledged it (or failed).

        Raises :class:`DeliveryError` listing the batches that failed since the last
        flush, and :class:`PublishTimeout` if records are still unacknowledged after
        ``timeout_s`` (default: the send timeout).
        """
        if not self._running:
            raise StreamClosed("flush() on an AgentStream that is not running")
        self._seal_all()
        timeout = self._timeout_s if timeout_s is None else timeout_s
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            raise PublishTimeout(
                f"flush gave up after {timeout:g}s with {self._buffered} record(s) not yet "
                f"acknowledged by Kafka at {self.bootstrap}; they stay buffered "
                "(close() reports them if they never arrive). Check the broker.",
                topic="*",
                buffered=self._buffered,
                timeout_s=timeout,
            ) from None
        self._raise_failures()

    def _raise_failures(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryError(failures, bootstrap=self.bootstrap)

    async def close(
        self, timeout_s: float | None = None, *, raise_on_failure: bool = True
    ) -> DeliveryReport:
        """Flush, stop the producer, and report what could not be delivered.

        Waits at most ``timeout_s`` (default: the send timeout) for acknowledgements; what is
        still unacknowledged then counts as undelivered. Raises :class:`DeliveryError` if
        anything failed, unless ``raise_on_failure=False`` (then read the report).
        """
        if not self._running:
            return DeliveryReport(
                self.stats.delivered_records, self.stats.delivered_batches, tuple(self._failures)
            )
        timeout = self._timeout_s if timeout_s is None else timeout_s
        self._running = False
        self._closed = True
        self._space.set()  # wake publishers waiting for room: they raise StreamClosed
        self._seal_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        gave_up = TimeoutError(f"not acknowledged by Kafka within close()'s {timeout:g}s")
        for batch in list(self._ready):
            self._settle(batch, gave_up)
        self._ready.clear()
        for batch in list(self._in_flight_batches.values()):
            del self._in_flight_batches[id(batch)]
            self._settle(batch, gave_up)
        if self._producer is not None:
            try:
                # Bounded too: with the broker gone, aiokafka's stop() waits on its own timeouts.
                await asyncio.wait_for(self._producer.stop(), min(5.0, max(1.0, timeout)))
            except Exception as exc:  # a broker gone at close must not hang or hide the report
                log.warning("stopping the Kafka producer: %r", exc)
        report = DeliveryReport(
            self.stats.delivered_records, self.stats.delivered_batches, tuple(self._failures)
        )
        if raise_on_failure:
            self._raise_failures()
        self._failures = []
        return report
