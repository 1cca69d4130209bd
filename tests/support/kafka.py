"""Small helpers to create topics and read them back on the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, dlq_topic, topic_for


async def create_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 4,
    configs: dict[str, str] | None = None,
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        new = [
            NewTopic(t, num_partitions=partitions, replication_factor=1, topic_configs=configs)
            for t in topics
        ]
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
    finally:
        await admin.close()


async def create_pipeline_topics(
    settings: Settings, partitions: int, extra: Iterable[str] = ()
) -> None:
    """The six entity topics and the dead-letter topic of ``settings.topic_prefix``, and
    ``extra`` (e.g. the alerts topic)."""
    names = [topic_for(e, settings.topic_prefix) for e in ENTITIES]
    await create_topics(
        settings.kafka_bootstrap,
        [*names, dlq_topic(settings.topic_prefix), *extra],
        partitions,
    )


async def read_all(
    bootstrap: str, topic: str, expected: int, wait_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning until ``expected`` messages or ``wait_s`` seconds."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + wait_s
    try:
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return out
