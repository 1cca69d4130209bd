"""What the worker does with messages: decode and validate them, write batches, dead-letter.

For each batch of messages (batched and committed by consume.py):

1. every message was decoded and validated as it arrived (``decode_messages``: a run of
   one-record messages in one msgspec call, any other message by ``decode_message`` and
   ``decode_items``: msgspec straight into rows where it is sure, the pydantic reference
   otherwise, see fastdecode.py): valid records get their ingest defaults (an id derived from
   topic/partition/offset/index, the Kafka timestamp for NOW() columns) and are encoded as
   binary COPY rows (sinks.postgres.copy: done here so that the flush thread only streams
   bytes), invalid ones become dead letters with their coordinates;
2. the records are grouped by table, deduplicated and joined into one COPY stream per
   table on the event loop (``PostgresSink.encode_batch``), then written in one transaction
   (``write_encoded``) by the flush thread (flusher.py), so that the event loop keeps
   heartbeats and fetches flowing and the flush thread holds the GIL only to issue a few
   statements; batches are written in the order they were handed over, and transient
   errors are retried there, with capped exponential backoff;
3. records PostgreSQL refused become dead letters too; all dead letters are published and
   acknowledged by Kafka;
4. only then does ``write_batch`` return, and the consume loop commits the batch's offsets.
   A crash anywhere before that redelivers the batch; the writes are idempotent.
"""

from __future__ import annotations

import logging
import operator
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from agentstream.contract.codec import InvalidRecord, decode
from agentstream.contract.deadletter import DeadLetter, ErrorKind
from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, topic_for
from agentstream.sinks.postgres import (
    PostgresSink,
    SinkItem,
    Source,
)
from agentstream.sinks.postgres.copy import RowEncoder
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.fastdecode import (
    RUN_MAX_MESSAGES,
    WIRE_TYPES,
    decode_object_run,
    decode_wire,
    joinable,
    joinable_prefix,
)
from agentstream.streams.flusher import Flusher, WorkerStopped
from agentstream.streams.health import HealthState
from agentstream.streams.metrics import WorkerMetrics

__all__ = ["Prepared", "Processor", "WorkerStopped", "decode_items"]

log = logging.getLogger(__name__)

# An item's record id as an int (uuid.UUID's __hash__ is Python, an int's is C).
_ID_INT = operator.attrgetter("record.id.int")


@dataclass(slots=True)
class Prepared:
    """One message, or a run of one partition's messages, decoded: what to write and what
    to dead-letter; ``offset`` is the (last) message's."""

    items: list[SinkItem]
    dead: list[DeadLetter]
    topic: str
    partition: int
    offset: int
    size: int = field(default=0)
    # The ids of ``items`` (as ints), taken while the records were just decoded and in the
    # CPU's cache: write_batch finds from them whether a batch's ids are distinct, which
    # the sink would otherwise check from the records again, long after (see
    # :func:`_item_ids`). None where not taken.
    ids: set[int] | None = field(default=None)


