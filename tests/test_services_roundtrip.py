"""The services are real: a batch goes through the broker and a row into PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from agentstream.contract import Session, decode, encode_batch, topic_for
from agentstream.contract.settings import Settings
from tests.support.kafka import create_topics, read_all

pytestmark = pytest.mark.integration


async def test_batch_message_roundtrip_through_the_broker(settings: Settings) -> None:
    topic = topic_for("sessions", settings.topic_prefix)
    await create_topics(settings.kafka_bootstrap, [topic], partitions=1)
    sent = [Session(id=uuid.uuid4(), user_id=f"user-{i}") for i in range(50)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, encode_batch(sent))
    finally:
        await producer.stop()

    [message] = await read_all(settings.kafka_bootstrap, topic, expected=1)
    assert message.value is not None
    decoded = decode("sessions", message.value)
    assert decoded.is_batch and not decoded.invalid
    assert [r for _, r in decoded.records] == sent


def test_a_row_is_written_and_read_back(settings: Settings) -> None:
    sid = uuid.uuid4()
    with psycopg.connect(settings.database_conninfo()) as conn:
        conn.execute(
            "INSERT INTO sessions (id, user_id, created_at) VALUES (%s, %s, %s)",
            (sid, "u-1", datetime(2026, 1, 1, tzinfo=UTC)),
        )
        row = conn.execute(
            "SELECT user_id, metadata, updated_at IS NOT NULL FROM sessions WHERE id = %s", (sid,)
        ).fetchone()
    assert row == ("u-1", {}, True)
