"""The resolver: maps the spans that arrived before an ancestor they need.

Children end, and are exported, before their parents: an LLM call's span usually reaches an
intake before the span of the agent that made it, perhaps at another intake process. Every
intake writes each span's facts (what its descendants inherit) and each span it could not
resolve to the spans topic, keyed by trace, so all of a trace meets in one partition. Each
intake process also runs this resolver, in one consumer group: per partition it keeps the
facts of the traces seen in the last ``otlp_resolve_wait_s`` seconds and the spans waiting,
maps a waiting span as soon as its ancestors are known (or, after that wait, with what is
known: the trace as session, the placeholder user, no agent), and publishes its records.

Its memory is a cache of the topic: it commits, per partition, the offset of the oldest
trace it still holds, so that a resolver taking the partition over (after a crash or a
rebalance) reads every fact it could need again. Records are deterministic, so what is
mapped twice lands once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Counter, Gauge

from agentstream.contract.settings import Settings
from agentstream.otlp.mapping import (
    FACTS_LENGTH,
    FactsLike,
    MappingError,
    SpanKind,
    facts_from_first_json,
    records_of,
    resolve,
)
from agentstream.otlp.pipeline import Mapped, span_from_json
from agentstream.otlp.publisher import KafkaNotAcknowledged, Publisher

__all__ = ["Resolver"]

log = logging.getLogger(__name__)

_STOP_TIMEOUT_S = 5.0
# Forgetting expired traces and committing walk every trace held (60 s of traffic): done
# this often, not after every poll (under load, many a second).
_HOUSEKEEPING_S = 1.0


@dataclass(slots=True)
class _Trace:
    first_offset: int
    last_seen: float
    facts: dict[str, FactsLike] = field(default_factory=dict)
    # span hex -> (kind, span json, arrival time)
    waiting: dict[str, tuple[SpanKind, dict[str, Any], float]] = field(default_factory=dict)


@dataclass(slots=True)
class _Partition:
    traces: dict[str, _Trace] = field(default_factory=dict)
    # The traces with spans waiting: the only ones each poll looks at.
    waiting: dict[str, _Trace] = field(default_factory=dict)


class Resolver:
    def __init__(
        self, settings: Settings, publisher: Publisher, registry: CollectorRegistry
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self._wait = settings.otlp_resolve_wait_s
        self._partitions: dict[int, _Partition] = {}
        self._housekept = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._consumer: AIOKafkaConsumer | None = None
        self.resolved = Counter(
            "otlp_resolver_spans",
            "waiting spans mapped by the resolver",
            ["how"],
            registry=registry,
        )
        self.waiting = Gauge(
            "otlp_resolver_waiting", "spans waiting for an ancestor", registry=registry
        )

    async def start(self) -> None:
        s = self.settings
        self._consumer = AIOKafkaConsumer(
            self.publisher.spans_topic,
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.otlp_resolver_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **s.kafka_client_options(),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="otlp-resolver")

    async def stop(self) -> None:
        # Asked, not cancelled: a cancel landing in aiokafka while the group is still joining
        # was seen to be swallowed, leaving the task (and the process) running.
        self._stopping = True
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=_STOP_TIMEOUT_S)
            if not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=_STOP_TIMEOUT_S)
        if self._consumer is not None:
            # What is still waiting stays uncommitted: the next owner of the partition maps it.
            # Bounded: leaving the group in the middle of a rebalance can wait for the
            # session timeout, and nothing depends on leaving cleanly.
            try:
                await asyncio.wait_for(self._consumer.stop(), _STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("resolver: the consumer did not stop within %ss", _STOP_TIMEOUT_S)

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping:
            try:
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                assigned = {tp.partition for tp in consumer.assignment()}
                for partition in list(self._partitions):
                    if partition not in assigned:  # revoked: its new owner replays it
                        del self._partitions[partition]
                now = time.monotonic()
                for tp, messages in batches.items():
                    part = self._partitions.setdefault(tp.partition, _Partition())
                    for message in messages:
                        self._take(part, message.offset, message.value, now)
                await self._resolve_ready(now)
                if now - self._housekept >= _HOUSEKEEPING_S:
                    self._forget_expired(now)
                    await self._commit(consumer)
                    self._housekept = now
            except asyncio.CancelledError:
                raise
            except KafkaNotAcknowledged as exc:  # transient: the spans stay waiting
                log.warning("resolver: %s; retrying", exc)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("resolver: unexpected error; retrying in 1 s")
                await asyncio.sleep(1.0)

    def _take(self, part: _Partition, offset: int, value: bytes | None, now: float) -> None:
        try:
            # Keys only are worth caching: the values are span ids, each seen once.
            items = pydantic_core.from_json(value or b"[]", cache_strings="keys")
        except ValueError:
            log.warning("resolver: skipping a message at offset %d that is not JSON", offset)
            return
        for item in items if isinstance(items, list) else [items]:
            try:
                self._take_item(part, offset, item, now)
            except (KeyError, TypeError, ValueError):
                log.warning("resolver: skipping an item at offset %d of an unknown shape", offset)

    @staticmethod
    def _take_item(part: _Partition, offset: int, item: Any, now: float) -> None:
        trace_hex = item["t"]
        trace = part.traces.get(trace_hex)
        if trace is None:
            trace = part.traces[trace_hex] = _Trace(first_offset=offset, last_seen=now)
        trace.last_seen = now
        if "span" in item:  # the first version's item: one span's facts (and body)
            trace.facts[item["span"]] = facts_from_first_json(item["f"])
            if item.get("body") is not None:
                trace.waiting[item["span"]] = (item["k"], item["body"], now)
                part.waiting[trace_hex] = trace
            return
        facts = item.get("f")
        if facts is not None:
            for span_hex, its in facts.items():
                if not (isinstance(its, list) and len(its) == FACTS_LENGTH):
                    raise ValueError(f"facts of span {span_hex} are not a 4-array")
            trace.facts.update(facts)
        if "w" in item:
            trace.waiting[item["w"]] = (item["k"], item["body"], now)
            part.waiting[trace_hex] = trace

    async def _resolve_ready(self, now: float) -> None:
        out = Mapped()
        done: list[tuple[_Partition, str, _Trace, str]] = []
        waiting = 0
        for part in self._partitions.values():
            for trace_hex, trace in part.waiting.items():
                for span_hex, (kind, body, arrived) in trace.waiting.items():
                    overdue = now - arrived > self._wait
                    ctx = resolve(trace_hex, span_hex, trace.facts.get, final=overdue)
                    if ctx is None:
                        waiting += 1
                        continue
                    span = span_from_json(body)
                    try:
                        out.add(span, kind, ctx, records_of(span, kind, ctx))
                    except MappingError as exc:  # checked at the intake; defaults differ only
                        log.warning("resolver: span %s refused: %s", span_hex, exc)
                    self.resolved.labels("timeout" if overdue else "ancestors").inc()
                    done.append((part, trace_hex, trace, span_hex))
        self.waiting.set(waiting)
        if not done:
            return
        await self.publisher.publish(out.all_records())
        for part, trace_hex, trace, span_hex in done:
            trace.waiting.pop(span_hex, None)
            if not trace.waiting:
                part.waiting.pop(trace_hex, None)

    def _forget_expired(self, now: float) -> None:
        for part in self._partitions.values():
            traces = part.traces
            for trace_hex in [
                h for h, t in traces.items() if not t.waiting and now - t.last_seen > self._wait
            ]:
                del traces[trace_hex]

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = {}
        for tp in consumer.assignment():
            part = self._partitions.get(tp.partition)
            if part is not None and part.traces:
                offset = min(t.first_offset for t in part.traces.values())
            else:
                offset = await consumer.position(tp)
            offsets[TopicPartition(tp.topic, tp.partition)] = OffsetAndMetadata(offset, "")
        if offsets:
            await consumer.commit(offsets)
