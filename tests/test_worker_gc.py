"""The worker's first-generation GC threshold sits above what two batches in flight keep
alive: otherwise every few thousand records a collection walks the batches in flight again,
to find nothing (BENCHMARKS.md, "The consume loop's own costs")."""

from __future__ import annotations

import gc
import uuid

import pytest
from aiokafka.structs import ConsumerRecord

from agentstream.contract.codec import encode_record
from agentstream.contract.settings import Settings
from agentstream.contract.topics import topic_for
from agentstream.sinks.postgres import PostgresSink
from agentstream.streams.deadletters import DeadLetterPublisher
from agentstream.streams.health import HealthState
from agentstream.streams.interpreter import YOUNG_PER_BATCH_RECORD
from agentstream.streams.metrics import WorkerMetrics
from agentstream.streams.processor import Processor
from tests.sink_records import event, llm, session

pytestmark = pytest.mark.integration

BATCH_RECORDS = 300


def test_two_batches_of_one_record_messages_stay_below_the_threshold(database: str) -> None:
    settings = Settings(topic_prefix="gc.")
    sink = PostgresSink(database)
    sink.connect()
    processor = Processor(
        settings, sink, DeadLetterPublisher(settings), WorkerMetrics(), HealthState()
    )
    messages = []
    for i in range(2 * BATCH_RECORDS):  # two batches: the one written, the one filling
        sid = uuid.uuid4()
        entity, record = [
            ("sessions", session(sid)),
            ("events", event(uuid.uuid4(), sid)),
            ("llm_interactions", llm(uuid.uuid4(), sid)),
        ][i % 3]
        value = encode_record(record)
        topic = topic_for(entity, settings.topic_prefix)
        messages.append(
            ConsumerRecord(topic, 0, i, 1_764_800_000_000, 0, None, value, None, -1, 0, ())
        )
    try:
        gc.collect()
        gc.disable()
        before = gc.get_count()[0]
        in_flight = [processor.decode_message(m) for m in messages]
        alive = gc.get_count()[0] - before
    finally:
        gc.enable()
        sink.close()
    assert len(in_flight) == 2 * BATCH_RECORDS
    assert all(p.items and not p.dead for p in in_flight)
    # Containers alive per record of a batch while two are in flight, against the threshold's
    # allowance per batch record (which also leaves room for a fetch being decoded).
    assert alive / BATCH_RECORDS < YOUNG_PER_BATCH_RECORD / 1.5, alive / BATCH_RECORDS
