"""The worker's first-generation GC threshold sits above what the batches it holds keep
alive (two in flight, one being filled): otherwise every few thousand records a collection
walks the batches in flight again, to find nothing (BENCHMARKS.md, "The consume loop's own
costs")."""

from __future__ import annotations

import gc
import uuid
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from agentstream.contract.codec import encode_record
from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from agentstream.sinks.postgres import PostgresSink
from agentstream.streams.consume import WRITES_IN_FLIGHT
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.health import HealthState
from agentstream.streams.interpreter import YOUNG_PER_BATCH_RECORD
from agentstream.streams.metrics import WorkerMetrics
from agentstream.streams.processor import Processor
from tests.sink_records import event, llm, session

pytestmark = pytest.mark.integration

BATCH_RECORDS = 300
HELD = WRITES_IN_FLIGHT + 1  # batches alive at once: those in flight and the one filling


def _records(settings: Settings) -> list[tuple[str, bytes]]:
    """The batches the worker holds at once, of one-record messages: (topic, value)."""
    out = []
    for i in range(HELD * BATCH_RECORDS):
        sid = uuid.uuid4()
        entity, record = [
            ("sessions", session(sid)),
            ("events", event(uuid.uuid4(), sid)),
            ("llm_interactions", llm(uuid.uuid4(), sid)),
        ][i % 3]
        out.append((topic_for(entity, settings.topic_prefix), encode_record(record)))
    return out


def _message(topic: str, offset: int, value: bytes) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic, 0, offset, 1_764_800_000_000, 0, None, value, None, -1, 0, ())


def _assert_below_the_threshold(alive: int) -> None:
    # Containers alive per record of a batch while HELD are, against the threshold's
    # allowance per batch record (which also leaves room for a fetch being decoded).
    assert alive / BATCH_RECORDS < YOUNG_PER_BATCH_RECORD / 1.5, alive / BATCH_RECORDS


def test_the_batches_held_of_one_record_messages_stay_below_the_threshold(database: str) -> None:
    settings = Settings(topic_prefix="gc.")
    sink = PostgresSink(database)
    sink.connect()
    processor = Processor(
        settings, sink, DeadLetterPublisher(settings), WorkerMetrics(), HealthState()
    )
    messages = [_message(t, i, v) for i, (t, v) in enumerate(_records(settings))]
    try:
        gc.collect()
        gc.disable()
        before = gc.get_count()[0]
        in_flight = [processor.decode_message(m) for m in messages]
        alive = gc.get_count()[0] - before
    finally:
        gc.enable()
        sink.close()
    assert len(in_flight) == HELD * BATCH_RECORDS
    assert all(p.items and not p.dead for p in in_flight)
    _assert_below_the_threshold(alive)


def test_runs_of_one_record_messages_stay_below_the_threshold(database: str) -> None:
    """The worker's path (decode_messages: runs, each item keeping its ConsumerRecord as its
    source), with the ConsumerRecords allocated inside the count, as a fetch allocates them."""
    settings = Settings(topic_prefix="gc.")
    sink = PostgresSink(database)
    sink.connect()
    processor = Processor(
        settings, sink, DeadLetterPublisher(settings), WorkerMetrics(), HealthState()
    )
    by_topic: dict[str, list[bytes]] = {}
    for topic, value in _records(settings):
        by_topic.setdefault(topic, []).append(value)
    try:
        gc.collect()
        gc.disable()
        before = gc.get_count()[0]
        in_flight = []
        for topic, values in by_topic.items():
            fetched = [_message(topic, i, v) for i, v in enumerate(values)]
            i = 0
            while i < len(fetched):
                run, i = processor.decode_messages(fetched, i, len(fetched), 10 * BATCH_RECORDS)
                in_flight.append(run)
            del fetched
        alive = gc.get_count()[0] - before
    finally:
        gc.enable()
        sink.close()
    assert sum(p.size for p in in_flight) == HELD * BATCH_RECORDS
    assert len(in_flight) == 3  # one run per topic
    assert all(p.items and not p.dead for p in in_flight)
    _assert_below_the_threshold(alive)