class Processor:
    def __init__(
        self,
        settings: Settings,
        sink: PostgresSink,
        publisher: DeadLetterPublisher,
        metrics: WorkerMetrics,
        health: HealthState,
        *,
        highwater: Callable[[Any], int | None] = lambda tp: None,
        rebalancing: Callable[[], bool] = lambda: False,
    ) -> None:
        self._sink = sink
        self._publisher = publisher
        self._metrics = metrics
        self._highwater = highwater
        self._entity_of = {topic_for(e, settings.topic_prefix): e for e in ENTITIES}
        self._topic_of = {e: t for t, e in self._entity_of.items()}
        self._last_timestamp_ms: int | None = None
        self._last_timestamp = datetime.now(UTC)
        self._flusher = Flusher(sink.write_encoded, health, metrics, rebalancing=rebalancing)

    # --- step 1: runs on the consume loop, per message ----------------------------------

    def decode_messages(
        self, messages: Sequence[Any], start: int, end: int, room: int
    ) -> tuple[Prepared, int]:
        """``messages[start]`` decoded (see :meth:`decode_message`), or with it as many of
        the one-record messages that follow as fit in ``room`` records, decoded in one
        msgspec call (fastdecode.decode_object_run: the same records as one by one).
        ``messages[start:end]`` are one partition's, in offset order. Returns the decoded
        message or run and the index of the first message left."""
        if not joinable(messages[start].value):  # an array message: no window to build
            return self.decode_message(messages[start]), start + 1
        window = [m.value for m in messages[start : min(end, start + min(room, RUN_MAX_MESSAGES))]]
        n = joinable_prefix(window)
        if n < 2:
            return self.decode_message(messages[start]), start + 1
        stop = start + n
        run = messages[start:stop]
        first = run[0]
        topic, partition = first.topic, first.partition
        entity = self._entity_of[topic]
        structs = decode_object_run(entity, window[:n])
        if structs is None:  # one of them at least is not sure: one by one
            merged = Prepared([], [], topic, partition, run[-1].offset)
            for msg in run:
                one = self.decode_message(msg)
                merged.items += one.items
                merged.dead += one.dead
            merged.size = len(merged.items) + len(merged.dead)
            return merged, stop
        prefix = f"{topic}/{partition}/"
        last_ms, ts = self._last_timestamp_ms, self._last_timestamp
        for msg, struct in zip(run, structs, strict=True):
            if msg.timestamp != last_ms or not last_ms:
                last_ms, ts = msg.timestamp, self._ingest_time(msg.timestamp)
            # decode_items' key for a one-record message: topic/partition/offset/0.
            key = f"{prefix}{msg.offset}/" if struct.id is None else ""
            struct.fill_ingest_defaults(key, 0, ts)
        rows = self._sink.encoder(entity).rows(structs)
        # The ConsumerRecord is the item's source (topic, partition, offset, value).
        items = [
            SinkItem(entity, struct, msg, None, row)
            for msg, struct, row in zip(run, structs, rows, strict=True)
        ]
        ids = _item_ids(items)
        return Prepared(items, [], topic, partition, run[-1].offset, len(items), ids), stop

    def _ingest_time(self, timestamp_ms: int | None) -> datetime:
        """Kafka's timestamp (from the producer or the broker, in ms) stands for NOW(): the
        same on every replay, unlike the time of the write. Messages produced together
        share their millisecond: the last one's datetime is reused."""
        if timestamp_ms and timestamp_ms == self._last_timestamp_ms:
            return self._last_timestamp
        if timestamp_ms:
            self._last_timestamp = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
            self._last_timestamp_ms = timestamp_ms
            return self._last_timestamp
        return datetime.now(UTC)

    def decode_message(self, msg: Any) -> Prepared:
        """One ``aiokafka.ConsumerRecord``: its records, encoded as rows, and its dead letters."""
        topic, partition, offset = msg.topic, msg.partition, msg.offset
        entity = self._entity_of[topic]
        value: bytes = msg.value if msg.value is not None else b""
        ts = self._ingest_time(msg.timestamp)
        source = Source(topic, partition, offset, value)
        items, invalid = decode_items(entity, source, ts, self._sink.encoder(entity))
        dead = []
        if invalid:
            headers = tuple(_headers(msg.headers))
            dead = [
                DeadLetter(
                    kind=bad.kind,
                    reason=bad.reason,
                    entity=entity,
                    source_topic=topic,
                    partition=partition,
                    offset=offset,
                    index=bad.index,
                    value=bad.raw,
                    source_headers=headers,
                )
                for bad in invalid
            ]
        size = len(items) + len(dead)
        return Prepared(items, dead, topic, partition, offset, size, _item_ids(items))

    # --- steps 2-4: per batch -------------------------------------------------------------

    async def write_batch(self, batch: Sequence[Prepared]) -> None:
        """Write one batch and publish its dead letters; returns once all of it is durable.
        The consume loop may call it again before the previous call returned: the batches
        are written in the order of the calls (flusher.py)."""
        items = [i for p in batch for i in p.items]
        dead = [d for p in batch if p.dead for d in p.dead]
        started = time.perf_counter()
        # Grouped, deduplicated and joined into COPY data here, on the event loop: the
        # flush thread then holds the GIL only for a few statements (see sinks.postgres).
        distinct = self._distinct_entities(batch)
        result = await self._flusher.write(self._sink.encode_batch(items, distinct=distinct))
        flush_s = time.perf_counter() - started
        self._metrics.flush_seconds.observe(flush_s)
        self._metrics.batch_records.observe(len(items))
        for rejected in result.rejected:
            src = rejected.item.source
            dead.append(
                DeadLetter(
                    kind=ErrorKind.DATABASE,
                    reason=rejected.reason,
                    entity=rejected.item.entity,
                    source_topic=src.topic,
                    partition=src.partition,
                    offset=src.offset,
                    index=rejected.item.index,
                    value=rejected.item.original_bytes(),
                )
            )
        await self._publisher.publish(dead)
        self._count_outcome(batch, result.accepted, dead)
        log.debug(
            "event=flushed records=%d dead_letters=%d messages=%d flush_s=%.3f",
            len(items),
            len(dead),
            len(batch),
            flush_s,
        )

    def _distinct_entities(self, batch: Sequence[Prepared]) -> set[str]:
        """The entities whose records in ``batch`` have distinct ids, from the messages' id
        sets: their union reads the sets' own tables (stored hashes), not the records."""
        ids: dict[str, set[int]] = {}
        counts: dict[str, int] = {}
        unknown: set[str] = set()
        for p in batch:
            if not p.items:
                continue
            entity = self._entity_of[p.topic]
            if p.ids is None:
                unknown.add(entity)
                continue
            seen = ids.get(entity)
            if seen is None:
                seen = ids[entity] = set()
            seen |= p.ids
            counts[entity] = counts.get(entity, 0) + len(p.items)
        return {e for e, seen in ids.items() if e not in unknown and len(seen) == counts[e]}

    def close(self) -> None:
        """Stop the flush thread: a write still retrying gives up, queued ones are refused."""
        self._flusher.close()

    def _count_outcome(
        self, batch: Sequence[Prepared], accepted: dict[str, int], dead: list[DeadLetter]
    ) -> None:
        """Counted per batch, from per-table totals: nothing here runs per message but the
        partitions' last offsets."""
        m = self._metrics
        received = Counter({self._topic_of[e]: n for e, n in accepted.items()})
        for d in dead:
            m.records_dead_lettered.labels(d.source_topic, d.kind).inc()
            received[d.source_topic] += 1
        for entity, n in accepted.items():
            m.records_written.labels(self._topic_of[entity]).inc(n)
        for topic, n in received.items():
            m.records_in.labels(topic).inc(n)
        # A batch holds each partition's messages in offset order: the last one wins.
        last = {(p.topic, p.partition): p.offset for p in batch}
        for (topic, partition), offset in last.items():
            high = self._highwater(TopicPartition(topic, partition))
            if high is not None:
                m.consumer_lag.labels(topic, str(partition)).set(max(0, high - offset - 1))


