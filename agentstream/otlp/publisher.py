"""Publish one request's messages and wait until Kafka acknowledged every one (acks=all).

Unlike the SDK's ``AgentStream``, which batches across callers and reports delivery per
flush, the intake must know when *this request's* records are acknowledged, to answer 200
only then: so each request sends its own batch messages (one per topic and partition) and
waits for exactly their futures.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec
import pydantic_core
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from agentstream.contract.entities import ENTITY_MODELS
from agentstream.contract.settings import Settings
from agentstream.contract.topics import otlp_spans_topic, topic_for
from agentstream.otlp.rows import Row

__all__ = ["KafkaNotAcknowledged", "Publisher"]

# Below the broker's 10 MiB message limit and the codec's 8 MiB, with room for framing.
MAX_BATCH_BYTES = 1024 * 1024


class KafkaNotAcknowledged(Exception):
    """Kafka did not acknowledge a request's records in time: answered 503 + Retry-After."""


@functools.lru_cache(maxsize=65536)
def _partition(key: str, partitions: int) -> int:
    """Kafka's murmur2 of the session id, as the SDK partitions (sessions repeat: cached)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def _trace_partition(trace_hex: str, partitions: int) -> int:
    """The spans topic's partition of a trace: any stable hash shared by every intake does
    (it is our own topic); crc32 runs in C, murmur2 in Python (one per span)."""
    return zlib.crc32(trace_hex.encode()) % partitions


class Publisher:
    def __init__(self, settings: Settings, *, client_id: str = "agentstream-otlp") -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            compression_type="zstd",
            max_request_size=8 * 1024 * 1024,
            linger_ms=2,
            max_batch_size=4 * 1024 * 1024,
            **settings.kafka_client_options(),
        )
        self._partitions: dict[str, int] = {}
        prefix = settings.topic_prefix
        self.spans_topic = otlp_spans_topic(prefix)
        self._topics = {entity: topic_for(entity, prefix) for entity in ENTITY_MODELS}

    async def start(self) -> None:
        """Connect and learn every topic's partition count (publish() then waits for nothing
        but the acknowledgements it bounds)."""
        await self._producer.start()
        for topic in (*self._topics.values(), self.spans_topic):
            self._partitions[topic] = len(await self._producer.partitions_for(topic))

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(
        self,
        records: Iterable[Row],
        span_items: Iterable[tuple[str, dict[str, Any]]] = (),
        *,
        timeout_s: float | None = None,
    ) -> int:
        """Send, then wait for every acknowledgement; returns the messages sent.

        Raises :class:`KafkaNotAcknowledged` when Kafka does not acknowledge them all
        within ``timeout_s`` (default ``otlp_kafka_timeout_s``) or refuses one.
        """
        groups: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        counts = self._partitions
        for record in records:
            topic = self._topics[record.entity]
            groups[(topic, _partition(record.key, counts[topic]))].append(record.value)
        count = counts[self.spans_topic]
        items: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for trace, item in span_items:
            items[_trace_partition(trace, count)].append(item)
        ready: list[tuple[str, int, bytes]] = []  # batch messages already built
        for partition, its in items.items():
            # A partition's items in one call, already the batch message, unless they are
            # too many for one.
            value = _items_json(its)
            if len(value) <= MAX_BATCH_BYTES:
                ready.append((self.spans_topic, partition, value))
            else:
                groups[(self.spans_topic, partition)].extend(map(pydantic_core.to_json, its))
        timeout = self.settings.otlp_kafka_timeout_s if timeout_s is None else timeout_s
        futures: list[asyncio.Future[Any]] = []

        async def send_all() -> None:
            for (topic, partition), values in groups.items():
                for value in _batches(values):
                    futures.append(await self._producer.send(topic, value, partition=partition))
            for topic, partition, value in ready:
                futures.append(await self._producer.send(topic, value, partition=partition))
            await asyncio.gather(*futures)

        try:
            await asyncio.wait_for(send_all(), timeout)
        except TimeoutError:
            raise KafkaNotAcknowledged(f"Kafka did not acknowledge within {timeout:g}s") from None
        except Exception as exc:
            raise KafkaNotAcknowledged(f"Kafka refused: {exc!r}") from None
        return len(futures)


_encode_plain = msgspec.json.Encoder().encode


def _items_json(items: list[dict[str, Any]]) -> bytes:
    """Spans-topic items as one JSON array. Facts items hold only ids and text (decoded
    protobuf strings are valid Unicode): msgspec writes them as pydantic-core does, in a
    third of the time. A waiting span's body may hold a NaN attribute, which must stay NaN
    (the resolver's parser reads it back, so the span maps there exactly as it would have
    here): pydantic-core writes it so, msgspec would write null."""
    for item in items:
        if "body" in item:
            return pydantic_core.to_json(items)
    return _encode_plain(items)


def _batches(values: list[bytes]) -> Iterable[bytes]:
    """JSON-array messages of at most MAX_BATCH_BYTES (a larger single record goes alone)."""
    if sum(map(len, values)) + len(values) + 1 <= MAX_BATCH_BYTES:  # the usual: one message
        yield b"[" + b",".join(values) + b"]"
        return
    batch: list[bytes] = []
    size = 2
    for value in values:
        if batch and size + len(value) + 1 > MAX_BATCH_BYTES:
            yield b"[" + b",".join(batch) + b"]"
            batch, size = [], 2
        batch.append(value)
        size += len(value) + 1
    if batch:
        yield b"[" + b",".join(batch) + b"]"
