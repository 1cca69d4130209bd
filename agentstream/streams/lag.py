"""Consumer lag of the worker group: how far the committed offsets trail the topics' ends.

Read through the admin API (committed offsets) and a metadata-only consumer (end offsets),
so it works from any process: ``agentstream status``, the demo, the benchmarks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from agentstream.contract.settings import Settings
from agentstream.contract.topics import ENTITIES, topic_for

__all__ = ["GroupLag", "group_lag"]


@dataclass(frozen=True, slots=True)
class GroupLag:
    """Per topic: messages not yet committed by the group (end offset - committed offset)."""

    by_topic: dict[str, int]
    end_offsets: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_topic.values())


async def group_lag(settings: Settings, *, wait_s: float = 30.0) -> GroupLag:
    topics = [topic_for(e, settings.topic_prefix) for e in ENTITIES]
    opts = settings.kafka_client_options()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **opts)
    await asyncio.wait_for(admin.start(), wait_s)
    try:
        described = await admin.describe_topics(topics)
        committed = await admin.list_consumer_group_offsets(settings.worker_group)
    finally:
        await admin.close()
    tps = [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if d.get("error_code", 0) == 0
        for p in d.get("partitions", [])
    ]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **opts)
    await asyncio.wait_for(consumer.start(), wait_s)
    try:
        ends = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    lag: dict[str, int] = {t: 0 for t in topics}
    end_by_topic: dict[str, int] = {t: 0 for t in topics}
    for tp, end in ends.items():
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag[tp.topic] += max(end - done, 0)
        end_by_topic[tp.topic] += end
    return GroupLag(lag, end_by_topic)
