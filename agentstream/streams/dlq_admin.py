"""Inspect and replay dead letters (``agentstream dlq``).

``read_dead_letters`` reads the dead-letter topic from the beginning up to the end offsets
seen when it starts (a snapshot: it never waits for new letters). ``replay`` re-publishes
selected letters to their source topic after checking them against the current contract:
a letter that is still invalid is reported and skipped, unless forced.

A replayed record keeps the identity it had at its original coordinates: a record sent
without an id gets the id the worker would have derived for it there, so replaying the same
letter twice still lands it once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pydantic_core
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream.contract.codec import decode
from agentstream.contract.deadletter import HEADER_PREFIX, DeadLetter
from agentstream.contract.entities import INGEST_ID_NAMESPACE
from agentstream.contract.settings import Settings
from agentstream.contract.topics import dlq_topic

__all__ = [
    "LetterAt",
    "ReplayOutcome",
    "Selection",
    "group_by_reason",
    "read_dead_letters",
    "replay",
]

REPLAY_HEADER = HEADER_PREFIX + "replay.of"


@dataclass(frozen=True, slots=True)
class LetterAt:
    """A dead letter and where it sits in the dead-letter topic."""

    partition: int
    offset: int
    letter: DeadLetter

    @property
    def coordinates(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class Selection:
    """Which letters to act on; every given criterion must match."""

    entity: str | None = None
    kind: str | None = None
    reason_contains: str | None = None
    coordinates: frozenset[str] = frozenset()  # "partition:offset" in the DLQ topic

    @property
    def everything(self) -> bool:
        """No criterion given: every letter matches."""
        return not (self.entity or self.kind or self.reason_contains or self.coordinates)

    def matches(self, item: LetterAt) -> bool:
        letter = item.letter
        return (
            (self.entity is None or letter.entity == self.entity)
            and (self.kind is None or letter.kind == self.kind)
            and (self.reason_contains is None or self.reason_contains in letter.reason)
            and (not self.coordinates or item.coordinates in self.coordinates)
        )


@dataclass(slots=True)
class ReplayOutcome:
    replayed: list[LetterAt] = field(default_factory=list)
    still_invalid: list[tuple[LetterAt, str]] = field(default_factory=list)


async def read_dead_letters(
    settings: Settings, *, wait_s: float = 30.0, unique: bool = True
) -> list[LetterAt]:
    """Every letter in the dead-letter topic, oldest first per partition.

    The dead-letter topic is written at least once: a worker that crashes after publishing a
    letter but before committing its source offset publishes it again on restart. A letter
    is identified by its source coordinates, so with ``unique`` each is returned once.
    """
    letters = await _read_snapshot(settings, wait_s)
    return _first_of_each(letters) if unique else letters


async def _read_snapshot(settings: Settings, wait_s: float) -> list[LetterAt]:
    """The letters up to the end offsets seen at the start, oldest first per partition."""
    topic = dlq_topic(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        request_timeout_ms=int(wait_s * 1000),
        **settings.kafka_client_options(),
    )
    await asyncio.wait_for(consumer.start(), wait_s)
    letters: list[LetterAt] = []
    try:
        partitions = await _partitions_of(settings, topic, wait_s)
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            batches = await asyncio.wait_for(consumer.getmany(*remaining, timeout_ms=500), wait_s)
            for tp, messages in batches.items():
                for msg in messages:
                    if msg.offset < end[tp]:
                        letter = DeadLetter.from_message(msg.value or b"", msg.headers)
                        letters.append(LetterAt(tp.partition, msg.offset, letter))
                if messages and messages[-1].offset + 1 >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return letters


def _first_of_each(letters: Iterable[LetterAt]) -> list[LetterAt]:
    """The first letter of each source record (a letter published again counts once)."""
    seen: set[tuple[str, int, int, int | None]] = set()
    kept = []
    for item in letters:
        key = item.letter.source_key
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


async def _partitions_of(settings: Settings, topic: str, wait_s: float) -> list[int]:
    """The topic's partitions, [] if it does not exist (the admin client has the metadata)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(wait_s * 1000),
        **settings.kafka_client_options(),
    )
    await asyncio.wait_for(admin.start(), wait_s)
    try:
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if description.get("error_code", 0) != 0:
        return []
    return sorted(p["partition"] for p in description.get("partitions", []))


def group_by_reason(letters: Iterable[LetterAt]) -> list[tuple[tuple[str, str, str], int]]:
    """Counts by (entity, kind, reason), largest group first."""
    counts = Counter((i.letter.entity, i.letter.kind, i.letter.reason) for i in letters)
    return counts.most_common()


def _with_original_id(item: LetterAt) -> bytes:
    """The letter's value, with the id it would have had at its original coordinates."""
    letter = item.letter
    try:
        parsed = pydantic_core.from_json(letter.value)
    except ValueError:
        return letter.value
    if isinstance(parsed, dict) and parsed.get("id") is None:
        index = 0 if letter.index is None else letter.index
        key = f"{letter.source_topic}/{letter.partition}/{letter.offset}/{index}"
        parsed["id"] = str(uuid.uuid5(INGEST_ID_NAMESPACE, key))
        return pydantic_core.to_json(parsed)
    return letter.value


async def replay(
    settings: Settings,
    letters: Iterable[LetterAt],
    *,
    force: bool = False,
    dry_run: bool = False,
    on_progress: Callable[[LetterAt], None] = lambda _i: None,
) -> ReplayOutcome:
    """Re-publish letters to their source topic; skip those still invalid unless ``force``."""
    outcome = ReplayOutcome()
    to_send = _check(letters, force, outcome)
    if dry_run or not to_send:
        outcome.replayed = [item for item, _ in to_send]
        return outcome
    await _publish(settings, to_send, outcome, on_progress)
    return outcome


def _check(
    letters: Iterable[LetterAt], force: bool, outcome: ReplayOutcome
) -> list[tuple[LetterAt, bytes]]:
    """The letters to send, each with its value; one still invalid is listed in ``outcome``
    and left out, unless ``force``."""
    to_send: list[tuple[LetterAt, bytes]] = []
    for item in letters:
        value = _with_original_id(item)
        decoded = decode(item.letter.entity, value) if item.letter.entity else None
        if decoded is None or decoded.invalid:
            reason = "; ".join(i.reason for i in decoded.invalid) if decoded else "no entity"
            if not force:
                outcome.still_invalid.append((item, reason))
                continue
        to_send.append((item, value))
    return to_send


async def _publish(
    settings: Settings,
    to_send: list[tuple[LetterAt, bytes]],
    outcome: ReplayOutcome,
    on_progress: Callable[[LetterAt], None],
) -> None:
    """Send each value to its source topic, marked as a replay of its letter, in order."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        **settings.kafka_client_options(),
    )
    await producer.start()
    try:
        for item, value in to_send:
            headers = [
                *item.letter.source_headers,
                (REPLAY_HEADER, f"{dlq_topic(settings.topic_prefix)}:{item.coordinates}".encode()),
            ]
            await producer.send_and_wait(item.letter.source_topic, value, headers=headers)
            outcome.replayed.append(item)
            on_progress(item)
    finally:
        await producer.stop()