def decode_items(
    entity: str,
    source: Source,
    ingest_time: datetime,
    encode: RowEncoder,
    *,
    fast: bool = True,
) -> tuple[list[SinkItem], list[InvalidRecord]]:
    """One message's records as sink items, each with its binary COPY row, and the invalid ones.

    msgspec first (fastdecode: structs straight into rows); where it is not sure, or with
    ``fast=False``, the reference: the pydantic models (codec.decode), which also word
    every rejection. Both give the same items and rows (tests/test_fast_decoder.py).
    """
    key = f"{source.topic}/{source.partition}/{source.offset}/"
    items: list[SinkItem] = []
    wire = decode_wire(entity, source.value) if fast else None
    if wire is not None:
        structs, batch = wire
        WIRE_TYPES[entity].fill_all_ingest_defaults(structs, key, ingest_time)
        rows = encode.rows(structs)
        items = [
            SinkItem(entity, struct, source, index if batch else None, row)
            for index, (struct, row) in enumerate(zip(structs, rows, strict=True))
        ]
        return items, []
    decoded = decode(entity, source.value)
    batch = decoded.is_batch
    for index, record in decoded.records:
        record = record.with_ingest_defaults(id_key=key + str(index), ingest_time=ingest_time)
        items.append(
            SinkItem(entity, record, source, index if batch else None, encode.row_or_none(record))
        )
    return items, decoded.invalid


def _item_ids(items: list[SinkItem]) -> set[int] | None:
    """The items' record ids as ints (fewer than the items where some repeat); None if a
    record has no id."""
    try:
        return set(map(_ID_INT, items))
    except AttributeError:
        return None


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    if not raw:
        return []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(str(k), bytes(v) if v is not None else b"") for k, v in pairs]
