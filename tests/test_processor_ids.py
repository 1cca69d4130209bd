"""The processor tells the sink which entities of a batch have distinct record ids, from the
id sets taken as each message was decoded (so the sink skips its own check): never for an
entity whose ids repeat, across messages or within one, nor where a set was not taken."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from agentstream.sinks.postgres import SinkItem, Source, WriteResult
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.health import HealthState
from agentstream.streams.metrics import WorkerMetrics
from agentstream.streams.processor import Prepared, Processor, _item_ids

SETTINGS = Settings()


class RecordingSink:
    """A PostgresSink that records what encode_batch was told and writes nothing."""

    def __init__(self) -> None:
        self.distinct: list[set[str]] = []

    def encode_batch(self, items: Sequence[Any], *, distinct: Any = ()) -> Any:
        self.distinct.append(set(distinct))
        return SimpleNamespace(groups=[])

    def write_encoded(self, encoded: Any) -> WriteResult:
        return WriteResult()


def message(entity: str, ids: list[uuid.UUID], offset: int, *, take_ids: bool = True) -> Prepared:
    topic = topic_for(entity, SETTINGS.topic_prefix)
    source = Source(topic, 0, offset, b"[]")
    items = [SinkItem(entity, SimpleNamespace(id=i), source, n) for n, i in enumerate(ids)]
    return Prepared(items, [], topic, 0, offset, len(items), _item_ids(items) if take_ids else None)


async def distinct_of(batch: list[Prepared]) -> set[str]:
    sink = RecordingSink()
    processor = Processor(
        SETTINGS,
        sink,  # type: ignore[arg-type]
        DeadLetterPublisher(SETTINGS),
        WorkerMetrics(),
        HealthState(),
    )
    await processor.write_batch(batch)
    (distinct,) = sink.distinct
    return distinct


async def test_distinct_ids_across_messages_are_told() -> None:
    a, b, c, s = (uuid.uuid4() for _ in range(4))
    batch = [message("events", [a, b], 0), message("events", [c], 1), message("sessions", [s], 0)]
    assert await distinct_of(batch) == {"events", "sessions"}


async def test_an_id_repeated_in_another_message_or_the_same_is_not() -> None:
    a, b, s = (uuid.uuid4() for _ in range(3))
    across = [message("events", [a, b], 0), message("events", [b], 1), message("sessions", [s], 0)]
    assert await distinct_of(across) == {"sessions"}
    within = [message("events", [a, a], 0)]
    assert await distinct_of(within) == set()


async def test_a_message_without_its_id_set_leaves_its_entity_to_the_sink() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    batch = [message("events", [a], 0), message("events", [b], 1, take_ids=False)]
    assert await distinct_of(batch) == set()


def test_a_record_without_an_id_gives_no_id_set() -> None:
    source = Source("t", 0, 0, b"{}")
    items = [SinkItem("events", SimpleNamespace(id=None), source, None)]
    assert _item_ids(items) is None
