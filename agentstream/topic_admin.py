"""Create agentstream's topics with the configured partitions and replication factor, and
delete topics by name (the demo, the benchmarks and the tests clean up after themselves).

Shared by the SDK (``agentstream.ensure_topics``, used by ``agentstream produce``) and the
worker (``streams/runner.py``, before it joins its group): topics created by either get
``topic_partitions`` partitions rather than whatever the broker's auto-creation would pick,
and both wait until every partition has a leader, so that the first sends and fetches are
not answered with NotLeaderForPartition. Topics that exist are left as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agentstream.contract.settings import Settings

__all__ = ["TopicRefused", "create_missing_topics", "delete_topics"]


class TopicRefused(Exception):
    """The broker refused to create a topic (not because it exists)."""


async def create_missing_topics(
    settings: Settings, names: Sequence[str], timeout_s: float
) -> list[str]:
    """Create the topics of ``names`` that are missing; return those created.

    Raises aiokafka's errors, ``TimeoutError`` or ``OSError`` when the broker cannot be
    reached (callers say what to check), and :class:`TopicRefused`.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **settings.kafka_client_options(),
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout_s))
        missing = [
            NewTopic(n, settings.topic_partitions, settings.topic_replication)
            for n in names
            if n not in existing
        ]
        created: list[str] = []
        if missing:
            response = await asyncio.wait_for(admin.create_topics(missing), timeout_s)
            for name, code, message in response.topic_errors:
                if code == 0:
                    created.append(name)
                elif code != TopicAlreadyExistsError.errno:  # created meanwhile: fine
                    raise TopicRefused(
                        f"Kafka at {settings.kafka_bootstrap} refused to create topic {name!r}: "
                        f"error {code} ({message}); check AGENTSTREAM_TOPIC_PARTITIONS and "
                        "AGENTSTREAM_TOPIC_REPLICATION"
                    )
        await asyncio.wait_for(_leaders_elected(admin, list(names)), timeout_s)
        return created
    finally:
        await admin.close()


async def _leaders_elected(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    while True:
        described = await admin.describe_topics(topics)
        if all(
            t["error_code"] == 0
            and t["partitions"]
            and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        await asyncio.sleep(0.1)


async def delete_topics(settings: Settings, doomed: Callable[[str], bool]) -> int:
    """Delete every topic whose name ``doomed`` accepts; return how many."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options()
    )
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if doomed(t)]
        for i in range(0, len(names), 200):  # a bounded request each
            await admin.delete_topics(names[i : i + 200])
        return len(names)
    finally:
        await admin.close()
